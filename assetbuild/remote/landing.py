"""Landing many verified files at their targets fast, each with the guarantees of an atomic write.

``pull`` restores thousands of images. An fsync per file (what ``atomic_write`` does) costs more than
the download itself on an ordinary disk: each waits for its own journal commit. Instead:

1. ``stage`` (on the transfer threads): the bytes go to a temporary file in the state folder's ``tmp``,
   not flushed yet;
2. ``add`` (on one thread): staged files gather into a batch of at most ``BATCH_FILES`` files or
   ``BATCH_BYTES`` bytes;
3. a landing thread takes each full batch (while the next one fills, so transfers never wait for a
   sync): one ``syncfs`` makes the whole batch durable, then each file is hard-linked to its target
   name, which fails when anything is there (a file that appeared meanwhile stays: it is the user's);
4. ``finish``: each folder that received files is synced once, so the new names are durable too.

A crash leaves every target absent or whole, since a name is only ever given to flushed bytes; the
temporary files it may leave are in the state folder's ``tmp``, which ``gc`` clears. Where ``syncfs`` is
missing, each file is flushed as it is staged (step 3 then only links). A batch holds names, never
bytes: memory does not grow with the number of files.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from ..fsutil import can_sync_filesystem, link_new, stage_file, sync_dir, sync_filesystem

BATCH_FILES = 256
BATCH_BYTES = 64 << 20

P = TypeVar("P")


@dataclass(frozen=True)
class Staged(Generic[P]):
    tmp: str
    path: Path
    written: os.stat_result
    payload: P  # the caller's, handed back with the outcome


@dataclass(frozen=True)
class Landed(Generic[P]):
    path: Path
    payload: P
    written: os.stat_result | None  # the placed file's stat; None when it was not placed
    problem: str | None  # why it was not placed


class Landing(Generic[P]):
    def __init__(self, tmp_dir: Path, *, batch_files: int = BATCH_FILES, batch_bytes: int = BATCH_BYTES) -> None:
        self.tmp_dir = tmp_dir
        self.batch_files = batch_files
        self.batch_bytes = batch_bytes
        self._batch: list[Staged[P]] = []
        self._batch_size = 0
        self._folders: set[Path] = set()  # folders that received files (written by the landing thread)
        self._lander: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._unplaced: set[str] = set()  # temporary files staged and not yet placed
        self._pending: Future[list[Landed[P]]] | None = None
        # Without syncfs (not Linux) every staged file is flushed on its own; if a syncfs call fails, that
        # batch's files are flushed one by one before they get their names (``_place``).
        self._flush_each = not can_sync_filesystem()

    def stage(self, path: Path, data: bytes | memoryview, payload: P) -> Staged[P]:
        """Write ``data`` to a temporary file for ``path`` (thread-safe). Raises OSError (disk full...)."""
        tmp, written = stage_file(self.tmp_dir, path.name, data, sync=self._flush_each)
        with self._lock:
            self._unplaced.add(tmp)
        return Staged(tmp, path, written, payload)

    def add(self, staged: Staged[P]) -> list[Landed[P]]:
        """Queue ``staged`` for placement; returns the files placed meanwhile (a batch at a time)."""
        self._batch.append(staged)
        self._batch_size += staged.written.st_size
        if len(self._batch) >= self.batch_files or self._batch_size >= self.batch_bytes:
            return self._send()
        return []

    def _send(self) -> list[Landed[P]]:
        """Hand the batch to the landing thread (after the previous one is done: at most one batch is
        being placed while the next fills), so the transfers never wait for a sync."""
        done = self._collect()
        batch, self._batch, self._batch_size = self._batch, [], 0
        if batch:
            if self._lander is None:
                self._lander = ThreadPoolExecutor(max_workers=1, thread_name_prefix="assetbuild-landing")
            self._pending = self._lander.submit(self._land, batch)
        return done

    def _collect(self) -> list[Landed[P]]:
        pending, self._pending = self._pending, None
        return [] if pending is None else pending.result()

    def _land(self, batch: list[Staged[P]]) -> list[Landed[P]]:
        """Make the batch durable, then give each file its name (never over anything there)."""
        flushed = self._flush_each or sync_filesystem(self.tmp_dir)
        return [self._place(staged, flushed) for staged in batch]

    def _place(self, staged: Staged[P], flushed: bool) -> Landed[P]:
        with self._lock:
            self._unplaced.discard(staged.tmp)
        try:
            if not flushed:  # syncfs failed: flush this file on its own before it gets a name
                fd = os.open(staged.tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            written = link_new(staged.tmp, staged.path, staged.written)
        except FileExistsError:
            return Landed(staged.path, staged.payload, None, f"{staged.path} appeared meanwhile; not overwriting it")
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(staged.tmp)
            return Landed(staged.path, staged.payload, None, f"{exc.strerror or exc} ({exc.filename or staged.path})")
        self._folders.add(staged.path.parent)
        return Landed(staged.path, staged.payload, written, None)

    def finish(self) -> list[Landed[P]]:
        """Place what is left, then make the new names durable (one sync per folder)."""
        landed = self._send()
        landed += self._collect()
        if self._lander is not None:
            self._lander.shutdown()
            self._lander = None
        for folder in self._folders:
            sync_dir(folder)
        self._folders.clear()
        with self._lock:  # staged but never added (the run was interrupted): nobody will place them
            leftovers, self._unplaced = self._unplaced, set()
        for tmp in leftovers:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return landed
