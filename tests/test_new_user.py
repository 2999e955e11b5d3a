"""What a new user hits first (issue 11): each test reproduces one point, mostly as a real CLI run."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, write_manifest
from helpers import free_port, generations
from PIL import Image
from rich.console import Console

from assetbuild.display.live import LiveDisplay
from assetbuild.events import Failure, Summary
from assetbuild.generators.base import Progress
from assetbuild.keys import hash_bytes
from assetbuild.testing import FakeSwarm

ONE_ASSET = """
[assets."a.png"]
prompt = "a"
width = 64
height = 64
"""


# --- 1. a server URL without a scheme -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["option", "environment", "manifest"])
def test_server_url_without_scheme_is_bad_usage_before_any_work(project: Path, how: str) -> None:
    body = ONE_ASSET if how != "manifest" else '[server]\nurl = "localhost:7801"\n' + ONE_ASSET
    write_manifest(project, body)
    args = ["--server", "127.0.0.1:7801"] if how == "option" else []
    env = {"ASSETBUILD_SERVER": "localhost:7801"} if how == "environment" else {}
    result = run_cli(project, *args, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "is not an http(s) URL" in result.stderr
    assert "hint: add the scheme: http://" in result.stderr
    assert result.stdout == ""  # nothing started, nothing announced
    assert not (project / "a.png").exists()
    assert not (project / "assets.lock").exists()


# --- 3. run --rebuild TARGET... --------------------------------------------------------------------------

REBUILD = """
[server]
url = "placeholder"

[defaults]
width = 64
height = 64

[assets."roll.png"]
prompt = "a random roll"

[assets."fixed.png"]
prompt = "a fixed seed"
seed = 7

[assets."after.png"]
prompt = "made from the roll"
initimage = "roll.png"
"""


def _lock(root: Path) -> dict[str, Any]:
    return dict(json.loads((root / "assets.lock").read_text(encoding="utf-8"))["assets"])


def _cli(root: Path, log: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_cli(root, *args, env={"ASSETBUILD_PLACEHOLDER_LOG": str(log)})
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_rebuild_generates_fresh_targets_again_bypassing_the_cache(project: Path, tmp_path: Path) -> None:
    write_manifest(project, REBUILD)
    log = tmp_path / "generations.log"
    assert _cli(project, log).returncode == 0
    first = _lock(project)
    assert first["roll.png"]["seed"] >= 0  # seed -1: the lock records the seed actually used
    old_roll = (project / "roll.png").read_bytes()
    log.unlink()

    result = _cli(project, log, "run", "--rebuild", "roll.png", "fixed.png")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(generations(log)) == ["fixed.png", "roll.png"]  # both were fresh and cached
    second = _lock(project)
    assert second["roll.png"]["seed"] != first["roll.png"]["seed"]
    assert second["roll.png"]["seed"] >= 0
    assert second["roll.png"]["hash"] == hash_bytes((project / "roll.png").read_bytes())
    assert (project / "roll.png").read_bytes() != old_roll
    assert second["fixed.png"]["seed"] == 7

    # The new roll is what the cache now holds: clean + run restores it, and its dependent is stale.
    log.unlink()
    new_roll = (project / "roll.png").read_bytes()
    assert _cli(project, log, "clean", "roll.png").returncode == 0
    assert _cli(project, log).returncode == 0
    assert (project / "roll.png").read_bytes() == new_roll
    assert generations(log) == ["after.png"]  # its input changed; roll.png came from the cache
    log.unlink()
    again = _cli(project, log)
    assert again.returncode == 0 and generations(log) == []


def test_rebuild_does_not_replace_a_hand_made_file_without_force(project: Path, tmp_path: Path) -> None:
    write_manifest(project, REBUILD)
    log = tmp_path / "generations.log"
    assert _cli(project, log).returncode == 0
    (project / "fixed.png").write_bytes(b"my own drawing")
    refused = _cli(project, log, "run", "--rebuild", "fixed.png")
    assert refused.returncode == 1
    assert "--force" in refused.stdout
    assert (project / "fixed.png").read_bytes() == b"my own drawing"
    forced = _cli(project, log, "run", "--rebuild", "--force", "fixed.png")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert (project / "fixed.png").read_bytes() != b"my own drawing"


def test_rebuild_needs_named_targets(project: Path, tmp_path: Path) -> None:
    write_manifest(project, REBUILD)
    result = _cli(project, tmp_path / "log", "run", "--rebuild")
    assert result.returncode == 2
    assert "name them" in result.stderr
    assert not (project / "roll.png").exists()


def test_rebuild_records_the_seed_the_server_used(project: Path) -> None:
    with FakeSwarm(backends=1, latency=0.05, steps=4, close_delay=0.05, model_load_delay=0.01) as fake:
        write_manifest(project, '[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\nsteps = 4\n'
                       '[assets."roll.png"]\nprompt = "a random roll"\nseed = -1\n')
        assert run_cli(project, "--server", fake.url).returncode == 0
        first = _lock(project)["roll.png"]
        result = run_cli(project, "run", "--server", fake.url, "--rebuild", "roll.png")
        assert result.returncode == 0, result.stdout + result.stderr
        second = _lock(project)["roll.png"]
    assert first["seed"] >= 0 and second["seed"] >= 0
    assert first["seed"] != second["seed"]
    assert first["key"] == second["key"] and first["hash"] != second["hash"]


# --- 2. assets never attempted are counted, with why ----------------------------------------------------

STOPS = """
[server]
url = "placeholder"

