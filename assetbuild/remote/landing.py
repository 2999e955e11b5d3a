"""Landing many verified files at their targets fast, each with the guarantees of an atomic write.

``pull`` restores thousands of images. An fsync per file (what ``atomic_write`` does) costs more than
the download itself on an ordinary disk: each waits for its own journal commit. Instead:

1. ``stage`` (on the transfer threads): the bytes go to a temporary file in the state folder's ``tmp``,
   not flushed yet (starting each file's writeback at once with ``sync_file_range`` was measured: more
   CPU for the many small writes than the one flush per batch saves);
2. ``add`` (on one thread): staged files gather into a batch of at most ``BATCH_FILES`` files or
   ``BATCH_BYTES`` bytes;
3. a landing thread takes the full batches from a queue (the transfers go on meanwhile: ``add`` waits
   only when ``QUEUED_BATCHES`` batches are queued, so a slow flush never stalls them): one ``syncfs``
   makes them durable (the batches that queued up during a slow one are flushed together), then each
   file is hard-linked to its target name, which fails when anything is there (a file that appeared
   meanwhile stays: it is the user's);
4. ``finish``: each folder that received files is synced once, so the new names are durable too.

A crash leaves every target absent or whole, since a name is only ever given to flushed bytes; the
temporary files it may leave are in the state folder's ``tmp``, which ``gc`` clears. Where ``syncfs`` is
missing, each file is flushed as it is staged (step 3 then only links). A batch holds names, never
bytes, and at most ``QUEUED_BATCHES`` + 1 batches wait: memory does not grow with the number of files.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from ..fsutil import can_sync_filesystem, link_new, stage_file, sync_dir, sync_filesystem

BATCH_FILES = 256
BATCH_BYTES = 64 << 20
QUEUED_BATCHES = 4

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
    def __init__(self, tmp_dir: Path, *, batch_files: int = BATCH_FILES, batch_bytes: int = BATCH_BYTES,
                 queued_batches: int = QUEUED_BATCHES) -> None:
        self.tmp_dir = tmp_dir
        self.batch_files = batch_files
        self.batch_bytes = batch_bytes
        self._batch: list[Staged[P]] = []
        self._batch_size = 0
        self._folders: set[Path] = set()  # folders that received files (written by the landing thread)
        self._lander: threading.Thread | None = None
        self._batches: queue.Queue[list[Staged[P]] | None] = queue.Queue(maxsize=queued_batches)
        self._placed: queue.SimpleQueue[list[Landed[P]] | BaseException] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._unplaced: set[str] = set()  # temporary files staged and not yet placed
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
            self._send()
        return self._done()

    def _send(self) -> None:
        """Hand the batch to the landing thread; waits only when ``QUEUED_BATCHES`` are queued already."""
        if not self._batch:
            return
        if self._lander is None:
            self._lander = threading.Thread(target=self._run, name="assetbuild-landing", daemon=True)
            self._lander.start()
        batch, self._batch, self._batch_size = self._batch, [], 0
        # Interrupted while waiting here, the batch is not placed: ``finish`` removes its temporary files.
        self._batches.put(batch)

    def _done(self) -> list[Landed[P]]:
        """What the landing thread placed so far (without waiting). A bug there is raised here."""
        landed: list[Landed[P]] = []
        while True:
            try:
                placed = self._placed.get_nowait()
            except queue.Empty:
                return landed
            if isinstance(placed, BaseException):
                raise placed
            landed += placed

    def _run(self) -> None:
        """The landing thread: every batch queued, in order, until ``finish`` sends None."""
        last = False
        while not last:
            batch = self._batches.get()
            if batch is None:
                return
            while True:  # batches queued during a slow flush: flushed together, with one syncfs
                try:
                    more = self._batches.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    last = True
                    break
                batch = batch + more
            try:
                self._placed.put(self._land(batch))
            except BaseException as exc:  # a bug: reported on the caller's thread
                self._placed.put(exc)

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
        self._send()
        if self._lander is not None:
            self._batches.put(None)
            self._lander.join()
            self._lander = None
        try:
            return self._done()
        finally:
            for folder in self._folders:
                sync_dir(folder)
            self._folders.clear()
            with self._lock:  # staged but never added (the run was interrupted): nobody will place them
                leftovers, self._unplaced = self._unplaced, set()
            for tmp in leftovers:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
