"""Small file helpers: atomic writes, content hashing with a stat cache, and the safety rules for
assetbuild's own files.

Safety: a cloned repository (or an archive) can contain ``.assetbuild/`` with planted symlinks, e.g.
``.assetbuild/intents.jsonl -> ~/.bashrc``. Every file assetbuild writes, renames or deletes under its
state folder therefore goes through these helpers: a state folder that is a symlink or holds one is
refused (``check_state_dir``), folders assetbuild creates are checked to be real folders
(``real_dir``), files are opened with ``O_NOFOLLOW`` (``open_nofollow``), and renames replace a symlink
itself rather than writing through it. A state folder tracked by git is refused too
(``refuse_tracked_state``).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeGuard, cast

import xxhash

from .errors import StateError

_CHUNK = 1 << 20


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask




def atomic_write(path: Path, data: bytes | Iterable[bytes], *, tmp_dir: Path | None = None, mode: int | None = None,
                 sync: bool = True, ready: Callable[[], object] | None = None,
                 forget: bool = False) -> os.stat_result:
    """Write ``data`` to ``path`` so that readers (and crashes) see the old file or the new, never half.

    The bytes go to a temporary file, are flushed to disk, and the file is renamed over the target; the
    folder is synced so the rename itself survives a power loss. The temporary file is made in
    ``tmp_dir`` when given (assetbuild's state folder, so a killed run leaves no stray file among the
    user's assets), else next to ``path``; it falls back to next to ``path`` when ``tmp_dir`` is on
    another filesystem. ``mode`` defaults to what the umask allows (pass 0o600 for secrets).
    ``sync=False`` skips the flushes, for copies of data that is durable elsewhere: readers still never
    see half a file. (Many files at once: ``stage_file`` + ``sync_filesystem`` + ``link_new``, as ``pull``.)

    The rename replaces a symlink at ``path`` itself (it never writes through one). Returns the stat of
    the file as written (the same inode, size and mtime the renamed file has), so callers can record
    what they verified rather than stat again after another process may have changed it.

    ``data`` may be an iterable of byte strings, written in turn (a big file need not exist whole in
    memory).

    ``ready``, when given, is called once the temporary file is written and before the rename: raising,
    it leaves nothing at ``path`` and no temporary file (another thread can be checking the bytes meanwhile).

    ``forget``: the file's pages leave the page cache once written (``forget_pages``), for images.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if tmp_dir is not None:
        real_dir(tmp_dir)
    tmp, written = _write_temporary(tmp_dir or path.parent, path.name, data, mode, sync=sync, forget=forget)
    try:
        if ready is not None:
            ready()
        try:
            os.replace(tmp, path)
        except OSError as exc:
            if tmp_dir is None or exc.errno != errno.EXDEV:
                raise
            if not isinstance(data, bytes):  # consumed: the temporary file holds it all
                with open(tmp, "rb") as handle:
                    data = handle.read()
            os.unlink(tmp)
            return atomic_write(path, data, mode=mode, sync=sync, forget=forget)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync:
        _sync_dir(path.parent)
    return written


def write_new(path: Path, data: bytes | memoryview, *, tmp_dir: Path, sync: bool = True) -> os.stat_result:
    """Create ``path`` holding ``data``, whole or not at all, and never over anything already there
    (raises ``FileExistsError``: a file, a folder or a symlink that appeared meanwhile stays untouched).

    ``stage_file`` then ``link_new``: the bytes go to a temporary file in ``tmp_dir`` (a real folder, e.g.
    the state folder's ``tmp``), flushed to disk unless ``sync`` is False, which is then hard-linked to
    its name. The caller makes the new name durable by syncing the folder (``sync_dir``, once per folder
    for many files). Returns the stat of the new file.
    """
    tmp, written = stage_file(tmp_dir, path.name, data, sync=sync)
    return link_new(tmp, path, written)


def stage_file(folder: Path, name: str, data: bytes | memoryview, *, sync: bool) -> tuple[str, os.stat_result]:
    """A new temporary file in ``folder`` holding ``data`` (any buffer, written without a copy), with the
    mode a new file gets, flushed to disk when ``sync``; its path and stat. ``link_new`` places it."""
    fd, tmp = _create_temporary(folder, name)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if sync:
                os.fsync(fd)
            return tmp, os.fstat(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_TMP_COUNTER = itertools.count()


def _create_temporary(folder: Path, name: str) -> tuple[int, str]:
    """A new file in ``folder`` named after ``name``, this process and a counter, created with the mode
    any new file gets (0666 minus the umask; mkstemp's 0600 would need a chmod). O_EXCL: never an
    existing file nor a symlink; a name left by a dead process with the same pid is skipped."""
    prefix = f"{folder}{os.sep}.{name[:_TMP_NAME_CHARS]}.{os.getpid()}."
    while True:
        tmp = f"{prefix}{next(_TMP_COUNTER)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_BINARY, 0o666), tmp
        except FileExistsError:
            continue


def link_new(tmp: str, path: Path, written: os.stat_result) -> os.stat_result:
    """Give the temporary file ``tmp`` (whose stat is ``written``) the name ``path``, never over anything
    there: unlike a rename, a hard link fails when the name exists (``FileExistsError``), so no
    check-then-write window lets a user's new file be replaced. Missing folders are created. Where hard
    links are not supported, ``place_new`` reserves the name first; a ``tmp`` on another file system is copied next to
    ``path`` first (flushed). ``tmp`` is gone afterwards in every case. Returns the new file's stat."""
    try:
        try:
            placed = place_new(tmp, path)
        except FileNotFoundError:  # the first file of a folder that does not exist yet
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except FileExistsError:  # a file where a folder should be: not "the target exists"
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(path.parent)) from None
            placed = place_new(tmp, path)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            with open(tmp, "rb") as handle:
                return write_new(path, handle.read(), tmp_dir=path.parent)
        if not placed:
            raise FileExistsError(errno.EEXIST, "File exists", str(path))
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return written


# Errors of os.link that mean "no hard links on this file system" (FAT, some network shares).
_NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS, errno.EACCES)


