"""The content-addressed cache: every built image stored by its key.

Layout: ``<cache_dir>/<key[:2]>/<key>.img``. Each entry is one file holding a one-line JSON header
(``hash`` of the image bytes, ``size``, ``seed``, ``model``) followed by the image bytes, written
atomically (temporary file + rename), so two processes sharing the folder (CI jobs, a network share)
can only ever see whole entries, and the bytes are verified against the header on every restore: a
damaged entry is discarded and reported, never restored.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .fsutil import (
    abandoned_files,
    atomic_write,
    forget_pages,
    forget_pages_of,
    open_ours,
    real_dir,
    sync_dir,
    sync_filesystem,
)
from .keys import hash_bytes

_KEY = re.compile(r"[0-9a-f]{32}")  # an asset key (xxh3-128 hex): the only names the cache has


@dataclass(frozen=True)
class CacheHit:
    data: bytes
    hash: str
    seed: int | None
    model: str | None


class CorruptEntry(Exception):
    """A cache entry whose bytes do not match its header (it has been removed)."""


class Cache:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._deferred = False  # see defer_sync
        self._unsynced: list[Path] | None = []  # entries written without their fsync (None: too many to list)
        # The last entries written without their fsync, whose pages are still in the page cache (being
        # written out): forgotten a few entries later, once written (see put).
        self._writing_back: collections.deque[Path] = collections.deque()

    def defer_sync(self) -> None:
        """From now on, ``put`` does not flush each entry (its file and its folder: two fsyncs) but leaves
        that to one ``sync()`` at the end of the run.

        For a build only, where every entry put is a copy of bytes that are also written, fsynced, to a
        target before the lock records them: a power loss before ``sync()`` can cost a cache entry, never
        an image (and a damaged entry is detected by its hash and rebuilt). ``sync()`` at the end of the
        run makes the entries durable before a later run may overwrite those targets."""
        self._deferred = True

    def sync(self) -> None:
        """Flush every entry written since ``defer_sync``: each one (file and folder) when they are few,
        else one ``syncfs`` of the cache's file system (which also waits for other programs' writes there,
        so it only pays off for many entries)."""
        unsynced, self._unsynced = self._unsynced, []
        if unsynced is None:
            _sync_filesystem(self.folder)
        else:
            for path in unsynced:
                _fsync_file(path)  # (and, written out now, its pages are forgotten)
            for folder in {path.parent for path in unsynced}:
                sync_dir(folder)
        self._forget_written_back(keep=0)

    def path_of(self, key: str) -> Path:
        if not _KEY.fullmatch(key):  # the lock refuses such keys; never let one name a path elsewhere
            raise ValueError(f"not a cache key: {key!r}")
        return self.folder / key[:2] / f"{key}.img"

    def has(self, key: str) -> bool:
        return self.path_of(key).is_file()

    def put(self, key: str, data: bytes, *, seed: int | None, model: str | None,
            ready: Callable[[], object] | None = None) -> str:
        """Store ``data`` under ``key``; returns the hash of ``data``. ``ready`` (see ``fsutil.atomic_write``)
        is called before the entry is renamed into place: raising, it leaves no entry."""
        digest = hash_bytes(data)
        header = json.dumps({"hash": digest, "size": len(data), "seed": seed, "model": model},
                            sort_keys=True, separators=(",", ":"))
        path = self.path_of(key)
        real_dir(path.parent)  # a shard planted as a symlink would take the entry elsewhere
        unsynced = self._unsynced  # read once: another thread's put may set it to None meanwhile
        if self._deferred and unsynced is not None:
            unsynced.append(path)
            if len(unsynced) > _LISTED_UNSYNCED:
                self._unsynced = None
        # The header is written before the image rather than copied onto it. The entry's pages leave the
        # page cache (fsutil._FADVISE): at once when synced, else a few entries later, once written out.
        atomic_write(path, (header.encode() + b"\n", data), sync=not self._deferred, ready=ready, forget=True)
        if self._deferred:
            self._writing_back.append(path)
            self._forget_written_back(keep=_WRITING_BACK)
        return digest

    def _forget_written_back(self, *, keep: int) -> None:
        """Forget the pages of the oldest unsynced entries, all but the last ``keep`` written."""
        while len(self._writing_back) > keep:
            with contextlib.suppress(IndexError):  # (another thread took it)
                forget_pages(self._writing_back.popleft())

    def get(self, key: str) -> CacheHit | None:
        """The entry for ``key``, verified; None when absent. Raises ``CorruptEntry`` (after removing it)."""
        path = self.path_of(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        header_end = raw.find(b"\n")
        try:
            header = json.loads(raw[:header_end])
            data = raw[header_end + 1:]
            if header_end < 0 or len(data) != header["size"] or hash_bytes(data) != header["hash"]:
                raise ValueError("bytes do not match the entry's header")
        except (ValueError, KeyError, TypeError) as exc:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise CorruptEntry(f"cache entry {path} was damaged ({exc}); removed it") from None
        with contextlib.suppress(OSError):  # record the use for `gc --keep-days` (a read-only share is fine)
            os.utime(path, follow_symlinks=False)
        return CacheHit(data, header["hash"], header.get("seed"), header.get("model"))

    def header_hash(self, key: str) -> str | None:
        """The image hash an entry's header records (the entry is not verified, nor marked used)."""
        try:
            with open(self.path_of(key), "rb") as handle:
                return str(json.loads(handle.readline())["hash"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def entries(self) -> Iterator[CacheEntry]:
        """Every entry (not verified), for gc."""
        if not self.folder.is_dir():
            return
        for shard in sorted(self.folder.iterdir()):
            # Symlinks are skipped, never followed: gc must not delete files elsewhere through one.
            if len(shard.name) != 2 or shard.is_symlink() or not shard.is_dir():
                continue
            for path in sorted(shard.glob("*.img")):
                with contextlib.suppress(FileNotFoundError):  # another process may be pruning too
                    st = path.lstat()
                    if stat.S_ISREG(st.st_mode):
                        yield CacheEntry(path.stem, path, st.st_size, st.st_mtime)

    def stale_temporaries(self, older_than: float = 3600.0) -> list[Path]:
        """Temporary files left by writers that were killed mid-write (old enough not to be in use)."""
        return abandoned_files(self.folder, "*/.*.tmp", older_than)

    @staticmethod
    def remove(path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


_LISTED_UNSYNCED = 64  # more unsynced entries than this are flushed with one syncfs
_WRITING_BACK = 8  # unsynced entries left in the page cache while the kernel writes them out (see put)


def _fsync_file(path: Path) -> None:
    """Flush ``path``, then let its pages leave the page cache (see ``fsutil.forget_pages``)."""
    with contextlib.suppress(OSError):  # gone (gc from another project), or not a file of ours: nothing to do
        fd = open_ours(path)
        try:
            os.fsync(fd)
            forget_pages_of(fd)
        finally:
            os.close(fd)


def _sync_filesystem(folder: Path) -> None:
    """syncfs(2) of the file system holding ``folder`` (Linux); ``sync()`` of every one elsewhere."""
    try:
        synced = sync_filesystem(folder)
    except OSError:  # the folder cannot be opened
        synced = False
    if not synced:
        os.sync()


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: Path
    size: int
    last_used: float  # mtime: set when written and on every restore
