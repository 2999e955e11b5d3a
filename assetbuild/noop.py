"""A memo of the last state in which every asset was fresh, so a no-op build need not re-plan.

Parsing a 10,000-asset manifest and recomputing every key takes most of a second. When nothing has
changed since a build that left every asset fresh, none of that is needed. The memo
(``.assetbuild/noop.json``) records, at the end of such a build, everything the answer depends on:

- a context: the hash of assetbuild and key-format versions, the --server option, the environment
  variables and user config that choose the server (and so the generator kind), the manifest's path
  (a hash, because a server URL may carry a password);
- the xxh3-128 of the manifest's bytes and of assets.lock's bytes (and that no lock journal exists);
- (size, mtime_ns, inode) of every target and every input file, like git's index.

If all of it still matches, the build is a no-op: every asset is fresh. The memo is only an
accelerator: deleting it is harmless, and it is never consulted for a build of selected targets.

When only some asset tables changed (one prompt edited in a 10,000-asset manifest, the everyday case) or
some files were touched, the memo still proves the others fresh (``Partial``): it also keeps
(``.assetbuild/noop-tables.json``, read only then), per asset table, the xxh3-128 of the table's text
with its targets, their files and what its image inputs name, and the hash of the rest of the manifest
(every non-asset table). A table whose text and files are unchanged, in a manifest whose other tables
and lock are unchanged, is fresh: it is not parsed, checked or planned again. Only the other tables are
loaded (``Partial.text``: the manifest with each fresh table replaced by as many empty lines, so every
line number stays) and planned. Anything unusual (a changed [defaults] or style, warnings, image inputs
or ``source`` in a changed table, a table that names a changed one, a duplicate) falls back to the full
plan, which is always right.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import ManifestError
from .fsutil import JsonPieces, atomic_write, hash_file, json_document
from .keys import KEY_VERSION, hash_bytes
from .layout import LOCK_NAME, STATE_DIR, manifest_text

if TYPE_CHECKING:
    from .events import BuildEvents
    from .lock import Lock
    from .manifest import Project

MEMO_NAME = "noop.json"
# The per-table records, in their own file: the no-op answer never reads them (a 100,000-asset no-op
# must stay small in memory); only a ``Partial`` does.
TABLES_NAME = "noop-tables.json"
# A memo of another format is ignored. 3: per-table records with model hashes; 4: the files' names and their
# stamps as two lists (one of three numbers a file), the common table by its target alone (``_simple``).
FORMAT = 4
_CONTEXT_ENV = ("ASSETBUILD_SERVER", "ASSETBUILD_CACHE_DIR", "ASSETBUILD_CONFIG_DIR", "XDG_CONFIG_HOME")


@dataclass(frozen=True)
class Memo:
    count: int
    warnings: list[str]
    orphans: list[str]


def context(manifest: Path, server_option: str | None) -> str:
    """What, besides the files, decides keys and freshness."""
    from .userconfig import config_path

    try:
        st = config_path().stat()
        config = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
    except OSError:
        config = "-"
    env = "|".join(f"{name}={os.environ.get(name, '')}" for name in _CONTEXT_ENV)
    text = f"{__version__}|k{KEY_VERSION}|{manifest.absolute()}|server={server_option or ''}|{env}|config={config}"
    # Only ever compared, so only its hash is stored: a server URL may carry a password (user:pass@host).
    return hash_bytes(text.encode("utf-8", "surrogateescape"))


def _memo_path(manifest: Path) -> Path:
    return manifest.absolute().parent / STATE_DIR / MEMO_NAME


def _tables_path(manifest: Path) -> Path:
    return manifest.absolute().parent / STATE_DIR / TABLES_NAME


def _serial(memo: dict[str, Any]) -> str:
    """Ties the tables file to the memo written with it (a crash between the two writes leaves a pair
    that does not match: then the full plan decides)."""
    return hash_bytes(f"{memo['context']}|{memo['manifest']}|{memo['lock']}".encode())


@dataclass(frozen=True)
class Partial:
    """A changed manifest in which the memo still proves some asset tables fresh (see the module's doc)."""

    text: str  # the manifest, each table proven fresh replaced by as many empty lines (line numbers stay)
    manifest_hash: str  # of the manifest's bytes that ``text`` was made from
    global_hash: str  # of the text of its non-asset tables
    dirty: dict[str, str]  # [assets."..."] key as written -> text hash, of every table to load and plan
    fresh_tables: dict[str, list[Any]]  # text hash -> its record (see ``_partial``), of the tables proven fresh
    fresh_common: dict[str, str]  # text hash -> target, of the common tables (``_simple``) proven fresh
    fresh_targets: frozenset[str]
    references: frozenset[str]  # what the image inputs and ``source`` of fresh tables name
    files: list[str]  # the files of the fresh tables (relative to the project), each once
    file_stamps: list[int]  # and their stamps as checked, three numbers a file
    lock_hash: str
    # (model ref, hash) from the lock entries of the fresh tables: only the server can say these models are
    # unchanged, so a run asks it before trusting the tables (``servercheck.models_changed``).
    model_pairs: frozenset[tuple[str, str]] = frozenset()
    # A fresh table names a model its lock entry has no hash for (a lock from before hashes were recorded):
    # with a SwarmUI server, the full plan runs, so that a generating run records the missing hashes.
    unhashed: bool = False

    def accepts(self, project: Project) -> bool:
        """Whether the project loaded from ``text`` may be planned alone: its assets depend on nothing,
        no fresh table depends on them, and none is declared twice. Else the full plan decides."""
        declared = project.assets.keys()
        if any(asset.inputs or asset.source for asset in project.assets.values()):
            return False  # what an input names may be a target of a table left out of ``text``
        if self.fresh_targets & declared or self.references & declared:
            return False
        if declared:  # twins by letter case or Unicode normalisation are refused like duplicates (paths)
            folded = {unicodedata.normalize("NFC", target).lower() for target in self.fresh_targets}
            if any(unicodedata.normalize("NFC", target).lower() in folded for target in declared):
                return False
        return set(project.tables.values()) <= self.dirty.keys()

    def lock_unchanged(self, root: Path) -> bool:
        """Checked again while holding the project lock: another run may have changed the lock since."""
        try:
            return _settled_lock_hash(root) == self.lock_hash
        except OSError:
            return False


def _settled_lock_hash(root: Path) -> str | None:
    """The hash of assets.lock, or None while a lock journal exists (commits not yet in the file). Hashed
    in chunks: the lock of 100,000 assets is ~65 MB, which the no-op must not hold at once."""
    if (root / STATE_DIR / "lock.journal").exists():
        return None
    return hash_file(root / LOCK_NAME)


def check(manifest: Path, ctx: str) -> Memo | Partial | None:
    """The memo when it proves every asset fresh right now; a ``Partial`` when it proves some asset tables
    fresh; None when the full plan must decide."""
    try:
        memo = json.loads(_memo_path(manifest).read_bytes())
        if memo.get("context") != ctx or memo.get("format") != FORMAT:
            return None
        root = manifest.absolute().parent
        lock_hash = _settled_lock_hash(root)
        if lock_hash is None or lock_hash != memo["lock"]:
            return None
        names, stamps = memo["files"], memo["stamps"]
        if type(names) is not list or type(stamps) is not list or len(stamps) != 3 * len(names):
            return None
        base = str(root).rstrip(os.sep) + os.sep  # stat by string: 10,000 Path objects cost more than the stats
        if not memo.get("hashed") and hash_file(manifest) == memo["manifest"] and _unchanged(base, names, stamps):
            count, warnings, orphans = memo["count"], memo["warnings"], memo["orphans"]
            if type(count) is not int or count < 0 or not _texts(warnings) or not _texts(orphans):
                return None  # not as ``record`` writes it: shown as it is, it would mislead
            return Memo(count, warnings, orphans)
        # With model hashes in the lock only the server can say nothing changed: the run asks it.
        return _partial(manifest, base, memo, lock_hash)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError):
        return None


