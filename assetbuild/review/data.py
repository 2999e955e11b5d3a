"""What the review page shows, collected from the manifest, the lock, the plan, the files and git.

Pure data, no rendering: a ``Review`` holds one ``Card`` per asset (and per removed or orphaned entry),
with the asset's state, its resolved prompt and what made it, the image on disk and, with ``--since``,
the image and lock entry at that ref, the change group and the field diff exactly as ``why`` shows it.
Images are named by content hash; ``thumbs`` turns them into files of the site.
"""

from __future__ import annotations

import io
import json
import posixpath
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ManifestError, UsageError
from ..keys import hash_bytes
from ..lock import LockEntry
from ..manifest import Asset, inside
from ..plan import State, Status, explain
from ..workspace import Workspace
from . import git

STATES = ("fresh", "stale", "missing", "modified", "orphan", "removed")
CHANGES = ("changed", "new", "removed", "unchanged")


@dataclass(frozen=True)
class ImageRef:
    """One image the page shows: its content hash, its file extension, and where its bytes are."""

    hash: str
    ext: str  # ".png", ".webp", ...
    size: int  # bytes
    path: Path | None = None  # a file in the project ...
    data: bytes | None = None  # ... or bytes read from git or the cache

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()


@dataclass
class Card:
    target: str
    state: str  # one of STATES
    label: str  # the planner's own words, e.g. "stale (restore from cache)"
    reason: str
    prompt: str = ""
    negativeprompt: str = ""
    model: str | None = None
    seed: int | None = None  # the seed actually used (from the lock)
    generator: str | None = None
    key: str | None = None
    source: str | None = None  # a derived asset's upstream
    variant_of: str | None = None  # "trees/oak_{n}.png" for the variants of one `count = N` entry
    why: list[str] = field(default_factory=list)
    image: ImageRef | None = None
    # With --since:
    change: str | None = None  # one of CHANGES
    before: ImageRef | None = None
    before_key: str | None = None
    form: dict[str, Any] | None = field(default=None, repr=False)  # the canonical form today (for diffs)

    @property
    def folder(self) -> str:
        return posixpath.dirname(self.target)

    def text(self) -> str:
        """What the text filter searches."""
        return " ".join(str(v) for v in (self.target, self.state, self.prompt, self.negativeprompt, self.model,
                                         self.seed, self.generator, self.key, self.source) if v).lower()


@dataclass
class Review:
    project: str  # the project folder's name
    cards: list[Card]
    since: str | None = None  # the ref as given
    since_commit: str | None = None
    warnings: list[str] = field(default_factory=list)

    def state_counts(self) -> dict[str, int]:
        counts = Counter(card.state for card in self.cards)
        return {state: counts[state] for state in STATES if counts[state]}

    def change_counts(self) -> dict[str, int]:
        counts = Counter(card.change for card in self.cards if card.change)
        return {change: counts[change] for change in CHANGES}

    def group(self, change: str) -> list[Card]:
        return [card for card in self.cards if card.change == change]

    def images(self) -> list[ImageRef]:
        """Every distinct image the page shows (current and before)."""
        seen: dict[str, ImageRef] = {}
        for card in self.cards:
            for ref in (card.image, card.before):
                if ref is not None and ref.hash not in seen:
                    seen[ref.hash] = ref
        return list(seen.values())

    def pairs(self) -> list[tuple[str, str]]:
        """(before, after) image hashes of the changed assets whose pixels are compared."""
        return sorted({(c.before.hash, c.image.hash) for c in self.cards
                       if c.change == "changed" and c.before is not None and c.image is not None})


def state_name(status: Status, exists: bool) -> str:
    if status.state in (State.FRESH, State.ADOPT):
        return "fresh"
    if status.state is State.MODIFIED:
        return "modified"
    if status.state is State.ORPHAN:
        return "orphan"
    return "stale" if exists else "missing"


