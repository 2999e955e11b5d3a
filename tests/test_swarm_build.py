"""End to end (issue 3): real ``python -m assetbuild`` subprocesses against a FakeSwarm started in the
test process. Generations are counted by the double; files and assets.lock are checked on disk.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, write_manifest
from helpers import free_port, png_size, temp_files
from PIL import Image

from assetbuild.lock import Lock
from assetbuild.testing import FakeSwarm

pytestmark = [pytest.mark.timeout(90),
              pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and subprocess timing")]

FAST: dict[str, Any] = {"latency": 0.05, "steps": 4, "close_delay": 0.05, "model_load_delay": 0.01}
KEY = "sk-assetbuild-test-7f3a9c1e5b2d4a68"


# --------------------------------------------------------------------------------------------- helpers


@pytest.fixture
def fake() -> Iterator[FakeSwarm]:
    with FakeSwarm(backends=1, **FAST) as server:
        yield server


def manifest(count: int = 3, *, concurrency: int = 2, server: str = "", defaults: str = "", extra: str = "",
             name: Callable[[int], str] = lambda n: f"sprites/a{n}.png") -> str:
    """A manifest of ``count`` small assets; the real server comes from --server."""
    body = (f'[server]\nurl = "http://127.0.0.1:9"\nconcurrency = {concurrency}\n{server}\n\n'
            f'[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\nsteps = 4\n{defaults}\n\n')
    for n in range(count):
        body += f'[assets."{name(n)}"]\nprompt = "test asset number {n}"\nseed = {n + 1}\n\n'
    return body + extra


def build(project: Path, url: str, *args: str, env: dict[str, str] | None = None,
          timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_cli(project, "run", "--server", url, *args, env=env, timeout=timeout)


def start_build(project: Path, url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "assetbuild", "run", "--server", url, *args], cwd=project,
                            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, out + err


def lock_entries(project: Path) -> dict[str, Any]:
    """The lock's entries as any command reads them: the file, and during a run (or after a kill) the
    journal of the commits made since it was written."""
    return {target: entry.to_json() for target, entry in Lock.load(project / "assets.lock").entries().items()}


def wait_for(condition: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").tobytes()


def assert_built(project: Path, targets: list[str], size: tuple[int, int] = (64, 64)) -> None:
    lock = lock_entries(project)
    assert sorted(lock) == sorted(targets)
    for target in targets:
        assert png_size((project / target).read_bytes()) == size
        assert lock[target]["model"] == "sd_xl_base_1.0"
    assert temp_files(project) == []


def targets(count: int) -> list[str]:
    return [f"sprites/a{n}.png" for n in range(count)]


def failure_line(output: str, asset: str) -> str:
    """The first output line that names ``asset`` as failed (following ``same as OTHER``: a cause shared
    by several assets is printed once)."""
    for line in output.splitlines():
        if asset in line and ("FAIL" in line.upper() or "error" in line.lower()):
            same = re.search(r"FAILED\s+\S+: same as (\S+)$", line)
            return failure_line(output, same.group(1)) if same else line
    raise AssertionError(f"no failure line for {asset}:\n{output}")


# --------------------------------------------------------------------------------------------- builds


def test_build_then_nothing_to_do(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, manifest(3))
    result = build(project, fake.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_built(project, targets(3))
    assert fake.generations == 3
    assert sorted(r.seed for r in fake.generation_log) == [1, 2, 3]
    assert {e["seed"] for e in lock_entries(project).values()} == {1, 2, 3}
    assert fake.active_jobs() == []

    before = len(fake.requests)
    again = build(project, fake.url)
    assert again.returncode == 0, again.stdout + again.stderr
    # The lock holds the model's hash, so only the server can say nothing changed (issue 15): one session
    # and one DescribeModel (ListT2IParams comes from .assetbuild/server/); nothing is generated.
    assert [r.route for r in fake.requests[before:]] == ["GetNewSession", "DescribeModel"]
    assert fake.generations == 3


def test_session_lost_between_and_during_a_build(project: Path) -> None:
    with FakeSwarm(backends=1, **dict(FAST, latency=0.3)) as fake:
        write_manifest(project, manifest(2))
        assert build(project, fake.url).returncode == 0
        fake.forget_sessions()
        sessions = fake.request_count("GetNewSession")
        write_manifest(project, manifest(5, concurrency=1))
        process = start_build(project, fake.url)
        wait_for(lambda: fake.generations >= 3 or process.poll() is not None, what="the first new image")
        fake.forget_sessions()
        code, output = finish(process)
        assert code == 0, output
        assert_built(project, targets(5))
        assert fake.generations == 5
        # The check against the server's truth (issue 15) has its own session; then one slot: its session.
        # Sessions forgotten mid-build cost a renewal only to a request that opens a new WebSocket: one
        # sent on the slot's open socket runs with the socket's session, as in SwarmUI (the renewal
        # itself: test_swarm_client's test_forgotten_session_is_renewed_and_the_request_retried).
        assert fake.request_count("GetNewSession") - sessions in (2, 3)


def test_server_restart_during_a_build(project: Path) -> None:
    with FakeSwarm(backends=1, **dict(FAST, latency=0.4)) as fake:
        write_manifest(project, manifest(3, concurrency=1))
        process = start_build(project, fake.url)
        wait_for(lambda: fake.generations >= 1 and bool(fake.active_jobs()) or process.poll() is not None,
                 what="the second image in flight")
        time.sleep(0.1)
        fake.restart()
        code, output = finish(process)
        assert code == 0, output
        assert_built(project, targets(3))
        assert fake.generations == 3  # the job the restart killed does not count; nothing ran twice
        assert fake.active_jobs() == []


def test_websocket_dropped_mid_generation(project: Path) -> None:
    with FakeSwarm(backends=1, **dict(FAST, latency=0.4)) as fake:
        write_manifest(project, manifest(2, concurrency=1))
        fake.drop_websockets_after(progress_messages=1, count=1)
        result = build(project, fake.url)
        assert result.returncode == 0, result.stdout + result.stderr
        assert_built(project, targets(2))
        assert fake.interrupts >= 1  # the orphaned job was stopped...
        assert fake.wait_idle(5)
        assert fake.active_jobs() == []
        assert fake.generations == 2  # ...before it finished next to its retry
        assert fake.request_count("GenerateText2ImageWS") == 3


def test_5xx_burst(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, manifest(3))
    fake.fail_next(3)
    result = build(project, fake.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert fake.injected_failures == 3
    assert fake.generations == 3
    assert_built(project, targets(3))


# --------------------------------------------------------------------------------------------- failures


def test_server_down_ends_within_seconds(project: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    write_manifest(project, manifest(3))
    started = time.monotonic()
    result = build(project, url)
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert elapsed < 30, elapsed
    assert url in failure_line(output, "sprites/a0.png")
    assert "Traceback" not in output
    assert lock_entries(project) == {}
    assert not (project / "sprites").exists() or list((project / "sprites").iterdir()) == []


def test_no_backends(project: Path) -> None:
    with FakeSwarm(backends=0, no_backend_delay=0.2, **FAST) as fake:
        write_manifest(project, manifest(1))
        result = build(project, fake.url)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "No backends available!" in failure_line(output, "sprites/a0.png")
    assert "Traceback" not in output
    assert lock_entries(project) == {}


def test_unknown_model(project: Path, fake: FakeSwarm) -> None:
    # Checked against the server's model list before any generation (issue 15): exit 2, nothing generated.
    write_manifest(project, manifest(1, extra='[assets."ui/bad.png"]\nprompt = "x"\nmodel = "nope"\n'))
    result = build(project, fake.url, "--keep-going")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "asset 'ui/bad.png': model 'nope' is not a model on the server" in output
    assert "'OfficialStableDiffusion/sd_xl_base_1.0'" in output  # the choices
    assert lock_entries(project) == {}
    assert fake.generations == 0


# ------------------------------------------------------------------------------------------------- auth


def secret_free(project: Path, output: str, secret: str) -> None:
    assert secret not in output
    lock = project / "assets.lock"
    if lock.exists():
        assert secret not in lock.read_text(encoding="utf-8")
    for path in project.rglob("*"):
        if path.is_file() and path.suffix in (".toml", ".lock", ".json", ".log", ".txt"):
            assert secret not in path.read_text(encoding="utf-8", errors="replace"), path


def test_api_key_success(project: Path) -> None:
    with FakeSwarm(backends=1, required_authorization=f"Bearer {KEY}", **FAST) as fake:
        write_manifest(project, manifest(2, server="save_images = true"))
        result = build(project, fake.url, "--verbose", env={"ASSETBUILD_API_KEY": KEY})
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert_built(project, targets(2))
        assert fake.generations == 2
        assert len(fake.downloads) == 2  # the downloads carried the header too
        assert {r.transport for r in fake.generation_log} == {"ws"}  # and so did the upgrade
        secret_free(project, output, KEY)


@pytest.mark.parametrize("key", [None, "sk-the-wrong-key-0000000000000"], ids=["unset", "wrong"])
def test_api_key_missing_or_wrong(project: Path, key: str | None) -> None:
    with FakeSwarm(backends=1, required_authorization=f"Bearer {KEY}", **FAST) as fake:
        write_manifest(project, manifest(2))
        env = {"ASSETBUILD_API_KEY": key} if key else {}
        result = build(project, fake.url, "--verbose", env=env)
        output = result.stdout + result.stderr
        assert result.returncode == 1, output
        line = failure_line(output, "sprites/a0.png")
        assert "401" in line or "nauthorized" in line
        assert "ASSETBUILD_API_KEY" in output  # the hint says what to set
        assert fake.generations == 0
        secret_free(project, output, KEY)
        if key:
            secret_free(project, output, key)


def test_swarm_token_cookie(project: Path) -> None:
    with FakeSwarm(backends=1, accounts={"alice": "pw"}, **FAST) as fake:
        token = fake.create_token("alice")
        write_manifest(project, manifest(2, server="save_images = true"))
        result = build(project, fake.url, "--verbose", env={"ASSETBUILD_TOKEN": token})
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert_built(project, targets(2))
        assert {r.user for r in fake.generation_log} == {"alice"}
        assert len(fake.downloads) == 2 and all(d.startswith("alice/") for d in fake.downloads)
        secret_free(project, output, token)

        write_manifest(project, manifest(3, server="save_images = true"))
        refused = build(project, fake.url)
        assert refused.returncode == 1
        assert "Invalid or unauthorized" in failure_line(refused.stdout + refused.stderr, "sprites/a2.png")


# ------------------------------------------------------------------------------------------ transports


def test_websocket_refused_falls_back_to_http(project: Path) -> None:
    with FakeSwarm(backends=1, websocket=False, **FAST) as fake:
        write_manifest(project, manifest(3))
        result = build(project, fake.url)
        assert result.returncode == 0, result.stdout + result.stderr
        assert_built(project, targets(3))
        assert [r.transport for r in fake.generation_log] == ["http"] * 3


def test_manifest_websocket_false_uses_only_http(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, manifest(2, server="websocket = false"))
    result = build(project, fake.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_built(project, targets(2))
    assert [r.transport for r in fake.generation_log] == ["http", "http"]
    assert fake.request_count("GenerateText2ImageWS") == 0


def test_initimage_sent_as_data_url(project: Path, fake: FakeSwarm) -> None:
    (project / "refs").mkdir()
    source = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 120, 240)).save(source, "PNG")
    (project / "refs/sketch.png").write_bytes(source.getvalue())
    write_manifest(project, manifest(1, extra=(
        '[assets."sprites/derived.png"]\nprompt = "the same, but angry"\ninitimage = "sprites/a0.png"\n'
        'initimagecreativity = 0.6\n\n'
        '[assets."sprites/from_sketch.png"]\nprompt = "from a sketch"\ninitimage = "refs/sketch.png"\n')))
    result = build(project, fake.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert fake.generations == 3
    sent = {r.body["prompt"]: r.body for r in fake.requests if r.route == "GenerateText2ImageWS"}

    def decoded(prompt: str) -> bytes:
        value = sent[prompt]["initimage"]
        assert value.startswith("data:image/png;base64,")
        return base64.b64decode(value.split(",", 1)[1])

    assert decoded("the same, but angry") == (project / "sprites/a0.png").read_bytes()
    assert sent["the same, but angry"]["initimagecreativity"] == 0.6
    assert decoded("from a sketch") == source.getvalue()
    assert "initimage" not in sent["test asset number 0"]


def test_view_paths_with_spaces(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, manifest(2, server="save_images = true", name=lambda n: f"my sprites/hero {n}.png"))
    result = build(project, fake.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_built(project, ["my sprites/hero 0.png", "my sprites/hero 1.png"])
    assert all(r.image.startswith("View/local/") for r in fake.generation_log)
    assert len(fake.downloads) == 2 and all(" " in path for path in fake.downloads)
    stored = fake.stored_files()
    built = {pixels((project / f"my sprites/hero {n}.png").read_bytes()) for n in range(2)}
    assert built == {pixels(stored[path]) for path in fake.downloads}


def test_data_urls_by_default(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, manifest(2))
    result = build(project, fake.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(r.image.startswith("data:image/png;base64,") for r in fake.generation_log)
    assert fake.downloads == []
    assert fake.stored_files() == {}


def test_concurrency_caps_generations_in_flight(project: Path) -> None:
    with FakeSwarm(backends=3, **dict(FAST, latency=0.3)) as fake:
        write_manifest(project, manifest(6))  # concurrency = 2
        result = build(project, fake.url, "--jobs", "6")  # six tasks at once; the client still sends two
        assert result.returncode == 0, result.stdout + result.stderr
        assert_built(project, targets(6))
        assert fake.generations == 6
        assert fake.peak_live_gens <= 2
        assert fake.request_count("GetNewSession") <= 3  # one per slot (+ control)


# ---------------------------------------------------------------------------------------- cancellation


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_promptly_interrupts_and_keeps_finished(project: Path, sig: signal.Signals) -> None:
    with FakeSwarm(backends=1, **dict(FAST, latency=1.5, steps=6)) as fake:
        write_manifest(project, manifest(4, concurrency=1))
        process = start_build(project, fake.url)
        try:
            wait_for(lambda: len(lock_entries(project)) >= 1 or process.poll() is not None, 60,
                     "the first asset in the lock")
            assert process.poll() is None
            wait_for(lambda: bool(fake.active_jobs()), 10, "the next asset in flight")
            signalled = time.monotonic()
            process.send_signal(sig)
            code, output = finish(process, timeout=30)
            elapsed = time.monotonic() - signalled
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert code == 130, output
        assert elapsed < 15, elapsed  # promptly: not after the running image (or the rest) finished
        assert "Traceback" not in output
        assert fake.request_count("InterruptAll") >= 1
        assert fake.wait_idle(5)
        assert fake.active_jobs() == []
        lock = lock_entries(project)
        assert "sprites/a0.png" in lock
        assert fake.generations == len(lock)  # every finished image was kept, none was half-written
        for target in targets(4):
            assert (project / target).exists() == (target in lock)
        assert_built(project, sorted(lock))


def test_the_command_line_never_imports_trio(project: Path, fake: FakeSwarm) -> None:
    """httpcore imports trio whenever it is installed (selenium brings it into this test environment) only to
    tell event loops apart; a build's own process runs asyncio and must not pay for that import. A caller
    of ``main(argv)`` in its own process keeps trio importable."""
    import importlib.util

    if importlib.util.find_spec("trio") is None:
        pytest.skip("trio is not installed here: nothing to keep out (pip install trio to run this test)")
    write_manifest(project, manifest(2))
    probe = ("import sys, runpy\n"
             f"sys.argv = ['assetbuild', 'run', '--server', {fake.url!r}]\n"
             "try:\n    runpy.run_module('assetbuild', run_name='__main__')\n"
             "except SystemExit as exc:\n    code = exc.code\n"
             "print('EXIT', code, 'httpcore' in sys.modules, sys.modules.get('trio', 'absent'))\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=project, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "EXIT 0 True None", result.stdout + result.stderr
    assert_built(project, targets(2))
    caller = ("import sys\nfrom assetbuild.cli import main\n"
              "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\nimport trio\n"
              "print('trio' in sys.modules and sys.modules['trio'] is not None)")
    answer = subprocess.run([sys.executable, "-c", caller], capture_output=True, text=True, timeout=60, check=True)
    assert answer.stdout.strip().splitlines()[-1] == "True"


def test_a_build_of_pngs_that_need_no_pixel_change_never_imports_pillow(project: Path, fake: FakeSwarm) -> None:
    """Pillow (~10 ms of imports on every run's critical path) is loaded only to decode an image: the
    server's PNGs, stripped chunk by chunk, never need it. A post-processed asset does."""
    probe = ("import sys, runpy\n"
             f"sys.argv = ['assetbuild', 'run', '--server', {fake.url!r}]\n"
             "try:\n    runpy.run_module('assetbuild', run_name='__main__')\n"
             "except SystemExit as exc:\n    code = exc.code\n"
             "print('EXIT', code, 'PIL' in sys.modules)\n")
    write_manifest(project, manifest(2))
    result = subprocess.run([sys.executable, "-c", probe], cwd=project, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "EXIT 0 False", result.stdout + result.stderr
    assert_built(project, targets(2))
    write_manifest(project, manifest(2) + '\n[assets."resized.png"]\nprompt = "small"\nresize = [32, 32]\n')
    result = subprocess.run([sys.executable, "-c", probe], cwd=project, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "EXIT 0 True", result.stdout + result.stderr
    with Image.open(project / "resized.png") as image:
        assert image.size == (32, 32)


def test_images_started_before_their_tasks_are_never_lost(project: Path, fake: FakeSwarm,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The first images are generated before doit starts their tasks (Builder.start_early). One whose task
    then refuses to write it (a hand-made file appeared at its target meanwhile) is kept in the cache under
    its key: once the file is gone, the next run restores it instead of generating it again."""
    from assetbuild.builder import Builder
    from assetbuild.cli import main

    write_manifest(project, manifest(3, concurrency=3))
    hand_made = project / "sprites" / "a1.png"
    real_status = Builder.status

    def status(self: Builder, target: str) -> object:
        if target == "sprites/a1.png" and not hand_made.exists():  # the task starts: the user's file is there
            hand_made.parent.mkdir(parents=True, exist_ok=True)
            hand_made.write_bytes(b"drawn by hand")
        return real_status(self, target)

    monkeypatch.setattr(Builder, "status", status)
    monkeypatch.setenv("ASSETBUILD_CACHE_DIR", str(project / "cache"))
    monkeypatch.chdir(project)
    assert main(["run", "-q", "--server", fake.url, "-n", "3"]) == 1  # a1 refused: not overwriting it
    assert hand_made.read_bytes() == b"drawn by hand"
    assert fake.generations == 3  # a1's image was made before its task looked at the target
    assert sorted(lock_entries(project)) == ["sprites/a0.png", "sprites/a2.png"]
    monkeypatch.setattr(Builder, "status", real_status)
    hand_made.unlink()
    result = build(project, fake.url, "--json", env={"ASSETBUILD_CACHE_DIR": str(project / "cache")})
    assert result.returncode == 0, result.stdout + result.stderr
    finished = [json.loads(line) for line in result.stdout.splitlines() if '"asset_finished"' in line]
    assert [(e["target"], e["outcome"]) for e in finished] == [("sprites/a1.png", "restored")]
    assert fake.generations == 3  # not generated again
    assert_built(project, targets(3))
