"""`assetbuild pull`'s fast path keeps every guarantee: each object verified before anything is written
(bytes vs claimed hash, claimed hash vs the lock, signature), never over a file that is there or appears
meanwhile, whole files only, at most TRANSFER_JOBS downloads at once. Real stores: a folder and WebDAV."""

from __future__ import annotations

import errno
import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import run_cli
from remote_servers import WebDAV
from test_remote_build import SIGNING, TOKEN

from assetbuild.fsutil import write_new
from assetbuild.keys import hash_bytes
from assetbuild.remote.objects import encode, path_of
from assetbuild.remote.remote import TRANSFER_JOBS


def lock_only_project(root: Path, store: Path, count: int, *, signing_key: bytes | None = None,
                      in_store: bool = True) -> dict[str, bytes]:
    """A checkout whose assets.lock names ``count`` images held only by the store folder ``store`` (as a
    machine with a server would have pushed them), or with ``in_store=False`` only by the checkout's
    target files (to be pushed). Returns each target's image bytes."""
    root.mkdir(parents=True)
    lines = ["[server]", 'url = "placeholder"', ""]
    assets: dict[str, object] = {}
    images = {}
    for i in range(count):
        target = f"img/{i:03d}.png"
        lines += [f'[assets."{target}"]', f'prompt = "image {i}"', ""]
        data = os.urandom(2048) + target.encode()
        key = hash_bytes(f"{root}-{target}".encode())
        assets[target] = {"key": key, "hash": hash_bytes(data), "seed": i, "model": "m", "inputs": {}}
        place = store / path_of(key) if in_store else root / target
        place.parent.mkdir(parents=True, exist_ok=True)
        place.write_bytes(encode(key, data, seed=i, model="m", signing_key=signing_key) if in_store else data)
        images[target] = data
    (root / "assets.toml").write_text("\n".join(lines), encoding="utf-8")
    (root / "assets.lock").write_text(json.dumps({"version": 1, "assets": assets}, sort_keys=True, indent=1))
    return images


def key_of_target(root: Path, target: str) -> str:
    return str(json.loads((root / "assets.lock").read_text())["assets"][target]["key"])


def pull(root: Path, env: dict[str, str], *args: str) -> tuple[int, str, list[dict[str, object]]]:
    result = run_cli(root, "pull", "--json", *args, env={"ASSETBUILD_CACHE_DIR": str(root.parent / "cache"), **env},
                     timeout=120)
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.returncode, result.stdout + result.stderr, events


def leftovers(root: Path) -> list[Path]:
    """Temporary files a pull left behind (there must be none)."""
    return [p for p in root.rglob("*.tmp")]


def test_pull_refuses_tampered_objects_and_writes_nothing_for_them(tmp_path: Path) -> None:
    store, root = tmp_path / "store", tmp_path / "clone"
    images = lock_only_project(root, store, 4)
    flipped, foreign = key_of_target(root, "img/000.png"), key_of_target(root, "img/001.png")
    raw = (store / path_of(flipped)).read_bytes()
    (store / path_of(flipped)).write_bytes(raw[:-5] + b"XXXXX")  # same header, other bytes
    # A well-formed object whose bytes match its own header, but not the image the lock records.
    (store / path_of(foreign)).write_bytes(encode(foreign, b"another image", seed=1, model="m", signing_key=None))

    code, output, events = pull(root, {"ASSETBUILD_REMOTE": str(store)})
    assert code == 1
    assert f"team store object {flipped} refused: its bytes do not match the hash it claims" in output
    assert f"team store object {foreign} refused: its image is not the one assets.lock records" in output
    assert not (root / "img/000.png").exists() and not (root / "img/001.png").exists()
    for target in ("img/002.png", "img/003.png"):
        assert (root / target).read_bytes() == images[target]
    assert events[-1]["counts"] == {"pulled": 2} and events[-1]["failed"] == 2
    assert leftovers(root) == []
    # pull does not fill the local cache (the restored target is the verified image; see commands/pull.py)
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").rglob("*.img")) == []