def _texts(value: Any) -> bool:
    """Whether ``value`` is a list of strings."""
    return type(value) is list and all(type(item) is str for item in value)


def _sound_record(known: Any) -> bool:
    """Whether a table's record is as ``record`` writes it: [key as written, its targets (at least one), its
    files, what its inputs name, its (model ref, hash) pairs, whether a model lacks a hash]. A forged one
    (the state folder is writable by whoever can write the project) must not reach the plan."""
    return (type(known) is list and len(known) == 6 and type(known[0]) is str and _texts(known[1])
            and bool(known[1]) and _texts(known[2]) and _texts(known[3]) and type(known[4]) is list
            and all(type(pair) is list and len(pair) == 2 and _texts(pair) for pair in known[4])
            and type(known[5]) is bool)


def _unchanged(base: str, names: list[Any], stamps: list[Any]) -> bool:
    """Whether every file the memo names has the stamp it records now (``stamps``: three numbers a file,
    size, mtime_ns, inode). TypeError for lists that are not made so."""
    stat = os.stat
    each = iter(stamps)
    try:
        for name, size, mtime, inode in zip(names, each, each, each, strict=True):
            st = stat(base + name)
            if st.st_mtime_ns != mtime or st.st_size != size or st.st_ino != inode:
                return False
    except OSError:
        return False
    return True


