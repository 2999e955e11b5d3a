"""Images about to be placed at targets, recorded durably before the rename.

A run killed after renaming an image into place but before committing its lock entry leaves bytes
that assetbuild wrote but the lock does not know. If the manifest changed meanwhile, the cache cannot
vouch for them either (they belong to the old key), and the file would look hand-made: refused
forever without --force. So before each rename the builder appends ``{target, hash}`` to
``.assetbuild/intents.jsonl`` (fsynced); the planner treats a file whose hash is recorded there as
assetbuild's own. At the end of a run, intents that the lock now covers are dropped.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from pathlib import Path

from .lock import Lock


class Intents:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._known: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        try:
            lines = path.read_bytes().splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            try:
                record = json.loads(line)
                self._known.setdefault(str(record["t"]), set()).add(str(record["h"]))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a kill: that rename never happened

    def ours(self, target: str, digest: str) -> bool:
        with self._lock:
            return digest in self._known.get(target, ())

    def record(self, target: str, digest: str) -> None:
        """Durably note that ``digest`` is about to be placed at ``target``."""
        from .fsutil import append_durably, make_state_dir

        with self._lock:
            make_state_dir(self.path.parent)
            append_durably(self.path, json.dumps({"t": target, "h": digest}).encode() + b"\n")
            self._known.setdefault(target, set()).add(digest)

    def prune(self, lock: Lock, on_disk: Callable[[str], str | None]) -> None:
        """Keep only intents still needed: bytes at their target that the lock does not record.

        Call after the lock is flushed. ``on_disk`` gives the hash of a target's file now.
        """
        with self._lock:
            entries = lock.entries()
            left: dict[str, set[str]] = {}
            for target, hashes in self._known.items():
                entry = entries.get(target)
                current = on_disk(target)
                left[target] = {h for h in hashes if h == current and (entry is None or entry.hash != h)}
            self._known = {t: hashes for t, hashes in left.items() if hashes}
            if not self._known:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                return
            lines = [json.dumps({"t": t, "h": h}) for t in sorted(self._known) for h in sorted(self._known[t])]
        from .fsutil import atomic_write

        atomic_write(self.path, ("\n".join(lines) + "\n").encode(), tmp_dir=self.path.parent / "tmp")
