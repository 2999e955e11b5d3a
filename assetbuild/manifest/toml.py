"""TOML parsing for the manifest's hot path: tomli's compiled parser when it is installed, else tomllib.

tomli is the project the standard library's tomllib was taken from (PEP 680); its wheels are compiled
with mypyc and parse a 10,000-asset manifest in about half of tomllib's time (0.15 s of pure Python,
most of a cold plan's parse). Below 2.4 it reads TOML 1.0, as tomllib does up to Python 3.14, so both
give the same values. On any failure the standard library parses the text again: it is the reference,
and its error (its wording, its line) is the one a user sees, whatever is installed.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable
from typing import Any

_fast: Callable[[str], dict[str, Any]] | None
try:
    from tomli import __version__ as _tomli_version
    from tomli import loads as _fast
except ImportError:  # tomli not installed: the standard library alone
    _fast = None
else:
    if tuple(int(part) for part in _tomli_version.split(".")[:2] if part.isdigit()) >= (2, 4):
        _fast = None  # TOML 1.1 (another package's pin may have brought it): it would accept what tomllib refuses

TOMLDecodeError = tomllib.TOMLDecodeError


def loads(text: str) -> dict[str, Any]:
    """``tomllib.loads``, faster. Raises what tomllib raises (``TOMLDecodeError``, ``RecursionError``), and
    ``TOMLDecodeError`` too for an integer longer than Python reads (tomllib lets its ValueError through)."""
    if _fast is not None:
        try:
            return _fast(text)
        except Exception:  # noqa: BLE001 - any doubt goes to the reference parser, which decides
            pass
    try:
        return tomllib.loads(text)
    except TOMLDecodeError:
        raise
    except ValueError:  # Python's own limit on an integer's digits (4,300 by default): the file's problem all the same
        limit = sys.get_int_max_str_digits()
        raise TOMLDecodeError(f"an integer with more than {limit:,} digits, more than Python reads"
                              f"{_long_number_at(text, limit)}") from None


def _long_number_at(text: str, limit: int) -> str:
    """`` (at line N, column M)`` of the first run of more than ``limit`` digits in ``text`` (as tomllib words
    a place)."""
    import re

    found = re.search(f"[0-9_]{{{limit + 1},}}", text)
    if found is None:
        return ""
    start = found.start()
    line = text.count("\n", 0, start) + 1
    column = start - text.rfind("\n", 0, start)
    return f" (at line {line}, column {column})"
