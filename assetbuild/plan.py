"""What each asset needs: fresh / restore from cache / generate / modified / orphan. Pure: no network.

An asset is fresh when its lock entry's key equals its current key and the file on disk still has the
recorded hash. An asset whose upstream (an image input or ``source``) is not fresh cannot know its key
yet: it is stale because of its upstream, and decided again once the upstream is built.
"""

from __future__ import annotations

import difflib
import enum
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cache import Cache
from .errors import ManifestError
from .fsutil import HashCache
from .gcpause import paused
from .intents import Intents
from .keys import canonical, key_of
from .lock import Lock, LockEntry
from .manifest import Asset, Project, inside


class State(enum.Enum):
    FRESH = "fresh"
    ADOPT = "fresh (record)"  # our bytes are on disk (from the cache) but the lock lost the entry
    RESTORE = "stale (restore from cache)"
    GENERATE = "stale (generate)"
    UPSTREAM = "stale (after upstream)"
    MODIFIED = "modified"
    ORPHAN = "orphan"

    @property
    def needs_work(self) -> bool:
        return self in (State.ADOPT, State.RESTORE, State.GENERATE, State.UPSTREAM)


@dataclass(frozen=True)
class Status:
    target: str
    state: State
    reason: str
    key: str | None = None
    form: dict[str, Any] | None = None
    entry: LockEntry | None = None
    on_disk: str | None = None  # hash of the file at the target when decided (None: no file)


