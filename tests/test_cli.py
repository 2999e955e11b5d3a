"""The assetbuild command line, end to end: real subprocess runs on real project folders."""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, write_manifest
from helpers import QUICKSTART, TARGETS, generations, png_size, snapshot, temp_files

from assetbuild import generators
from assetbuild.cli import main
from assetbuild.generators.base import GenerationRequest, GenerationResult, ProgressCallback
from assetbuild.generators.placeholder import PlaceholderGenerator
from assetbuild.keys import hash_bytes
from assetbuild.lock import Lock

HERO, ATTACK, ICON = TARGETS


class Cli:
    """Runs the real CLI in ``root``, counting placeholder generations in a log outside the project."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root.parent / f"{root.name}-generations.log"

    def __call__(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Any:
        full = {"ASSETBUILD_PLACEHOLDER_LOG": str(self.log), **(env or {})}
        result = run_cli(cwd or self.root, *args, env=full)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def generated(self) -> list[str]:
        return generations(self.log)

    def reset(self) -> None:
        self.log.unlink(missing_ok=True)


@pytest.fixture
def cli(project: Path) -> Cli:
    write_manifest(project, QUICKSTART)
    return Cli(project)


def lock_of(root: Path) -> Lock:
    return Lock.load(root / "assets.lock")


def assert_recorded(root: Path, target: str) -> None:
    entry = lock_of(root).get(target)
    assert entry is not None, target
    assert hash_bytes((root / target).read_bytes()) == entry.hash


# --- building ------------------------------------------------------------------------------------------


def test_quickstart_builds_then_second_run_generates_nothing(cli: Cli) -> None:
    first = cli()
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(cli.generated()) == sorted(TARGETS)
    assert "3 generated" in first.stdout
    assert png_size((cli.root / HERO).read_bytes()) == (128, 128)
    assert png_size((cli.root / ATTACK).read_bytes()) == (128, 128)
    assert png_size((cli.root / ICON).read_bytes()) == (64, 64)  # resized after generation
    for target in TARGETS:
        assert_recorded(cli.root, target)
    assert temp_files(cli.root) == []

    before = snapshot(cli.root)
    second = cli()
    assert second.returncode == 0
    assert len(cli.generated()) == 3
    assert "0 generated" in second.stdout and "3 fresh" in second.stdout
    assert snapshot(cli.root) == before


def test_run_is_the_default_command(cli: Cli) -> None:
    assert cli(ICON).returncode == 0  # `assetbuild TARGET` == `assetbuild run TARGET`
    assert cli.generated() == [ICON]


def test_noop_build_contacts_no_server_and_writes_nothing(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.setblocking(False)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        write_manifest(project, QUICKSTART.replace('url = "placeholder"', f'url = "{url}"'))
        # Build once in-process with the placeholder standing in for the SwarmUI generator: the lock and
        # keys are those of a SwarmUI build.
        monkeypatch.setattr(generators, "create", lambda server: PlaceholderGenerator())
        monkeypatch.chdir(project)
        assert main(["run", "-q"]) == 0
        capsys.readouterr()
        assert lock_of(project).get(HERO).inputs["generator"] == "swarmui"  # type: ignore[union-attr]

        # The project lock's holder line (pid of the last writer command) is the one file a build of
        # named targets rewrites; it is not project state.
        before = snapshot(project)
        before.pop(".assetbuild/project.lock", None)
        cli = Cli(project)
        for args in (["run"], ["status"], ["why", HERO], [HERO, ICON]):
            result = cli(*args)
            assert result.returncode == 0, result.stdout + result.stderr
        after = snapshot(project)
        after.pop(".assetbuild/project.lock", None)
        assert after == before
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody ever connected
        assert cli.generated() == []


def test_fresh_clone_regenerates_nothing(cli: Cli, tmp_path: Path) -> None:
    assert cli().returncode == 0
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("assets.toml", "assets.lock", *TARGETS):
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(cli.root / name, clone / name)
    committed = {k: v for k, v in snapshot(clone).items()}
    other = Cli(clone)
    result = other()
    assert result.returncode == 0, result.stdout
    assert other.generated() == []
    assert {k: v for k, v in snapshot(clone).items() if not k.startswith(".assetbuild/")} == committed


def test_clean_then_build_restores_from_the_cache(cli: Cli) -> None:
    assert cli().returncode == 0
    images = {t: (cli.root / t).read_bytes() for t in TARGETS}
    assert cli("clean").returncode == 0
    assert not any((cli.root / t).exists() for t in TARGETS)
    cli.reset()
    result = cli()
    assert result.returncode == 0
    assert cli.generated() == []
    assert "3 restored" in result.stdout
    assert {t: (cli.root / t).read_bytes() for t in TARGETS} == images


def test_run_named_targets_and_globs(cli: Cli) -> None:
    assert cli("run", ICON).returncode == 0
    assert cli.generated() == [ICON]
    assert not (cli.root / HERO).exists()
    cli.reset()
    assert cli("run", ATTACK).returncode == 0  # its upstream comes along
    assert cli.generated() == [HERO, ATTACK]
    (cli.root / HERO).unlink()
    (cli.root / ATTACK).unlink()
    (cli.root / ICON).unlink()
    cli.reset()
    result = cli("run", "sprites/*.png")
    assert result.returncode == 0
    assert cli.generated() == []  # restored from the cache, not generated
    assert (cli.root / HERO).exists() and (cli.root / ATTACK).exists()
    assert not (cli.root / ICON).exists()


def test_run_target_given_as_a_path_from_a_subfolder(cli: Cli) -> None:
    (cli.root / "sprites").mkdir()
    result = cli("run", "hero.png", cwd=cli.root / "sprites")  # manifest found in the parent folder
    assert result.returncode == 0, result.stdout + result.stderr
    assert cli.generated() == [HERO]


def test_unknown_target_is_a_usage_error(cli: Cli) -> None:
    result = cli("run", "sprites/heroo.png")
    assert result.returncode == 2
    assert "sprites/heroo.png" in result.stderr and "did you mean 'sprites/hero.png'" in result.stderr
    assert not (cli.root / "assets.lock").exists()
    assert cli("run", "nothing/*.png").returncode == 2


def test_manifest_from_another_folder_with_f(project: Path) -> None:
    game = project / "game"
    game.mkdir()
    write_manifest(game, QUICKSTART)
    cli = Cli(project)
    result = cli("run", "-f", "game/assets.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(cli.generated()) == sorted(TARGETS)
    for target in TARGETS:
        assert (game / target).is_file()
        assert not (project / target).exists()
    assert (game / "assets.lock").is_file()
    assert cli("status", "-f", "game/assets.toml").stdout.count("fresh") >= 3


def test_no_manifest_is_a_usage_error(project: Path) -> None:
    result = Cli(project)()
    assert result.returncode == 2
    assert "assets.toml" in result.stderr and "hint:" in result.stderr


def test_server_override_by_option_and_environment(project: Path) -> None:
    write_manifest(project, QUICKSTART.replace('url = "placeholder"', 'url = "http://127.0.0.1:9"'))
    cli = Cli(project)
    assert cli("run", ICON, "--server", "placeholder").returncode == 0
    assert cli("run", HERO, env={"ASSETBUILD_SERVER": "placeholder"}).returncode == 0
    assert cli.generated() == [ICON, HERO]


def test_unknown_parameter_warning_is_shown(cli: Cli) -> None:
    write_manifest(cli.root, QUICKSTART.replace("resize = [64, 64]", "resize = [64, 64]\ncfg_scal = 3"))
    result = cli("run", ICON)
    assert result.returncode == 0
    assert re.search(r"warning: .*ui/icon_sword\.png.*'cfgscal'.*'cfgscale'", result.stdout)


# --- files assetbuild did not write --------------------------------------------------------------------


def test_hand_made_file_is_never_overwritten_until_force(cli: Cli) -> None:
    (cli.root / "ui").mkdir()
    (cli.root / ICON).write_bytes(b"my hand-drawn icon")
    result = cli("run", ICON)
    assert result.returncode == 1
    assert ICON in result.stdout and "--force" in result.stdout
    assert (cli.root / ICON).read_bytes() == b"my hand-drawn icon"
    assert cli.generated() == []
    assert lock_of(cli.root).get(ICON) is None

    forced = cli("run", "--force", ICON)
    assert forced.returncode == 0, forced.stdout
    assert png_size((cli.root / ICON).read_bytes()) == (64, 64)
    assert_recorded(cli.root, ICON)


def test_edited_file_is_reported_by_path_and_kept(cli: Cli) -> None:
    assert cli().returncode == 0
    edited = (cli.root / HERO).read_bytes() + b"touched up"
    (cli.root / HERO).write_bytes(edited)
    result = cli()
    assert result.returncode == 1
    assert re.search(r"FAILED\s+sprites/hero\.png: .*sprites/hero\.png was edited", result.stdout)
    assert (cli.root / HERO).read_bytes() == edited
    cli.reset()
    forced = cli("--force")
    assert forced.returncode == 0
    assert cli.generated() == []  # replaced from the cache
    assert_recorded(cli.root, HERO)
    assert (cli.root / HERO).read_bytes() != edited


# --- failures -------------------------------------------------------------------------------------------

BROKEN_FIRST = """
[server]
url = "placeholder"

