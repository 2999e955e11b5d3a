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

import re
from dataclasses import dataclass

_ANY_HEADER = re.compile(r"^[ \t]*\[", re.MULTILINE)
_ASSET_HEADER = re.compile(r"""[ \t]*\[[ \t]*assets[ \t]*\.[ \t]*"""  # [assets.NAME] with NAME one key:
                           r"""(?:"(?:[^"\\\r\n]|\\.)*"|'[^'\r\n]*'|[A-Za-z0-9_-]+)"""  # "basic", 'literal' or bare
                           r"""[ \t]*\][ \t]*(?:\#[^\n]*)?\r?\n""")  # then only a comment


@dataclass(frozen=True)
class Piece:
    text: str  # the header line and the lines up to the next header
    line: int  # 1-based line of the header


@dataclass(frozen=True)
class Sections:
    global_pieces: list[Piece]  # in file order; the first may be the lines before any header (line 1)
    assets: list[Piece]  # asset tables, in file order


def split(text: str) -> Sections:
    """``text`` cut before every line that starts with ``[``."""
    starts = [match.start() for match in _ANY_HEADER.finditer(text)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    starts.append(len(text))
    global_pieces: list[Piece] = []
    assets: list[Piece] = []
    line = 1
    for begin, end in zip(starts, starts[1:], strict=False):
        piece = Piece(text[begin:end], line)
        line += piece.text.count("\n")
        if _ASSET_HEADER.match(piece.text):
            assets.append(piece)
        elif piece.text:
            global_pieces.append(piece)
    return Sections(global_pieces, assets)