def test_pull_from_a_signed_store_refuses_unsigned_objects_and_takes_signed_ones(tmp_path: Path) -> None:
    unsigned_store, signed_store = tmp_path / "unsigned", tmp_path / "signed"
    a = tmp_path / "a"
    lock_only_project(a, unsigned_store, 2)
    code, output, _ = pull(a, {"ASSETBUILD_REMOTE": str(unsigned_store), "ASSETBUILD_REMOTE_SIGNING_KEY": SIGNING})
    assert code == 1 and "not signed" in output and SIGNING not in output
    assert not (a / "img").exists()

    b = tmp_path / "b"
    images = lock_only_project(b, signed_store, 2, signing_key=SIGNING.encode())
    code, output, _ = pull(b, {"ASSETBUILD_REMOTE": str(signed_store), "ASSETBUILD_REMOTE_SIGNING_KEY": "other-key"})
    assert code == 1 and "signature is wrong" in output and not (b / "img").exists()
    code, output, _ = pull(b, {"ASSETBUILD_REMOTE": str(signed_store), "ASSETBUILD_REMOTE_SIGNING_KEY": SIGNING})
    assert code == 0, output
    assert {t: (b / t).read_bytes() for t in images} == images


def test_pull_checks_each_target_in_a_folder_that_exists_and_restores_into_one_that_does_not(tmp_path: Path) -> None:
    """A target whose folder is missing cannot exist (pull saves its stat); in a folder that exists, a file
    with other bytes than the lock's is never overwritten and one with the lock's bytes is left alone."""
    store, root = tmp_path / "store", tmp_path / "clone"
    images = lock_only_project(root, store, 4)
    lock = json.loads((root / "assets.lock").read_text())
    for n in (2, 3):  # two targets in another folder, which does not exist in this checkout
        entry = lock["assets"].pop(f"img/{n:03d}.png")
        lock["assets"][f"other/{n:03d}.png"] = entry
        images[f"other/{n:03d}.png"] = images.pop(f"img/{n:03d}.png")
    (root / "assets.lock").write_text(json.dumps(lock, sort_keys=True, indent=1))
    toml = (root / "assets.toml").read_text().replace('"img/002.png"', '"other/002.png"')
    (root / "assets.toml").write_text(toml.replace('"img/003.png"', '"other/003.png"'))
    (root / "img").mkdir()
    (root / "img/000.png").write_bytes(b"edited by hand")
    (root / "img/001.png").write_bytes(images["img/001.png"])
    code, output, events = pull(root, {"ASSETBUILD_REMOTE": str(store)})
    assert code == 1 and f"{root / 'img/000.png'} differs from what assets.lock records; not overwriting it" in output
    assert (root / "img/000.png").read_bytes() == b"edited by hand"
    assert events[-1]["counts"] == {"fresh": 1, "pulled": 2} and events[-1]["failed"] == 1
    for target in ("img/001.png", "other/002.png", "other/003.png"):
        assert (root / target).read_bytes() == images[target]
    assert leftovers(root) == []


def test_pull_never_replaces_a_file_that_appears_while_it_downloads(tmp_path: Path) -> None:
    """The user saves a file at a target while pull downloads its image: the user's file stays."""
    root = tmp_path / "clone"
    victim = root / "img/001.png"
    appeared = threading.Event()

    def on_request(method: str, path: str) -> Callable[[], None] | None:
        if method == "GET" and path.endswith(f"/{key}.img"):
            victim.parent.mkdir(parents=True, exist_ok=True)
            victim.write_bytes(b"drawn by hand meanwhile")
            appeared.set()
        return None

    server = WebDAV(tmp_path / "dav", TOKEN, on_request=on_request)
    try:
        url = server.url("store")
        images = lock_only_project(root, server.folder / "store", 3)
        key = key_of_target(root, "img/001.png")
        code, output, events = pull(root, {"ASSETBUILD_REMOTE": url, "ASSETBUILD_REMOTE_TOKEN": TOKEN})
    finally:
        server.stop()
    assert appeared.is_set()
    assert code == 1 and "appeared meanwhile; not overwriting it" in output
    assert victim.read_bytes() == b"drawn by hand meanwhile"
    for target in ("img/000.png", "img/002.png"):
        assert (root / target).read_bytes() == images[target]
    assert TOKEN not in output
    assert leftovers(root) == []