def why_lines(ws: Workspace, status: Status, known: dict[str, Status] | None = None) -> list[str]:
    """``assetbuild why TARGET`` for one asset, line by line (without its heading line). ``known``: the
    statuses already planned, so an asset waiting for its upstream does not plan the project again."""
    from ..commands.status import _explain_status

    if status.state is State.FRESH:
        return []
    if status.state is State.UPSTREAM and known is not None:  # the same line `why` writes, from `known`
        asset = ws.project.assets[status.target]
        ups = [known[t] for t in asset.upstream if t in known and known[t].state is not State.FRESH]
        return [f"{status.reason}: " + ", ".join(f"{s.target} ({s.state.value})" for s in ups)]
    out = io.StringIO()
    _explain_status(ws, status, out)
    return [line.strip() for line in out.getvalue().splitlines()[1:] if line.strip()]


def collect(ws: Workspace, targets: list[str], since: str | None = None) -> Review:
    """The cards of the selected assets (all when ``targets`` is empty) and, with ``since``, how each
    changed since that git ref."""
    from ..commands.select import select

    project = ws.project
    chosen = select(project, targets)
    known = {status.target: status for status in ws.planner.plan()}
    statuses = [known[target] for target in chosen]
    if not targets:
        statuses += ws.planner.orphans()
    cards = [_card(ws, status, known) for status in statuses]
    review = Review(project.root.name, cards)
    if since is not None:
        _compare(ws, review, since, targets)
    return review


def _card(ws: Workspace, status: Status, known: dict[str, Status]) -> Card:
    project = ws.project
    asset = project.assets.get(status.target)
    entry = status.entry
    image = _file_image(ws, project.target_path(status.target))
    form = status.form or (entry.inputs if entry is not None else {})
    params = asset.params if asset is not None else dict(form.get("params", {}))
    card = Card(
        target=status.target,
        state=state_name(status, image is not None),
        label=status.state.value,
        reason=status.reason,
        prompt=str(params.get("prompt") or ""),
        negativeprompt=str(params.get("negativeprompt") or ""),
        model=(entry.model if entry is not None and entry.model else None) or _str(params.get("model")),
        seed=entry.seed if entry is not None else None,
        generator=_str(form.get("generator")),
        key=status.key or (entry.key if entry is not None else None),
        source=asset.source if asset is not None else None,
        variant_of=(ws.project.tables.get(asset.target) or _variant_of(asset)
                    if asset is not None and asset.variant is not None else None),
        image=image,
        form=status.form,
    )
    if status.state is not State.ORPHAN:
        card.why = why_lines(ws, status, known)
    return card


def _str(value: Any) -> str | None:
    return str(value) if value is not None else None


def _file_image(ws: Workspace, path: Path) -> ImageRef | None:
    try:
        digest = ws.hashes.hash(path)
        if digest is None:
            return None
        size = path.stat().st_size
    except OSError:  # a folder where the image should be, unreadable: nothing to show
        return None
    return ImageRef(digest, path.suffix.lower() or ".png", size, path=path)


def _variant_of(asset: Asset) -> str | None:
    """The `count = N` entry a variant comes from ("trees/oak_{n}.png"), for grouping, when the manifest's
    table key as written is not known: the variant number put back as ``{n}``."""
    if asset.variant is None:
        return None
    folder, name = posixpath.split(asset.target)
    number = str(asset.variant)
    at = name.rfind(number)
    if at < 0:
        return None
    return posixpath.join(folder, name[:at] + "{n}" + name[at + len(number):])


# --- --since REF ---------------------------------------------------------------------------------------


