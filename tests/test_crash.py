"""SIGKILL a real build at random moments: no partial image, a truthful lock, and only the missing work redone."""

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
from helpers import generations, png_size, temp_files

from assetbuild.keys import hash_bytes
from assetbuild.plan import State
from assetbuild.workspace import open_workspace

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

ASSETS = 30
KILLS = 8


def manifest(version: str = "") -> str:
    body = '[server]\nurl = "placeholder"\n\n[defaults]\nwidth = 384\nheight = 384\nsteps = 20\n\n'
    for n in range(ASSETS):
        folder = ("sprites", "ui", "tiles")[n % 3]
        body += f'[assets."{folder}/a{n:02d}.png"]\nprompt = "asset number {n}{version}"\nseed = {n}\n'
        if n % 5 == 0:
            body += "resize = [64, 64]\n"
        body += "\n"
    return body


def targets() -> list[str]:
    return [f"{('sprites', 'ui', 'tiles')[n % 3]}/a{n:02d}.png" for n in range(ASSETS)]


def start_and_kill(root: Path, log: Path, after: int, delay: float, jobs: int) -> int | None:
    """Start a real build, SIGKILL it once ``after`` generations were logged plus ``delay`` seconds."""
    env = {**os.environ, "ASSETBUILD_PLACEHOLDER_LOG": str(log)}
    process = subprocess.Popen([sys.executable, "-m", "assetbuild", "run", "-q", "-n", str(jobs)], cwd=root,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while len(generations(log)) < after and process.poll() is None:
            time.sleep(0.001)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert "Traceback" not in stderr, stderr
    return process.returncode


def check_after_kill(root: Path, log: Path, jobs: int, *, rebuild: bool) -> set[str]:
    """Assert the invariants of a killed run; return the targets the next run must generate."""
    ws = open_workspace(str(root / "assets.toml"))
    plan = {s.target: s for s in ws.planner.plan()}
    assert set(plan) == set(targets())
    # Committed per asset as it finishes: of the generations logged before the kill, at most one per job
    # can still have been between its generation and its lock commit.
    committed = [t for t, s in plan.items() if (e := ws.lock.get(t)) is not None and e.key == s.key]
    assert len(committed) >= len(generations(log)) - jobs, "finished assets missing from the lock"
    for target, status in plan.items():
        path = root / target
        entry = ws.lock.get(target)
        assert status.key is not None
        assert status.state is not State.MODIFIED, f"{target}: {status.reason} (our own file taken for a user's)"
        if not path.exists():
            continue
        data = path.read_bytes()
        png_size(data)  # complete and valid: never a partial image
        hit = ws.cache.get(status.key)
        ours = hit is not None and hit.data == data
        locked = entry is not None and entry.hash == hash_bytes(data)
        assert ours or locked, f"{target}: neither the locked bytes nor the cached image of its key"
    for target in ws.lock.targets():
        entry = ws.lock.get(target)
        assert entry is not None
        path = root / target
        assert path.is_file(), f"lock entry for {target} but no file"
        if not rebuild:
            assert hash_bytes(path.read_bytes()) == entry.hash, f"{target}: lock hash differs from the file"
    assert temp_files(root) == [], "temporary files left among the assets"
    return {t for t, s in plan.items() if s.state is State.GENERATE}


@pytest.mark.timeout(240)
def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    rng = random.Random(20240601)
    killed = 0
    for attempt in range(KILLS):
        rebuild = attempt % 2 == 1
        root = tmp_path / f"kill{attempt}"
        root.mkdir()
        log = tmp_path / f"kill{attempt}.log"
        if rebuild:
            # A complete earlier build, then every prompt changes: the killed run replaces locked files.
            write_manifest(root, manifest())
            assert run_cli(root, "-q").returncode == 0
            write_manifest(root, manifest(" v2"))
        else:
            write_manifest(root, manifest())
        after = rng.randint(1, ASSETS - 6)
        delay = rng.uniform(0, 0.015)
        jobs = rng.choice([1, 2, 4])
        code = start_and_kill(root, log, after, delay, jobs)
        context = f"attempt {attempt}: rebuild={rebuild} after={after} delay={delay:.4f} jobs={jobs} code={code}"
        if code == -signal.SIGKILL:
            killed += 1

        missing = check_after_kill(root, log, jobs, rebuild=rebuild)

        rerun_log = tmp_path / f"kill{attempt}-rerun.log"
        result = run_cli(root, "-q", env={"ASSETBUILD_PLACEHOLDER_LOG": str(rerun_log)})
        assert result.returncode == 0, f"{context}\n{result.stdout}{result.stderr}"
        regenerated = generations(rerun_log)
        assert sorted(regenerated) == sorted(missing), context  # exactly what was missing, each once
        ws = open_workspace(str(root / "assets.toml"))
        assert {s.state for s in ws.planner.plan()} == {State.FRESH}, context
        for target in targets():
            entry = ws.lock.get(target)
            assert entry is not None and hash_bytes((root / target).read_bytes()) == entry.hash, context
    assert killed >= KILLS // 2, f"only {killed} of {KILLS} runs were still going when killed"
