"""assets.toml cut into its tables as text, so that an unchanged asset table need not be parsed again.

Every line that begins (after blanks) with ``[`` starts a new piece. A piece whose header is one
``[assets."NAME"]`` table is an asset piece; everything else (the lines before the first header,
[project], [server], [defaults], [styles.*], and any header this does not recognise) is the global part.

This is a cut on the raw text, so it is only trusted when every piece parses as TOML on its own:
then each cut is a real table header (a cut inside a multi-line string or array leaves the piece
before it unterminated, which does not parse), and the document means what its pieces mean together.
The caller checks that (``loader``); anything unusual falls back to parsing the whole file.
"""

from __future__ import annotations

import itertools
import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import toml

# A line that begins (after blanks) with "[", and (group 1) the whole of it when it is an [assets.NAME]
# header: [assets.NAME] with NAME one key ("basic", 'literal' or bare), then only a comment.
_ASSET_HEADER = (r"""[ \t]*\[[ \t]*assets[ \t]*\.[ \t]*"""
                 r"""(?:"(?:[^"\\\r\n]|\\.)*"|'[^'\r\n]*'|[A-Za-z0-9_-]+)"""
                 r"""[ \t]*\][ \t]*(?:\#[^\n]*)?\r?\n""")
_FIRST_HEADER = re.compile(rf"(?=({_ASSET_HEADER})?)[ \t]*\[")  # at the start of the text
# After a newline: searching for the newline first is three times as fast as a multi-line "^".
_NEXT_HEADER = re.compile(rf"\n(?=({_ASSET_HEADER})?)[ \t]*\[")


class Piece(NamedTuple):
    text: str  # the header line and the lines up to the next header
    line: int  # 1-based line of the header


class AssetPieces:
    """The asset pieces of a text, in file order, each cut from it only when iterated to (a manifest of
    100,000 tables need not hold a second copy of its text as pieces)."""

    def __init__(self, text: str, bounds: array[int]) -> None:
        self._text = text
        self._bounds = bounds  # begin, end and header line of each piece, flat

    def __len__(self) -> int:
        return len(self._bounds) // 3

    def __iter__(self) -> Iterator[Piece]:
        text, bounds = self._text, self._bounds
        for n in range(0, len(bounds), 3):
            yield Piece(text[bounds[n]:bounds[n + 1]], bounds[n + 2])


@dataclass(frozen=True)
class Sections:
    global_pieces: list[Piece]  # in file order; the first may be the lines before any header (line 1)
    assets: AssetPieces  # asset tables, in file order


def split(text: str) -> Sections:
    """``text`` cut before every line that starts with ``[``."""
    global_pieces: list[Piece] = []
    bounds = array("q")
    line = 1
    begin = 0
    first = _FIRST_HEADER.match(text)
    asset = first is not None and first.group(1) is not None  # whether the piece at ``begin`` is an asset table
    count = text.count
    for match in itertools.chain(_NEXT_HEADER.finditer(text), (None,)):  # (None: the end of the text)
        end = match.start() + 1 if match is not None else len(text)
        if asset:
            bounds.extend((begin, end, line))
        elif end > begin:
            global_pieces.append(Piece(text[begin:end], line))
        line += count("\n", begin, end)
        begin = end
        asset = match is not None and match.group(1) is not None
    return Sections(global_pieces, AssetPieces(text, bounds))


def one_asset_table(text: str) -> tuple[str, dict[str, Any]] | None:
    """(name as written, values) when ``text`` (a piece) parses alone as exactly one [assets."NAME"] table,
    else None: the proof, for a piece read on its own, that its cut is a real header."""
    try:
        alone = toml.loads(text)
    except (toml.TOMLDecodeError, RecursionError):
        return None
    table = alone.get("assets")
    if list(alone) != ["assets"] or not isinstance(table, dict) or len(table) != 1:
        return None
    (written, values), = table.items()
    return (written, values) if isinstance(values, dict) else None
