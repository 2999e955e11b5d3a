"""assets.lock: what was built, from what, with which result.

A JSON file next to the manifest, meant to be committed: sorted keys, two-space indent, one asset per
block, no timestamps, so diffs show exactly which assets changed and how. Each entry holds the asset's
key, the hash of the bytes on disk, the seed and model actually used, the canonical inputs (for
``assetbuild why``) and, when the server told, the hashes of the model files that made it.

Each asset's entry is made durable as it finishes (after its image is in place): appended to a journal
in the state folder, which is folded into the file at the end of the run (and whenever it grows), so a
run killed at any moment keeps every finished asset and never records an image that is not on disk.
Concurrent finishes are grouped: one write covers every entry committed while the previous write ran.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import operator
import os
import re
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from json.scanner import make_scanner
from pathlib import Path
from typing import Any

import xxhash

from .errors import ManifestError, StateError
from .fsutil import atomic_write, make_state_dir, open_nofollow
from .keys import hash_bytes
from .layout import STATE_DIR

LOCK_VERSION = 1
_HEX_DIGITS = "0123456789abcdef"  # of an xxh3-128 digest (32 of them): every key and file hash
# The file is rewritten (compacted) once its journal holds both this many bytes (~100 entries: a small lock is
# rewritten once per run, by flush) and COMPACT_RATIO of the file's size (a big lock: I/O linear in its commits).
COMPACT_MIN_BYTES = 64 * 1024
COMPACT_RATIO = 0.5
RENDERED_NAME = "lock.rendered"  # in the state folder: the hash of the lock file as assetbuild last wrote it


@dataclass(frozen=True)
class LockEntry:
    """One asset's entry. One that ``Lock.get`` returns may have only its key and hash read yet
    (``_ReadOffText``): using any other field (``repr``, ``==``, ``dataclasses.replace`` included) then parses
    and checks it, and raises the ManifestError of an entry that is not valid."""

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
        """The entry as JSON data, for encoding (it shares the entry's dicts: not ``asdict``'s deep copy,
        which cost more than the encoding itself)."""
        data: dict[str, Any] = {"key": self.key, "hash": self.hash, "seed": self.seed, "model": self.model,
                                "inputs": self.inputs}
        if self.model_hashes:
            data["model_hashes"] = self.model_hashes
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
        if len(key) != 32 or len(digest) != 32 or (key + digest).strip(_HEX_DIGITS):
            # A key names a cache file and a store object: anything but 32 hex digits could reach
            # outside the cache (`../../x`), so a cloned lock cannot steer a read or a delete there.
            raise TypeError("`key` and `hash` must be 32 hexadecimal digits")
        if not (seed is None or type(seed) is int or (isinstance(seed, int) and not isinstance(seed, bool))):
            raise TypeError("`seed` must be a whole number")
        if not (model is None or isinstance(model, str)):
            raise TypeError("`model` must be a string")
        # (Each part spelled out, not a generator over the names: this runs for every entry a plan reads.)
        if not (isinstance(inputs, dict) and isinstance(inputs.get("params", _NO_PART), dict)
                and isinstance(inputs.get("inputs", _NO_PART), dict)
                and isinstance(inputs.get("post", _NO_PART), dict)):
            raise TypeError("`inputs` and its `params`, `inputs` and `post` must be objects")
        hashes = data.get("model_hashes") or {}
        return cls(key, digest, seed, model, dict(inputs),
                   {str(k): str(v) for k, v in hashes.items()} if isinstance(hashes, dict) and hashes else {})


_NO_PART: dict[str, Any] = {}  # an absent part of an entry's inputs (read only: it passes as an object)


class _ReadOffText(LockEntry):
    """An entry of a text as ``_chunk`` renders it, whose key and hash (and that it has no model hashes, when
    it has none) were read off fixed places of its text, without parsing it (``_read_off``): a plan compares
    them for every asset, and a parse and check cost ~6 µs an entry, 60 ms of a cold plan at 10,000 assets.

    The other fields are parsed and checked as any entry's are (``_parse_chunk``) when one is first used,
    which raises that entry's ManifestError there; a text whose parse disagrees with what was read off it
    is refused the same way. Equal to a ``LockEntry`` with the same fields, like any entry."""

    def __getattr__(self, name: str) -> Any:  # called only for a field not set yet: parse the text
        if name not in _READ_LATER:
            raise AttributeError(name)
        text = self.__dict__.get("_text")
        if text is None:  # parsed meanwhile, by another thread
            return self.__dict__[name]
        path, target, buffer, start, end, read_none = text
        entry = _parse_chunk(path, target, buffer[start:end])
        # The fields read off are the parse's when the text is laid out as rendered; a text that only looks so
        # (an entry-level line inside another object, model hashes at another indent) is refused here.
        if (entry.key, entry.hash) != (self.key, self.hash) or (read_none and entry.model_hashes):
            raise ManifestError(str(path), f"the lock file is not valid (entry {target!r}: its text is not as "
                                "assetbuild writes it)", hint=INVALID_HINT)
        self.__dict__.update(seed=entry.seed, model=entry.model, inputs=entry.inputs,
                             model_hashes=entry.model_hashes)
        self.__dict__.pop("_text", None)  # (after the fields: another thread finds either, or parses too)
        return self.__dict__[name]

    def __reduce__(self) -> tuple[Any, ...]:
        # A copy or pickle is a plain entry: not one holding the whole lock file's bytes.
        return LockEntry, _fields(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LockEntry):
            return NotImplemented
        return _fields(self) == _fields(other)

    __hash__ = LockEntry.__hash__


_READ_LATER = frozenset({"seed", "model", "inputs", "model_hashes"})


def _fields(entry: LockEntry) -> tuple[Any, ...]:
    return entry.key, entry.hash, entry.seed, entry.model, entry.inputs, entry.model_hashes


def checked(entry: LockEntry) -> LockEntry:
    """``entry`` with every field parsed and checked (ManifestError if one is not valid)."""
    if type(entry) is _ReadOffText:
        entry.seed  # noqa: B018  (parses the rest of its text)
    return entry


# A rendered entry's text: its first line names the target; then, the keys sorted, `"hash"` at an indent of 6
# (the entry's own fields; deeper ones are indented further, and no JSON string holds a newline), the inputs,
# `"key"`, `"model"`, `"model_hashes"` when there are any, and `"seed"`.
_HASH_AT = b'\n      "hash": "'
_KEY_AT = b'\n      "key": "'
_MODEL_HASHES_AT = b'\n      "model_hashes": '
_DIGEST_END = b'",\n'


def _read_off(path: Path, target: str, buffer: bytes, start: int, end: int) -> LockEntry | None:
    """The entry of the text ``buffer[start:end]`` (as ``_chunk`` renders it) with its key and hash read off
    their places (``_ReadOffText``); None when they are not where and what a rendered text has them."""
    line = buffer.find(b"\n", start, end)
    if line < 0 or not buffer.startswith(_HASH_AT, line):
        return None
    at_hash = line + len(_HASH_AT)
    key_line = buffer.rfind(_KEY_AT, at_hash, end)
    if key_line < 0:
        return None
    at_key = key_line + len(_KEY_AT)
    digest, key = buffer[at_hash:at_hash + 32], buffer[at_key:at_key + 32]
    if (at_key + 35 > end or not buffer.startswith(_DIGEST_END, at_hash + 32)
            or not buffer.startswith(_DIGEST_END, at_key + 32) or (digest + key).strip(_HEX_BYTES)):
        return None
    entry = object.__new__(_ReadOffText)
    fields = entry.__dict__
    fields["key"], fields["hash"] = key.decode("ascii"), digest.decode("ascii")
    read_none = buffer.find(_MODEL_HASHES_AT, at_key, end) < 0
    fields["_text"] = (path, target, buffer, start, end, read_none)
    if read_none:
        fields["model_hashes"] = {}  # (read by every plan's memo record; checked against the parse when used)
    return entry


_HEX_BYTES = _HEX_DIGITS.encode()


class Lock:
    """The lock file in memory, with per-asset durable commits. Safe to use from several threads.

    A commit appends one fsynced line to a journal (``.assetbuild/lock.journal``: durable at once) rather
    than rewriting the file: a rewrite costs O(N), so for a big lock that would be O(N^2) per build
    (minutes at 10,000 assets), and even a small lock's rewrite costs two fsyncs (file and folder) where
    an append costs one. The file is rewritten on ``flush()`` (the end of every run, Ctrl-C included) and
    when the journal has grown to ``COMPACT_MIN_BYTES`` and ``COMPACT_RATIO`` of the file's size.
    Rewrites are thus spaced by a share of the lock's size, so a build's total lock I/O grows linearly
    with the number of assets (a rewrite every half second made it quadratic: 59 MB per rewrite at
    100,000 assets). Only a run killed outright (SIGKILL, power loss) leaves a journal, and with it an
    assets.lock that does not list that run's assets yet: every command reads them from the journal, and
    the next run writes them into the file. ``load`` folds a journal left by a killed run into
    the entries, but only if the journal was started from the very lock file it finds (the journal's
    header holds that file's hash), so a journal from before a branch switch is ignored.

    Entries cost nothing until used. A file this class wrote itself (``_ours``) is only split into its
    entries' texts at load; an entry is parsed and checked (``LockEntry.from_json``) when first used (``get``
    reads its key and hash off its text, and the rest is parsed when used: ``_ReadOffText``), and an unused
    one is written back verbatim. Each target's slot holds one form of its entry:

    - an ``int``: the index of its text in the file as loaded (``_raw``), not parsed yet (``_parsed``
      caches it once parsed: the file's bytes are held anyway);
    - ``bytes``: its rendered text, once a changed entry is durable (journal or file): a build of 100,000
      assets keeps ~650 bytes per entry, not the entry's objects and its text too;
    - a ``LockEntry``: changed in memory (or read from a file not ours, or from the journal), not rendered
      yet; the next write renders it, and then keeps the text alone.
    """

    def __init__(self, path: Path, entries: dict[str, LockEntry] | None = None, *,
                 tmp_dir: Path | None = None) -> None:
        self.path = path
        state = path.parent / STATE_DIR
        # Each rewrite's temporary file goes to the state folder next to the lock (.assetbuild/tmp), so a
        # run killed mid-write leaves no stray file beside assets.lock.
        self.tmp_dir = tmp_dir if tmp_dir is not None else state / "tmp"
        self.journal_path = state / "lock.journal"
        self.rendered_path = state / RENDERED_NAME  # hash of the file as this class last rendered it
        self._slots: dict[str, LockEntry | bytes | int] = dict(entries or {})
        self._parsed: dict[str, LockEntry] = {}  # entries parsed from their loaded text (an int slot)
        self._raw = b""  # the file as loaded, when its entries' texts were kept (``_ours``)
        self._starts = array("q")  # where each loaded entry's text starts in _raw (and where the next would)
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
        self._read_whole = False  # the file was parsed and checked whole, and found valid (no note of ours)

    @classmethod
    def load(cls, path: Path, *, tmp_dir: Path | None = None) -> Lock:
        """Read ``path`` (and a killed run's journal); a missing file is an empty lock.

        A corrupt lock file is a ManifestError (exit 2); a damaged journal line ends the journal there. In
        a file this class wrote (``_ours``) entries are checked when used: one that is not valid is then
        the same ManifestError, naming the file and the entry.
        """
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raw = None
        digest = hash_bytes(raw) if raw is not None else ""
        lock = cls(path, tmp_dir=tmp_dir)
        if raw is not None:
            split = _ours(raw, digest, lock.rendered_path)
            if split is not None:
                names, lock._starts = split
                lock._raw = raw
                lock._slots = dict(zip(names, range(len(names)), strict=True))
            else:
                entries, alternatives = _parse(path, raw)
                lock._slots = dict(entries)
                lock._read_whole = alternatives is None
                if alternatives is not None:  # both sides of a merge were kept: the next flush writes clean JSON
                    lock._alternatives = alternatives
                    lock._dirty = True
                    lock.merged = True
        lock._base = digest
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
        """The entry of ``target`` (None without one); ManifestError for one the file holds but is not valid:
        at once, unless its key and hash could be read off its text (``_read_off``), and then when any other
        field is first used."""
        with self._state:
            slot = self._slots.get(target)
            if slot is None or isinstance(slot, LockEntry):
                return slot
            known = self._parsed.get(target)
            if known is not None:
                return known
        entry = self._entry_of(target, slot, read_off=True)  # outside the mutex: commits go on meanwhile
        if isinstance(slot, int):  # (``_keep_parsed`` of this one entry, spelled out: a plan gets every entry)
            with self._state:
                if self._slots.get(target) is slot:  # not changed meanwhile
                    self._parsed[target] = entry
        return entry

    def targets(self) -> list[str]:
        """Every target with an entry, sorted (no entry is parsed)."""
        with self._state:
            return sorted(self._slots)

    def entries(self) -> dict[str, LockEntry]:
        """A snapshot of every entry, by target (each one parsed and checked, if it was not yet)."""
        with self._state:
            slots = dict(self._slots)
            known = {target: self._parsed[target] for target in slots.keys() & self._parsed.keys()}
        result: dict[str, LockEntry] = {}
        fresh: dict[str, tuple[bytes | int, LockEntry]] = {}
        for target, slot in slots.items():
            if isinstance(slot, LockEntry):
                result[target] = slot
            elif target in known:
                result[target] = checked(known[target])
            else:  # (read off first, as ``get`` does, so that both apply the same rule to a text)
                result[target] = entry = checked(self._entry_of(target, slot, read_off=True))
                fresh[target] = (slot, entry)
        self._keep_parsed(fresh)
        return result

    def _entry_of(self, target: str, slot: bytes | int, *, read_off: bool = False) -> LockEntry:
        """The entry a text slot holds, parsed and checked; ManifestError naming the file and entry if invalid.
        ``read_off``: with its key and hash read off the text, the rest parsed and checked when used."""
        if isinstance(slot, bytes):
            buffer, start, end = slot, 0, len(slot)
        else:
            buffer, start, end = self._raw, self._starts[slot], self._starts[slot + 1] - 2
        if read_off:
            entry = _read_off(self.path, target, buffer, start, end)
            if entry is not None:
                return entry
        return _parse_chunk(self.path, target, buffer[start:end])

    def _keep_parsed(self, parsed: dict[str, tuple[bytes | int, LockEntry]]) -> None:
        """Remember entries parsed from loaded texts (not from rendered ones: those are kept as text alone)."""
        with self._state:
            for target, (slot, entry) in parsed.items():
                if isinstance(slot, int) and self._slots.get(target) is slot:  # not changed meanwhile
                    self._parsed[target] = entry

    def _set(self, target: str, entry: LockEntry | None) -> bool:
        """Called under ``_state``: make ``entry`` the target's (None: remove it); whether anything changed."""
        current = self._slots.get(target)
        if entry is None:
            self._parsed.pop(target, None)
            return self._slots.pop(target, None) is not None
        if current is not None and self._holds(target, current, entry):
            return False
        self._slots[target] = entry
        self._parsed.pop(target, None)
        return True

    def _holds(self, target: str, slot: LockEntry | bytes | int, entry: LockEntry) -> bool:
        """Whether ``slot`` holds ``entry`` (a text that cannot be read holds nothing: it is replaced)."""
        try:
            if isinstance(slot, LockEntry):
                return slot == entry
            known = self._parsed.get(target)
            return (known if known is not None else self._entry_of(target, slot)) == entry
        except ManifestError:  # (a ``_ReadOffText`` on either side parses the rest of its text to compare)
            return False

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
            # Into the journal (one fsync), compacted into the file when the journal reaches
            # COMPACT_MIN_BYTES and COMPACT_RATIO of the file's size. (By size, not by time, so a busy
            # machine does not change when the file is written.)
            if self._journal_bytes >= max(COMPACT_MIN_BYTES, COMPACT_RATIO * self._file_bytes):
                self._rewrite()
                return
            self._append_journal()

    def flush(self) -> None:
        """Write the file now if anything changed since it was last written."""
        with self._writer:
            if self._dirty:
                self._rewrite()
            elif self._read_whole and self._base:
                # Parsed and checked whole, and valid (a fresh clone's lock, on its first run): noted as a
                # rewrite would note it, so the next load splits it and checks each entry when used, rather
                # than parsing it all again (and the next rewrite copies unchanged entries as they are).
                _remember_rendered(self.rendered_path, self._base)
                self._read_whole = False

    def _append_journal(self) -> None:
        """Called with the writer lock held: append every change not yet durable, with one fsync.

        Grouped like rewrites: commits that arrived while the previous append was being synced are all
        covered by this one (the fsync, not the bytes, is what a commit costs)."""
        with self._state:
            records = [(target, self._slots.get(target)) for target in self._pending]
            self._pending.clear()
            covered = self._changes
        entries = [(target, slot if slot is None or isinstance(slot, LockEntry) else self._entry_of(target, slot))
                   for target, slot in records]
        data = b"".join(_journal_line(target, entry) for target, entry in entries)
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
        # Durable now: keep each entry as the text the next rewrite needs anyway, not as objects and text.
        self._as_text([(target, entry, _chunk(target, entry).encode()) for target, entry in entries
                       if entry is not None])

    def _as_text(self, rendered: list[tuple[str, LockEntry, bytes]]) -> None:
        """Replace each target's entry by its rendered text, where the entry is still the target's."""
        with self._state:
            for target, entry, text in rendered:
                if self._slots.get(target) is entry:
                    self._slots[target] = text

    def _rewrite(self) -> None:
        """Called with the writer lock held: write the file, then retire the journal it covers.

        The entries are rendered and streamed to the temporary file outside ``_state`` (commits and
        readers go on meanwhile) and in pieces: a 100,000-asset lock is ~65 MB of text, which must not be
        held two or three times over (the text, its bytes, the list joined) at each rewrite. Texts read
        from the file at load are copied back verbatim, each run of consecutive ones in one piece."""
        with self._state:
            snapshot = dict(self._slots)
            self._pending.clear()
            self._dirty = False
            covered = self._changes
        hasher = xxhash.xxh3_128()
        size = 0
        rendered: list[tuple[str, LockEntry, bytes]] = []

        def texts() -> Iterator[bytes | memoryview]:
            raw, starts = memoryview(self._raw), self._starts
            run: list[int] = []  # first and last index of consecutive loaded texts
            for target in sorted(snapshot):
                slot = snapshot[target]
                if isinstance(slot, int):
                    if run and slot == run[1] + 1:
                        run[1] = slot
                        continue
                    if run:
                        yield raw[starts[run[0]]:starts[run[1] + 1] - 2]
                    run = [slot, slot]
                    continue
                if run:
                    yield raw[starts[run[0]]:starts[run[1] + 1] - 2]
                    run = []
                if isinstance(slot, LockEntry):
                    text = _chunk(target, slot).encode()
                    rendered.append((target, slot, text))
                    yield text
                else:
                    yield slot
            if run:
                yield raw[starts[run[0]]:starts[run[1] + 1] - 2]

        def parts() -> Iterator[bytes]:
            nonlocal size
            for part in _framed(texts()):
                # A long run of loaded texts is copied a megabyte at a time, not whole.
                for data in ([part] if isinstance(part, bytes) else
                             (bytes(part[at:at + _COPY]) for at in range(0, len(part), _COPY))):
                    hasher.update(data)
                    size += len(data)
                    yield data

        atomic_write(self.path, parts(), tmp_dir=self.tmp_dir)
        self._written = covered
        self._base = hasher.hexdigest()  # equal to hash_bytes of the whole file
        _remember_rendered(self.rendered_path, self._base)
        self._file_bytes = size
        self._journal_bytes = 0
        self._journal_started = False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.journal_path)
        self._as_text(rendered)


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
    raise ManifestError(str(path), f"the lock file is not valid ({problem})", hint=INVALID_HINT)


INVALID_HINT = "restore it from git (e.g. `git checkout -- assets.lock`) or delete it to rebuild everything"


def _parse_chunk(path: Path, target: str, text: bytes) -> LockEntry:
    """The entry of one target from its text in a file this class wrote (``_ours``), checked as ``_parse``
    checks every entry: the same ManifestError, naming the file and the entry, for one that is not valid."""
    try:
        data = _entry_data(target, text.decode("utf-8"))
        return LockEntry.from_json(data)
    except RecursionError:
        problem = "nested too deeply"
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        problem = f"{exc!s}" if not isinstance(exc, KeyError) else f"missing field {exc}"
    raise ManifestError(str(path), f"the lock file is not valid (entry {target!r}: {problem})", hint=INVALID_HINT)


def _entry_data(target: str, text: str) -> Any:
    """The JSON value of ``target``'s entry in ``text`` (``    "target": {...}``); ValueError (or RecursionError)
    when the text is not exactly one member of that name holding valid JSON."""
    # The text as rendered (its first line names the target unescaped, and its value ends the text): its value
    # is scanned where it starts. A parse of the text wrapped in braces, below, costs twice as much; it decides
    # (and words the error for) any other text.
    brace = text.find("\n") - 1
    if (brace > 8 and text.startswith('    "') and text.startswith('": {', brace - 3) and text[5:brace - 3] == target
            and _unescaped(target)):
        try:
            value, end = _SCAN(text, brace)
        except (StopIteration, ValueError):
            pass  # said by the parse below, as it always was
        else:
            if end == len(text):
                return value
    data = _DECODER.decode("{" + text + "}")
    if not isinstance(data, dict) or len(data) != 1 or target not in data:
        raise ValueError("its text is not one entry of that name")
    return data[target]


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


_FRAME_HEAD = b'{\n  "assets": {\n'
_FRAME_TAIL = f'\n  }},\n  "version": {LOCK_VERSION}\n}}\n'.encode()
_EMPTY_FILE = f'{{\n  "assets": {{}},\n  "version": {LOCK_VERSION}\n}}\n'.encode()
_RENDERED_FORMAT = f"v{LOCK_VERSION}:"


def _remember_rendered(path: Path, digest: str) -> None:
    """Note that the lock file now holds exactly what ``render`` made (hash ``digest``). Only an accelerator:
    not synced, and a lost or stale note only means the next load reads the file in full."""
    with contextlib.suppress(OSError, StateError):
        fd = open_nofollow(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)  # never through a symlink
        try:
            os.write(fd, (_RENDERED_FORMAT + digest).encode())
        finally:
            os.close(fd)


def _ours(raw: bytes, digest: str, rendered_path: Path) -> tuple[list[str], array[int]] | None:
    """For a lock file whose bytes are what this class last rendered (``rendered_path`` notes their hash):
    its targets, in order, and where each one's text starts (with one more start, past the last text), found
    without parsing the file: entries are parsed when used, and the next rewrite copies the others back as
    they are (one edit in a 10,000-asset project must not read or render 10,000 entries). None for any
    other file, or one that does not split as rendered: ``_parse`` then reads it in full.

    The note is a hint, not a proof (an archive could carry one next to a forged lock): every entry is still
    checked when used (``_parse_chunk``: its text must be exactly one valid entry of that target)."""
    try:
        fd = open_nofollow(rendered_path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as handle:
            if handle.read(100).decode("ascii") != _RENDERED_FORMAT + digest:
                return None
    except (OSError, UnicodeDecodeError, StateError):
        return None
    # The file is the texts joined by ",\n" inside a fixed frame; a text starts with its target at an indent
    # of 4 (`    "name": {`) and every line after it is deeper, but for its last, "}" at 4 (JSON strings hold
    # no raw newline): so ',\n    "' is found only between two texts. The regular expression engine finds
    # them (and checks the line each one starts): a loop over the entries cost most of a big lock's load.
    if not (raw.startswith(_FRAME_HEAD) and raw.endswith(_FRAME_TAIL)) or len(raw) <= len(_FRAME_HEAD + _FRAME_TAIL):
        return None
    first = _FIRST_LINE.match(raw, len(_FRAME_HEAD))
    if first is None:
        return None
    raw_names = [first[1] or b""]
    starts = array("q", [len(_FRAME_HEAD)])
    for found in _NEXT_TEXT.finditer(raw, first.end()):
        if found[2] is None:
            return None  # a separator not followed by a text's first line: not as rendered
        raw_names.append(found[1] or b"")
        starts.append(found.start() + 2)
    try:
        text = b"\n".join(raw_names).decode("utf-8")  # names hold no newline: decoded and checked at once
        # (An escaped name, or one the fast path cannot vouch for: each name is read on its own.)
        names = text.split("\n") if _unescaped(text.replace("\n", "")) else [_name(name) for name in raw_names]
    except (ValueError, RecursionError, TypeError):
        return None
    starts.append(len(raw) - len(_FRAME_TAIL) + 2)  # where a next text would start: each text ends 2 bytes before
    if not all(map(operator.lt, names, itertools.islice(names, 1, None))):
        return None  # not sorted, or a name twice: not as rendered
    return names, starts


def _name(raw_name: bytes) -> str:
    """A target's name from the bytes between the quotes of its text's first line; TypeError when its JSON
    is not a string, ValueError when it is not JSON."""
    text = raw_name.decode("utf-8")
    if not _unescaped(text):
        text = json.loads(b'"' + raw_name + b'"')
        if not isinstance(text, str):
            raise TypeError("not a string")
    return text


def _unescaped(name: str) -> bool:
    """Whether JSON writes ``name`` as it is between its quotes (no backslash, no quote, nothing
    unprintable), so that the text between them is the name, with no decoding."""
    return "\\" not in name and '"' not in name and name.isprintable()


# The first line of a text: `    "name": {` (``.`` matches anything but a newline). As the line was once checked
# (it starts with `    "` and ends with `": {`), `    ": {` passes too, with an empty name (group 1 is None).
_FIRST_LINE = re.compile(rb'    "(?:(.*)"|)(: \{\n)')
# The separator before each next text, and that text's first line (group 2 is None when the line is not one).
_NEXT_TEXT = re.compile(rb',\n    "(?:(?:(.*)"|)(: \{\n))?')


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


# One decoder for every entry's text (``json.loads`` given an option builds a decoder per call: half the cost).
_DECODER = json.JSONDecoder(parse_constant=_no_constant)
# (text, where a value starts) -> (the value, where it ends); StopIteration when no value starts there.
_SCAN: Callable[[str, int], tuple[Any, int]] = make_scanner(_DECODER)  # type: ignore[arg-type]  # (typeshed)


def _chunk(target: str, entry: LockEntry) -> str:
    # allow_nan=False: NaN is not JSON; the manifest refuses it, and this refuses any that slips through.
    text = json.dumps(entry.to_json(), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    body = text.replace("\n", "\n    ")
    return f"    {json.dumps(target, ensure_ascii=False)}: {body}"


_BATCH = 256 * 1024  # bytes of small texts written at once
_COPY = 1024 * 1024  # bytes of a run of loaded texts copied at once


def _framed(texts: Iterable[bytes | memoryview]) -> Iterator[bytes | memoryview]:
    """The file's bytes in parts: the texts joined by a comma and newline in the fixed frame, small ones batched (a
    100,000-asset lock, ~65 MB, is never held whole), a big one (a run of texts copied from the file as
    loaded) passed on as it is."""
    batch: list[bytes | memoryview] = []
    size, first = 0, True
    for text in texts:
        batch.append(_FRAME_HEAD if first else b",\n")
        first = False
        if len(text) >= _BATCH:
            yield b"".join(batch)
            yield text
            batch, size = [], 0
            continue
        batch.append(text)
        size += len(text)
        if size >= _BATCH:
            yield b"".join(batch)
            batch, size = [], 0
    batch.append(_EMPTY_FILE if first else _FRAME_TAIL)
    yield b"".join(batch)


def render(entries: dict[str, LockEntry]) -> bytes:
    """The file's bytes: deterministic for the same entries (and equal to sorted, 2-space-indented JSON)."""
    return b"".join(_framed(_chunk(target, entries[target]).encode() for target in sorted(entries)))