[defaults]
width = 64
height = 64

[assets."broken.png"]
prompt = "cropped outside the image"
crop = [0, 0, 500, 500]

[assets."a.png"]
prompt = "a"

[assets."b.png"]
prompt = "b"
"""


def test_stopping_at_the_first_failure_counts_what_was_not_built(project: Path, tmp_path: Path) -> None:
    write_manifest(project, STOPS)
    result = _cli(project, tmp_path / "log", "-n", "1")
    assert result.returncode == 1
    assert "2 not built (stopped after the first failure; --keep-going builds the rest)" in result.stdout
    as_json = _cli(project, tmp_path / "log", "-n", "1", "--json")
    finished = json.loads(as_json.stdout.splitlines()[-1])
    assert finished["event"] == "run_finished"
    assert (finished["failed"], finished["not_built"]) == (1, 2)
    assert "--keep-going" in finished["not_built_reason"]
    kept_going = _cli(project, tmp_path / "log", "--keep-going", "--json")
    assert json.loads(kept_going.stdout.splitlines()[-1])["not_built"] == 0


def test_server_down_counts_what_was_not_built(project: Path) -> None:
    write_manifest(project, STOPS.replace('url = "placeholder"', 'url = "http://127.0.0.1:9"'))
    result = run_cli(project, "-n", "1", "--server", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "2 not built (stopped after the first failure" in result.stdout


def test_interrupt_counts_what_was_not_built(project: Path) -> None:
    with FakeSwarm(backends=1, latency=1.5, steps=6, close_delay=0.05, model_load_delay=0.01) as fake:
        body = '[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\nsteps = 4\n'
        body += "".join(f'[assets."a{n}.png"]\nprompt = "asset {n}"\nseed = {n + 1}\n' for n in range(4))
        write_manifest(project, body)
        process = subprocess.Popen([sys.executable, "-m", "assetbuild", "run", "-n", "1", "--server", fake.url],
                                   cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env={**os.environ})
        try:
            deadline = time.monotonic() + 60
            while not fake.active_jobs() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert process.poll() is None
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 130, out + err
    assert re.search(r"[1-4] not built \(interrupted; run again to build the rest\)", out), out


# --- 6. failures sharing a cause are grouped, listed once -----------------------------------------------

VARIANTS_BODY = '[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\nsteps = 4\n' + "".join(
    f'[assets."variants/v{n:02d}.png"]\nprompt = "variant {n}"\nseed = {n + 1}\n' for n in range(16))
VARIANTS = [f"variants/v{n:02d}.png" for n in range(16)]
NO_BACKEND = "No backends available!"  # every asset fails for this one cause


def no_backends() -> FakeSwarm:
    return FakeSwarm(backends=0, no_backend_delay=0.05, latency=0.05, steps=4, close_delay=0.05)


def fast_fake() -> FakeSwarm:
    return FakeSwarm(backends=1, latency=0.05, steps=4, close_delay=0.05, model_load_delay=0.01)


def run_in_terminal(root: Path, *args: str, columns: int = 60) -> str:
    """The CLI with a pseudo-terminal as stdout and stderr (the live display), ``columns`` wide."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NO_COLOR", "TERM")}
    env.update(TERM="xterm", COLUMNS=str(columns), LINES="40")
    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "assetbuild", *args], cwd=root, stdout=slave, stderr=slave,
                               stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(timeout=60)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
    text = b"".join(chunks).decode("utf-8", errors="replace")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "")


