"""Plain doit: the repository's dodo.py gives `doit` the same asset tasks, lock and freshness."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import write_manifest
from helpers import QUICKSTART, TARGETS, generations

from assetbuild.lock import Lock

DODO = Path(__file__).resolve().parent.parent / "dodo.py"


def doit(root: Path, *args: str, log: Path) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "ASSETBUILD_PLACEHOLDER_LOG": str(log)}
    return subprocess.run([sys.executable, "-m", "doit", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)


def test_doit_lists_builds_and_then_skips_the_assets(project: Path) -> None:
    write_manifest(project, QUICKSTART)
    shutil.copy(DODO, project / "dodo.py")
    log = project.parent / "doit.log"
    listed = doit(project, "list", "--all", log=log)
    assert listed.returncode == 0, listed.stderr
    for target in TARGETS:
        assert f"assets:{target}" in listed.stdout
    built = doit(project, "-n", "2", "-P", "thread", log=log)
    assert built.returncode == 0, built.stdout + built.stderr
    assert sorted(generations(log)) == sorted(TARGETS)
    entries = Lock.load(project / "assets.lock").entries()
    assert set(entries) == set(TARGETS)
    assert not (project / ".assetbuild" / "intents.jsonl").exists()  # settled when doit exited
    log.unlink()
    again = doit(project, log=log)
    assert again.returncode == 0
    assert generations(log) == []
    assert all(f"-- assets:{target}" in again.stdout for target in TARGETS)  # doit's "up to date" mark