def place_new(tmp: str, path: Path) -> bool:
    """Give the file ``tmp`` the name ``path`` unless something is there (then False, nothing changed).

    A hard link where the file system has them (``tmp`` stays; the caller removes it); else the name is
    reserved exclusively (O_EXCL) and ``tmp`` renamed over the reservation. Either way no check-then-write
    window lets a file that appeared meanwhile be replaced. Other errors (EXDEV, ENOENT...) are raised."""
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o600))
    except FileExistsError:
        return False
    os.replace(tmp, path)
    return True


def sync_filesystem(folder: Path) -> bool:
    """Flush every file of the file system that holds ``folder`` with one call (Linux ``syncfs``): much
    cheaper than an fsync per file for many new files. False where unsupported (then fsync each file)."""
    syncfs = _syncfs()
    if syncfs is None:
        return False
    fd = os.open(folder, os.O_RDONLY)
    try:
        return bool(syncfs(fd) == 0)
    finally:
        os.close(fd)


def can_sync_filesystem() -> bool:
    """Whether ``sync_filesystem`` is available here (without calling it)."""
    return _syncfs() is not None


_SYNCFS: list[Any] = []


def _syncfs() -> Any:
    if not _SYNCFS:
        found = None
        if sys.platform.startswith("linux"):
            import ctypes

            with contextlib.suppress(OSError, AttributeError):
                found = ctypes.CDLL(None, use_errno=True).syncfs
        _SYNCFS.append(found)
    return _SYNCFS[0]


def sync_dir(folder: Path) -> None:
    """Make the names created in ``folder`` durable (an fsync of the folder; a no-op where unsupported)."""
    _sync_dir(folder)


def write_temporary(folder: Path, name: str, data: bytes, mode: int | None = None, *, sync: bool = True) -> str:
    """A new temporary file in ``folder`` holding ``data``, flushed to disk, with the mode a new file
    would get (or ``mode``); its path. The caller places it (rename or link) or removes it."""
    return _write_temporary(folder, name, data, mode, sync=sync)[0]


# The temporary name holds only the start of the final name: a target of 255 bytes (the file system's
# limit) must still get a temporary name that fits.
_TMP_NAME_CHARS = 24


