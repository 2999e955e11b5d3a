"""The content-addressed cache: every built image stored by its key.

Layout: ``<cache_dir>/<key[:2]>/<key>.img``. Each entry is one file holding a one-line JSON header
(``hash`` of the image bytes, ``size``, ``seed``, ``model``) followed by the image bytes, written
atomically (temporary file + rename), so two processes sharing the folder (CI jobs, a network share)
can only ever see whole entries, and the bytes are verified against the header on every restore: a
damaged entry is discarded and reported, never restored.

Durability. An entry is flushed to disk before ``put`` returns, except when the caller writes the same
image durably elsewhere at once (a build: the target file, then its lock entry): then ``sync_later``
hands the flush to a background thread, off the path of the next generation, and ``flush`` waits for
it (the builder calls it when it closes). A killed process loses nothing either way (the written bytes
are the kernel's); after a power loss mid-run an entry not yet flushed may be damaged, which ``get``
detects, while its image is safe in the target.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import os
import re
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .fsutil import abandoned_files, atomic_write, real_dir, sync_file
from .keys import hash_bytes

log = logging.getLogger("assetbuild.cache")

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
        self._syncer: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: set[concurrent.futures.Future[None]] = set()
        self._sync_lock = threading.Lock()

    def path_of(self, key: str) -> Path:
        if not _KEY.fullmatch(key):  # the lock refuses such keys; never let one name a path elsewhere
            raise ValueError(f"not a cache key: {key!r}")
        return self.folder / key[:2] / f"{key}.img"

    def has(self, key: str) -> bool:
        return self.path_of(key).is_file()

    def put(self, key: str, data: bytes, *, seed: int | None, model: str | None, sync_later: bool = False) -> str:
        """Store ``data`` under ``key``; returns the hash of ``data``. ``sync_later``: only when the caller
        writes ``data`` durably elsewhere right away (see the module's notes); ``flush`` waits for it."""
        digest = hash_bytes(data)
        header = json.dumps({"hash": digest, "size": len(data), "seed": seed, "model": model},
                            sort_keys=True, separators=(",", ":"))
        path = self.path_of(key)
        real_dir(path.parent)  # a shard planted as a symlink would take the entry elsewhere
        # The header is written before the image rather than copied onto it.
        atomic_write(path, (header.encode() + b"\n", data), sync=not sync_later)
        if sync_later:
            self._sync_in_background(path)
        return digest

    def flush(self) -> None:
        """Wait until every entry stored with ``sync_later`` is on disk."""
        with self._sync_lock:
            pending = list(self._pending)
        concurrent.futures.wait(pending)

    def _sync_in_background(self, path: Path) -> None:
        with self._sync_lock:
            if self._syncer is None:  # one thread: the flushes queue up behind one another, in order
                self._syncer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="assetbuild-cache-sync")
            future = self._syncer.submit(_sync_entry, path)
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: concurrent.futures.Future[None]) -> None:
        with self._sync_lock:
            self._pending.discard(future)

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


def _sync_entry(path: Path) -> None:
    try:
        sync_file(path)
    except FileNotFoundError:
        pass  # removed meanwhile (gc from another project): nothing left to flush
    except OSError as exc:  # the image itself is in its target; say so rather than fail the build
        log.warning("cache entry %s may not be on disk yet: %s", path, exc.strerror or exc)


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: Path
    size: int
    last_used: float  # mtime: set when written and on every restore
