"""``assetbuild watch`` (issue 18): a real ``python -m assetbuild watch`` subprocess against the SwarmUI test
double, driven by real file edits; every wait is bounded and waits for an output line or a server event."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import write_manifest
from helpers import temp_files
from PIL import Image

from assetbuild.testing import FakeSwarm

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

FAST: dict[str, Any] = {"latency": 0.02, "steps": 2, "close_delay": 0.02, "model_load_delay": 0.01}

MANIFEST = """
[server]
url = "http://127.0.0.1:9"
concurrency = 2

[defaults]
model = "sd_xl_base_1.0"
width = 64
height = 64
steps = 2
seed = 1

[assets."sprites/hero.png"]
prompt = "{prompt}"
"""

WITH_INPUT = MANIFEST + """
[assets."sprites/from_sketch.png"]
prompt = "from a sketch"
initimage = "refs/sketch.png"
initimagecreativity = 0.5
"""


@pytest.fixture
def fake() -> Iterator[FakeSwarm]:
    with FakeSwarm(backends=1, **FAST) as server:
        yield server


class Watcher:
    """A running ``assetbuild watch``: its output lines, collected by a reader thread as they come."""

    def __init__(self, project: Path, url: str, *args: str) -> None:
        # PYTHONFAULTHANDLER: a watch that does not stop is sent SIGABRT and prints every thread's stack.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
        self.process = subprocess.Popen([sys.executable, "-m", "assetbuild", "watch", "--server", url, *args],
                                        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def expect(self, pattern: str, count: int = 1, timeout: float = 30) -> None:
        """Wait until ``count`` lines in all match ``pattern`` (a regex searched in each line)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(1 for line in self.lines if regex.search(line)) < count:
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no {count} line(s) matching {pattern!r} in:\n" + "\n".join(self.lines))
                self._changed.wait(min(left, 0.5))

    def count(self, pattern: str) -> int:
        with self._changed:
            return sum(1 for line in self.lines if re.search(pattern, line))

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        self.process.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = 30) -> int:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)  # where it hangs, for whoever reads the failure
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
            self._reader.join(10)
            raise AssertionError(f"watch did not end within {timeout} s; its output, then its threads' stacks:\n"
                                 + "\n".join(self.lines)) from None
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self._reader.join(10)
        self.close()
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(10)
        if self.process.stdout is not None:
            self.process.stdout.close()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)


@pytest.fixture
def watchers() -> Iterator[list[Watcher]]:
    started: list[Watcher] = []
    yield started
    for watcher in started:  # a failed test must not leave its watch running
        watcher.close()


def start(watchers: list[Watcher], project: Path, url: str, *args: str) -> Watcher:
    watcher = Watcher(project, url, *args)
    watchers.append(watcher)
    return watcher


