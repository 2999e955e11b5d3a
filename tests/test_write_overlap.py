"""An image's durable writes overlap without changing their order (issue 16.4).

The builder writes the cache entry and the intent on helper threads while it writes and flushes the
target's temporary file; the rename still waits for both, and the lock commit for the rename. Intents
recorded at the same moment share one append and one fsync, each returning once its line is on disk.
"""

from __future__ import annotations

import base64
import errno
import io
import json
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import run_cli, write_manifest
from PIL import Image

from assetbuild import fsutil, pngchunks
from assetbuild.cli import main
from assetbuild.intents import Announced, Intents
from assetbuild.testing import FakeSwarm

MANIFEST = ('[server]\nurl = "placeholder"\n[defaults]\nwidth = 64\nheight = 64\n'
            + "".join(f'[assets."art/a{n}.png"]\nprompt = "asset {n}"\nseed = {n}\n' for n in range(3)))


def test_the_intent_is_flushed_while_the_target_is_written_and_before_it_is_renamed(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSETBUILD_CACHE_DIR", str(tmp_path / "cache"))
    write_manifest(project, MANIFEST)
    staged: dict[str, threading.Event] = {f"a{n}.png": threading.Event() for n in range(3)}
    real_write, real_record = fsutil._write_temporary, Intents.record  # noqa: SLF001
    seen: list[tuple[str, bool, bool]] = []

    def write_temporary(folder: Path, name: str, *args: object, **kwargs: object) -> object:
        written = real_write(folder, name, *args, **kwargs)  # type: ignore[arg-type]
        if name in staged:
            staged[name].set()
        return written

    def record(self: Intents, target: str, digest: str, made: Announced | None = None) -> None:
        name = Path(target).name
        # Sequential writes would wait here forever (the target's file is written after the intent):
        # with the overlap, the target's temporary file is written meanwhile, but not yet renamed.
        overlapped = staged[name].wait(timeout=30)
        seen.append((name, overlapped, (project / target).exists()))
        real_record(self, target, digest, made)

    monkeypatch.setattr(fsutil, "_write_temporary", write_temporary)
    monkeypatch.setattr(Intents, "record", record)
    monkeypatch.chdir(project)
    assert main(["run", "-q", "-n", "1"]) == 0
    assert sorted(seen) == [(f"a{n}.png", True, False) for n in range(3)]
    assert all((project / "art" / f"a{n}.png").is_file() for n in range(3))
    assert len(list((tmp_path / "cache").glob("*/*.img"))) == 3


def test_an_intent_that_cannot_be_written_leaves_no_target_no_temporary_file_and_keeps_the_image_cached(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ASSETBUILD_CACHE_DIR", str(tmp_path / "cache"))
    write_manifest(project, MANIFEST)

    def disk_full(self: Intents, target: str, digest: str, made: Announced | None = None) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    monkeypatch.setattr(Intents, "record", disk_full)
    monkeypatch.chdir(project)
    assert main(["run", "-q", "-n", "1", "--keep-going"]) == 1
    shown = capsys.readouterr()
    assert "No space left on device" in shown.out + shown.err
    assert not list((project / "art").glob("*"))
    assert [p.name for p in (project / ".assetbuild" / "tmp").iterdir()] == []
    lock = project / "assets.lock"
    assert not lock.exists() or not json.loads(lock.read_text()).get("assets")
    assert len(list((tmp_path / "cache").glob("*/*.img"))) == 3  # generated images are never lost


def _first_then_eight(call: Callable[[int], None], first_started: threading.Event,
                      release_first: threading.Event, queued: Callable[[], bool]) -> None:
    """``call(0)`` on a thread until its fsync has started (and is held), then ``call(1)`` to ``call(8)`` on
    eight more until ``queued()`` says they all wait behind it; then the first fsync is let go and all end."""
    first = threading.Thread(target=call, args=(0,))
    first.start()
    assert first_started.wait(timeout=30)
    others = [threading.Thread(target=call, args=(n,)) for n in range(1, 9)]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 30
    while not queued() and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    release_first.set()
    for thread in [first, *others]:
        thread.join(timeout=30)


def test_intents_recorded_at_once_share_fsyncs_and_each_returns_once_its_line_is_flushed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    intents = Intents(tmp_path / ".assetbuild" / "intents.jsonl")
    flushed: list[bytes] = []  # the file's content at each fsync
    first_flush_started, release_first = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        flushed.append(intents.path.read_bytes())
        if len(flushed) == 1:
            first_flush_started.set()
            assert release_first.wait(timeout=30)

    monkeypatch.setattr(os, "fsync", fsync)
    returned: dict[str, list[bytes]] = {}

    def record(n: int) -> None:
        intents.record(f"t{n}.png", f"{n:032x}", Announced(f"{n:032x}", n, "m"))
        returned[f"t{n}.png"] = list(flushed)  # what had been flushed when record returned

    # The 8 others queue behind the first flush, then share one.
    _first_then_eight(record, first_flush_started, release_first,
                      queued=lambda: len(intents._open.lines) >= 8)  # noqa: SLF001
    assert len(flushed) == 2
    for target, at_return in returned.items():
        assert any(f'"t": "{target}"'.encode() in content for content in at_return)
    reloaded = Intents(intents.path)
    assert all(reloaded.ours(f"t{n}.png", f"{n:032x}") for n in range(9))


def test_a_failed_intent_append_fails_every_record_of_its_batch_and_the_next_starts_a_new_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    intents = Intents(tmp_path / ".assetbuild" / "intents.jsonl")
    intents.record("a.png", "a" * 32, Announced("1" * 32, 1, "m"))
    real_fsync = os.fsync

    def cut_then_fail(fd: int) -> None:  # a line half written, then the disk gives up
        os.write(fd, b'{"t": "cut')
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", cut_then_fail)
    with pytest.raises(OSError, match="Input/output"):
        intents.record("b.png", "b" * 32, Announced("2" * 32, 2, "m"))
    assert not intents.ours("b.png", "b" * 32)
    monkeypatch.setattr(os, "fsync", real_fsync)
    intents.record("c.png", "c" * 32, Announced("3" * 32, 3, "m"))
    reloaded = Intents(intents.path)
    assert reloaded.ours("a.png", "a" * 32) and reloaded.ours("c.png", "c" * 32)


def test_folder_syncs_asked_at_once_are_shared_and_each_waits_for_one_started_after_its_call(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "art"
    folder.mkdir()
    started: list[int] = []  # for each folder fsync: how many callers had asked when it started
    asked = [0]
    first_started, release_first = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        started.append(asked[0])
        if len(started) == 1:
            first_started.set()
            assert release_first.wait(timeout=30)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    returned_after: dict[int, int] = {}

    def sync(n: int) -> None:
        asked[0] += 1  # (the GIL makes this count exact enough: each caller counts itself before asking)
        fsutil.sync_dir_shared(folder)
        returned_after[n] = len(started)

    _first_then_eight(sync, first_started, release_first,
                      queued=lambda: fsutil._FOLDER_SYNCS[str(folder)].asked >= 9)  # noqa: SLF001
    assert started == [1, 9]  # the 8 that asked during the first fsync share the second
    assert returned_after[0] >= 1 and all(returned_after[n] == 2 for n in range(1, 9))


# -- the inflate that proves a chunk-stripped PNG whole runs beside the target's write (issue 16.4) --


def test_the_image_is_proven_whole_while_the_target_is_written_and_before_anything_is_renamed(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSETBUILD_CACHE_DIR", str(tmp_path / "cache"))
    write_manifest(project, MANIFEST)
    staged: dict[int, threading.Event] = {}  # by expected size: which target's temporary file was written
    real_write, real_check = fsutil._write_temporary, pngchunks._check_image_data  # noqa: SLF001
    seen: list[tuple[bool, int, int]] = []

    def write_temporary(folder: Path, name: str, *args: object, **kwargs: object) -> object:
        written = real_write(folder, name, *args, **kwargs)  # type: ignore[arg-type]
        if name.endswith(".png"):
            staged.setdefault(0, threading.Event()).set()
        return written

    def check(pieces: list[memoryview], expected: int) -> None:
        # Proving first, then writing, would wait here forever: the target's temporary file is written
        # meanwhile, but neither it nor the cache entry is renamed into place before the proof passed.
        overlapped = staged.setdefault(0, threading.Event()).wait(timeout=30)
        staged[0] = threading.Event()
        seen.append((overlapped, len(list((project / "art").glob("*.png"))),
                     len(list((tmp_path / "cache").glob("*/*.img")))))
        real_check(pieces, expected)

    monkeypatch.setattr(fsutil, "_write_temporary", write_temporary)
    monkeypatch.setattr(pngchunks, "_check_image_data", check)
    monkeypatch.chdir(project)
    assert main(["run", "-q", "-n", "1"]) == 0
    assert seen == [(True, n, n) for n in range(3)]  # nothing of this image was in place yet
    assert all((project / "art" / f"a{n}.png").is_file() for n in range(3))
    assert len(list((tmp_path / "cache").glob("*/*.img"))) == 3


def test_an_image_whose_data_fails_the_proof_leaves_nothing_behind(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ASSETBUILD_CACHE_DIR", str(tmp_path / "cache"))
    write_manifest(project, MANIFEST)
    staged = threading.Event()
    real_write = fsutil._write_temporary  # noqa: SLF001

    def write_temporary(folder: Path, name: str, *args: object, **kwargs: object) -> object:
        written = real_write(folder, name, *args, **kwargs)  # type: ignore[arg-type]
        if name == "a1.png":
            staged.set()
        return written

    def check(pieces: list[memoryview], expected: int) -> None:
        if sum(len(piece) for piece in pieces) and staged.wait(timeout=30):  # fails once a1's file is written
            raise ValueError("not a readable image (damaged PNG image data: invalid block type)")

    monkeypatch.setattr(fsutil, "_write_temporary", write_temporary)
    monkeypatch.setattr(pngchunks, "_check_image_data", check)
    monkeypatch.chdir(project)
    assert main(["run", "-q", "-n", "1", "--keep-going", "art/a1.png"]) == 1
    shown = capsys.readouterr()
    assert "art/a1.png" in shown.out + shown.err
    assert "the generator's image is unusable: not a readable image (damaged PNG image data" in shown.out + shown.err
    assert staged.is_set()  # the failure came while the target's temporary file existed
    assert not (project / "art").exists() or not list((project / "art").iterdir())
    assert [p.name for p in (project / ".assetbuild" / "tmp").iterdir()] == []
    cache = tmp_path / "cache"
    assert sorted(p.name for pattern in ("*/*.img", "*/.*.tmp") for p in cache.glob(pattern)) == []
    lock = project / "assets.lock"
    assert not lock.exists() or not json.loads(lock.read_text()).get("assets")


def _damaged_png(width: int, height: int) -> bytes:
    """A PNG whose chunks are all well formed (CRCs right) but whose image data is not a deflate stream."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(out, "PNG")
    chunks = [(kind, b"\x78\x9c" + b"\xff" * 40 if kind == b"IDAT" else body)
              for kind, body in pngchunks._chunks(out.getvalue())]  # noqa: SLF001
    return pngchunks.SIGNATURE + b"".join(struct.pack(">I", len(body)) + kind + body
                                          + struct.pack(">I", zlib.crc32(kind + body)) for kind, body in chunks)


def test_a_damaged_png_from_the_server_is_refused_and_nothing_is_written(project: Path, tmp_path: Path) -> None:
    with FakeSwarm(backends=1, latency=0.02, steps=2, close_delay=0.05, model_load_delay=0.01) as fake:
        write_manifest(project, '[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\n\n'
                                '[assets."art/a.png"]\nprompt = "a damaged image"\n')
        url = "data:image/png;base64," + base64.b64encode(_damaged_png(64, 64)).decode()
        fake.send_ws_frames(json.dumps({"image": url, "batch_index": "0", "request_id": "1"}))
        cache = tmp_path / "cache"
        result = run_cli(project, "run", "--server", fake.url, env={"ASSETBUILD_CACHE_DIR": str(cache)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert ("art/a.png" in result.stdout
            and "the generator's image is unusable: not a readable image (damaged PNG image data" in result.stdout)
    assert not (project / "art").exists() or not list((project / "art").iterdir())
    assert [p.name for p in (project / ".assetbuild" / "tmp").iterdir()] == []
    assert sorted(p.name for pattern in ("*/*.img", "*/.*.tmp") for p in cache.glob(pattern)) == []
    lock = project / "assets.lock"
    assert not lock.exists() or not json.loads(lock.read_text()).get("assets")
