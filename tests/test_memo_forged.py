"""A forged manifest memo (``.assetbuild/manifest.json`` with this folder's context and a checksum that
matches: the checksum is no secret) does no harm: the tables it lies about are resolved from the manifest
again. No bug exit, no other image, no lock change, no large allocation."""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, write_manifest

from assetbuild import params as P
from assetbuild.keys import hash_bytes
from assetbuild.manifest import memo as memo_module
from assetbuild.manifest.memo import MEMO_NAME, ResolvedMemo
from assetbuild.memorybound import bounded

pytestmark = pytest.mark.timeout(180)

MANIFEST = """\
[server]
url = "placeholder"

[defaults]
width = 64
height = 64
steps = 20
cfgscale = 7
seed = 1

[assets."plain.png"]
prompt = "a plain asset"

[assets."resized.png"]
prompt = "a resized asset"
resize = [32, 32]

[assets."oak_{n}.png"]
prompt = "an oak"
count = 2
"""

NOOP_FILES = ("noop.json", "noop-tables.json")  # without them the plan computes every asset's key


def project_files(root: Path) -> dict[str, bytes]:
    """Every file of the project outside the state folder (images, lock, manifest)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".assetbuild" not in p.relative_to(root).parts}


@pytest.fixture
def built(project: Path) -> Iterator[Path]:
    write_manifest(project, MANIFEST)
    done = run_cli(project)
    assert done.returncode == 0, done.stderr
    assert (project / ".assetbuild" / MEMO_NAME).exists()
    yield project


def entries(root: Path) -> dict[str, Any]:
    """The memo's entries by written name (text hash, entry)."""
    body = (root / ".assetbuild" / MEMO_NAME).read_bytes().partition(b"\n")[2]
    known = memo_module._read(body)
    assert known is not None
    return {entry[0]: (text_hash, entry) for text_hash, entry in known.items()}


def forge(root: Path, body: bytes) -> None:
    """Give the memo ``body`` under its own header, with the checksum of ``body``; drop the no-op memos."""
    path = root / ".assetbuild" / MEMO_NAME
    header = json.loads(path.read_bytes().partition(b"\n")[0])
    header["check"] = hash_bytes(body)
    path.write_bytes(json.dumps(header).encode() + b"\n" + body)
    for name in NOOP_FILES:
        (root / ".assetbuild" / name).unlink(missing_ok=True)


def nested_dag(levels: int) -> list[Any]:
    """A list whose every level holds the level below twice: ``levels`` deep, 2**levels leaves when walked."""
    value: list[Any] = ["leaf"]
    for _ in range(levels):
        value = [value, value]
    return value


# name -> how to change the plain table's entry (name, params, variant) or the resized one's full form
PLAIN_LIES: dict[str, Any] = {
    "bytes prompt": lambda params: {**params, "prompt": b"bytes"},
    "lone surrogate": lambda params: {**params, "prompt": "a plain asset \ud800"},
    "nan": lambda params: {**params, "cfgscale": float("nan")},
    "infinity": lambda params: {**params, "cfgscale": float("inf")},
    "huge int": lambda params: {**params, "seed": 10**5000},
    "int key": lambda params: {**params, 5: 1},
    "tuple": lambda params: {**params, "loras": ("a", "b")},
    "dict value": lambda params: {**params, "loras": {"a": 1}},
    "nested lists": lambda params: {**params, "loras": nested_dag(80)},
    "unknown parameter": lambda params: {**params, "sharpness": 3},
    "reserved parameter": lambda params: {**params, "images": 4},
    "image parameter": lambda params: {**params, "initimage": "resized.png"},
    "out of range": lambda params: {**params, "width": 10**6},
    "bool for int": lambda params: {**params, "steps": True},
    "float for int": lambda params: {**params, "steps": 20.0},
    "no prompt": lambda params: {k: v for k, v in params.items() if k != "prompt"},
    "surrogate in list": lambda params: {**params, "loras": ["\udcff"]},
    "huge int in list": lambda params: {**params, "loraweights": [10**5000]},
}


