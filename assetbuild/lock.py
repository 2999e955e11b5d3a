"""assets.lock: what was built, from what, with which result.

A JSON file next to the manifest, meant to be committed: sorted keys, two-space indent, one asset per
block, no timestamps, so diffs show exactly which assets changed and how. Each entry holds the asset's
key, the hash of the bytes on disk, the seed and model actually used, and the canonical inputs (for
``assetbuild why``).

The lock is rewritten atomically after each asset finishes (after its image is in place), so a run
killed at any moment keeps every finished asset and never records an image that is not on disk.
Concurrent finishes are grouped: one write covers every entry committed while the previous write ran.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import ManifestError
from .fsutil import atomic_write
from .manifest import STATE_DIR

LOCK_VERSION = 1


@dataclass(frozen=True)
class LockEntry:
    key: str
    hash: str  # xxh3-128 of the file's bytes
    seed: int | None
    model: str | None
    inputs: dict[str, Any]  # the canonical form the key was computed from

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LockEntry:
        return cls(
            key=str(data["key"]),
            hash=str(data["hash"]),
            seed=data.get("seed"),
            model=data.get("model"),
            inputs=dict(data.get("inputs") or {}),
        )


class Lock:
    """The lock file in memory, with per-asset atomic commits. Safe to use from several threads."""

    def __init__(self, path: Path, entries: dict[str, LockEntry] | None = None, *,
                 tmp_dir: Path | None = None) -> None:
        self.path = path
        # Each rewrite's temporary file goes to the state folder next to the lock (.assetbuild/tmp), so a
        # run killed mid-write leaves no stray file beside assets.lock.
        self.tmp_dir = tmp_dir if tmp_dir is not None else path.parent / STATE_DIR / "tmp"
        self._entries: dict[str, LockEntry] = dict(entries or {})
        self._state = threading.Lock()
        self._writer = threading.Lock()
        self._generation = 0
        self._written = 0

    @classmethod
    def load(cls, path: Path, *, tmp_dir: Path | None = None) -> Lock:
        """Read ``path``; a missing file is an empty lock. A corrupt one is a ManifestError (exit 2)."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path, tmp_dir=tmp_dir)
        try:
            data = json.loads(text)
            entries = {t: LockEntry.from_json(e) for t, e in data.get("assets", {}).items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ManifestError(str(path), f"the lock file is not valid ({exc})",
                                hint="restore it from git (e.g. `git checkout -- assets.lock`) or delete it "
                                     "to rebuild everything") from None
        return cls(path, entries, tmp_dir=tmp_dir)

    def get(self, target: str) -> LockEntry | None:
        with self._state:
            return self._entries.get(target)

    def targets(self) -> list[str]:
        with self._state:
            return sorted(self._entries)

    def entries(self) -> dict[str, LockEntry]:
        """A snapshot of every entry, by target."""
        with self._state:
            return dict(self._entries)

    def commit(self, target: str, entry: LockEntry | None) -> None:
        """Record (or with None, remove) one entry and write the file before returning."""
        with self._state:
            if entry is None:
                if self._entries.pop(target, None) is None:
                    return
            else:
                if self._entries.get(target) == entry:
                    return
                self._entries[target] = entry
            self._generation += 1
            mine = self._generation
        with self._writer:
            if self._written >= mine:  # another thread's write already included our entry
                return
            with self._state:
                snapshot = dict(self._entries)
                generation = self._generation
            atomic_write(self.path, render(snapshot), tmp_dir=self.tmp_dir)
            self._written = generation


def render(entries: dict[str, LockEntry]) -> bytes:
    """The file's bytes: deterministic for the same entries."""
    body = {
        "version": LOCK_VERSION,
        "assets": {target: entries[target].to_json() for target in sorted(entries)},
    }
    return (json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