def _write_temporary(folder: Path, name: str, data: bytes | Iterable[bytes], mode: int | None, *,
                     sync: bool = True, forget: bool = False) -> tuple[str, os.stat_result]:
    fd, tmp = _create_temporary(folder, name)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, bytes):
                handle.write(data)
            else:
                handle.writelines(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
            if forget:
                forget_pages_of(handle.fileno())
        if mode is not None:  # created with the mode any new file gets; a secret asks for less
            os.chmod(tmp, mode)
        written = os.stat(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp, written


def forget_pages(path: Path) -> None:
    """Let the kernel drop ``path``'s pages from its page cache, if they were written out by now (see
    ``_FADVISE`` below); best effort."""
    if _FADVISE is None:
        return
    with contextlib.suppress(OSError):  # gone, or replaced (see open_ours)
        fd = open_ours(path)
        try:
            forget_pages_of(fd)
        finally:
            os.close(fd)


# Written images leave the page cache (Linux's posix_fadvise; elsewhere nothing is done). A build writes
# each image twice (target and cache entry) and rarely reads one back soon: kept cached, a big build
# would push the user's working set out of memory, and each write takes a page the kernel has to
# find free (on this project's virtual machine ~2.4 ms of CPU per MiB, against ~0.3 for a page just
# released: half of a build's CPU per 1 MiB image). Clean pages (synced) are dropped at once; dirty ones
# get their writeback started and are dropped by a later call.
_FADVISE = getattr(os, "posix_fadvise", None)


def forget_pages_of(fd: int) -> None:
    """``forget_pages`` for an open file."""
    if _FADVISE is not None:
        with contextlib.suppress(OSError):
            _FADVISE(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def abandoned_files(folder: Path, pattern: str, older_than: float = 3600.0) -> list[Path]:
    """Regular files in ``folder`` matching ``pattern`` untouched for ``older_than`` seconds: temporary
    files of writers killed mid-write (old enough that no live writer still uses them).

    Symlinks are never listed, nor followed: a planted ``tmp -> ~`` must not make gc delete the user's files.
    """
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return []
    except OSError:
        return []
    cutoff = time.time() - older_than
    found = []
    for path in folder.glob(pattern):
        with contextlib.suppress(OSError):
            if path.parent != folder and os.path.islink(path.parent):
                continue
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                found.append(path)
    return found


# --- never following symlinks in assetbuild's own folders ---------------------------------------------

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # opening a FIFO planted in our folders must not wait for a writer
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_DELETE_IT = "delete it (assetbuild recreates its state); never commit .assetbuild"


def open_ours(path: Path) -> int:
    """A read-only descriptor of a file assetbuild wrote earlier in a folder of its own. OSError when it is
    no longer a plain file of ours: a symlink is not followed, a FIFO not waited on (no writer comes)."""
    return os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC | _O_BINARY)


def open_nofollow(path: Path, flags: int, mode: int = 0o666) -> int:
    """``os.open`` that refuses a symlink at ``path`` (a planted ``intents.jsonl -> ~/.bashrc``)."""
    try:
        return os.open(path, flags | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.EMLINK and _O_NOFOLLOW):  # EMLINK: FreeBSD
            raise StateError(f"{path} is a symlink; assetbuild never writes through one", hint=_DELETE_IT) from None
        raise


def append_durably(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` (created if missing, never through a symlink) and fsync it."""
    fd = open_nofollow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def real_dir(folder: Path) -> Path:
    """Create ``folder`` (and parents) if needed; refuse it when it is a symlink or not a folder."""
    folder.mkdir(parents=True, exist_ok=True)
    st = os.lstat(folder)
    if stat.S_ISLNK(st.st_mode):
        raise StateError(f"{folder} is a symlink; assetbuild never writes through one", hint=_DELETE_IT)
    if not stat.S_ISDIR(st.st_mode):
        raise StateError(f"{folder} is not a folder", hint=_DELETE_IT)
    return folder


def check_state_dir(state: Path) -> None:
    """Refuse a state folder that is a symlink or holds one (at its top or in ``tmp``): assetbuild writes,
    renames and deletes files there, and must never do so outside the project. Cheap: two small listings."""
    try:
        st = os.lstat(state)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise StateError(f"{state} is a symlink; assetbuild keeps its state in a real folder of the project",
                         hint=f"delete the symlink ({state.name}); assetbuild creates the folder again")
    if not stat.S_ISDIR(st.st_mode):
        raise StateError(f"{state} is not a folder", hint=f"delete it ({state.name}); assetbuild creates it again")
    for folder in (state, state / "tmp"):
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if entry.is_symlink():
                raise StateError(f"{entry.path} is a symlink; assetbuild's state folder must not contain any "
                                 "(a repository or archive may have planted it)",
                                 hint=f"delete {state} (assetbuild recreates it); never commit .assetbuild")


def refuse_tracked_state(state: Path) -> None:
    """Refuse a state folder tracked by git: a repository must not be able to ship assetbuild's state."""
    if not state.is_dir() or not _in_a_repository(state.parent):
        return
    import shutil
    import subprocess

    if shutil.which("git") is None:
        return
    try:
        # No fsmonitor: a repository from an archive may carry a .git/config whose fsmonitor runs a command.
        listed = subprocess.run(["git", "-c", "core.fsmonitor=false", "ls-files", "-z", "--", state.name],
                                cwd=state.parent, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return
    if listed.returncode != 0 or not listed.stdout:
        return  # not a git repository, or nothing tracked
    count = listed.stdout.count(b"\0")
    raise StateError(f"{state} is tracked by git ({count} file{'s' if count != 1 else ''}): assetbuild's state "
                     "folder is local to each checkout and is never used from a repository",
                     hint=f"untrack it with `git rm -r --cached {state.name}` and commit (the files stay on disk; "
                          f"or delete the folder if this repository is not yours)")


def _in_a_repository(folder: Path) -> bool:
    """Whether git could find a repository from ``folder``: a ``.git`` (folder or file) or a bare
    repository's layout there or above, on the path as given or on its real path (git walks up the real
    one: a symlink to a folder inside a repository is inside it), or any GIT_* variable set (GIT_DIR,
    GIT_WORK_TREE... may point anywhere). When not, ``git ls-files`` would only fail: a project outside
    git is not made to start a process for it (a few milliseconds of every command). Any doubt asks git."""
    if any(name.startswith("GIT_") for name in os.environ):
        return True
    lexical = os.path.abspath(folder)
    return _repository_above(lexical) or _repository_above(os.path.realpath(lexical))


def _repository_above(here: str) -> bool:
    while True:
        if os.path.lexists(os.path.join(here, ".git")) or (
                os.path.lexists(os.path.join(here, "HEAD")) and os.path.lexists(os.path.join(here, "objects"))):
            return True
        parent = os.path.dirname(here)
        if parent == here:
            return False
        here = parent


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
    their .gitignore (the folder ignores itself). Refuses a state folder that is or holds a symlink."""
    check_state_dir(state)
    real_dir(state)
    marker = state / ".gitignore"
    if not os.path.lexists(marker):
        with contextlib.suppress(FileExistsError):
            fd = open_nofollow(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            with os.fdopen(fd, "wb") as handle:
                handle.write(b"# assetbuild's local state and cache; never committed\n*\n")


def hash_file(path: Path | str) -> str:
    """xxh3-128 of a file's bytes, read in chunks (same digest as ``keys.hash_bytes``)."""
    digest = xxhash.xxh3_128()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class HashCache:
    """File hashes remembered by (size, mtime_ns, inode), like git's index: unchanged files are not re-read.

    Stored in ``.assetbuild/hashes.json`` (local to a checkout; never committed), by absolute path. Saved
    only when it changed, so a no-op build writes nothing. A save keeps the files this process hashed or
    wrote, and the others only while they are this project's and unchanged (one stat each): the entries
    of a deleted or changed file, or of the folder a project was copied or moved from, are dropped, so
    the file does not grow forever. An entry that is not a [size, mtime_ns, inode, hash] (a damaged or
    forged file) is never used.
    """

    def __init__(self, path: Path, *, load: bool = True) -> None:
        """``load`` False: the file is neither read nor saved; the files this run asks about are read
        (for a run that plans a handful of assets, reading those beats parsing 100,000 entries)."""
        self.path = path
        self._entries: dict[str, list[object]] = {}
        self._verified: dict[str, list[int]] = {}  # stamps of files hashed (or written) in this process
        self._dirty = False
        self._loaded = load
        self._lock = threading.Lock()
        if not load:
            return
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self._entries = loaded
        except (OSError, ValueError):
            pass

    def hash(self, path: Path) -> str | None:
        """The hash of ``path``, or None when it does not exist."""
        return self.hash_name(str(path))

    def hash_name(self, name: str) -> str | None:
        """``hash`` of the file named ``name`` (``str`` of its path): a plan asks for 10,000 of them, and a
        Path object for each cost as much as the stat."""
        try:
            st = os.stat(name)
        except FileNotFoundError:
            return None
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        with self._lock:
            entry = self._entries.get(name)
            if _holds(entry, stamp):
                self._verified[name] = stamp
                return cast(str, entry[3])
        digest = hash_file(name)
        self._remember(name, digest, st)
        return digest

    def remember(self, path: Path, digest: str, st: os.stat_result | None = None) -> None:
        """Record the hash of a file we just wrote (saves reading it again)."""
        self._remember(str(path), digest, st or path.stat())

    def _remember(self, name: str, digest: str, st: os.stat_result) -> None:
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        with self._lock:
            self._entries[name] = [*stamp, digest]
            self._verified[name] = stamp
            self._dirty = True

    def verified_stamp(self, path: Path) -> list[int] | None:
        """(size, mtime_ns, inode) of ``path`` when this process last hashed or wrote it; None if it did not.
        A file whose stamp differs now was changed after it was checked."""
        with self._lock:
            return self._verified.get(str(path))

    def verified_stamps(self) -> dict[str, list[int]]:
        """``verified_stamp`` of every file this process hashed or wrote, by ``str(path)`` (a copy)."""
        with self._lock:
            return dict(self._verified)

    def forget(self, path: Path) -> None:
        with self._lock:
            self._verified.pop(str(path), None)
            if self._entries.pop(str(path), None) is not None:
                self._dirty = True

    def save(self) -> None:
        with self._lock:
            if not self._dirty or not self._loaded:  # not read: saving would drop what the file holds
                return
            verified = self._verified
            project = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(self.path))), "")
            items = sorted((name, entry) for name, entry in self._entries.items()
                           if name in verified or (name.startswith(project) and _current(name, entry)))
            self._dirty = False
        data = JsonPieces(as_object=True)
        data.extend(items)
        del items
        make_state_dir(self.path.parent)
        # Not synced: only an accelerator (after a power loss, a stale or empty file costs a re-hash at most;
        # every entry is checked against the file's stamp before it is used).
        atomic_write(self.path, data.whole(), sync=False)


def _current(name: str, entry: object) -> bool:
    """Whether ``entry`` (of ``HashCache``) is still right for the file ``name``: its stamp is the file's."""
    try:
        st = os.stat(name)
    except (OSError, ValueError):
        return False
    return _holds(entry, [st.st_size, st.st_mtime_ns, st.st_ino])


def _holds(entry: object, stamp: list[int]) -> TypeGuard[list[Any]]:
    """Whether ``entry`` (of ``HashCache``, as read: maybe damaged or forged) is a [size, mtime_ns, inode,
    hash] for a file of this ``stamp``."""
    return type(entry) is list and entry[:3] == stamp and len(entry) == 4 and type(entry[3]) is str


def atomic_write_when(path: Path, data: bytes, *, tmp_dir: Path, ready: Callable[[], object]) -> os.stat_result:
    """``atomic_write`` (synced, temporary file in ``tmp_dir``, for an image: its pages are forgotten)
    whose rename waits for ``ready()``.

    The bytes are written and flushed to the temporary file first, then ``ready()`` is called and only
    when it returns is the file renamed into place (and the folder synced). Whatever must be durable
    before the rename (an intent record) can thus be flushed by another thread while this one writes,
    instead of one after the other. ``ready`` raising leaves nothing at ``path`` and no temporary file.
    Returns the stat of the file as written, like ``atomic_write``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    real_dir(tmp_dir)
    tmp, written = _write_temporary(tmp_dir, path.name, data, None, sync=True, forget=True)
    try:
        ready()
        try:
            os.replace(tmp, path)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            os.unlink(tmp)  # tmp_dir is on another file system: write next to the target instead
            return atomic_write(path, data, forget=True)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    sync_dir_shared(path.parent)
    return written


class _FolderSyncs:
    """The fsyncs of one folder: how many were asked for, how many a finished fsync covers."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.asked = 0
        self.covered = 0
        self.running = False


_FOLDER_SYNCS: dict[str, _FolderSyncs] = {}
_FOLDER_SYNCS_LOCK = threading.Lock()


def sync_dir_shared(folder: Path) -> None:
    """``sync_dir(folder)`` shared by the threads that need it at the same moment (group commit).

    An fsync of a folder makes durable every change made in it before the fsync started. So a caller
    waits for an fsync that starts after its call; callers that arrive while one runs wait together and
    the next of them syncs for all. Many images renamed into one folder at once then cost one or two
    folder fsyncs instead of one each, and each caller still returns only once its own rename is durable.
    """
    with _FOLDER_SYNCS_LOCK:
        syncs = _FOLDER_SYNCS.setdefault(str(folder), _FolderSyncs())
    with syncs.changed:
        syncs.asked += 1
        ticket = syncs.asked  # every change of ours was made before this: any fsync starting later covers it
        while syncs.covered < ticket:
            if syncs.running:
                syncs.changed.wait()
                continue
            syncs.running = True
            upto = syncs.asked
            syncs.changed.release()
            try:
                _sync_dir(folder)
            finally:
                syncs.changed.acquire()
                syncs.running = False
                syncs.covered = max(syncs.covered, upto)
                syncs.changed.notify_all()



class JsonPieces:
    """JSON items (list elements, or (name, value) members of an object) encoded a batch at a time as they
    are added, then written in pieces: state files of 100,000 entries are megabytes of text, not worth
    holding whole (or as objects) at the end of a build. The bytes are exactly one ``json.dumps``'s."""

    BATCH = 2000

    def __init__(self, *, as_object: bool) -> None:
        self.as_object = as_object
        self.count = 0
        self._chunks: list[bytes] = []
        self._batch: list[Any] = []

    def add(self, item: Any) -> None:
        self._batch.append(item)
        self.count += 1
        if len(self._batch) >= self.BATCH:
            self._encode()

    def extend(self, items: list[Any]) -> None:
        """``add`` each of ``items`` (one call, not one per item)."""
        self._batch += items
        self.count += len(items)
        if len(self._batch) >= self.BATCH:
            self._encode()

    def _encode(self) -> None:
        batch, self._batch = self._batch, []
        for start in range(0, len(batch), self.BATCH):  # a batch at a time, however many were added at once
            part = batch[start:start + self.BATCH]
            text = _COMPACT.encode(dict(part) if self.as_object else part)
            self._chunks.append(text[1:-1].encode())

    def whole(self) -> Iterator[bytes]:
        """The items as one JSON object or list."""
        self._encode()
        yield b"{" if self.as_object else b"["
        for index, chunk in enumerate(self._chunks):
            yield (b"," if index else b"") + chunk
        yield b"}" if self.as_object else b"]"


def json_document(head: dict[str, Any], members: dict[str, JsonPieces]) -> Iterator[bytes]:
    """The JSON object ``head`` with each key of ``members`` set to its items, in pieces."""
    text = _COMPACT.encode(head)[:-1]
    comma = bool(head)
    for key, pieces in members.items():
        yield f'{text}{"," if comma else ""}{_COMPACT.encode(key)}:'.encode()
        yield from pieces.whole()
        text, comma = "", True
    yield (text + "}").encode()


# ``json.dumps(..., separators=(",", ":"))``, made once (``dumps`` makes an encoder per call).
_COMPACT = json.JSONEncoder(separators=(",", ":"))