def _partial(manifest: Path, base: str, memo: dict[str, Any], lock_hash: str) -> Partial | None:
    """The asset tables of ``manifest`` the memo proves fresh, and the text of the others (``base``: the
    project folder's path with a trailing separator)."""
    from .manifest.sections import one_asset_table, split

    if memo["warnings"]:
        return None
    records = json.loads(_tables_path(manifest).read_bytes())
    if records.get("of") != _serial(memo) or not records.get("global"):
        return None
    tables: dict[str, list[Any]] = records["tables"]
    common, common_targets, folder = records["common"], records["common_targets"], records["folder"]
    if type(tables) is not dict or type(common) is not list or type(common_targets) is not list or (
            type(folder) is not str):
        return None
    simple: dict[str, str] = dict(zip(common, common_targets, strict=True))
    raw = manifest.read_bytes()
    text = manifest_text(raw)
    cut = split(text)
    global_hash = hash_bytes("".join(piece.text for piece in cut.global_pieces).encode("utf-8", "surrogatepass"))
    if global_hash != records["global"]:
        return None  # [defaults], a style, [project]... changed: every table may resolve differently
    names: list[Any] = memo["files"]
    recorded: list[Any] = memo["stamps"]  # three numbers a file (``check`` saw the lengths agree)
    position = {name: 3 * n for n, name in enumerate(names)}
    stat = os.stat

    def unchanged(name: str) -> bool:
        """Whether the file ``name`` has the stamp the memo records."""
        at = position.get(name)
        if at is None:
            return False
        try:
            st = stat(base + name)
        except OSError:
            return False
        return bool(st.st_mtime_ns == recorded[at + 1] and st.st_size == recorded[at] and st.st_ino == recorded[at + 2])

    fresh: dict[str, list[Any]] = {}
    fresh_common: dict[str, str] = {}
    fresh_lines: set[int] = set()
    dirty: dict[str, str] = {}
    seen: set[str] = set()
    for piece in cut.assets:
        text_hash = hash_bytes(piece.text.encode("utf-8", "surrogatepass"))
        if text_hash in seen:
            return None  # the same table twice: TOML's error, worded by the full load
        seen.add(text_hash)
        target = simple.get(text_hash)
        if target is not None:
            if unchanged(folder + target):  # its one file (see ``_simple``)
                fresh_common[text_hash] = target
                fresh_lines.add(piece.line)
                continue
        elif ((known := tables.get(text_hash)) is not None and _sound_record(known)
              and all(unchanged(name) for name in known[2])):
            fresh[text_hash] = known
            fresh_lines.add(piece.line)
            continue
        # Planned again: it must be one [assets."..."] table on its own (the proof that the cuts are real
        # headers, as the loader requires for a file read table by table).
        found = one_asset_table(piece.text)
        if found is None or found[0] in dirty:
            return None
        dirty[found[0]] = text_hash
    if not (fresh or fresh_common):
        return None
    fresh_targets = frozenset(target for known in fresh.values() for target in known[1]).union(
        fresh_common.values())
    if len(fresh_targets) != sum(len(known[1]) for known in fresh.values()) + len(fresh_common):
        return None
    if not dirty.keys().isdisjoint(known[0] for known in fresh.values()) or not dirty.keys().isdisjoint(
            fresh_common.values()):  # (a common table's key is its target)
        return None  # a fresh table's key declared again
    references = frozenset(name for known in fresh.values() for name in known[3])
    if references:
        gone = {target for text_hash, known in tables.items() if text_hash not in fresh for target in known[1]}
        gone.update(target for text_hash, target in simple.items() if text_hash not in fresh_common)
        if references & gone:
            return None  # a fresh table names a target whose table changed or went away
    ordered = sorted([*cut.global_pieces, *cut.assets], key=lambda piece: piece.line)
    partial_text = "".join("\n" * piece.text.count("\n") if piece.line in fresh_lines else piece.text
                           for piece in ordered)
    # The files of the fresh tables, each once, with the stamps that proved them unchanged.
    files = [folder + target for target in fresh_common.values()]
    listed = set(files)
    for known in fresh.values():
        for name in known[2]:
            if name not in listed:
                listed.add(name)
                files.append(name)
    file_stamps = [number for name in files for number in recorded[position[name]:position[name] + 3]]
    pairs = frozenset((str(ref), str(value)) for known in fresh.values() for ref, value in known[4])
    unhashed = any(known[5] for known in fresh.values())
    return Partial(partial_text, hash_bytes(raw), global_hash, dirty, fresh, fresh_common, fresh_targets, references,
                   files, file_stamps, lock_hash, pairs, unhashed)