def wait_for(condition: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def save(path: Path, data: bytes) -> None:
    """Save like most editors do (a temporary file renamed over the old one), so the watch never sees the
    half-written file an in-place write shows for a moment (which a loaded machine can make last long)."""
    tmp = path.with_name(f".{path.name}.swp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_manifest(project: Path, body: str) -> None:
    save(project / "assets.toml", textwrap.dedent(body).lstrip().encode())


def set_prompt(project: Path, prompt: str, body: str = MANIFEST) -> None:
    save_manifest(project, body.replace("{prompt}", prompt))


def png(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(out, "PNG")
    return out.getvalue()


def lock(project: Path) -> dict[str, Any]:
    return dict(json.loads((project / "assets.lock").read_text(encoding="utf-8"))["assets"])


def prompts(fake: FakeSwarm) -> list[str]:
    return [g.prompt for g in fake.generation_log]


def test_rebuilds_when_the_manifest_or_an_input_file_changes(project: Path, fake: FakeSwarm,
                                                            watchers: list[Watcher]) -> None:
    (project / "refs").mkdir()
    (project / "refs/sketch.png").write_bytes(png((200, 0, 0)))
    set_prompt(project, "a knight", WITH_INPUT)
    watch = start(watchers, project, fake.url)
    watch.expect(r"^done: 2 generated")
    watch.expect(r"^watch: watching 2 file\(s\)")

    set_prompt(project, "a paladin", WITH_INPUT)
    watch.expect(r"^watch: changed: assets.toml$")
    watch.expect(r"^done: 1 generated, 0 restored, 1 fresh")
    assert sorted(prompts(fake)) == ["a knight", "a paladin", "from a sketch"]
    assert lock(project)["sprites/hero.png"]["inputs"]["params"]["prompt"] == "a paladin"

    before = lock(project)["sprites/from_sketch.png"]["inputs"]["inputs"]["initimage"]
    save(project / "refs/sketch.png", png((0, 0, 200)))
    watch.expect(r"^watch: changed: refs/sketch.png$")
    watch.expect(r"^done: 1 generated, 0 restored, 1 fresh", count=2)
    assert fake.generations == 4
    assert lock(project)["sprites/from_sketch.png"]["inputs"]["inputs"]["initimage"] != before

    # Files nobody watches (the lock, images, state) do not start builds: the next build is the edit's.
    set_prompt(project, "a knight", WITH_INPUT)
    watch.expect(r"^done: 0 generated, 1 restored, 1 fresh")  # the first prompt's image, from the cache
    assert watch.count(r"^done:") == 4, watch.output
    assert fake.generations == 4

    assert watch.stop(signal.SIGINT) == 130
    assert "watch: stopped watching" in watch.output
    assert "Traceback" not in watch.output


def test_a_broken_manifest_prints_the_error_and_waits(project: Path, fake: FakeSwarm,
                                                     watchers: list[Watcher]) -> None:
    write_manifest(project, MANIFEST.replace('prompt = "{prompt}"', 'prompt = "unterminated'))
    watch = start(watchers, project, fake.url)
    watch.expect(r"error: .*assets.toml:\d+: TOML syntax error")
    watch.expect(r"^watch: waiting for the next change to assets.toml")

    set_prompt(project, "a knight")
    watch.expect(r"^done: 1 generated")
    assert prompts(fake) == ["a knight"]

    save_manifest(project, MANIFEST.replace("{prompt}", "a knight") + '\n[assets."x.png"]\nstyle = "nope"\n')
    watch.expect(r"error: .*unknown style 'nope'")
    watch.expect(r"^watch: waiting for the next change", count=2)
    assert watch.process.poll() is None  # still watching

    set_prompt(project, "a rogue")
    watch.expect(r"^done: 1 generated", count=2)
    assert prompts(fake) == ["a knight", "a rogue"]
    assert watch.stop(signal.SIGTERM) == 130


def test_edits_during_a_build_queue_one_follow_up_and_the_newest_wins(project: Path, fake: FakeSwarm,
                                                                     watchers: list[Watcher]) -> None:
    fake.configure(latency=1.0)
    set_prompt(project, "v1")
    watch = start(watchers, project, fake.url)
    # An edit during the first build (the file watcher is not running yet) ...
    wait_for(lambda: fake.live_gens >= 1, what="the first generation")
    set_prompt(project, "v2")
    watch.expect(r"^done: 1 generated")
    watch.expect(r"^watch: changed: assets.toml$")  # ... is seen once the watcher starts
    # Two edits during the follow-up build: they make one more build, of the newest manifest.
    wait_for(lambda: fake.live_gens >= 1 and len(fake.generation_log) == 1, what="the second generation")
    set_prompt(project, "v3")
    set_prompt(project, "v4")
    watch.expect(r"^done: 1 generated", count=3)
    fake.configure(latency=0.02)
    set_prompt(project, "v5")
    watch.expect(r"^done: 1 generated", count=4)
    assert prompts(fake) == ["v1", "v2", "v4", "v5"]  # v3 was never built: one follow-up per busy build
    assert watch.count(r"^done:") == 4

    entry = lock(project)["sprites/hero.png"]
    assert entry["inputs"]["params"]["prompt"] == "v5"
    cached = project / ".assetbuild/cache" / entry["key"][:2] / f"{entry['key']}.img"
    assert cached.read_bytes().split(b"\n", 1)[1] == (project / "sprites/hero.png").read_bytes()
    assert watch.stop() == 130


def test_ctrl_c_mid_generation_interrupts_and_keeps_nothing_partial(project: Path, fake: FakeSwarm,
                                                                   watchers: list[Watcher]) -> None:
    fake.configure(latency=30)
    set_prompt(project, "a slow knight")
    watch = start(watchers, project, fake.url)
    wait_for(lambda: fake.live_gens >= 1, what="the generation to start")
    assert watch.stop(signal.SIGINT) == 130
    wait_for(lambda: fake.interrupts >= 1, what="InterruptAll")
    wait_for(lambda: fake.active_jobs() == [], what="the server to stop the job")
    assert fake.generations == 0
    assert not (project / "sprites/hero.png").exists()
    assert not (project / "assets.lock").exists() or lock(project) == {}
    assert temp_files(project) == []
    assert "interrupted" in watch.output and "Traceback" not in watch.output


def test_an_input_changed_after_planning_is_not_filed_under_the_old_key(project: Path) -> None:
    """The builder reads input images after deciding the key: bytes that changed in between (an edit
    during a build) must not produce an image recorded or cached under the old key."""
    from assetbuild import generators
    from assetbuild.builder import Builder
    from assetbuild.display.plain import PlainDisplay
    from assetbuild.errors import AssetError
    from assetbuild.workspace import open_workspace

    (project / "refs").mkdir()
    (project / "refs/sketch.png").write_bytes(png((200, 0, 0)))
    write_manifest(project, WITH_INPUT.replace("{prompt}", "x").replace("http://127.0.0.1:9", "placeholder"))
    ws = open_workspace(str(project / "assets.toml"))
    builder = Builder(ws, lambda: generators.create(ws.project.server), PlainDisplay(quiet=True))
    planned = builder.status("sprites/from_sketch.png")
    (project / "refs/sketch.png").write_bytes(png((0, 200, 0)))
    builder.status = lambda target: planned  # type: ignore[method-assign]  # decided before the edit
    with pytest.raises(AssetError, match="refs/sketch.png|sketch.png changed since the build started"):
        builder.build("sprites/from_sketch.png")
    assert planned.key is not None and not ws.cache.has(planned.key)
    assert not (project / "sprites/from_sketch.png").exists()
    assert ws.lock.get("sprites/from_sketch.png") is None


def test_each_build_waits_for_another_assetbuild_in_the_project(project: Path, fake: FakeSwarm,
                                                               watchers: list[Watcher]) -> None:
    from assetbuild.projectlock import hold

    set_prompt(project, "a knight")
    watch = start(watchers, project, fake.url)
    watch.expect(r"^watch: watching")
    with hold(project / ".assetbuild", "run"):  # a build in a terminal, as far as the watch can tell
        set_prompt(project, "a paladin")
        watch.expect(r"waiting for assetbuild \(pid \d+, run\)")
        assert prompts(fake) == ["a knight"]
    watch.expect(r"^done: 1 generated", count=2)
    assert prompts(fake) == ["a knight", "a paladin"]
    assert watch.stop() == 130


def test_review_page_is_rewritten_after_every_build(project: Path, fake: FakeSwarm,
                                                    watchers: list[Watcher]) -> None:
    set_prompt(project, "a knight")
    watcher = start(watchers, project, fake.url, "--review")
    watcher.expect(r"review page: .*index\.html")
    site = project / ".assetbuild" / "review"
    first_stamp = (site / "live-stamp.js").read_text(encoding="utf-8")
    page = (site / "index.html").read_text(encoding="utf-8")
    assert "a knight" in page and "live-stamp.js" in page  # the page polls the stamp file
    watcher.expect("watching")
    set_prompt(project, "a wizard")
    watcher.expect(r"review page: .*index\.html", count=2)
    assert "a wizard" in (site / "index.html").read_text(encoding="utf-8")
    assert (site / "live-stamp.js").read_text(encoding="utf-8") != first_stamp  # open pages reload
    assert watcher.stop() == 130
