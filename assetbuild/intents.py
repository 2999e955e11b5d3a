"""Images about to be placed at targets, recorded durably before the rename.

A run killed after renaming an image into place but before committing its lock entry leaves bytes
that assetbuild wrote but the lock does not know. If the manifest changed meanwhile, the cache cannot
vouch for them either (they belong to the old key), and the file would look hand-made: refused
forever without --force. So before each rename the builder appends ``{target, hash}`` to
``.assetbuild/intents.jsonl`` (fsynced); the planner treats a file whose hash is recorded there as
assetbuild's own. At the end of a run, intents that the lock now covers are dropped.

An intent also names the key, seed and model the bytes were made for. A build does not fsync its cache
entries one by one (they are flushed at the end of the run), so after a power loss between the rename and
the lock commit the cache may have lost the entry: the intent then still proves the file is the image
made for that key, and the next run records it (and puts it back into the cache) instead of generating
it again over a generated image.

Records made at the same time share one append and one fsync (group commit): while one batch is being
flushed, the records that arrive wait together and the next of them flushes them all. Each ``record``
still returns only once its own line is on disk.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from .lock import Lock

_HEX128 = re.compile(r"[0-9a-f]{32}")


class Announced(NamedTuple):
    """What an intent says its bytes were made for (None where it does not say: older intents)."""

    key: str | None = None
    seed: int | None = None
    model: str | None = None


class _Batch:
    """Lines waiting to be appended together, and how their flush ended."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.done = False
        self.error: BaseException | None = None


class Intents:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._known: dict[str, dict[str, Announced]] = {}
        self._lock = threading.Lock()
        self._flushed = threading.Condition(self._lock)
        self._open = _Batch()  # where new records go
        self._writing = False  # a batch is being appended (outside the lock)
        self._folder_checked = False  # the state folder is checked once, before the first append
        self._cut = False  # an append failed: its last line may be cut, the next append starts a new line
        try:
            lines = path.read_bytes().splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            try:
                record = json.loads(line)
                self._known.setdefault(str(record["t"]), {})[str(record["h"])] = _made(record)
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a line cut by a kill: that rename never happened

    def ours(self, target: str, digest: str) -> bool:
        with self._lock:
            return digest in self._known.get(target, {})

    def made_for(self, target: str, digest: str, key: str) -> Announced | None:
        """What the intent for ``digest`` at ``target`` says, when it was made for ``key``; else None."""
        made = self.announced(target, digest)
        return made if made is not None and made.key == key else None

    def announced(self, target: str, digest: str) -> Announced | None:
        """What the intent for ``digest`` at ``target`` says (None: no such intent)."""
        with self._lock:
            return self._known.get(target, {}).get(digest)

    def record(self, target: str, digest: str, made: Announced | None = None) -> None:
        """Durably note that ``digest`` (made for ``made``) is about to be placed at ``target``.

        Returns once the line is fsynced; records made meanwhile by other threads share that flush."""
        made = made if made is not None else Announced()
        line = json.dumps(_line(target, digest, made)).encode() + b"\n"
        with self._flushed:
            batch = self._open
            batch.lines.append(line)
            while not batch.done:
                if self._writing:  # another thread is flushing an earlier batch: ours goes next
                    self._flushed.wait()
                    continue
                self._flush_open_batch()
            if batch.error is not None:
                raise batch.error
            self._known.setdefault(target, {})[digest] = made

    def _flush_open_batch(self) -> None:
        """Append and fsync the open batch, without holding the lock meanwhile (called with it held)."""
        from .fsutil import append_durably, make_state_dir

        batch, self._open = self._open, _Batch()
        self._writing = True
        self._lock.release()
        try:
            data = (b"\n" if self._cut else b"") + b"".join(batch.lines)
            if not self._folder_checked:  # checked (symlinks refused) and created once, not per record
                make_state_dir(self.path.parent)
                self._folder_checked = True
            try:
                append_durably(self.path, data)
            except FileNotFoundError:  # the state folder was deleted during the run: create it again
                make_state_dir(self.path.parent)
                append_durably(self.path, data)
            self._cut = False
        except BaseException as exc:
            self._cut = True
            batch.error = exc
        finally:
            self._lock.acquire()
            self._writing = False
            batch.done = True
            self._flushed.notify_all()

    def covered(self, target: str, digest: str) -> None:
        """The lock now records ``digest`` at ``target``: the intent is no longer needed in memory (the
        file keeps it until ``prune``; a build of 100,000 assets must not hold 100,000 of them)."""
        with self._lock:
            hashes = self._known.get(target)
            if hashes is not None:
                hashes.pop(digest, None)
                if not hashes:
                    del self._known[target]

    def prune(self, lock: Lock, on_disk: Callable[[str], str | None]) -> None:
        """Keep only intents still needed: bytes at their target that the lock does not record.

        Call after the lock is flushed. ``on_disk`` gives the hash of a target's file now.
        """
        with self._lock:
            left: dict[str, dict[str, Announced]] = {}
            for target, hashes in self._known.items():
                entry = lock.get(target)  # one entry each, not a snapshot of all (a lazy lock parses on use)
                current = on_disk(target)
                left[target] = {h: made for h, made in hashes.items()
                                if h == current and (entry is None or entry.hash != h)}
            self._known = {t: hashes for t, hashes in left.items() if hashes}
            if not self._known:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                return
            lines = [json.dumps(_line(t, h, self._known[t][h])) for t in sorted(self._known)
                     for h in sorted(self._known[t])]
        from .fsutil import atomic_write

        atomic_write(self.path, ("\n".join(lines) + "\n").encode(), tmp_dir=self.path.parent / "tmp")


def _line(target: str, digest: str, made: Announced) -> dict[str, Any]:
    record: dict[str, Any] = {"t": target, "h": digest}
    if made.key is not None:
        record.update(k=made.key, s=made.seed, m=made.model)
    return record


def _made(record: dict[str, Any]) -> Announced:
    """The key, seed and model of a record, each only when well formed (the file is local state, but a
    damaged value must never reach the lock: a key names a cache file)."""
    key, seed, model = record.get("k"), record.get("s"), record.get("m")
    if not (isinstance(key, str) and _HEX128.fullmatch(key)):
        return Announced()
    return Announced(key, seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
                model if isinstance(model, str) else None)
