"""Reading an assets.lock that a merge left with both sides of a conflict.

After a merge, git may leave conflict markers in assets.lock. Deleting the file would make every
committed image look hand-made ("modified"), and taking one side loses the other side's entries. So
assetbuild keeps both sides: ``sides_of_conflict`` splits git's markers into the two whole files (each
valid JSON), and every entry of either side becomes a candidate. If the markers were already deleted
with both sides kept (an editor's "accept both"), ``read_both_sides`` reads that text tolerantly (commas
optional, a field twice: its first and its last occurrence are the two sides).

The planner then keeps, for each asset, the candidate whose hash matches the image on disk (the image
the user chose when resolving the images), and the next build rewrites the lock as clean JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

_MARKER = re.compile(r"^(<{7}|={7}|>{7}|\|{7})( |$)", re.MULTILINE)
_MARKER_TEXTS = ("<" * 7, "=" * 7, ">" * 7, "|" * 7)  # what _MARKER needs in the text to match at all
_SPACE = " \t\r\n"


def conflict_line(text: str) -> int | None:
    """The line number of the first merge-conflict marker, or None."""
    # A plain search for each marker's characters first: at a line start or not, a lock without any of them
    # (nearly every lock) is done in ~1 ms, where the regular expression took ~30 ms at 10,000 entries.
    if not any(marker in text for marker in _MARKER_TEXTS):
        return None
    found = _MARKER.search(text)
    return text.count("\n", 0, found.start()) + 1 if found else None


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as read here: every (name, value) pair in order, duplicates included."""


_ENTRY_START = re.compile(r'^    ("(?:[^"\\]|\\.)*"): \{\s*$')
_ENTRY_END = re.compile(r"^    \},?\s*$")


def sides_of_conflict(text: str) -> tuple[str, str]:
    """Ours and theirs: the text with each conflict replaced by one side (diff3's base section dropped).
    Each is a whole lock file as that branch wrote it."""
    ours: list[str] = []
    theirs: list[str] = []
    section = None  # None outside a conflict; else "ours", "base" or "theirs"
    for line in text.splitlines(keepends=True):
        marker = _MARKER.match(line)
        if marker and marker.group(1).startswith("<") and section is None:
            section = "ours"
        elif marker and marker.group(1).startswith("|") and section == "ours":
            section = "base"
        elif marker and marker.group(1).startswith("=") and section in ("ours", "base"):
            section = "theirs"
        elif marker and marker.group(1).startswith(">") and section == "theirs":
            section = None
        else:
            if section in (None, "ours"):
                ours.append(line)
            if section in (None, "theirs"):
                theirs.append(line)
    if section is not None:
        raise ValueError("a conflict is not closed (no >>>>>>> line)")
    return "".join(ours), "".join(theirs)


def read_both_sides(text: str) -> dict[str, list[dict[str, Any]]]:
    """Candidate entries per target from a lock text with both sides of a conflict kept. ValueError if
    even this cannot read it.

    The lock's own layout is relied on (assetbuild writes every entry as ``    "target": {`` ... ``    }``
    at four spaces), not JSON's structure: git's conflict hunks cut across braces and commas, so after
    keeping both sides the braces no longer pair up, but every entry's lines are still whole.
    """
    candidates: dict[str, list[dict[str, Any]]] = {}
    target: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        start = _ENTRY_START.match(line)
        if start:
            if target is not None:  # an entry cut off by the other side's lines: read what it has
                _add(candidates, target, body)
            target, body = json.loads(start.group(1)), []
        elif target is not None and _ENTRY_END.match(line):
            _add(candidates, target, body)
            target, body = None, []
        elif target is not None:
            body.append(line)
    if target is not None:
        _add(candidates, target, body)
    if not candidates:
        raise ValueError("no entries found")
    return candidates


def _add(candidates: dict[str, list[dict[str, Any]]], target: str, body: list[str]) -> None:
    value, end = _value("{" + "\n".join(body) + "}", 0)
    assert isinstance(value, _Pairs)
    for first in (True, False):
        side = _side(value, first=first)
        known = candidates.setdefault(target, [])
        if side not in known:
            known.append(side)


def _side(value: Any, *, first: bool) -> Any:
    """One side of a value: for each repeated name, its first (ours) or last (theirs) occurrence."""
    if isinstance(value, _Pairs):
        chosen: dict[str, Any] = {}
        for name, item in value:
            if first and name in chosen:
                continue
            chosen[name] = _side(item, first=first)
        return chosen
    if isinstance(value, list):
        return [_side(item, first=first) for item in value]
    return value


def _skip(text: str, i: int, commas: bool = False) -> int:
    while i < len(text) and (text[i] in _SPACE or (commas and text[i] == ",")):
        i += 1
    return i


_DECODER = json.JSONDecoder(parse_constant=lambda name: _refuse(name))


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _value(text: str, i: int, depth: int = 0) -> tuple[Any, int]:
    if depth > 64:
        raise ValueError("nested too deeply")
    if i >= len(text):
        raise ValueError("unexpected end")
    if text[i] == "{":
        pairs = _Pairs()
        i = _skip(text, i + 1, commas=True)
        while i < len(text) and text[i] != "}":
            name, i = _DECODER.raw_decode(text, i)
            if not isinstance(name, str):
                raise ValueError("an object's names must be strings")
            i = _skip(text, i)
            if i >= len(text) or text[i] != ":":
                raise ValueError(f"expected ':' at offset {i}")
            item, i = _value(text, _skip(text, i + 1), depth + 1)
            pairs.append((name, item))
            i = _skip(text, i, commas=True)
        if i >= len(text):
            raise ValueError("unexpected end")
        return pairs, i + 1
    if text[i] == "[":
        items: list[Any] = []
        i = _skip(text, i + 1, commas=True)
        while i < len(text) and text[i] != "]":
            item, i = _value(text, i, depth + 1)
            items.append(item)
            i = _skip(text, i, commas=True)
        if i >= len(text):
            raise ValueError("unexpected end")
        return items, i + 1
    return _DECODER.raw_decode(text, i)