@pytest.mark.parametrize("lie", list(PLAIN_LIES))
def test_a_forged_parameter_is_not_used(built: Path, lie: str) -> None:
    before = project_files(built)
    known = {text_hash: entry for text_hash, entry in entries(built).values()}
    text_hash, (written, params, variant) = entries(built)["plain.png"]
    known[text_hash] = (written, PLAIN_LIES[lie](params), variant)
    forge(built, pickle.dumps(known, protocol=5))
    done = run_cli(built)
    assert done.returncode == 0, done.stderr
    assert "4 assets" in done.stdout and "0 generated" in done.stdout and "bug" not in done.stderr
    assert project_files(built) == before
    assert entries(built)["plain.png"][1] == (written, params, variant)  # the memo now holds the truth


FULL_LIES: dict[str, Any] = {
    "post that does not parse": lambda entry: (entry[0], [(t, p, {"resize": "x"}, v) for t, p, _, v in entry[1]]),
    "post of an unhashable mode": lambda entry: (
        entry[0], [(t, p, {"resize": {"size": [8, 8], "mode": ["fit"]}}, v) for t, p, _, v in entry[1]]),
    "unknown post key": lambda entry: (entry[0], [(t, p, {"explode": True}, v) for t, p, _, v in entry[1]]),
    "surrogate target": lambda entry: (entry[0], [("\udcffresized.png", p, s, v) for _, p, s, v in entry[1]]),
    "no target": lambda entry: (entry[0], []),
    "huge variant": lambda entry: (entry[0], [(t, p, s, 10**5000) for t, p, s, _ in entry[1]]),
}


@pytest.mark.parametrize("lie", list(FULL_LIES))
def test_a_forged_target_is_not_used(built: Path, lie: str) -> None:
    before = project_files(built)
    named = entries(built)
    known = {text_hash: entry for text_hash, entry in named.values()}
    text_hash, entry = named["resized.png"]
    known[text_hash] = FULL_LIES[lie](entry)
    forge(built, pickle.dumps(known, protocol=5))
    done = run_cli(built)
    assert done.returncode == 0, done.stderr
    assert "4 assets" in done.stdout and "0 generated" in done.stdout and "bug" not in done.stderr
    assert project_files(built) == before


def test_a_forged_variant_is_not_used(built: Path) -> None:
    named = entries(built)
    known = {text_hash: entry for text_hash, entry in named.values()}
    text_hash, entry = named["oak_{n}.png"]
    known[text_hash] = (entry[0], [(t, p, s, 10**5000) for t, p, s, _ in entry[1]])
    forge(built, pickle.dumps(known, protocol=5))
    with_memo = ResolvedMemo.open(built / ".assetbuild")
    with_memo.start(with_memo_context(built))
    assert with_memo.get(text_hash) is None


def with_memo_context(root: Path) -> str:
    """The context a load of ``root``'s manifest starts its memo with."""
    from assetbuild.manifest import sections

    cut = sections.split((root / "assets.toml").read_text())
    return ResolvedMemo.context_of("".join(piece.text for piece in cut.global_pieces), root.absolute())


