"""doit's own state file (issue 12.5, 16): `assetbuild run` keeps it in memory, so no file can break a build."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli, write_manifest
from helpers import generations

ASSETS = 20


def manifest(version: str = "") -> str:
    body = '[server]\nurl = "placeholder"\n[defaults]\nwidth = 64\nheight = 64\n'
    for n in range(ASSETS):
        body += f'[assets."a{n:02d}.png"]\nprompt = "asset {n}{version}"\nseed = {n}\n'
    return body


@pytest.mark.parametrize("damage", ["truncated", "garbage", "not-a-table", "empty", "deep"])
def test_run_never_reads_or_writes_doits_database(project: Path, damage: str) -> None:
    """Every task `run` hands doit is stale by the plan, so doit's database is kept in memory: a file
    left there (damaged, or planted) is never read, and nothing is written."""
    write_manifest(project, manifest())
    assert run_cli(project, "-q").returncode == 0
    db = project / ".assetbuild" / "doit.json"
    assert not db.exists()
    planted = {"truncated": b'{"assets:a00.png": {"_values_"', "garbage": b"\x00\xff\xfe garbage",
               "not-a-table": b"[1, 2]", "empty": b"", "deep": b"[" * 100_000}[damage]
    db.write_bytes(planted)
    write_manifest(project, manifest(" v2"))  # every asset must be built again: doit runs each task
    log = project.parent / "gen.log"
    result = run_cli(project, env={"ASSETBUILD_PLACEHOLDER_LOG": str(log)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "doit.json" not in result.stdout + result.stderr
    assert len(generations(log)) == ASSETS
    assert db.read_bytes() == planted


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
@pytest.mark.timeout(300)
def test_kills_aimed_at_the_end_of_build_save_never_break_later_builds(tmp_path: Path) -> None:
    """SIGKILL right after the last image is made, when the lock is being saved (doit's database is not:
    it stays in memory)."""
    rng = random.Random(12)
    killed = 0
    attempts = 8
    for attempt in range(attempts):
        root = tmp_path / f"p{attempt}"
        root.mkdir()
        write_manifest(root, manifest())
        if attempt % 2:  # a database already on disk: the save replaces it
            assert run_cli(root, "-q").returncode == 0
            write_manifest(root, manifest(" v2"))
        log = tmp_path / f"p{attempt}.log"
        process = subprocess.Popen([sys.executable, "-m", "assetbuild", "-q"], cwd=root,
                                   env={**os.environ, "ASSETBUILD_PLACEHOLDER_LOG": str(log)},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while len(generations(log)) < ASSETS and process.poll() is None:
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.03))
            process.send_signal(signal.SIGKILL)
            _, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert b"Traceback" not in err, err.decode()
        killed += process.returncode == -signal.SIGKILL
        db = root / ".assetbuild" / "doit.json"
        assert not db.exists()
        again = run_cli(root, "-q")
        assert again.returncode == 0, f"attempt {attempt}: {again.stdout}{again.stderr}"
        assert "Traceback" not in again.stderr
    print(f"doit-db save kills: {killed} of {attempts} runs killed while still running; every later build exit 0")
    assert killed >= attempts // 2, f"only {killed} of {attempts} runs were still going when killed"