def record(project: Project, ctx: str, orphans: list[str], verified: Mapping[str, list[int]],
           partial: Partial | None = None, lock: Lock | None = None) -> None:
    """Write the memo for a project whose every asset was just found (or made) fresh.

    ``verified`` gives the stamp each file had when this run hashed (or wrote) it, by ``str(path)``
    (``HashCache.verified_stamps``). The memo records only
    what was verified, with that stamp: a file changed since (edited while another asset was being built)
    has another stamp now, so the next run plans its table again and sees the edit.
    ``partial``: the project was loaded from ``partial.text``; its fresh tables are recorded as checked.
    ``lock``: the lock, for each target's model hashes (with any, the memo never answers alone).

    The files' and tables' entries are encoded as they are made, a few thousand at a time: at the end of
    a 100,000-asset build, holding them as objects (then as one text) was the run's peak of memory. The
    common asset (one target per table, no inputs, no model hashes) costs a few dict and list operations:
    at 10,000 assets this runs after every full plan.
    """
    root = project.root
    prefix = str(root).rstrip(os.sep) + os.sep
    cut = len(prefix)
    # The lock's model hashes, looked up in one pass before the loop below (interleaved with its other work,
    # the lookups cost three times as much); in most projects none, or every target has some.
    get = lock.get if lock is not None else None
    try:
        in_locks = {target: entry.model_hashes for target in project.assets
                    if (entry := get(target)) is not None and entry.model_hashes} if get is not None else {}
    except ManifestError:
        # A fresh asset's entry is used for its key and hash alone (``lock._ReadOffText``): one whose model
        # hashes cannot be read did not stop the build, and stops only the memo, an accelerator (the next
        # run plans in full, and a command that shows the entry says what is wrong with it).
        return
    table_hashes = partial.dirty if partial else project.table_hashes
    written_of = project.tables
    placeholder = project.server.is_placeholder
    output_dir = project.output_dir
    out = str(output_dir).rstrip(os.sep) + os.sep  # a target's file is named this plus the target ("/" systems)
    # The output folder relative to the project ("" for the project itself); None when outside it.
    folder = out[cut:] if out.startswith(prefix) else None
    file_names = JsonPieces(as_object=False)  # every file, relative to the project
    file_stamps = JsonPieces(as_object=False)  # and its stamp, flat: size, mtime_ns, inode, size...
    # Per asset table, by the hash of its text, its record (see ``_partial``); the common table (``_simple``)
    # by its target alone, in two lists. A table of several targets (``count``) is gathered before it is
    # encoded.
    tables: JsonPieces | None = JsonPieces(as_object=True)
    common = JsonPieces(as_object=False)  # hashes of the common tables
    common_targets = JsonPieces(as_object=False)  # and their targets
    gathered: dict[str, list[Any]] = {}
    seen: set[str] = set()
    hashed = bool(in_locks)
    items = iter(project.assets.items())
    while batch := list(itertools.islice(items, JsonPieces.BATCH)):
        # The stamp each target had when this run hashed or wrote it: a file changed since has another
        # stamp, which the next run sees (no stat here: 10,000 of them are most of a record).
        # Each file is looked up by its name spelled from the output folder (the name a plan that hashes
        # names rather than Paths uses); one the run verified by another spelling (its Path's: another
        # platform's separators) is looked up by that. A name is only ever matched exactly, so the stamp
        # taken is always the one of the very file named.
        texts = [out + target if asset.output_dir is output_dir else str(asset.path) for target, asset in batch]
        stamps: list[Any] = list(map(verified.get, texts))
        if None in stamps:
            for at, (_target, asset) in enumerate(batch):
                if stamps[at] is None:
                    texts[at] = str(asset.path)
                    stamps[at] = verified.get(texts[at])
                    if stamps[at] is None:
                        return  # not checked by this run: not a proven no-op state
        # Inside the project (the manifest's rules): relpath only in case one is not.
        names = [text[cut:] if text.startswith(prefix) else os.path.relpath(text, root) for text in texts]
        del texts
        seen.update(names)
        file_names.extend(names)
        file_stamps.extend(list(itertools.chain.from_iterable(stamps)))
        del stamps
        if tables is None:
            if not any(asset.inputs for _target, asset in batch):
                continue
            rest = [(target, asset, name) for (target, asset), name in zip(batch, names, strict=True)]
        elif placeholder and folder is not None:
            rest = []
            simples: list[str] = []
            simple_targets: list[str] = []
            for (target, asset), name in zip(batch, names, strict=True):
                if (asset.inputs or asset.source or target in in_locks or written_of.get(target) != target
                        or name != folder + target or (text_hash := table_hashes.get(target)) is None):
                    rest.append((target, asset, name))
                else:
                    simples.append(text_hash)  # the common table (``_simple``)
                    simple_targets.append(target)
            common.extend(simples)
            common_targets.extend(simple_targets)
            del simples, simple_targets
        else:
            rest = [(target, asset, name) for (target, asset), name in zip(batch, names, strict=True)]
        del batch, names
        records: list[tuple[str, Any]] = []
        for target, asset, name in rest:
            names = [name]
            references: list[str] = []
            for image in asset.inputs:
                text = str(image.path)
                input_name = text[cut:] if text.startswith(prefix) else os.path.relpath(text, root)
                names.append(input_name)
                if input_name not in seen:
                    seen.add(input_name)
                    stamp = verified.get(text)
                    if stamp is None:
                        return
                    file_names.add(input_name)
                    file_stamps.extend(stamp)
                references.append(image.reference)
            if asset.source:
                references.append(asset.source)
            if tables is None:
                continue
            written = written_of.get(target)
            if written is None or (text_hash := table_hashes.get(written)) is None:
                tables = None  # a table's text is not known (the file was read as a whole): no records
                continue
            in_lock = in_locks.get(target, _NO_HASHES)
            pairs = [[ref, value] for ref, value in sorted(in_lock.items())]
            # The placeholder records no model hashes: a model without one is the rule there, never a gap.
            unhashed = not (placeholder or asset.source) and _lacks_hash(asset.params, in_lock)
            if written == target:  # a table of this one target: encoded now
                record = [written, [target], names, references, pairs, unhashed]
                if _simple(record, folder):
                    common.add(text_hash)
                    common_targets.add(target)
                else:
                    records.append((text_hash, record))
                continue
            known = gathered.get(text_hash)
            if known is None:
                gathered[text_hash] = [written, [target], names, references, pairs, unhashed]
                continue
            known[1].append(target)
            known[2].extend(name for name in names if name not in known[2])
            known[3].extend(references)
            known[4].extend(pair for pair in pairs if pair not in known[4])
            known[5] = known[5] or unhashed
        if tables is not None:
            tables.extend(records)
        del rest, records
    count = len(project.assets)
    global_hash = partial.global_hash if partial else project.global_hash
    if partial is not None:  # the files of the tables proven fresh, with the stamps that proved it
        if seen.isdisjoint(partial.files):
            file_names.extend(partial.files)
            file_stamps.extend(partial.file_stamps)
        else:
            for at, name in enumerate(partial.files):
                if name not in seen:
                    file_names.add(name)
                    file_stamps.extend(partial.file_stamps[3 * at:3 * at + 3])
        gathered.update(partial.fresh_tables)
        common.extend(list(partial.fresh_common))
        common_targets.extend(list(partial.fresh_common.values()))
        count += len(partial.fresh_targets)
        hashed = hashed or bool(partial.model_pairs)
    del seen
    if tables is not None:
        for text_hash, known in gathered.items():
            if _simple(known, folder):
                common.add(text_hash)
                common_targets.add(known[0])
            else:
                tables.add((text_hash, known))
    del gathered
    try:
        memo = {
            "format": FORMAT,
            "context": ctx,
            # What was loaded (a manifest edited during the build is not what this memo proves fresh).
            "manifest": project.text_hash or hash_file(project.manifest),
            "lock": hash_file(project.lock_path),
            "count": count,
            "warnings": project.warnings,
            "orphans": orphans,
            "hashed": hashed,
        }
    except OSError:
        return
    tmp_dir = project.state_dir / "tmp"
    with contextlib.suppress(OSError):
        # Not synced: after a power loss an old or empty memo only means a full plan (see ``check``).
        if tables is not None and (tables.count or common.count) and global_hash:
            head = {"of": _serial(memo), "global": global_hash, "folder": folder or ""}  # (None: no common table)
            atomic_write(_tables_path(project.manifest), json_document(
                head, {"common": common, "common_targets": common_targets, "tables": tables}),
                         tmp_dir=tmp_dir, sync=False)
        else:
            _tables_path(project.manifest).unlink(missing_ok=True)
        del tables, common, common_targets
        atomic_write(_memo_path(project.manifest), json_document(memo, {"files": file_names, "stamps": file_stamps}),
                     tmp_dir=tmp_dir, sync=False)


_NO_HASHES: dict[str, str] = {}  # never changed


def _lacks_hash(params: dict[str, Any], in_lock: dict[str, str]) -> bool:
    """Whether a model the parameters name has no hash in the lock entry."""
    from .servercheck import model_refs  # (~4 ms of imports the placeholder never needs)

    return any(ref not in in_lock for ref, _subtype, _name in model_refs(params))


def _simple(known: list[Any], folder: str | None) -> bool:
    """Whether a table's record is the common one: [target, [target], [folder + target], [], [], False]."""
    written = known[0]
    return (folder is not None and known[1] == [written] and known[2] == [folder + written] and not known[3]
            and not known[4] and not known[5])


def forget(manifest: Path) -> None:
    with contextlib.suppress(OSError):
        _memo_path(manifest).unlink()
    with contextlib.suppress(OSError):
        _tables_path(manifest).unlink()


def report(events: BuildEvents, memo: Memo) -> int:
    """Report a build the memo proved fresh, like any other no-op build."""
    from .events import Summary

    for warning in memo.warnings:
        events.warning(warning)
    events.run_started(memo.count, 0)
    events.run_finished(Summary(fresh=memo.count, orphans=memo.orphans))
    return 0