def test_plain_output_states_a_shared_failure_once(project: Path) -> None:
    write_manifest(project, VARIANTS_BODY)
    with no_backends() as fake:
        result = run_cli(project, "--keep-going", "--server", fake.url)
        quiet = run_cli(project, "--keep-going", "-q", "--server", fake.url)
    assert result.returncode == 1
    assert result.stdout.count(NO_BACKEND) == 1, result.stdout
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert sorted(line.split()[1].rstrip(":") for line in failed) == VARIANTS  # one line per asset, for CI
    # -q: the message once, then the group with a short list
    assert quiet.returncode == 1
    assert quiet.stdout.count(NO_BACKEND) == 2, quiet.stdout  # the first failure, and the group's line
    assert "16 assets failed: " in quiet.stdout
    assert "and 13 more" in quiet.stdout
    assert sum(1 for line in quiet.stdout.splitlines() if line.startswith("FAILED")) == 1


def test_terminal_groups_failures_and_never_repeats_the_list(project: Path) -> None:
    write_manifest(project, VARIANTS_BODY)
    with no_backends() as fake:
        text = run_in_terminal(project, "--keep-going", "--server", fake.url, columns=100)
    assert text.count("16 assets failed: ") == 1, text
    assert text.count(NO_BACKEND) == 2, text  # the first FAILED line, the group
    assert len(re.findall(r"FAILED variants/v\d\d\.png", text)) == 1, text  # repeats of the cause: no line
    grouped = text[text.index("16 assets failed: "):]
    assert [grouped.count(target) for target in VARIANTS[:12]] == [1] * 12, grouped  # listed once, compactly
    assert "and 4 more" in grouped
    assert grouped.count("try: ") <= 1  # the hint, if any, once


def test_terminal_after_interrupt_lists_skipped_assets_once() -> None:
    console = Console(record=True, width=100, file=io.StringIO(), force_terminal=True, color_system=None)
    display = LiveDisplay(console, auto_refresh=False)
    display.run_started(3, 3)
    failures = [Failure(t, "interrupted", skipped=True) for t in ("a.png", "b.png", "c.png")]
    for failure in failures:
        display.asset_failed(failure.target, failure)
    display.run_finished(Summary(skipped=3, failures=failures))
    text = console.export_text()
    assert "3 assets skipped: interrupted" in text
    assert text.count("a.png") == 1 and text.count("c.png") == 1, text


# --- 4. the generator that built an asset, and a starter that builds offline -----------------------------


def test_status_names_the_generator_when_that_is_why_an_asset_is_stale(project: Path) -> None:
    write_manifest(project, ONE_ASSET)
    assert run_cli(project, "--server", "placeholder").returncode == 0
    status = run_cli(project, "status")  # no --server now: SwarmUI at the default URL
    assert status.returncode == 0
    assert "built by the placeholder generator; the server setting now selects swarmui" in status.stdout
    dry = run_cli(project, "run", "--dry-run")
    assert "built by the placeholder generator" in dry.stdout


def test_init_then_plain_assetbuild_builds_offline(tmp_path: Path) -> None:
    assert run_cli(tmp_path, "init").returncode == 0
    text = (tmp_path / "assets.toml").read_text(encoding="utf-8")
    assert '\nurl = "placeholder"' in text and "http://localhost:7801" in text  # and how to switch
    build = run_cli(tmp_path)
    assert build.returncode == 0, build.stdout + build.stderr
    assert "7801" not in build.stdout + build.stderr
    status = run_cli(tmp_path, "status")
    assert "stale" not in status.stdout


# --- 5. manifest errors name the line of the offending key and the text the user wrote -------------------