class Planner:
    """Decides the state of assets from the manifest, the lock, the cache and the files on disk."""

    def __init__(self, project: Project, lock: Lock, cache: Cache, hashes: HashCache, kind: str,
                 *, force: bool = False, intents: Intents | None = None,
                 rebuild: Iterable[str] = ()) -> None:
        self.project = project
        self.intents = intents if intents is not None else Intents(project.state_dir / "intents.jsonl")
        self.lock = lock
        self.cache = cache
        self.hashes = hashes
        self.kind = kind
        self.force = force
        # Targets to generate again even when fresh or cached (``run --rebuild``, like ``make -B``). The
        # builder removes a target once it is rebuilt, so it is fresh again within the same run.
        self.rebuild: set[str] = set(rebuild)
        # The server's current model hashes by reference ("model:NAME" -> hash, None: not computed yet),
        # when it was asked (servercheck.verify); None offline: the lock's hashes are trusted.
        self.model_hashes: dict[str, str | None] | None = None
        self.model_changes = "rebuild"  # or "warn": a changed model hash keeps the asset fresh
        # Targets declared by asset tables that were not loaded, because the no-op memo proved them fresh
        # (``noop.Partial``): their lock entries are not orphans.
        self.declared_elsewhere: frozenset[str] = frozenset()

    def model_change(self, asset: Asset, entry: LockEntry | None) -> str | None:
        """``model hash: 3f2a… -> 9c1d…`` when a model that made ``entry``'s image has another hash on the
        server now; None when nothing changed or nothing is known (no hash on either side)."""
        if self.model_hashes is None or entry is None or not entry.model_hashes or asset.source:
            return None
        from .servercheck import models_changed

        changes = models_changed(self.model_hashes, entry.model_hashes.items())
        return changes[0] if changes else None

    def input_hashes(self, asset: Asset) -> dict[str, str] | None:
        """Hashes of the asset's image inputs as they are on disk now (None if one is missing)."""
        hashes: dict[str, str] = {}
        for image in asset.inputs:
            digest = self.hashes.hash(image.path)
            if digest is None:
                return None
            hashes[image.param] = digest
        if asset.source:
            digest = self.hashes.hash(self.project.target_path(asset.source))
            if digest is None:
                return None
            hashes["source"] = digest
        return hashes

    def status(self, asset: Asset, upstream_fresh: bool = True) -> Status:
        """The state of one asset. ``upstream_fresh`` False means an upstream will change first."""
        target = asset.target
        entry = self.lock.get(target)
        if not upstream_fresh:
            return Status(target, State.UPSTREAM, "an input asset is stale", entry=entry)
        if asset.inputs or asset.source:
            try:
                inputs = self.input_hashes(asset)
            except OSError as exc:
                return Status(target, State.UPSTREAM, f"an input image cannot be read ({exc.strerror})", entry=entry)
            if inputs is None:
                return Status(target, State.UPSTREAM, "an input image is missing", entry=entry)
        else:
            inputs = {}
        form = canonical(asset, self.kind, inputs)
        key = key_of(form)
        try:
            on_disk = self.hashes.hash_name(_file_name(asset))
        except OSError as exc:  # e.g. a folder where the image should be
            return Status(target, State.MODIFIED, f"not a readable file ({exc.strerror})", key, form, entry)

        if on_disk is not None and (entry is None or entry.hash != on_disk):
            # Both sides of a merge conflict in the lock: the one that matches the image on disk is ours.
            entry = self.lock.choose(target, on_disk) or entry

        changed = self.model_change(asset, entry)
        if (entry is not None and on_disk == entry.hash and entry.key == key and target not in self.rebuild
                and not (changed and self.model_changes == "rebuild")):
            # The common answer, decided first (the checks below come to it by the same conditions).
            return Status(target, State.FRESH, "", key, form, entry, on_disk)
        return self._not_fresh(asset, key, form, entry, on_disk, changed)

    def _not_fresh(self, asset: Asset, key: str, form: dict[str, Any], entry: LockEntry | None,
                   on_disk: str | None, changed: str | None) -> Status:
        """``status`` of an asset that is not simply fresh (its key, canonical form, lock entry, the hash of
        its file and a change of model as ``status`` found them)."""
        target = asset.target

        def stale(reason: str) -> Status:
            # The cache holds images by key, and a model file replaced on the server does not change keys:
            # an image made with the old file must not come back.
            state = State.RESTORE if self.cache.has(key) and not changed else State.GENERATE
            return Status(target, state, reason, key, form, entry, on_disk)

        if target in self.rebuild:
            # Generated again, bypassing the cache; a hand-made or edited file is still only replaced with
            # --force (the checks below decide MODIFIED first).
            ours = (on_disk is None or (entry is not None and on_disk == entry.hash)
                    or self._cached_hash(key) == on_disk or self.intents.ours(target, on_disk) or self.force)
            if ours:
                return Status(target, State.GENERATE, "--rebuild requested", key, form, entry, on_disk)

        if on_disk is None:
            if entry is None:
                return stale("new")
            return stale("file missing" if entry.key == key else _inputs_changed(entry, form))
        if entry is not None and on_disk == entry.hash:
            if entry.key == key:
                if changed and self.model_changes == "rebuild":
                    return stale(changed)
                return Status(target, State.FRESH, "", key, form, entry, on_disk)
            return stale(_inputs_changed(entry, form))
        # Our bytes for the current key with no (or an older) lock entry: a run was stopped between
        # writing the file and committing the lock. Only the entry needs recording.
        if self._cached_hash(key) == on_disk:
            reason = "file matches the cache; lock entry " + ("missing" if entry is None else "outdated")
            return Status(target, State.ADOPT, reason, key, form, entry, on_disk)
        if self.intents.made_for(target, on_disk, key) is not None:  # the cache lost it (a power loss)
            reason = "file written for these inputs by an interrupted run; lock entry " + (
                "missing" if entry is None else "outdated")
            return Status(target, State.ADOPT, reason, key, form, entry, on_disk)
        if self.intents.ours(target, on_disk):
            return stale("left by an interrupted run")
        if self.force:
            return stale("replacing a modified file (--force)")
        reason = ("not written by assetbuild (no lock entry)" if entry is None
                  else "edited after assetbuild wrote it")
        return Status(target, State.MODIFIED, reason, key, form, entry, on_disk)

    def identity(self, asset: Asset) -> tuple[str, dict[str, Any]] | None:
        """The key and canonical form of ``asset`` from its inputs as they are on disk now; None when an
        input image is missing. ``asset`` need not be in the manifest (e.g. a candidate with another seed)."""
        inputs = self.input_hashes(asset)
        if inputs is None:
            return None
        form = canonical(asset, self.kind, inputs)
        return key_of(form), form

    def _cached_hash(self, key: str) -> str | None:
        try:
            hit = self.cache.get(key)
        except Exception:  # a damaged entry cannot vouch for anything
            return None
        return hit.hash if hit else None

    def plan(self, targets: Iterable[str] | None = None) -> list[Status]:
        """States of the given assets (default all) in dependency order."""
        wanted = set(targets) if targets is not None else set(self.project.assets)
        states: dict[str, Status] = {}
        with paused():  # one status per asset, no garbage cycles (see gcpause)
            for target, asset in self.project.assets.items():
                # Dependency order guarantees every upstream was decided already.
                fresh_up = not (asset.inputs or asset.source) or all(
                    states[up].state in (State.FRESH, State.ADOPT) for up in asset.upstream)
                states[target] = self.status(asset, fresh_up)
        return [states[t] for t in self.project.assets if t in wanted]

    def orphans(self) -> list[Status]:
        """Lock entries for targets no longer in the manifest (their files are ours to clean)."""
        result = []
        for target in self.lock.targets():
            if target in self.project.assets or target in self.declared_elsewhere:
                continue
            self._check_entry_path(target)
            entry = self.lock.get(target)
            assert entry is not None
            try:
                on_disk = self.hashes.hash(self.project.target_path(target))
            except OSError:
                on_disk = ""  # unreadable (a folder?): never equal to the entry, so it is kept
            if on_disk is None:
                reason = "file already gone"
            elif on_disk == entry.hash:
                reason = "entry removed from the manifest"
            else:
                reason = "entry removed from the manifest; file edited since (kept)"
            result.append(Status(target, State.ORPHAN, reason, entry.key, None, entry))
        return result


    def _check_entry_path(self, target: str) -> None:
        """assets.lock arrives through git like any file: an entry naming a path outside the project must
        never lead ``clean`` there."""
        lock_name = str(self.lock.path)
        try:
            normalised = inside(self.project.output_dir, target, lock_name, "entry", root=self.project.root)
        except ManifestError:
            raise ManifestError(lock_name, f"entry {target!r} is not a path inside the project",
                                hint="restore assets.lock from git, or remove that entry") from None
        if normalised != target:
            raise ManifestError(lock_name, f"entry {target!r} is not a normalised target path (expected "
                                f"{normalised!r})", hint="restore assets.lock from git, or remove that entry")


