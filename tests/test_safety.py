"""Defects found in review, each reproduced and kept fixed: files are never lost or leaked."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import run_cli, write_manifest
from helpers import generations

from assetbuild import generators
from assetbuild.cli import main
from assetbuild.generators.base import GenerationRequest, GenerationResult, ProgressCallback
from assetbuild.generators.placeholder import PlaceholderGenerator
from assetbuild.lock import Lock
from assetbuild.swarm.credentials import Credentials
from assetbuild.testing import FakeSwarm

ONE = """
[server]
url = "placeholder"
[assets."hero.png"]
prompt = "a hero in red"
width = 64
height = 64
"""


def test_random_seed_variants_are_different_images(project: Path) -> None:
    write_manifest(project, """
        [server]
        url = "placeholder"
        [assets."trees/oak_{n}.png"]
        prompt = "an oak"
        count = 3
        width = 64
        height = 64
    """)
    log = project.parent / "gen.log"
    assert run_cli(project, env={"ASSETBUILD_PLACEHOLDER_LOG": str(log)}).returncode == 0
    assert sorted(generations(log)) == [f"trees/oak_{n}.png" for n in (1, 2, 3)]
    lock = Lock.load(project / "assets.lock").entries()
    assert len({entry.key for entry in lock.values()}) == 3
    assert all(entry.inputs["variant"] in (1, 2, 3) for entry in lock.values())


def test_a_lock_entry_outside_the_project_is_refused_not_deleted(project: Path, tmp_path: Path) -> None:
    write_manifest(project, ONE)
    assert run_cli(project).returncode == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    from assetbuild.keys import hash_bytes

    lock = json.loads((project / "assets.lock").read_text())
    entry = dict(lock["assets"]["hero.png"], hash=hash_bytes(victim.read_bytes()))
    for name in ("../victim.txt", str(victim)):
        lock["assets"][name] = entry
        (project / "assets.lock").write_text(json.dumps(lock))
        for command in ("clean", "status"):
            result = run_cli(project, command)
            assert result.returncode == 2, result.stdout
            assert "assets.lock" in result.stderr and "not a path inside the project" in result.stderr
        del lock["assets"][name]
    assert victim.read_text() == "precious"


def test_credentials_with_a_stray_carriage_return_work_and_bad_ones_are_refused_by_name(project: Path) -> None:
    with FakeSwarm(required_authorization="Bearer sk-SECRET-12345", close_delay=0.05, latency=0.02) as fake:
        write_manifest(project, ONE.replace('"placeholder"', f'"{fake.url}"') + 'model = "sd_xl_base_1.0"\n')
        ok = run_cli(project, env={"ASSETBUILD_API_KEY": "sk-SECRET-12345\r"})
        assert ok.returncode == 0, ok.stdout + ok.stderr
        (project / "hero.png").unlink()  # something to generate, so the credentials are needed
        bad = run_cli(project, "-v", env={"ASSETBUILD_API_KEY": "sk-SECRET\x01-12345"})
    assert bad.returncode == 2
    assert "ASSETBUILD_API_KEY" in bad.stderr
    assert "SECRET" not in bad.stdout + bad.stderr


def test_redact_also_hides_quoted_forms() -> None:
    creds = Credentials(api_key="k\\ey")
    assert "k\\ey" not in creds.redact("header b'Bearer k\\\\ey' and k\\ey")


def test_a_folder_in_the_way_fails_the_asset_with_a_message_not_a_traceback(project: Path) -> None:
    write_manifest(project, ONE)
    (project / "hero.png").mkdir()
    result = run_cli(project)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "hero.png" in result.stdout and "not a readable file" in result.stdout
    forced = run_cli(project, "--force")
    assert forced.returncode == 1
    assert "Traceback" not in forced.stderr and "hero.png" in forced.stdout


def test_nan_is_not_a_number_a_manifest_may_use(project: Path) -> None:
    write_manifest(project, ONE + "cfgscale = nan\n")
    result = run_cli(project)
    assert result.returncode == 2
    assert "cfgscale must be a finite number" in result.stderr


class SlowPlaceholder:
    """A placeholder that takes its time, and tells when it has started."""

    kind = "placeholder"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.inner = PlaceholderGenerator()

    def generate(self, request: GenerationRequest, progress: ProgressCallback) -> GenerationResult:
        self.started.set()
        time.sleep(0.5)
        return self.inner.generate(request, progress)

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


@pytest.mark.parametrize("existing", [False, True], ids=["file appears", "file edited"])
def test_a_file_written_at_the_target_during_generation_is_kept(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                                existing: bool) -> None:
    write_manifest(project, ONE)
    monkeypatch.chdir(project)
    if existing:
        assert main(["-q"]) == 0
        (project / "assets.toml").write_text((project / "assets.toml").read_text().replace("red", "blue"))
    slow = SlowPlaceholder()
    monkeypatch.setattr(generators, "create", lambda server: slow)

    def hand_edit() -> None:
        slow.started.wait(5)
        (project / "hero.png").write_bytes(b"my hand-made art")

    editor = threading.Thread(target=hand_edit)
    editor.start()
    code = main(["-q"])
    editor.join()
    assert code == 1
    assert (project / "hero.png").read_bytes() == b"my hand-made art"


_KILLED_AT_COMMIT = """
import os, sys
from assetbuild.lock import Lock
from assetbuild.cli import main
Lock.commit = lambda self, target, entry: os._exit(137)  # as if SIGKILLed between rename and lock commit
sys.exit(main(["-q"]))
"""


def test_a_kill_before_the_lock_commit_then_an_edit_does_not_strand_our_file(project: Path) -> None:
    write_manifest(project, ONE)
    assert run_cli(project).returncode == 0
    manifest = project / "assets.toml"
    manifest.write_text(manifest.read_text().replace("red", "green"))
    killed = subprocess.run([sys.executable, "-c", _KILLED_AT_COMMIT], cwd=project, capture_output=True, text=True)
    assert killed.returncode == 137, killed.stderr
    assert (project / ".assetbuild" / "intents.jsonl").is_file()
    manifest.write_text(manifest.read_text().replace("green", "blue"))
    status = run_cli(project, "status")
    assert "modified" not in status.stdout and "hero.png" in status.stdout
    result = run_cli(project)  # our own file from the killed run is replaced, not refused as hand-made
    assert result.returncode == 0, result.stdout
    entry = Lock.load(project / "assets.lock").get("hero.png")
    assert entry is not None and entry.inputs["params"]["prompt"] == "a hero in blue"
    assert not (project / ".assetbuild" / "intents.jsonl").exists()