[defaults]
width = 64
height = 64

[assets."broken.png"]
prompt = "too small to crop"
crop = [0, 0, 500, 500]

[assets."after_broken.png"]
prompt = "needs the broken one"
initimage = "broken.png"

[assets."a.png"]
prompt = "a"

[assets."b.png"]
prompt = "b"

[assets."c.png"]
prompt = "c"
"""


def test_failure_stops_the_run_without_keep_going(project: Path) -> None:
    write_manifest(project, BROKEN_FIRST)
    cli = Cli(project)
    result = cli("-n", "1")
    assert result.returncode == 1
    assert re.search(r"FAILED\s+broken\.png: .*crop", result.stdout)
    assert cli.generated() == ["broken.png"]  # the run stopped at the first failure
    assert not any((project / name).exists() for name in ("a.png", "b.png", "c.png"))


def test_keep_going_builds_the_others(project: Path) -> None:
    write_manifest(project, BROKEN_FIRST)
    cli = Cli(project)
    result = cli("--keep-going", "-n", "1")
    assert result.returncode == 1
    for name in ("a.png", "b.png", "c.png"):
        assert_recorded(project, name)
    assert not (project / "broken.png").exists()
    assert not (project / "after_broken.png").exists()
    assert re.search(r"skipped\s+after_broken\.png", result.stdout)
    assert "after_broken.png" not in cli.generated()
    # Fixing the broken asset builds only what is missing.
    write_manifest(project, BROKEN_FIRST.replace("crop = [0, 0, 500, 500]", "crop = [0, 0, 32, 32]"))
    cli.reset()
    assert cli().returncode == 0
    assert sorted(cli.generated()) == ["after_broken.png", "broken.png"]


def test_frozen_generates_nothing(cli: Cli) -> None:
    result = cli("--frozen")
    assert result.returncode == 1
    assert cli.generated() == []
    assert not (cli.root / HERO).exists()
    assert cli().returncode == 0
    assert cli("clean").returncode == 0
    cli.reset()
    assert cli("--frozen").returncode == 0  # everything comes from the cache
    assert cli.generated() == []


# --- jobs -----------------------------------------------------------------------------------------------


class Concurrency:
    """A generator that records how many generations ran at once (optionally meeting at a barrier)."""

    def __init__(self, barrier: int | None) -> None:
        self.inner = PlaceholderGenerator()
        self.kind = "placeholder"
        self.barrier = threading.Barrier(barrier, timeout=30) if barrier else None
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def generate(self, request: GenerationRequest, progress: ProgressCallback) -> GenerationResult:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            if self.barrier:
                self.barrier.wait()  # only passes if `barrier` generations really run at the same time
            return self.inner.generate(request, progress)
        finally:
            with self.lock:
                self.now -= 1

    def interrupt(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("args", "barrier", "peak"), [(["-n", "1"], None, 1), (["--jobs", "3"], 3, 3)])
def test_jobs_sets_generations_in_flight(project: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str], args: list[str],
                                         barrier: int | None, peak: int) -> None:
    write_manifest(project, '[server]\nurl = "placeholder"\n' + "".join(
        f'[assets."i{n}.png"]\nprompt = "image {n}"\nwidth = 64\nheight = 64\n' for n in range(6)))
    generator = Concurrency(barrier)
    monkeypatch.setattr(generators, "create", lambda server: generator)
    monkeypatch.chdir(project)
    assert main(["run", "-q", *args]) == 0
    assert generator.peak == peak
    assert generator.inner.count == 6


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_bad_jobs_value_is_a_usage_error(cli: Cli, value: str) -> None:
    result = cli("run", "-n", value)
    assert result.returncode == 2
    assert "-n/--jobs" in result.stderr
    assert not (cli.root / "assets.lock").exists()


# --- clean ----------------------------------------------------------------------------------------------


def test_clean_removes_outputs_and_orphans_but_never_hand_made_or_edited_files(cli: Cli) -> None:
    assert cli().returncode == 0
    root = cli.root
    # Edited after assetbuild wrote it:
    edited = (root / ICON).read_bytes() + b"retouched"
    (root / ICON).write_bytes(edited)
    # Hand-made, at a declared target:
    body = QUICKSTART + '\n[assets."ui/custom.png"]\nprompt = "x"\n'
    # hero_attack removed from the manifest: an orphan.
    start = body.index('[assets."sprites/hero_attack.png"]')
    body = body[:start] + body[body.index('[assets."ui/icon_sword.png"]'):]
    write_manifest(root, body)
    (root / "ui" / "custom.png").write_bytes(b"hand made")
    # Not a target at all:
    (root / "sprites" / "notes.txt").write_text("mine")

    dry = cli("clean", "--dry-run")
    assert dry.returncode == 0
    assert (root / HERO).exists() and (root / ATTACK).exists()
    assert "would remove" in dry.stdout

    status = cli("status").stdout
    assert re.search(rf"orphan\s+{re.escape(ATTACK)}", status)

    result = cli("clean")
    assert result.returncode == 0, result.stdout
    assert not (root / HERO).exists()
    assert not (root / ATTACK).exists()  # the orphan
    assert re.search(rf"orphan {re.escape(ATTACK)}", result.stdout)
    assert (root / ICON).read_bytes() == edited
    assert ICON in result.stdout and "kept" in result.stdout
    assert (root / "ui" / "custom.png").read_bytes() == b"hand made"
    assert (root / "sprites" / "notes.txt").read_text() == "mine"
    assert lock_of(root).targets() == [ICON]  # the edited file's entry stays: it is still reported
    assert any((root / ".assetbuild" / "cache").rglob("*.img"))  # the cache stays


def test_clean_named_target_leaves_the_rest(cli: Cli) -> None:
    assert cli().returncode == 0
    assert cli("clean", ICON).returncode == 0
    assert not (cli.root / ICON).exists()
    assert not (cli.root / "ui").exists()  # emptied folder pruned
    assert (cli.root / HERO).exists() and (cli.root / ATTACK).exists()
    assert lock_of(cli.root).targets() == [HERO, ATTACK]


# --- status, list, why ------------------------------------------------------------------------------------


def test_status_and_list_show_every_state(cli: Cli) -> None:
    assert cli().returncode == 0
    body = QUICKSTART.replace('"a steel sword icon, flat shading"', '"a bronze sword icon"')
    body += '\n[assets."new.png"]\nprompt = "new"\n[assets."made.png"]\nprompt = "made"\n'
    write_manifest(cli.root, body)
    (cli.root / "made.png").write_bytes(b"hand made")
    (cli.root / ATTACK).unlink()
    generated_before = len(cli.generated())
    for command in ("status", "list"):
        result = cli(command)
        assert result.returncode == 0
        lines = result.stdout.splitlines()
        assert any(re.fullmatch(rf"fresh\s+{re.escape(HERO)}", line) for line in lines)
        assert any(re.match(rf"stale \(restore from cache\)\s+{re.escape(ATTACK)}", line) for line in lines)
        assert any(re.match(rf"stale \(generate\)\s+{re.escape(ICON)}", line) for line in lines)
        assert any(re.match(r"stale \(generate\)\s+new\.png", line) for line in lines)
        assert any(re.match(r"modified\s+made\.png", line) for line in lines)
    as_json = [json.loads(line) for line in cli("status", "--json").stdout.splitlines()]
    assert {d["target"]: d["state"] for d in as_json} == {
        HERO: "fresh", ATTACK: "restore", ICON: "generate", "new.png": "generate", "made.png": "modified"}
    assert len(cli.generated()) == generated_before  # status generates nothing
    assert (cli.root / "made.png").read_bytes() == b"hand made" and not (cli.root / ATTACK).exists()


def test_why_shows_changed_fields_and_prompt_diff(cli: Cli) -> None:
    assert cli().returncode == 0
    fresh = cli("why", HERO)
    assert fresh.returncode == 0 and "nothing changed" in fresh.stdout
    write_manifest(cli.root, QUICKSTART.replace("steps = 20", "steps = 30")
                   .replace("a knight in silver armor", "a knight in golden armor"))
    result = cli("why", HERO)
    assert result.returncode == 0
    assert "steps: 20 -> 30" in result.stdout
    assert "[-silver-] {+golden+}" in result.stdout
    attack = cli("why", ATTACK)
    assert HERO in attack.stdout  # waiting for its upstream
    by_glob = cli("why", "ui/*.png")  # a glob naming exactly one asset
    assert by_glob.returncode == 0 and by_glob.stdout.startswith(f"{ICON}: stale (generate)")
    assert cli("why", "sprites/*.png").returncode == 2  # two assets: `why` explains one


def test_why_a_file_names_the_asset_that_made_it(cli: Cli, tmp_path: Path) -> None:
    assert cli().returncode == 0
    copy = cli.root / "exported.png"
    shutil.copy(cli.root / HERO, copy)
    result = cli("why", "exported.png")
    assert result.returncode == 0
    assert f"made by asset '{HERO}'" in result.stdout
    assert "a knight in silver armor" in result.stdout
    (cli.root / "foreign.png").write_bytes(b"not ours")
    assert cli("why", "foreign.png").returncode == 2


# --- manifest errors: exit 2, a located message with a hint, nothing written -------------------------------


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ('[server]\nurl = "placeholder"\n[assets."a.png"]\nprompt = a knight\n', "assets.toml:4"),
        ('[server]\nurl = "placeholder"\n[assets."a.png"]\nprompt = "p"\nstyle = "pixl"\n', "assets.toml:3"),
        ('[server]\nurl = "placeholder"\n[assets."b.png"]\nprompt = "p"\n[assets."a/../b.png"]\nprompt = "q"\n',
         "assets.toml:5"),
        ('[server]\nurl = "placeholder"\n[assets."/tmp/a.png"]\nprompt = "p"\n', "assets.toml:3"),
        ('[server]\nurl = "placeholder"\n[assets."../a.png"]\nprompt = "p"\n', "assets.toml:3"),
        ('[server]\nurl = "placeholder"\n[assets."out/a.png"]\nprompt = "p"\n', "assets.toml:3"),
        ('[server]\nurl = "placeholder"\n[assets."a.png"]\nprompt = "p"\ninitimage = "b.png"\n'
         '[assets."b.png"]\nprompt = "p"\ninitimage = "a.png"\n', "assets.toml:3"),
        ('[server]\nurl = "placeholder"\nconcurrency = "many"\n', "assets.toml:3"),
        ('[server]\nurl = "placeholder"\n[output]\ndir = "x"\n', "assets.toml:3"),
    ],
    ids=["toml-syntax", "unknown-style", "duplicate", "absolute", "escape", "symlink-escape", "cycle",
         "wrong-type", "unknown-section"],
)
def test_manifest_errors_exit_2_before_any_work(project: Path, tmp_path: Path, body: str, where: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (project / "out").symlink_to(outside, target_is_directory=True)
    write_manifest(project, body)
    before = snapshot(project)
    cli = Cli(project)
    for args in ([], ["status"], ["clean"]):
        result = cli(*args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"error: {where}: " in result.stderr
        assert "hint:" in result.stderr
    assert snapshot(project) == before
    assert not (project / ".assetbuild").exists()
    assert list(outside.iterdir()) == []
    assert cli.generated() == []


def test_corrupt_lock_exits_2_with_a_hint(cli: Cli) -> None:
    (cli.root / "assets.lock").write_text("{ this is not json")
    result = cli()
    assert result.returncode == 2
    assert "assets.lock" in result.stderr and "hint:" in result.stderr
    assert (cli.root / "assets.lock").read_text() == "{ this is not json"
    assert cli.generated() == []


def test_unknown_option_and_command_exit_2(cli: Cli) -> None:
    assert cli("run", "--bogus").returncode == 2
    assert cli("status", "--force").returncode == 2
    assert cli("why").returncode == 2


def test_help_and_version(cli: Cli) -> None:
    result = cli("--help")
    assert result.returncode == 0
    for word in ("run", "clean", "status", "why", "exit codes"):
        assert word in result.stdout
    version = cli("--version")
    assert version.returncode == 0 and re.match(r"assetbuild \d+\.\d+", version.stdout)