class Gate:
    """Holds each GET until ``width`` are in flight (or every one has started): the widest a client's
    concurrency can be is then observed exactly, whatever the machine's speed."""

    def __init__(self, total: int, width: int) -> None:
        self.total, self.width = total, width
        self.cond = threading.Condition()
        self.started = self.in_flight = self.widest = 0

    def __call__(self, method: str, path: str) -> Callable[[], None] | None:
        if method != "GET" or not path.endswith(".img"):
            return None
        with self.cond:
            self.started += 1
            self.in_flight += 1
            self.widest = max(self.widest, self.in_flight)
            self.cond.notify_all()
            # The timeout only keeps a broken client from hanging the test; the assertion is on `widest`.
            self.cond.wait_for(lambda: self.in_flight >= self.width or self.started >= self.total, timeout=10)
        return self.done

    def done(self) -> None:
        with self.cond:
            self.in_flight -= 1


def test_pull_runs_at_most_transfer_jobs_downloads_at_once(tmp_path: Path) -> None:
    count = TRANSFER_JOBS * 3
    gate = Gate(count, TRANSFER_JOBS)
    server = WebDAV(tmp_path / "dav", TOKEN, threads=count + 8, on_request=gate)
    try:
        url = server.url("store")
        root = tmp_path / "clone"
        images = lock_only_project(root, server.folder / "store", count)
        code, output, _ = pull(root, {"ASSETBUILD_REMOTE": url, "ASSETBUILD_REMOTE_TOKEN": TOKEN})
    finally:
        server.stop()
    assert code == 0, output
    assert gate.started >= count
    assert gate.widest == TRANSFER_JOBS  # it reached the bound, and never went past it
    assert all((root / t).read_bytes() == data for t, data in images.items())


# --- write_new: the file placement pull uses ------------------------------------------------------------


def test_write_new_creates_folders_and_a_whole_file_with_the_usual_mode(tmp_path: Path) -> None:
    tmp = tmp_path / "state-tmp"
    tmp.mkdir()
    target = tmp_path / "a/b/image.png"
    written = write_new(target, memoryview(b"0123456789")[2:], tmp_dir=tmp)
    assert target.read_bytes() == b"23456789"
    st = target.stat()
    assert (st.st_ino, st.st_size, st.st_mtime_ns) == (written.st_ino, written.st_size, written.st_mtime_ns)
    assert st.st_nlink == 1 and list(tmp.iterdir()) == []
    umask = os.umask(0)
    os.umask(umask)
    assert st.st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("what", ["file", "folder", "symlink"])
def test_write_new_never_replaces_what_is_there(tmp_path: Path, what: str) -> None:
    tmp = tmp_path / "state-tmp"
    tmp.mkdir()
    target = tmp_path / "image.png"
    elsewhere = tmp_path / "elsewhere.txt"
    if what == "file":
        target.write_bytes(b"mine")
    elif what == "folder":
        target.mkdir()
    else:
        target.symlink_to(elsewhere)  # dangling: writing through it would create `elsewhere`
    with pytest.raises(FileExistsError):
        write_new(target, b"pulled", tmp_dir=tmp)
    assert list(tmp.iterdir()) == [] and not elsewhere.exists()
    if what == "file":
        assert target.read_bytes() == b"mine"


def test_write_new_reports_a_file_where_a_folder_should_be(tmp_path: Path) -> None:
    tmp = tmp_path / "state-tmp"
    tmp.mkdir()
    (tmp_path / "img").write_bytes(b"not a folder")
    with pytest.raises(NotADirectoryError):
        write_new(tmp_path / "img/sub/a.png", b"x", tmp_dir=tmp)
    assert list(tmp.iterdir()) == []


# --- Landing: batches of staged files, synced, then linked ------------------------------------------------


def test_landing_places_batches_whole_and_never_over_a_file_that_appeared(tmp_path: Path) -> None:
    from assetbuild.remote.landing import Landing

    tmp = tmp_path / "state-tmp"
    tmp.mkdir()
    landing: Landing[str] = Landing(tmp, batch_files=2)
    placed = []
    for i in range(5):
        target = tmp_path / f"out/{i}.png"
        placed += landing.add(landing.stage(target, memoryview(f"image {i}".encode()), f"t{i}"))
        if i == 2:  # a batch of two was handed over; the user saves a file where the fifth goes
            (tmp_path / "out").mkdir(exist_ok=True)
            (tmp_path / "out/4.png").write_bytes(b"mine")
    placed += landing.finish()
    assert sorted(item.payload for item in placed) == ["t0", "t1", "t2", "t3", "t4"]  # each reported once
    refused = [item for item in placed if item.written is None]
    assert [item.payload for item in refused] == ["t4"] and "appeared meanwhile" in (refused[0].problem or "")
    assert (tmp_path / "out/4.png").read_bytes() == b"mine"
    for i in range(4):
        assert (tmp_path / f"out/{i}.png").read_bytes() == f"image {i}".encode()
    assert list(tmp.iterdir()) == []  # every temporary file linked or removed