@pytest.mark.parametrize(("body", "where", "words"), [
    # a bad value in [defaults] is reported at its own line, not at an asset that does not set it
    ('[defaults]\nwidth = 64\nsteps = "many"\n\n[assets."a.png"]\nprompt = "a"\nheight = 64\n', "assets.toml:3",
     ["steps", "(set in [defaults])"]),
    ('[styles.s]\nprompt = "x {prompt}"\ncfgscale = "high"\n\n[assets."a.png"]\nprompt = "a"\nstyle = "s"\n',
     "assets.toml:3", ["cfgscale", "(set in [styles.s])"]),
    ('[defaults]\ncfg_scale = "high"\n\n[assets."a.png"]\nprompt = "a"\n', "assets.toml:2",
     ["cfg_scale must be a number", "(set in [defaults])"]),  # the key as written, not its normalised id
    ('[assets."a.png"]\nprompt = "a"\nwidth = 64\nstyle = "pixl"\n', "assets.toml:4", ["unknown style 'pixl'"]),
    ('[assets."a.png"]\nprompt = "a"\nwidth = 64\nresize = [1]\n', "assets.toml:4", ["resize must be"]),
    ('[assets."r.png"]\nprompt = "a"\n\n[assets."x/../r.png"]\nprompt = "b"\n', "assets.toml:4",
     ["'x/../r.png' is the same file as 'r.png', declared at assets.toml:1"]),
])
def test_manifest_errors_point_at_the_key_that_is_wrong(project: Path, body: str, where: str,
                                                        words: list[str]) -> None:
    write_manifest(project, body)
    result = run_cli(project, "status")
    assert result.returncode == 2
    assert f"assetbuild: error: {where}: " in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_a_target_leaving_output_dir_is_not_said_to_leave_the_project(project: Path) -> None:
    write_manifest(project, '[project]\noutput_dir = "out"\n\n[assets."../escape.png"]\nprompt = "a"\n')
    result = run_cli(project, "status")
    assert result.returncode == 2
    assert "leaves the output folder 'out' (output_dir)" in result.stderr, result.stderr
    assert "project folder" not in result.stderr
    assert "relative to the output folder 'out'" in result.stderr  # the hint says what paths are relative to
    write_manifest(project, '[project]\noutput_dir = "out"\n\n[assets."../../escape.png"]\nprompt = "a"\n')
    outside = run_cli(project, "status")
    assert "leaves the project folder" in outside.stderr
    assert "relative to the output folder 'out'" in outside.stderr


# --- 7. retry warnings name the asset and say what happened ---------------------------------------------


def test_retry_warnings_name_the_asset_and_what_happened(project: Path) -> None:
    body = '[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\nsteps = 4\n'
    body += '[assets."sprites/hero.png"]\nprompt = "a hero"\nseed = 1\n'
    write_manifest(project, body)
    with fast_fake() as fake:
        fake.fail_next(1, status=500, route="GenerateText2ImageWS")
        result = run_cli(project, "--server", fake.url)
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: sprites/hero.png: the server answered the WebSocket upgrade with HTTP 500; "
                        "retrying (attempt 2 of 5)"], result.stdout
    assert "connection lost" not in result.stdout


def test_a_dropped_generation_names_the_asset(project: Path) -> None:
    body = '[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\nsteps = 4\n'
    body += '[assets."sprites/hero.png"]\nprompt = "a hero"\nseed = 1\n'
    write_manifest(project, body)
    with FakeSwarm(backends=1, latency=0.4, steps=4, close_delay=0.05, model_load_delay=0.01) as fake:
        fake.drop_websockets_after(progress_messages=1, count=1)
        result = run_cli(project, "--server", fake.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"warning: sprites/hero\.png: connection lost during generation \(.*\); stopping the "
                     r"server's job, retrying \(attempt 2 of 5\)", result.stdout), result.stdout


# --- 8. generate inside a project uses its [defaults] and styles -----------------------------------------

PROJECT_DEFAULTS = """
[defaults]
model = "sd_xl_base_1.0"
width = 64
height = 64
steps = 4
resize = [32, 32]

[styles.pixel]
prompt = "pixel art of {prompt}"

[assets."a.png"]
prompt = "a"
"""