def _compare(ws: Workspace, review: Review, since: str, targets: list[str]) -> None:
    import fnmatch

    project = ws.project
    commit = git.resolve(project.root, since)
    top = git.toplevel(project.root)
    assert top is not None  # resolve() checked
    review.since, review.since_commit = since, commit
    lock_at = git.repo_path(top, project.lock_path)
    old = _lock_entries(git.read_at(top, commit, [lock_at]).get(lock_at or ""), since) if lock_at else {}
    old = {t: e for t, e in old.items() if _valid_target(ws, t, since, review.warnings)}

    by_target = {card.target: card for card in review.cards}
    for target, entry in old.items():
        if target in by_target:
            continue
        if targets and not any(t == target or fnmatch.fnmatchcase(target, t) for t in targets):
            continue
        params = entry.inputs.get("params", {})
        card = Card(target=target, state="removed", label="removed", reason="not in the manifest or the lock",
                    prompt=str(params.get("prompt") or ""), negativeprompt=str(params.get("negativeprompt") or ""),
                    model=entry.model or _str(params.get("model")), seed=entry.seed,
                    generator=_str(entry.inputs.get("generator")), key=entry.key)
        review.cards.append(card)
        by_target[target] = card

    # Only images whose bytes differ from today's are read at REF.
    wanted: dict[str, str] = {}
    for target, card in by_target.items():
        was = old.get(target)
        if was is None and card.state == "orphan":  # added and removed again since REF, never cleaned
            card.change = "removed"
            continue
        if was is None:
            card.change = "new"
            card.why = ["new since " + since]
            continue
        card.before_key = was.key
        if card.image is not None and card.image.hash == was.hash:
            card.before = card.image
        else:
            path = git.repo_path(top, project.target_path(target))
            if path is not None:
                wanted[target] = path
        if card.state in ("removed", "orphan"):
            card.change = "removed"
            continue
        unchanged = was.key == card.key and card.image is not None and card.image.hash == was.hash
        card.change = "unchanged" if unchanged else "changed"
        if not unchanged:
            asset = project.assets.get(target)
            current = _current_form(ws, asset, card.form) if asset is not None else None
            card.why = explain(was.inputs, current) if current is not None else card.why
            if not card.why and card.image is not None and card.image.hash != was.hash:
                card.why = ["the image changed (same inputs)"]

    blobs = git.read_at(top, commit, wanted.values())
    for target, path in wanted.items():
        card, entry = by_target[target], old[target]
        data = blobs.get(path)
        if data is None:  # images not committed: the cache may hold the REF lock's image by its key
            data = _cached(ws, entry.key)
        if data is not None:
            card.before = ImageRef(hash_bytes(data), posixpath.splitext(target)[1].lower() or ".png", len(data),
                                   data=data)


def _current_form(ws: Workspace, asset: Asset, status_form: dict[str, Any] | None) -> dict[str, Any] | None:
    """The canonical form of the asset as the manifest says today (for the field diff). An asset waiting
    for its upstream has none yet: its inputs as they are on disk now stand in."""
    if status_form is not None:
        return status_form
    from ..keys import canonical

    try:
        inputs = ws.planner.input_hashes(asset)
    except OSError:
        inputs = None
    if inputs is None:
        entry = ws.lock.get(asset.target)
        return entry.inputs if entry is not None else None
    return canonical(asset, ws.kind, inputs)


def _cached(ws: Workspace, key: str) -> bytes | None:
    try:
        hit = ws.cache.get(key)
    except Exception:  # a damaged entry is removed by the cache; nothing to show
        return None
    return hit.data if hit is not None else None


def _lock_entries(raw: bytes | None, since: str) -> dict[str, LockEntry]:
    if raw is None:
        return {}  # no lock at REF: everything is new
    try:
        data = json.loads(raw.decode("utf-8"))
        return {str(t): LockEntry.from_json(e) for t, e in data.get("assets", {}).items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"--since {since}: assets.lock there is not valid ({exc})",
                         hint="compare with another ref") from None


def _valid_target(ws: Workspace, target: str, since: str, warnings: list[str]) -> bool:
    """A lock entry at REF names a path inside the project (the lock came through git like any file)."""
    project = ws.project
    try:
        ok = inside(project.output_dir, target, "assets.lock", "entry", root=project.root) == target
    except ManifestError:
        ok = False
    if not ok:
        warnings.append(f"assets.lock at {since}: entry {target!r} is not a path inside the project; skipped")
    return ok