def _file_name(asset: Asset) -> str:
    """``str(asset.path)``, spelled without making the Path when the target is a plain relative path (no
    empty, ``.`` or ``..`` part, no leading or trailing ``/``: what the manifest's targets are) and the
    separator is ``/``. A plan stats every target, and a Path made for each cost as much as the stat (the
    no-op memo's record spells the names the same way, so neither makes them)."""
    target = asset.target
    if (_PLAIN_SEPARATOR and target and target[0] not in "./" and target[-1] != "/" and "//" not in target
            and "/." not in target):
        folder = str(asset.output_dir)
        if folder[-1] != "/" and folder != ".":
            return f"{folder}/{target}"
    return str(asset.path)


_PLAIN_SEPARATOR = os.sep == "/" and os.altsep is None


def _inputs_changed(entry: LockEntry, form: dict[str, Any]) -> str:
    """Why a built asset's key changed; a switch of generator (``--server placeholder`` once, SwarmUI now)
    is named, since it makes every asset stale at once and the fields alone do not show it."""
    before, after = entry.inputs.get("generator"), form.get("generator")
    if before != after:
        return f"built by the {before} generator; the server setting now selects {after}"
    return "inputs changed"


def closure(project: Project, targets: Iterable[str]) -> list[str]:
    """``targets`` plus every asset they depend on, in dependency order."""
    needed: set[str] = set()
    stack = list(targets)
    while stack:
        target = stack.pop()
        if target in needed:
            continue
        needed.add(target)
        stack.extend(project.assets[target].upstream)
    return [t for t in project.assets if t in needed]


def modified_hint(path: Path) -> str:
    """What to do about a file in the way at a target. A folder there is never replaced (--force neither)."""
    if path.is_dir():
        return f"a folder is in the way at {path}: move or rename it (assetbuild never deletes folders)"
    return "move the file away, or rerun with --force to replace it"


def explain(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human lines saying which fields differ between two canonical forms (for ``why``)."""
    lines: list[str] = []
    if old.get("v") != new.get("v"):
        lines.append(f"key format: {old.get('v')} -> {new.get('v')} (assetbuild upgrade)")
    if old.get("generator") != new.get("generator"):
        lines.append(f"generator: {old.get('generator')} -> {new.get('generator')}")
    lines += _dict_changes("", old.get("params", {}), new.get("params", {}))
    lines += _dict_changes("input ", old.get("inputs", {}), new.get("inputs", {}), hashes=True)
    lines += _dict_changes("post ", old.get("post", {}), new.get("post", {}))
    return lines


def _dict_changes(prefix: str, old: dict[str, Any], new: dict[str, Any], hashes: bool = False) -> list[str]:
    lines = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        if name in ("prompt", "negativeprompt") and isinstance(before, str) and isinstance(after, str):
            lines.append(f"{prefix}{name}: {_word_diff(before, after)}")
        elif hashes:
            what = "added" if before is None else "removed" if after is None else "bytes changed"
            lines.append(f"{prefix}{name}: {what}")
        else:
            lines.append(f"{prefix}{name}: {_show(before)} -> {_show(after)}")
    return lines


def _show(value: Any) -> str:
    return "(unset)" if value is None else repr(value) if isinstance(value, str) else str(value)


def _word_diff(before: str, after: str) -> str:
    """A compact word diff: ``[-removed-]`` and ``{+added+}``, like git's --word-diff."""
    a, b = before.split(), after.split()
    parts: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            parts.extend(a[i1:i2])
            continue
        if i2 > i1:
            parts.append("[-" + " ".join(a[i1:i2]) + "-]")
        if j2 > j1:
            parts.append("{+" + " ".join(b[j1:j2]) + "+}")
    return " ".join(parts)