def peak_rss_kib(root: Path) -> tuple[int, int]:
    """Exit code and peak RSS (KiB) of one build of ``root``, from wait4 on that very child."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, "-m", "assetbuild"], cwd=root, stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, env=dict(os.environ))
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # (reaped here: Popen must not wait for it)
    return proc.returncode, int(usage.ru_maxrss)


# Pickles of a few bytes whose memo store names a huge index: the C unpickler makes its memo table that
# big (16 bytes an index) before anything else.
ALLOCATING = {
    "LONG_BINPUT": b"\x80\x05}" + b"r" + struct.pack("<I", 2**25) + b".",
    "PUT": b"\x80\x05}p33554432\n.",
}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak RSS by wait4 as Linux reports it")
@pytest.mark.parametrize("body", list(ALLOCATING))
def test_a_forged_memo_allocates_nothing_large(built: Path, body: str) -> None:
    before = project_files(built)
    forge(built, b"")
    (built / ".assetbuild" / MEMO_NAME).unlink()
    code, without_memo = peak_rss_kib(built)
    assert code == 0
    run_cli(built)  # the memo again
    forge(built, ALLOCATING[body])
    code, forged = peak_rss_kib(built)
    assert code == 0
    assert forged - without_memo < 50 * 1024, (forged, without_memo)  # 512 MiB without the bound
    assert project_files(built) == before


def test_a_memo_body_with_puts_is_refused_where_memory_cannot_be_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the bound cannot be set (another thread, another system) a body with PUT opcodes is refused
    before the C unpickler sees it; one ``save`` wrote (no PUT) is still read."""
    import contextlib

    @contextlib.contextmanager
    def unbounded(extra: int) -> Iterator[bool]:
        yield False

    monkeypatch.setattr(memo_module, "bounded", unbounded)
    for body in ALLOCATING.values():
        assert memo_module._read(body) is None
    legit = {"h": ("a.png", {"prompt": "x", "seed": 1}, None)}
    assert memo_module._read(pickle.dumps(legit, protocol=5)) == legit
    assert memo_module._read(pickle.dumps(legit, protocol=2)) is None  # protocol 2 stores with BINPUT


def in_fresh_process(code: str) -> str:
    """Run ``code`` in a new interpreter (one thread: a pytest-xdist worker has more, and no bound is set
    there) and return what it printed."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_DATA is enforced on Linux")
def test_a_large_memo_is_read_under_the_bound() -> None:
    """The bound leaves room for a real memo: 50,000 entries with distinct prompts and seeds."""
    out = in_fresh_process("""
        import pickle
        from assetbuild.keys import hash_bytes
        from assetbuild.manifest import memo
        from assetbuild.memorybound import bounded

        shared = {"model": "sd_xl_base_1.0", "negativeprompt": "blurry, low quality"}
        known = {hash_bytes(str(n).encode()): (f"set{n // 100:03}/asset{n:05}.png",
                                               {**shared, "prompt": f"pixel art of item {n}, 16-bit palette",
                                                "seed": n * 7919, "steps": 20, "width": 64, "height": 64}, None)
                 for n in range(50_000)}
        items = list(known.items())
        body = b"".join(pickle.dumps(dict(items[i:i + 4096]), protocol=5) for i in range(0, len(items), 4096))
        with bounded(1) as in_force:
            print("bound", in_force)
        print("read", memo._read(body) == known)
    """)
    assert out.split() == ["bound", "True", "read", "True"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_DATA is enforced on Linux")
def test_the_bound_holds_in_the_block_and_ends_with_it() -> None:
    out = in_fresh_process("""
        from assetbuild.memorybound import bounded

        with bounded(16 << 20) as in_force:
            print("bound", in_force)
            try:
                bytearray(256 << 20)
                print("allocated")
            except MemoryError:
                print("refused")
        print("after", len(bytearray(256 << 20)) == 256 << 20)
    """)
    assert out.split() == ["bound", "True", "refused", "after", "True"]


def test_no_bound_while_another_thread_runs() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with bounded(16 << 20) as in_force:
            assert not in_force
            assert len(bytearray(64 << 20)) == 64 << 20
    finally:
        stop.set()
        other.join()


def test_the_inline_ranges_agree_with_check_value() -> None:
    """``_sound_params`` checks whole numbers against ``_INT_RANGES`` inline: the same answer as
    ``params.check_value`` for every parameter and every edge."""
    for key, spec in memo_module._KEPT_PARAMS.items():
        edges = [-(2**63), -1, 0, 1, 2**63 - 1]
        edges += [int(bound) + step for bound in (spec.min, spec.max) if bound is not None for step in (-1, 0, 1)]
        for value in edges:
            inline = key in memo_module._INT_RANGES and (
                memo_module._INT_RANGES[key][0] <= value <= memo_module._INT_RANGES[key][1])
            assert inline == (P.check_value(spec, value) is None), (key, value)