def test_generate_in_a_project_uses_its_defaults_and_styles(project: Path) -> None:
    write_manifest(project, PROJECT_DEFAULTS)
    (project / "sub").mkdir()
    with fast_fake() as fake:
        plain = run_cli(project / "sub", "generate", "--prompt", "a cat", "--server", fake.url)
        styled = run_cli(project, "generate", "--prompt", "a dog", "--style", "pixel", "--width", "96",
                         "--server", fake.url)
        ignored = run_cli(project, "generate", "--prompt", "a cow", "--no-manifest", "--server", fake.url)
        log = fake.generation_log
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert styled.returncode == 0, styled.stdout + styled.stderr
    made = {record.prompt: record for record in log}
    assert "sd_xl_base_1.0" in str(made["a cat"].model) and made["a cat"].width == 64
    assert "sd_xl_base_1.0" in str(made["pixel art of a dog"].model) and made["pixel art of a dog"].width == 96
    assert ignored.returncode == 1  # no model without the manifest: the server refuses
    assert "No model input given" in ignored.stderr
    for result in (plain, styled):  # one-off images, not a build
        assert "to build" not in result.stderr and "restored" not in result.stderr
        assert "assets" not in result.stderr
        assert "generating 1 image" in result.stderr and "done: 1 generated in" in result.stderr


def test_generate_with_an_unknown_style_is_bad_usage(project: Path) -> None:
    write_manifest(project, PROJECT_DEFAULTS)
    result = run_cli(project, "generate", "--prompt", "x", "--style", "pixl", "--server", "placeholder")
    assert result.returncode == 2
    assert "unknown style 'pixl'" in result.stderr and "did you mean 'pixel'?" in result.stderr


# --- 11. smaller ones ----------------------------------------------------------------------------------


def test_one_asset_is_not_one_assets(project: Path) -> None:
    write_manifest(project, '[server]\nurl = "placeholder"\n' + ONE_ASSET)
    result = run_cli(project)
    assert "assetbuild: 1 asset, 1 to build" in result.stdout


# --- 9. placeholder icons stay readable after a resize ---------------------------------------------------


