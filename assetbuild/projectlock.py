"""One writer per project at a time: an inter-process lock in the state folder.

Two builds at once both rewrite assets.lock, and whoever writes last wins (entries of the other's images
are lost). Every command that writes (``run``, ``clean``, ``gc``; later ``pull``, ``pick``, ``watch``)
holds this lock for its whole run; read-only commands (``status``, ``why``, ``list``) do not take it.

It is an OS file lock (``flock``) on ``.assetbuild/project.lock``: released by the kernel when the
holder exits or is killed, so a lock left by a killed process is simply taken over. The holder writes
its pid and command into the file, so a waiting process can say whom it waits for.

    with projectlock.workspace(args, writes=not args.dry_run) as ws:   # in a command's main(); the
        ...                                                              # option: commands._args.add_no_wait
    with projectlock.hold(project.state_dir, "pull", wait=True):         # or directly
        ...
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BusyError
from .fsutil import make_state_dir, open_nofollow

if TYPE_CHECKING:
    from .noop import Partial
    from .workspace import Workspace

LOCK_NAME = "project.lock"


def _notify_stderr(message: str) -> None:
    print(f"assetbuild: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def hold(state_dir: Path, command: str, *, wait: bool = True,
         notify: Callable[[str], None] = _notify_stderr) -> Iterator[None]:
    """Hold the project's lock while the block runs.

    When another process holds it: with ``wait``, say so through ``notify`` (naming its pid) and wait;
    without, raise ``BusyError`` (exit code 1) at once.
    """
    make_state_dir(state_dir)  # refuses a planted symlink before the lock file is opened
    fd = open_nofollow(state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        if not _try_lock(fd):
            holder = _holder(fd)
            if not wait:
                raise BusyError(f"{holder} is working in this project; not waiting (--no-wait)",
                                hint="run again when it has finished, or without --no-wait to wait for it")
            notify(f"waiting for {holder} in this project…")
            _lock(fd)
        _write_holder(fd, command)
        yield
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    """Who holds the lock, as written by the holder ("assetbuild (pid N, run)")."""
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() if hasattr(os, "pread") else ""
        pid, _, command = text.partition(" ")
        if pid.isdigit():
            return f"assetbuild (pid {int(pid)}{', ' + command if command.isidentifier() else ''})"
    return "another assetbuild"


def _write_holder(fd: int, command: str) -> None:
    with contextlib.suppress(OSError):
        data = f"{os.getpid()} {command}\n".encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0) if hasattr(os, "pwrite") else os.write(fd, data)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows CI only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _lock(fd: int) -> None:
        while not _try_lock(fd):
            import time

            time.sleep(0.2)  # msvcrt has no blocking lock without a timeout
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)


# --- for commands ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def workspace(args: argparse.Namespace, *, writes: bool, force: bool = False,
              partial: Partial | None = None) -> Iterator[Workspace]:
    """The command's workspace. The manifest is checked first (a bad one stops before anything is
    written); a command that ``writes`` then holds the project lock and reads the lock file under it.
    Read-only ones (status, why, a --dry-run) never wait.

    ``partial`` (``run``): load only the asset tables the no-op memo could not prove fresh; whenever that
    is not safe (see ``Partial.accepts``; the lock changed before it was held), the whole manifest is."""
    from .errors import ManifestError
    from .workspace import load_project, workspace_of

    project = None
    if partial is not None:
        try:
            project = load_project(args.file, server=args.server, partial=partial)
        except ManifestError:
            project = None  # the whole file is read below, and words the problem as it always does
        if project is not None and not partial.accepts(project):
            project = None
    if project is None:
        partial = None
        project = load_project(args.file, server=args.server)
    if not writes:
        yield workspace_of(project, force=force, partial=partial)
        return
    with hold(project.state_dir, args.command, wait=not getattr(args, "no_wait", False)):
        if partial is not None and not partial.lock_unchanged(project.root):
            partial, project = None, load_project(args.file, server=args.server)
        yield workspace_of(project, force=force, partial=partial)
