"""Editing assets.toml in place: ``seed = S`` in one asset's table, every other byte kept.

tomlkit keeps comments, blank lines, key order and formatting. The edit is checked before it is written:
the edited text is loaded like any manifest and must differ from the original only in that asset's seed
(every other asset, setting and key unchanged); otherwise nothing is written and the user is told what
to change by hand. The file is replaced atomically and keeps its permissions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import params as P
from .errors import ManifestError, UsageError
from .fsutil import atomic_write
from .manifest import Asset, Project, load


@dataclass(frozen=True)
class SeedEdit:
    original: bytes
    text: str  # the new content
    table: str  # how the edited table is written, e.g. [assets."sprites/hero.png"]
    note: str | None  # what the new seed overrides, when it came from a style or [defaults]
    changed: bool  # False when the table already says seed = S


def _header(written: str) -> str:
    return f'[assets."{written}"]' if all(c not in written for c in '"\\') else f"[assets.{written!r}]"


def set_seed(project: Project, target: str, seed: int) -> SeedEdit:
    """The manifest text with ``seed = seed`` in ``target``'s own table. Raises ``UsageError`` (with what
    to do by hand) when that cannot be done safely."""
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    asset = project.assets[target]
    written = project.tables.get(target, target)
    header = _header(written)
    if asset.variant is not None:
        raise UsageError(
            f"{target} is variant {asset.variant} of {header} (`count` variants take seed, seed+1, ... from one "
            "table), so its seed cannot be pinned alone",
            hint=f"by hand: set `seed = {seed - asset.variant + 1}` in {header} (every variant's seed moves with "
                 f"it), or give {target} its own table with `seed = {seed}` and drop it from the group")
    path = project.manifest
    try:
        original = path.read_bytes()
        text = original.decode("utf-8")
        doc = tomlkit.parse(text)
    except (OSError, UnicodeDecodeError, TOMLKitError) as exc:
        raise ManifestError(str(path), f"cannot edit: {exc}", hint=f"add `seed = {seed}` to {header} by hand") from None
    try:
        table = doc["assets"][written]
    except (KeyError, TypeError, TOMLKitError):
        raise UsageError(f"cannot find {header} in {path}", hint=f"add `seed = {seed}` to it by hand") from None
    own = [key for key in table if P.normalise(str(key)) == "seed"]
    note = None if own else _origin(doc, table, header)
    if own:
        current = table[own[0]]
        changed = not (isinstance(current, int) and not isinstance(current, bool) and int(current) == seed)
        if changed:
            table[own[0]] = seed  # the key keeps its spelling, its place and its comment
    else:
        changed = True
        item = tomlkit.integer(seed)
        if "\r\n" in text:  # a new line ends like the file's other lines
            item.trivia.trail = "\r\n"
        _append(table, item)
    new_text = tomlkit.dumps(doc)
    if "\r\n" in text and "\n" not in text.replace("\r\n", ""):
        # A CRLF file stays CRLF: tomlkit ends the line it had to close (a file without a final newline)
        # with a bare LF.
        new_text = re.sub(r"(?<!\r)\n", "\r\n", new_text)
    if changed:
        _check(project, target, seed, new_text, header)
    return SeedEdit(original, new_text, header, note, changed)


def _append(table: Any, seed: Any) -> None:
    """Add ``seed`` after the table's last key: comments and blank lines that end the table stay below it."""
    from tomlkit.items import InlineTable

    if isinstance(table, InlineTable):
        table["seed"] = int(seed)  # `{ prompt = "...", seed = S }`
        return
    # tomlkit's public ``table[key] = value`` appends after the table's trailing comments and blank lines
    # (they belong to its body), which would glue the new line to the next table's header.
    container: Any = getattr(table, "value", None)
    body = getattr(container, "body", None)
    if body is not None:
        keyed = [i for i, (key, _item) in enumerate(body) if key is not None]
        if keyed and keyed[-1] + 1 < len(body):
            with contextlib.suppress(AttributeError, ValueError):  # a tomlkit without it: append instead
                container._insert_at(keyed[-1] + 1, "seed", seed)
                return
    table["seed"] = seed


def _origin(doc: Any, table: Any, header: str) -> str | None:
    """Where the asset's seed comes from today, when not from its own table."""
    style = next((table[k] for k in table if P.normalise(str(k)) == "style"), None)
    defaults = doc.get("defaults", {})
    if style is None:
        style = next((defaults[k] for k in defaults if P.normalise(str(k)) == "style"), None)
    styles = doc.get("styles", {})
    if isinstance(style, str) and style in styles and any(P.normalise(str(k)) == "seed" for k in styles[style]):
        return f"the seed of [styles.{style}] stays as it is; {header} now overrides it"
    if any(P.normalise(str(k)) == "seed" for k in defaults):
        return f"the seed in [defaults] stays as it is; {header} now overrides it"
    return None


def _comparable(asset: Asset) -> Asset:
    return dataclasses.replace(asset, line=None)  # tables after the edited one move down a line


def _check(project: Project, target: str, seed: int, new_text: str, header: str) -> None:
    """The edited manifest must load and differ from the loaded one only in ``target``'s seed."""
    by_hand = f"add `seed = {seed}` to {header} by hand"
    try:
        edited = load(project.manifest, text=new_text)
    except ManifestError as exc:
        raise UsageError(f"the edit would break {project.manifest.name} ({exc.message})", hint=by_hand) from None
    before = dict(project.assets)
    before[target] = dataclasses.replace(before[target], params={**before[target].params, "seed": seed})
    same = (list(edited.assets) == list(before)
            and all(_comparable(edited.assets[t]) == _comparable(before[t]) for t in before)
            and edited.server == dataclasses.replace(project.server, url=edited.server.url)
            and edited.output_dir == project.output_dir)
    if not same:
        raise UsageError(f"editing {project.manifest.name} would change more than the seed of {target}",
                         hint=by_hand)


def write(project: Project, edit: SeedEdit) -> None:
    """Replace the manifest with the edit, atomically, unless it changed since it was read."""
    path = project.manifest
    if path.is_symlink():
        raise UsageError(f"{path} is a symlink; not replacing it", hint=f"add the seed to {edit.table} by hand")
    try:
        now = path.read_bytes()
        mode = os.stat(path).st_mode & 0o7777
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if now != edit.original:
        raise UsageError(f"{path.name} changed while it was being edited; nothing written", hint="run pick again")
    atomic_write(Path(path), edit.text.encode("utf-8"), tmp_dir=project.state_dir / "tmp", mode=mode)
