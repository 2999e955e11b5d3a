"""Two runs at once (issue 12.6): one writer per project, real processes; read-only commands never wait."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli, write_manifest

from assetbuild.lock import Lock
from assetbuild.testing import FakeSwarm

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock and SIGKILL are POSIX")


def manifest(url: str, count: int) -> str:
    body = f'[server]\nurl = "{url}"\nconcurrency = 2\n[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\n'
    for n in range(count):
        body += f'[assets."a{n:02d}.png"]\nprompt = "asset {n}"\nseed = {n}\n'
    return body


def start(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "assetbuild", *args], cwd=root, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def generation_requested(fake: FakeSwarm) -> bool:
    return any("Generate" in r.route for r in fake.requests)


@pytest.mark.timeout(120)
def test_a_second_build_waits_naming_the_first_and_nothing_is_lost(project: Path) -> None:
    with FakeSwarm(loading=True, close_delay=0.05) as fake:  # generations wait until loading ends
        write_manifest(project, manifest(fake.url, 12))
        first = start(project, "-q")
        second = first
        try:
            wait_for(lambda: generation_requested(fake), "the first build to reach the server")
            # Read-only commands do not wait for the writer.
            status = run_cli(project, "status", timeout=30)
            assert status.returncode == 0, status.stderr
            busy = run_cli(project, "--no-wait", timeout=30)
            assert busy.returncode == 1, busy.stdout + busy.stderr
            assert f"assetbuild (pid {first.pid}" in busy.stderr and "--no-wait" in busy.stderr
            for command in ("clean", "gc"):
                refused = run_cli(project, command, "--no-wait", timeout=30)
                assert refused.returncode == 1 and f"pid {first.pid}" in refused.stderr, refused.stderr
            (project / "assets.toml").write_text(manifest(fake.url, 24))  # the second run wants 12 more
            second = start(project, "-q")
            assert second.stderr is not None
            line = second.stderr.readline()
            assert f"waiting for assetbuild (pid {first.pid}, run) in this project" in line
            assert second.poll() is None
            fake.set_loading(False)
            out1, err1 = first.communicate(timeout=60)
            out2, err2 = second.communicate(timeout=60)
        finally:
            for process in (first, second):
                if process.poll() is None:
                    process.kill()
                    process.communicate()
    assert first.returncode == 0, out1 + err1
    assert second.returncode == 0, out2 + err2
    entries = Lock.load(project / "assets.lock").entries()
    assert len(entries) == 24 and all((project / t).is_file() for t in entries)
    assert run_cli(project, "status").stdout.count("fresh") >= 24


@pytest.mark.timeout(120)
def test_a_lock_left_by_a_killed_build_is_taken_over(project: Path) -> None:
    with FakeSwarm(loading=True, close_delay=0.05) as fake:
        write_manifest(project, manifest(fake.url, 4))
        first = start(project, "-q")
        try:
            wait_for(lambda: generation_requested(fake), "the first build to reach the server")
            assert run_cli(project, "--no-wait").returncode == 1
            first.send_signal(signal.SIGKILL)
            first.communicate(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
                first.communicate()
        fake.set_loading(False)
        result = run_cli(project, "--no-wait", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "waiting" not in result.stderr
    assert len(Lock.load(project / "assets.lock").entries()) == 4