@pytest.mark.parametrize("refusal", [errno.EPERM, errno.EXDEV])
def test_write_new_without_hard_links_or_across_file_systems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            refusal: int) -> None:
    """Where the file system refuses hard links (FAT, some shares: EPERM) or the temporary folder is on
    another one (EXDEV), the file is still placed whole, and still never over an existing one."""
    def no_link(src: object, dst: object, **_: object) -> None:
        raise OSError(refusal, os.strerror(refusal))

    monkeypatch.setattr(os, "link", no_link)
    tmp = tmp_path / "state-tmp"
    tmp.mkdir()
    if refusal == errno.EXDEV:  # the copy next to the target links there: let that one through
        monkeypatch.undo()
        real_link = os.link

        def link_only_next_to_target(src: str, dst: str, **kw: object) -> None:
            if Path(src).parent == tmp:
                raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
            real_link(src, dst)

        monkeypatch.setattr(os, "link", link_only_next_to_target)
    target = tmp_path / "out/a.png"
    target.parent.mkdir()
    write_new(target, b"pulled bytes", tmp_dir=tmp)
    assert target.read_bytes() == b"pulled bytes"
    (tmp_path / "out/b.png").write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        write_new(tmp_path / "out/b.png", b"pulled", tmp_dir=tmp)
    assert (tmp_path / "out/b.png").read_bytes() == b"mine"
    assert list(tmp.iterdir()) == [] and sorted(p.name for p in target.parent.iterdir()) == ["a.png", "b.png"]


def test_pull_restores_from_the_local_cache_first_and_skips_a_damaged_entry(tmp_path: Path) -> None:
    from test_remote_build import first_machine

    store = tmp_path / "store"
    a = first_machine(tmp_path, {"ASSETBUILD_REMOTE": str(store)})
    assert a.run("run").returncode == 0
    lock = json.loads((a.root / "assets.lock").read_text())["assets"]
    images = {t: (a.root / t).read_bytes() for t in lock}
    for target in lock:
        (a.root / target).unlink()
    shutil.rmtree(store)  # nothing can come from the store: every image must come from the cache
    cache = Path(a.env["ASSETBUILD_CACHE_DIR"])
    damaged = lock["ui/icon_sword.png"]["key"]
    entry = cache / damaged[:2] / f"{damaged}.img"
    entry.write_bytes(entry.read_bytes()[:-3] + b"xyz")
    code, output, events = pull(a.root, {"ASSETBUILD_REMOTE": str(store), "ASSETBUILD_CACHE_DIR": str(cache)})
    assert code == 1  # the damaged entry is reported and removed; the store does not have it either
    assert f"cache entry {entry} was damaged" in output and not entry.exists()
    assert events[-1]["counts"] == {"restored": 2}
    for target in ("sprites/hero.png", "sprites/hero_attack.png"):
        assert (a.root / target).read_bytes() == images[target]
    assert not (a.root / "ui/icon_sword.png").exists()


@pytest.mark.parametrize("platform", ["syncfs fails", "no syncfs"])
def test_landing_without_a_working_syncfs_flushes_each_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           platform: str) -> None:
    """Where syncfs is missing (not Linux) or fails, every file is fsynced on its own before it gets its name."""
    import assetbuild.remote.landing as landing_module

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    if platform == "no syncfs":
        monkeypatch.setattr(landing_module, "can_sync_filesystem", lambda: False)
    monkeypatch.setattr(landing_module, "sync_filesystem", lambda folder: False)
    tmp = tmp_path / "state-tmp"
    tmp.mkdir()
    landing: landing_module.Landing[int] = landing_module.Landing(tmp, batch_files=2)
    placed = []
    for i in range(3):
        placed += landing.add(landing.stage(tmp_path / f"out/{i}.png", f"image {i}".encode(), i))
    placed += landing.finish()
    assert sorted(item.payload for item in placed) == [0, 1, 2] and all(item.written for item in placed)
    assert len(synced) >= 3 + 1  # each file, then the folder
    assert [(tmp_path / f"out/{i}.png").read_bytes() for i in range(3)] == [b"image 0", b"image 1", b"image 2"]
