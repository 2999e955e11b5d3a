"""Where in assets.toml a table or key is written, so that errors can name ``file:line``.

Best effort, on the raw text: tomllib gives values, not positions.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from .. import params as P


def line_from_message(message: str) -> int | None:
    """The line number in a TOML syntax error's message (``... (at line 3, column 7)``)."""
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None


class Locator:
    """Finds the line of a table or key in the manifest text, for messages (best effort).

    Table headers are indexed once (a manifest can have 10,000 assets); keys are looked up only within
    their table's lines.
    """

    def __init__(self, shown: str, text: str) -> None:
        self.shown = shown
        self._text = text

    @functools.cached_property
    def lines(self) -> list[str]:
        return self._text.splitlines()

    @functools.cached_property
    def headers(self) -> dict[tuple[str, ...], int]:
        """Dotted header parts -> 0-based line index. Made on first use: a load that finds no problem and
        reads every table from the memo (``memo``) never needs it."""
        headers: dict[tuple[str, ...], int] = {}
        for number, line in enumerate(self.lines):
            match = _HEADER.match(line)
            if match:
                parts = _split_dotted(match.group(1))
                if parts is not None:
                    headers.setdefault(parts, number)
        return headers

    def where(self, *path: str) -> str:
        line = self.line(*path)
        return f"{self.shown}:{line}" if line else self.shown

    def line(self, *path: str) -> int | None:
        """1-based line of ``path`` (section, [table name,] key), or of the nearest table found."""
        if not path:
            return None
        depth = 2 if len(path) >= 2 and path[0] in ("assets", "styles") and tuple(path[:2]) in self.headers else 1
        header = self.headers.get(tuple(path[:depth]))
        if header is None:
            return None
        rest = path[depth:]
        if not rest:
            return header + 1
        key = re.compile(rf"^\s*[\"']?{re.escape(str(rest[0]))}[\"']?\s*=")
        for number in range(header + 1, len(self.lines)):
            text = self.lines[number]
            if text.lstrip().startswith("["):
                break
            if key.search(text):
                return number + 1
        return header + 1


_HEADER = re.compile(r"^\s*\[(?!\[)\s*(.+?)\s*\]\s*(?:#.*)?$")
_PART = re.compile(r"\s*(?:\"((?:[^\"\\]|\\.)*)\"|'([^']*)'|([A-Za-z0-9_-]+))\s*(\.|$)")


def _split_dotted(text: str) -> tuple[str, ...] | None:
    """The parts of a TOML dotted key (``assets."ui/icon.png"`` -> ``("assets", "ui/icon.png")``)."""
    parts: list[str] = []
    position = 0
    while position < len(text):
        match = _PART.match(text, position)
        if not match:
            return None
        basic, literal, bare = match.group(1), match.group(2), match.group(3)
        if basic is not None and "\\" not in basic:
            parts.append(basic)  # nothing to unescape (the common case: skip the JSON decoder)
        elif basic is not None:
            try:
                parts.append(json.loads(f'"{basic}"'))
            except ValueError:
                return None
        else:
            parts.append(literal if literal is not None else bare)
        position = match.end()
    return tuple(parts)


class KeyOrigin:
    """Where an asset's merged parameter was written: its own table, else its style, else [defaults].

    Errors about a value point at the line of the key that set it (a bad ``steps`` in [defaults] is
    reported there, not at some asset that inherits it), and say which table it came from.
    """

    def __init__(self, locator: Locator, asset: str, own: dict[str, Any], style: str | None,
                 styles: dict[str, dict[str, Any]], defaults: dict[str, Any]) -> None:
        self.locator = locator
        self.asset = asset
        self._own, self._style, self._styles, self._defaults = own, style, styles, defaults

    @property
    def tables(self) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
        """The tables a key may come from, nearest first (made only for a message: one per asset is made)."""
        tables: list[tuple[tuple[str, ...], dict[str, Any]]] = [(("assets", self.asset), self._own)]
        if self._style is not None and self._style in self._styles:
            tables.append((("styles", self._style), self._styles[self._style]))
        tables.append((("defaults",), self._defaults))
        return tables

    def _find(self, key: str) -> tuple[tuple[str, ...], str] | None:
        for path, table in self.tables:
            for written in table:
                if P.normalise(written) == key:
                    return path, written
        return None

    def where(self, key: str) -> str:
        """``file:line`` of the key that set ``key`` (a normalised name), else of the asset's table."""
        found = self._find(key)
        return self.locator.where(*found[0], found[1]) if found else self.locator.where("assets", self.asset)

    def written(self, key: str) -> str:
        """The key as the user wrote it (``cfg_scale`` for ``cfgscale``)."""
        found = self._find(key)
        return found[1] if found else key

    def table(self, key: str) -> str:
        """`` (set in [defaults])`` or `` (set in [styles.NAME])`` when the asset inherits ``key``, else ''."""
        found = self._find(key)
        if found is None or found[0][0] == "assets":
            return ""
        return " (set in [defaults])" if found[0][0] == "defaults" else f" (set in [styles.{found[0][1]}])"
