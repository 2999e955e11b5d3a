"""assets.lock: what was built, from what, with which result.

A JSON file next to the manifest, meant to be committed: sorted keys, two-space indent, one asset per
block, no timestamps, so diffs show exactly which assets changed and how. Each entry holds the asset's
key, the hash of the bytes on disk, the seed and model actually used, the canonical inputs (for
``assetbuild why``) and, when the server told, the hashes of the model files that made it.

The lock is rewritten atomically after each asset finishes (after its image is in place), so a run
killed at any moment keeps every finished asset and never records an image that is not on disk.
Concurrent finishes are grouped: one write covers every entry committed while the previous write ran.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import xxhash

from .errors import ManifestError
from .fsutil import atomic_write, make_state_dir, open_nofollow
from .keys import hash_bytes
from .layout import STATE_DIR

LOCK_VERSION = 1
_HEX128 = re.compile(r"[0-9a-f]{32}")  # an xxh3-128 digest: every key and file hash
REWRITE_ALWAYS_BYTES = 64 * 1024  # a lock smaller than this (~100 assets) is rewritten on every commit
COMPACT_RATIO = 0.5  # a big lock is rewritten once its journal holds this share of the file's size


@dataclass(frozen=True)
class LockEntry:
    key: str
    hash: str  # xxh3-128 of the file's bytes
    seed: int | None
    model: str | None
    inputs: dict[str, Any]  # the canonical form the key was computed from
    # The server's hash of each model that made the image ("model:NAME", "lora:NAME", "vae:NAME" -> hash),
    # as far as the server said. Written only when known, so locks from before it are read and written
    # back unchanged (a missing hash is "unknown", never a reason to rebuild).
    model_hashes: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.model_hashes:
            del data["model_hashes"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LockEntry:
        """An entry from its JSON; ``TypeError``/``KeyError`` for a malformed one (the caller says where)."""
        if not isinstance(data, dict):
            raise TypeError(f"an entry must be an object, not {type(data).__name__}")
        key, digest, seed, model = data["key"], data["hash"], data.get("seed"), data.get("model")
        inputs = data.get("inputs") or {}
        if not isinstance(key, str) or not isinstance(digest, str):
            raise TypeError("`key` and `hash` must be strings")
        if not _HEX128.fullmatch(key) or not _HEX128.fullmatch(digest):
            # A key names a cache file and a store object: anything but 32 hex digits could reach
            # outside the cache (`../../x`), so a cloned lock cannot steer a read or a delete there.
            raise TypeError("`key` and `hash` must be 32 hexadecimal digits")
        if not (seed is None or (isinstance(seed, int) and not isinstance(seed, bool))):
            raise TypeError("`seed` must be a whole number")
        if not (model is None or isinstance(model, str)):
            raise TypeError("`model` must be a string")
        if not isinstance(inputs, dict) or not all(isinstance(inputs.get(part, {}), dict)
                                                   for part in ("params", "inputs", "post")):
            raise TypeError("`inputs` and its `params`, `inputs` and `post` must be objects")
        hashes = data.get("model_hashes") or {}
        return cls(key=key, hash=digest, seed=seed, model=model, inputs=dict(inputs),
                   model_hashes={str(k): str(v) for k, v in hashes.items()} if isinstance(hashes, dict) else {})


class Lock:
    """The lock file in memory, with per-asset durable commits. Safe to use from several threads.

    A commit rewrites the file atomically. But a rewrite costs O(N), so for a big lock that would be
    O(N^2) per build (minutes at 10,000 assets): once the file is larger than ``REWRITE_ALWAYS_BYTES``,
    each commit instead appends one fsynced line to a journal (``.assetbuild/lock.journal``: durable at
    once), and the file is rewritten when the journal has grown to ``COMPACT_RATIO`` of the file's size,
    and on ``flush()`` (the end of every run). Rewrites are thus spaced by a share of the lock's size, so
    a build's total lock I/O grows linearly with the number of assets (a rewrite every half second
    made it quadratic: 59 MB per rewrite at 100,000 assets). ``load`` folds a journal left by a killed run into
    the entries, but only if the journal was started from the very lock file it finds (the journal's
    header holds that file's hash), so a journal from before a branch switch is ignored.
    """

    def __init__(self, path: Path, entries: dict[str, LockEntry] | None = None, *,
                 tmp_dir: Path | None = None) -> None:
        self.path = path
        state = path.parent / STATE_DIR
        # Each rewrite's temporary file goes to the state folder next to the lock (.assetbuild/tmp), so a
        # run killed mid-write leaves no stray file beside assets.lock.
        self.tmp_dir = tmp_dir if tmp_dir is not None else state / "tmp"
        self.journal_path = state / "lock.journal"
        self._entries: dict[str, LockEntry] = dict(entries or {})
        # Rendered text per target with the entry it renders (a stale one is never used), so the rewrites of
        # a long build do not render every entry again.
        self._chunks: dict[str, tuple[LockEntry, str]] = {}
        self._pending: dict[str, None] = {}  # targets changed since the last write (file or journal), in order
        self._state = threading.Lock()
        self._writer = threading.Lock()
        self._base = ""  # hash of the file as it is on disk ("" when there is none)
        self._journal_started = False  # this Lock has written the journal's header since its last rewrite
        self._dirty = False
        self._changes = 0  # how many changes were made in memory (under _state)
        self._written = 0  # how many of them are durable, in the file or its journal (set by the writer)
        self._file_bytes = 0  # size of the file as last written
        self._journal_bytes = 0  # size of the journal since that rewrite
        self._alternatives: dict[str, list[LockEntry]] = {}  # both sides of a merge conflict, per target
        self.merged = False  # read from a merge conflict (both sides): rewritten clean by the next flush

    @classmethod
    def load(cls, path: Path, *, tmp_dir: Path | None = None) -> Lock:
        """Read ``path`` (and a killed run's journal); a missing file is an empty lock.

        A corrupt lock file is a ManifestError (exit 2); a damaged journal line ends the journal there.
        """
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raw = None
        entries: dict[str, LockEntry] = {}
        alternatives: dict[str, list[LockEntry]] | None = None
        if raw is not None:
            entries, alternatives = _parse(path, raw)
        lock = cls(path, entries, tmp_dir=tmp_dir)
        if alternatives is not None:  # both sides of a merge were kept: the next flush writes clean JSON
            lock._alternatives = alternatives
            lock._dirty = True
            lock.merged = True
        lock._base = hash_bytes(raw) if raw is not None else ""
        lock._file_bytes = len(raw) if raw is not None else 0
        lock._replay_journal()
        return lock

    def _replay_journal(self) -> None:
        try:
            lines = self.journal_path.read_bytes().splitlines()
        except FileNotFoundError:
            return
        try:
            header = json.loads(lines[0]) if lines else {}
        except (ValueError, RecursionError):
            return
        if not isinstance(header, dict) or header.get("base") != self._base:
            return  # written against another lock file (e.g. before a branch switch): not ours
        for line in lines[1:]:
            try:
                record = json.loads(line)
                target = record["t"]
                entry = LockEntry.from_json(record["e"]) if record["e"] is not None else None
                if not isinstance(target, str):
                    raise TypeError("a journal record's target must be a string")
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
                break  # a line cut by the kill (or damaged): everything after it is unusable too
            self._set(target, entry)
            self._dirty = True

    def choose(self, target: str, on_disk: str) -> LockEntry | None:
        """For a target whose merge conflict kept both sides: the candidate entry whose hash is ``on_disk``
        (it becomes the entry, in memory; ``flush`` writes it). None when there is none."""
        with self._state:
            for candidate in self._alternatives.get(target, ()):
                if candidate.hash == on_disk:
                    del self._alternatives[target]
                    self._set(target, candidate)
                    self._dirty = True
                    return candidate
        return None

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

    def _set(self, target: str, entry: LockEntry | None) -> bool:
        if entry is None:
            self._chunks.pop(target, None)
            return self._entries.pop(target, None) is not None
        if self._entries.get(target) == entry:
            return False
        self._entries[target] = entry
        return True

    def commit(self, target: str, entry: LockEntry | None) -> None:
        """Record (or with None, remove) one entry durably before returning.

        Concurrent commits are grouped: the change is made in memory first, so a rewrite that starts
        while this commit waits for the writer covers it too, and then this commit has nothing to write.
        """
        with self._state:
            if self._set(target, entry):
                self._dirty = True
                self._changes += 1
                self._pending[target] = None
            mine = self._changes  # an unchanged entry still waits for a pending change to be written
        with self._writer:
            if self._written >= mine:
                return
            # Small locks (the common case) are rewritten on every commit; big ones, whose rewrite cost
            # grows with their size, go through the journal and are compacted into the file when the
            # journal reaches COMPACT_RATIO of the file's size. (By size, not by time, so a busy machine
            # does not change when the file is written.)
            if self._file_bytes < REWRITE_ALWAYS_BYTES or self._journal_bytes >= COMPACT_RATIO * self._file_bytes:
                self._rewrite()
                return
            self._append_journal()

    def flush(self) -> None:
        """Write the file now if anything changed since it was last written."""
        with self._writer:
            if self._dirty:
                self._rewrite()

    def _append_journal(self) -> None:
        """Called with the writer lock held: append every change not yet durable, with one fsync.

        Grouped like rewrites: commits that arrived while the previous append was being synced are all
        covered by this one (the fsync, not the bytes, is what a commit costs)."""
        with self._state:
            records = [(target, self._entries.get(target)) for target in self._pending]
            self._pending.clear()
            covered = self._changes
        data = b"".join(_journal_line(target, entry) for target, entry in records)
        if not self._journal_started:
            make_state_dir(self.journal_path.parent)
            data = json.dumps({"base": self._base}).encode() + b"\n" + data
        flags = os.O_WRONLY | os.O_CREAT
        flags |= os.O_APPEND if self._journal_started else os.O_TRUNC
        # Opened for each append (the fsync dominates anyway), so no file handle outlives a commit.
        fd = open_nofollow(self.journal_path, flags, 0o644)  # never through a planted symlink
        try:
            os.write(fd, data)
            os.fsync(fd)  # the commit's durability: its image is in place, and the lock must say so
        finally:
            os.close(fd)
        self._journal_started = True
        self._journal_bytes += len(data)
        self._written = covered

    def _chunk_of(self, target: str, entry: LockEntry) -> str:
        cached = self._chunks.get(target)
        if cached is not None and cached[0] is entry:
            return cached[1]
        text = _chunk(target, entry)
        self._chunks[target] = (entry, text)
        return text

    def _rewrite(self) -> None:
        """Called with the writer lock held: write the file, then retire the journal it covers.

        The entries are rendered and streamed to the temporary file outside ``_state`` (commits and
        readers go on meanwhile) and in pieces: a 100,000-asset lock is ~65 MB of text, which must not be
        held two or three times over (the text, its bytes, the list joined) at each rewrite."""
        with self._state:
            snapshot = dict(self._entries)
            self._pending.clear()
            self._dirty = False
            covered = self._changes
        hasher = xxhash.xxh3_128()
        size = 0

        def parts() -> Iterator[bytes]:
            nonlocal size
            for piece in _pieces(self._chunk_of(target, snapshot[target]) for target in sorted(snapshot)):
                data = piece.encode()
                hasher.update(data)
                size += len(data)
                yield data

        atomic_write(self.path, parts(), tmp_dir=self.tmp_dir)
        self._written = covered
        self._base = hasher.hexdigest()  # equal to hash_bytes of the whole file
        self._file_bytes = size
        self._journal_bytes = 0
        self._journal_started = False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.journal_path)


def _journal_line(target: str, entry: LockEntry | None) -> bytes:
    record = {"t": target, "e": entry.to_json() if entry is not None else None}
    return json.dumps(record, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n"


CONFLICT_HINT = ("resolve the conflicted images first (`git checkout --ours IMAGE` or `--theirs IMAGE`), then keep "
                 "both sides of assets.lock (leave git's markers in it) and run `assetbuild`: for each asset it "
                 "keeps the entry whose hash matches the image on disk and rewrites the lock; then `git add "
                 "assets.lock`. Do not delete it: every committed image would look modified")


class _Duplicate(ValueError):
    """A name appears twice in one JSON object (both sides of a merge conflict were kept)."""


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Duplicate("a name appears twice")
    return result


def _parse(path: Path, raw: bytes) -> tuple[dict[str, LockEntry], dict[str, list[LockEntry]] | None]:
    """The entries of a lock file's bytes, and (None for a plain valid file) for targets whose merge
    conflict was resolved by keeping both sides, every candidate entry. ManifestError (exit 2) naming the
    file for anything unusable."""
    from . import lockmerge

    target = None
    try:
        text = raw.decode("utf-8")
        line = lockmerge.conflict_line(text)
        if line is not None:  # git's markers: both whole sides are in the text
            try:
                sides = [_strict(side) for side in lockmerge.sides_of_conflict(text)]
            except (ValueError, TypeError, AttributeError, RecursionError) as exc:
                raise ManifestError(f"{path}:{line}", f"unresolved merge conflict that cannot be read ({exc})",
                                    hint=CONFLICT_HINT) from None
            both: dict[str, list[dict[str, Any]]] = {}
            for side in sides:
                for target, candidate in side.get("assets", {}).items():
                    known = both.setdefault(target, [])
                    if candidate not in known:
                        known.append(candidate)
            return _candidates(both)
        try:
            data = _strict(text)
        except ValueError as strict:  # invalid JSON, or a duplicate: maybe both sides of a conflict were kept
            try:
                entries, alternatives = _candidates(lockmerge.read_both_sides(text), skip_partial=True)
            except (ValueError, RecursionError):
                raise strict from None
            if not alternatives:  # no sign of two sides (e.g. a truncated file): not ours to guess at
                raise strict from None
            return entries, alternatives
        if not isinstance(data, dict) or not isinstance(data.get("assets", {}), dict):
            raise TypeError("not an object with an `assets` object")
        entries = {}
        for target, entry in data.get("assets", {}).items():
            entries[target] = LockEntry.from_json(entry)
        return entries, None
    except RecursionError:
        problem = "nested too deeply"
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        problem = f"{exc!s}" if not isinstance(exc, KeyError) else f"missing field {exc}"
        problem = f"entry {target!r}: {problem}" if target is not None else problem
    raise ManifestError(str(path), f"the lock file is not valid ({problem})",
                        hint="restore it from git (e.g. `git checkout -- assets.lock`) or delete it to rebuild "
                             "everything")


def _strict(text: str) -> Any:
    data = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_pairs)
    if not isinstance(data, dict) or not isinstance(data.get("assets", {}), dict):
        raise TypeError("not an object with an `assets` object")
    return data


def _candidates(both: dict[str, list[dict[str, Any]]], *, skip_partial: bool = False
                ) -> tuple[dict[str, LockEntry], dict[str, list[LockEntry]]]:
    """Entries (the first candidate of each target) and every candidate of targets that have several.
    ``skip_partial``: a candidate missing fields (cut by a hunk boundary) is left out, not an error."""
    alternatives: dict[str, list[LockEntry]] = {}
    for target, candidates in both.items():
        for candidate in candidates:
            try:
                alternatives.setdefault(target, []).append(LockEntry.from_json(candidate))
            except (KeyError, TypeError):
                if not skip_partial:
                    raise
        if not alternatives.get(target):
            alternatives.pop(target, None)
    return {t: c[0] for t, c in alternatives.items()}, {t: c for t, c in alternatives.items() if len(c) > 1}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _chunk(target: str, entry: LockEntry) -> str:
    # allow_nan=False: NaN is not JSON; the manifest refuses it, and this refuses any that slips through.
    text = json.dumps(entry.to_json(), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    body = text.replace("\n", "\n    ")
    return f"    {json.dumps(target, ensure_ascii=False)}: {body}"


_PIECE = 512  # entries per piece written


def _pieces(chunks: Iterable[str]) -> Iterator[str]:
    """The file's text in pieces of a few hundred entries: ``_assemble`` without holding it all."""
    head, batch, first = '{\n  "assets": {\n', [], True
    for chunk in chunks:
        batch.append(chunk)
        if len(batch) == _PIECE:
            yield (head if first else ",\n") + ",\n".join(batch)
            batch, first = [], False
    if batch:
        yield (head if first else ",\n") + ",\n".join(batch)
        first = False
    yield ('{\n  "assets": {}' if first else "\n  }") + f',\n  "version": {LOCK_VERSION}\n}}\n'


def _assemble(chunks: list[str]) -> bytes:
    return "".join(_pieces(chunks)).encode()


def render(entries: dict[str, LockEntry]) -> bytes:
    """The file's bytes: deterministic for the same entries (and equal to sorted, 2-space-indented JSON)."""
    return _assemble([_chunk(target, entries[target]) for target in sorted(entries)])
