"""Small file helpers: atomic writes and content hashing with a stat cache."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import xxhash

_CHUNK = 1 << 20


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


# Files are created like any tool creates them (0666 minus the umask); mkstemp alone would make them 0600.
_FILE_MODE = _umask_mode()


def atomic_write(path: Path, data: bytes, *, tmp_dir: Path | None = None, mode: int | None = None,
                 sync: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers (and crashes) see the old file or the new, never half.

    The bytes go to a temporary file, are flushed to disk, and the file is renamed over the target; the
    folder is synced so the rename itself survives a power loss. The temporary file is made in
    ``tmp_dir`` when given (assetbuild's state folder, so a killed run leaves no stray file among the
    user's assets), else next to ``path``; it falls back to next to ``path`` when ``tmp_dir`` is on
    another filesystem. ``mode`` defaults to what the umask allows (pass 0o600 for secrets).
    ``sync=False`` skips the flushes, for copies of data that is durable elsewhere (``pull``, which syncs
    once at the end): readers still never see half a file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if tmp_dir is not None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = write_temporary(tmp_dir or path.parent, path.name, data, mode, sync=sync)
    try:
        try:
            os.replace(tmp, path)
        except OSError as exc:
            if tmp_dir is None or exc.errno != errno.EXDEV:
                raise
            os.unlink(tmp)
            atomic_write(path, data, mode=mode, sync=sync)
            return
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync:
        _sync_dir(path.parent)


def write_temporary(folder: Path, name: str, data: bytes, mode: int | None = None, *, sync: bool = True) -> str:
    """A new temporary file in ``folder`` holding ``data``, flushed to disk, with the mode a new file
    would get (or ``mode``); its path. The caller places it (rename or link) or removes it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.chmod(tmp, _FILE_MODE if mode is None else mode)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def abandoned_files(folder: Path, pattern: str, older_than: float = 3600.0) -> list[Path]:
    """Files in ``folder`` matching ``pattern`` untouched for ``older_than`` seconds: temporary files of
    writers killed mid-write (old enough that no live writer still uses them)."""
    if not folder.is_dir():
        return []
    cutoff = time.time() - older_than
    found = []
    for path in folder.glob(pattern):
        with contextlib.suppress(FileNotFoundError):
            if path.is_file() and path.stat().st_mtime < cutoff:
                found.append(path)
    return found


def _sync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened; rename is durable enough there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def make_state_dir(state: Path) -> None:
    """Create assetbuild's local state folder, keeping it out of git without asking the user to edit
    their .gitignore (the folder ignores itself)."""
    state.mkdir(parents=True, exist_ok=True)
    marker = state / ".gitignore"
    if not marker.exists():
        marker.write_text("# assetbuild's local state and cache; never committed\n*\n", encoding="utf-8")


def hash_file(path: Path) -> str:
    """xxh3-128 of a file's bytes, read in chunks (same digest as ``keys.hash_bytes``)."""
    digest = xxhash.xxh3_128()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class HashCache:
    """File hashes remembered by (size, mtime_ns, inode), like git's index: unchanged files are not re-read.

    Stored in ``.assetbuild/hashes.json`` (local to a checkout; never committed). Saved only when it
    changed, so a no-op build writes nothing.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, list[object]] = {}
        self._dirty = False
        self._lock = threading.Lock()
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self._entries = loaded
        except (OSError, ValueError):
            pass

    def hash(self, path: Path) -> str | None:
        """The hash of ``path``, or None when it does not exist."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        name = str(path)
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        with self._lock:
            entry = self._entries.get(name)
        if entry is not None and entry[:3] == stamp:
            return str(entry[3])
        digest = hash_file(path)
        self.remember(path, digest, st)
        return digest

    def remember(self, path: Path, digest: str, st: os.stat_result | None = None) -> None:
        """Record the hash of a file we just wrote (saves reading it again)."""
        st = st or path.stat()
        with self._lock:
            self._entries[str(path)] = [st.st_size, st.st_mtime_ns, st.st_ino, digest]
            self._dirty = True

    def forget(self, path: Path) -> None:
        with self._lock:
            if self._entries.pop(str(path), None) is not None:
                self._dirty = True

    def save(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            data = json.dumps(self._entries, separators=(",", ":"), sort_keys=True).encode()
            self._dirty = False
        make_state_dir(self.path.parent)
        atomic_write(self.path, data)