def test_placeholder_icon_shows_its_name_after_resize_and_assets_differ_in_colour(project: Path) -> None:
    write_manifest(project, """
    [server]
    url = "placeholder"

    [defaults]
    width = 1024
    height = 1024
    seed = 1
    resize = [64, 64]

    [assets."ui/icon_sword.png"]
    prompt = "an icon"

    [assets."ui/icon_shield.png"]
    prompt = "an icon"
    """)
    assert run_cli(project).returncode == 0
    ui = project / "ui"
    with Image.open(ui / "icon_sword.png") as sword, Image.open(ui / "icon_shield.png") as shield:
        sword_rgb, shield_rgb = sword.convert("RGB"), shield.convert("RGB")
    assert sword_rgb.size == (64, 64)
    # Glyph fill survives the 16x downscale: white pixels across most of the width (the short name).
    rgb = [sword_rgb.getpixel((i % 64, i // 64)) for i in range(64 * 64)]
    white = [(i % 64, i // 64) for i, pixel in enumerate(rgb) if min(pixel) > 200]
    columns = {x for x, _ in white}
    assert len(white) >= 30 and max(columns) - min(columns) >= 40, white
    # The same prompt and seed, another asset: another colour.
    assert sword_rgb.getpixel((0, 0)) != shield_rgb.getpixel((0, 0))


# --- 10. server status ---------------------------------------------------------------------------------


def test_server_status_without_backends_exits_1(tmp_path: Path) -> None:
    with FakeSwarm(backends=0, close_delay=0.05) as empty:
        result = run_cli(tmp_path, "server", "status", "--server", empty.url)
    assert result.returncode == 1
    assert "backends:  empty" in result.stdout and "cannot generate" in result.stdout


def test_server_status_counts_the_whole_servers_queue(project: Path) -> None:
    with FakeSwarm(backends=1, latency=3.0, steps=6, close_delay=0.05, model_load_delay=0.01) as fake:
        write_manifest(project, '[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\n'
                       + "".join(f'[assets."a{n}.png"]\nprompt = "asset {n}"\nseed = {n + 1}\n' for n in range(3)))
        build = subprocess.Popen([sys.executable, "-m", "assetbuild", "run", "--server", fake.url, "-n", "3"],
                                 cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while fake.live_gens < 1 and time.monotonic() < deadline:  # wait for the build's work to run
                time.sleep(0.05)
            status = run_cli(project, "server", "status", "--server", fake.url, "--json")
        finally:
            build.kill()
            build.wait()
    data = json.loads(status.stdout)
    assert data["counters_scope"] == "server"
    assert data["counters"]["live_gens"] + data["counters"]["waiting_gens"] >= 1, data
    with FakeSwarm(backends=1, close_delay=0.05, global_status=False) as no_admin:
        text = run_cli(project, "server", "status", "--server", no_admin.url).stdout
    assert "this command's own session only" in text


def test_server_status_with_refused_credentials_says_it_is_reachable(tmp_path: Path) -> None:
    with FakeSwarm(required_authorization="Bearer sk-right-key-0123456789", close_delay=0.05) as locked:
        result = run_cli(tmp_path, "server", "status", "--server", locked.url,
                         env={"ASSETBUILD_API_KEY": "sk-wrong-key-0123456789"})
        as_json = run_cli(tmp_path, "server", "status", "--server", locked.url, "--json")
    assert result.returncode == 1
    assert "reachable, but the credentials were refused" in result.stdout
    assert "NOT reachable" not in result.stdout
    assert "sk-wrong-key" not in result.stdout + result.stderr
    data = json.loads(as_json.stdout)
    assert data["reachable"] is True and data["credentials_refused"] is True and data["can_generate"] is False


def test_quiet_status_and_clean(project: Path, tmp_path: Path) -> None:
    write_manifest(project, REBUILD)
    log = tmp_path / "log"
    assert _cli(project, log).returncode == 0
    write_manifest(project, REBUILD.replace('prompt = "a fixed seed"', 'prompt = "another fixed seed"'))
    loud, quiet = _cli(project, log, "status"), _cli(project, log, "status", "-q")
    assert "roll.png" in loud.stdout
    assert quiet.stdout.splitlines() == ["stale (generate)  fixed.png  (inputs changed)",
                                      "2 fresh, 1 stale (generate)"]
    cleaned = _cli(project, log, "clean", "-q")
    assert cleaned.returncode == 0
    assert cleaned.stdout.splitlines() == ["removed 3 files; kept 0 edited files; the cache is kept"]
    assert not (project / "roll.png").exists()


def test_a_reader_that_goes_away_is_not_a_failure(project: Path) -> None:
    body = '[server]\nurl = "placeholder"\n' + "".join(f'[assets."a{n}.png"]\nprompt = "a"\n' for n in range(3000))
    write_manifest(project, body)
    process = subprocess.Popen([sys.executable, "-m", "assetbuild", "status"], cwd=project,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()  # like `assetbuild status | head -1`
    process.stdout.close()
    err = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=60) == 0, err
    assert first.startswith(b"stale (generate)")
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_why_a_copy_names_the_asset_even_without_its_lock_entry(project: Path, tmp_path: Path) -> None:
    write_manifest(project, REBUILD)
    log = tmp_path / "log"
    assert _cli(project, log).returncode == 0
    copy = tmp_path / "copy.png"
    copy.write_bytes((project / "fixed.png").read_bytes())
    assert _cli(project, log, "clean", "fixed.png").returncode == 0  # the lock entry is gone
    result = _cli(project, log, "why", str(copy))
    assert result.returncode == 0, result.stderr
    assert "made by asset 'fixed.png' as it is declared now" in result.stdout
    assert "which no entry" not in result.stdout


def test_why_a_file_from_outside_the_project_finds_its_manifest(tmp_path: Path) -> None:
    game = tmp_path / "repo" / "examples" / "game"
    game.mkdir(parents=True)
    write_manifest(game, '[server]\nurl = "placeholder"\n' + ONE_ASSET.replace('"a.png"', '"art/x.png"'))
    assert run_cli(game).returncode == 0
    result = run_cli(tmp_path / "repo", "why", "examples/game/art/x.png")  # from the repository's root
    assert result.returncode == 0, result.stderr
    assert "art/x.png: fresh" in result.stdout


def test_config_view_shows_the_manifests_server_where_it_wins(project: Path) -> None:
    write_manifest(project, '[server]\nurl = "placeholder"\n' + ONE_ASSET)
    set_ = run_cli(project, "config", "set", "server", "http://gpu-box:7801")
    assert set_.returncode == 0 and "takes precedence over the config file" in set_.stderr
    view = run_cli(project, "config", "view")
    line = next(line for line in view.stdout.splitlines() if line.startswith("server"))
    assert line.split("#")[0].split("=")[1].strip() == "placeholder"
    assert "manifest" in line and "'http://gpu-box:7801' applies outside this project" in line
    outside = run_cli(project.parent, "config", "view")
    assert "http://gpu-box:7801" in outside.stdout.splitlines()[1]
    # `config get` answers as `view` does: what a build here would use, and where it comes from.
    get = run_cli(project, "config", "get", "server")
    assert (get.returncode, get.stdout) == (0, "placeholder\n") and "manifest" in get.stderr
    assert run_cli(project.parent, "config", "get", "server").stdout == "http://gpu-box:7801\n"
    env = run_cli(project, "config", "get", "server", env={"ASSETBUILD_SERVER": "http://env-box:7801"})
    assert env.stdout == "http://env-box:7801\n" and "environment" in env.stderr


def test_config_get_reports_the_cache_folder_and_server_a_build_here_uses(project: Path) -> None:
    """The manifest's cache folder under its current name ([cache] dir), resolved against the project
    as a build resolves it; the manifest's server URL masked, unless --show-secret asks for it."""
    write_manifest(project, '[server]\nurl = "http://artist:hunter2-secret@gpu-box:7801"\n'
                   '[cache]\ndir = "shared-cache"\n' + ONE_ASSET)
    assert run_cli(project, "config", "set", "cache-dir", "/somewhere/else").returncode == 0
    cache = run_cli(project, "config", "get", "cache-dir")
    assert cache.returncode == 0 and "[cache] dir" in cache.stderr
    assert Path(cache.stdout.strip()).resolve() == (project / "shared-cache").resolve()
    view = run_cli(project, "config", "view")
    assert cache.stdout.strip() in view.stdout and "/somewhere/else" in view.stdout  # (outside this project)
    server = run_cli(project, "config", "get", "server")
    assert server.returncode == 0 and "gpu-box:7801" in server.stdout
    assert "hunter2-secret" not in server.stdout + server.stderr + view.stdout
    shown = run_cli(project, "config", "get", "server", "--show-secret")
    assert shown.stdout == "http://artist:hunter2-secret@gpu-box:7801\n"


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_eta_accounts_for_the_servers_queue() -> None:
    """16 assets, 4 in flight, a server that generates one image at a time (1 s each): at 4/16 the
    honest estimate is 12 s (the old one said about 6 s: it took the queue wait for work)."""
    clock = _Clock()
    console = Console(record=True, width=100, file=io.StringIO(), force_terminal=True, color_system=None)
    display = LiveDisplay(console, clock=clock, jobs=4, auto_refresh=False)
    display.run_started(16, 16)
    names = [f"a{n:02d}.png" for n in range(16)]
    for name in names[:4]:
        display.asset_started(name)
        display.asset_progress(name, Progress("queued"))
    for n in range(4):  # a00..a03 generate one after the other; a freed slot starts the next asset
        display.asset_progress(names[n], Progress("generating", 0.1))
        clock.now += 1
        display.asset_finished(names[n], "generated", clock.now)
        display.asset_started(names[n + 4])
        display.asset_progress(names[n + 4], Progress("queued"))
    display.asset_progress(names[4], Progress("generating", 0.1))
    assert display.eta() == pytest.approx(12.0)
    display._live.stop()


def test_summary_headers_are_not_cut_in_a_narrow_terminal(project: Path) -> None:
    write_manifest(project, STOPS)
    text = run_in_terminal(project, "-n", "1", columns=60)
    assert "…" not in text, text  # rich's ellipsis: a header cut short
    flowing = " ".join(text.split())  # the terminal wraps long lines at 60 columns
    assert "done: 0 generated, 0 restored, 0 fresh, 0 modified, 1 failed, 2 not built" in flowing, text


def test_init_creates_missing_folders(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "init", "-f", "game/art/assets.toml")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "game" / "art" / "assets.toml").is_file()
    assert "-f game/art/assets.toml" in result.stdout


# --- 12. installing: the package is not on any index -----------------------------------------------------

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("doc", ["README.md", "docs/ci.md", "examples/game/README.md", "examples/ci/assetbuild.yml"])
def test_docs_install_from_the_repository_not_an_index(doc: str) -> None:
    text = (REPO / doc).read_text(encoding="utf-8")
    installs = re.findall(r"pip install [^\n]*", text)
    assert installs, doc
    for line in installs:  # a path (./..., '.[...]') or a git URL, never a bare index name
        assert not re.match(r"pip install ['\"]?assetbuild(\[\w+\])?['\"]?\s*(#.*)?$", line), line
    assert "not published on PyPI" in text or "not on PyPI" in text, doc


def test_installing_from_a_path_works(tmp_path: Path) -> None:
    """What the docs say: `pip install ./assetbuild` from a clone works (offline: no index involved)."""
    pytest.importorskip("hatchling", reason="the build backend comes with the dev extra")
    clone = tmp_path / "assetbuild"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, capture_output=True)
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(site), "./assetbuild"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}
    check = subprocess.run([sys.executable, "-c", "import assetbuild; print(assetbuild.__file__)"], env=env,
                           capture_output=True, text=True, cwd=tmp_path)
    assert check.stdout.startswith(str(site)), check.stdout + check.stderr  # the installed copy, not ours
    version = subprocess.run([sys.executable, "-m", "assetbuild", "--version"], env=env, capture_output=True,
                             text=True, cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("assetbuild "), version.stderr


def test_config_and_builds_agree_on_odd_cache_folders(project: Path) -> None:
    """An empty [cache] dir stands for the project's own cache, in `config get` as in a build; a folder
    under the home of a user this system does not know (`~nosuchuser/...`) is a clear error (exit 2) for a
    build and for `config set`, never a crash; and a manifest too deeply nested to parse does not crash
    `config get` either (it answers from the config file; a build reports the manifest's error)."""
    assert run_cli(project, "config", "set", "cache-dir", "/somewhere/else").returncode == 0
    write_manifest(project, '[server]\nurl = "placeholder"\n[cache]\ndir = ""\n' + ONE_ASSET)
    empty = run_cli(project, "config", "get", "cache-dir")
    assert Path(empty.stdout.strip()).resolve() == (project / ".assetbuild" / "cache").resolve()
    assert run_cli(project).returncode == 0
    assert list((project / ".assetbuild" / "cache").glob("*/*.img"))  # the build used that folder too

    write_manifest(project, '[server]\nurl = "placeholder"\n[cache]\ndir = "~nosuchuserxyz/c"\n' + ONE_ASSET)
    build = run_cli(project)
    assert build.returncode == 2 and "assets.toml:4" in build.stderr and "no such user" in build.stderr
    assert "Traceback" not in build.stderr and "bug" not in build.stderr
    assert run_cli(project, "config", "get", "cache-dir").returncode == 0
    refused = run_cli(project, "config", "set", "cache-dir", "~nosuchuserxyz/e")
    assert refused.returncode == 2 and "no such user" in refused.stderr

    from_env = run_cli(project, "config", "get", "cache-dir", env={"ASSETBUILD_CACHE_DIR": "relcache"})
    assert Path(from_env.stdout.strip()).resolve() == (project / "relcache").resolve()  # as a build (loader.py)

    (project / "assets.toml").write_text("a = " + "[" * 3000 + "]" * 3000 + "\n", encoding="utf-8")
    nested = run_cli(project, "config", "get", "cache-dir")
    assert (nested.returncode, nested.stdout) == (0, "/somewhere/else\n"), nested.stderr
    assert "cannot be read (nested too deeply): a build here stops on it" in nested.stderr
    (project / "assets.toml").write_text('[server]\nurl = "http://unclosed\n', encoding="utf-8")
    broken = run_cli(project, "config", "view")
    assert broken.returncode == 0 and "assets.toml cannot be read" in broken.stderr
    assert run_cli(project).returncode == 2
