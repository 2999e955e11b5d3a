"""The file's shape without pydantic, for the common case: a file with nothing wrong in its own tables.

``schema`` (pydantic) defines the tables and words every error. Importing pydantic and building its
models costs more than reading a 1,000-asset manifest, so a load first tries ``shape``: plain checks
that accept exactly the values ``schema`` accepts unchanged (strict types, the same ranges and
choices). Anything else (an unknown key, a wrong type, a value pydantic would have to judge) gives
None, and ``schema.validate`` decides and words the error as always.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ManifestError
from .lines import Locator

# The [server] defaults (ServerTable's and ServerSettings' single source).
SERVER_URL = "http://localhost:7801"
SERVER_TIMEOUT = 900.0
MODEL_CHANGES = ("rebuild", "warn")
UNUSED_PARAMS = ("error", "warn")
CONCURRENCY_RANGE = (1, 256)


@dataclass
class ProjectShape:
    output_dir: str = "."
    cache_dir: str | None = None
    model_fields_set: set[str] = field(default_factory=set)  # the keys the file wrote (as pydantic names it)


@dataclass
class CacheShape:
    dir: str | None = None
    remote: str | None = None
    push: bool = True
    model_fields_set: set[str] = field(default_factory=set)


@dataclass
class ServerShape:
    url: str = SERVER_URL
    websocket: bool = True
    concurrency: int | None = None
    timeout: float = SERVER_TIMEOUT
    save_images: bool = False
    model_changes: str = MODEL_CHANGES[0]
    unused_params: str = UNUSED_PARAMS[0]
    model_fields_set: set[str] = field(default_factory=set)

    def model_dump(self) -> dict[str, Any]:
        data = asdict(self)
        del data["model_fields_set"]
        return data


@dataclass
class FileShape:
    project: ProjectShape
    server: ServerShape
    cache: CacheShape
    defaults: dict[str, Any]
    styles: dict[str, dict[str, Any]]
    assets: dict[str, dict[str, Any]]


def _string(value: Any) -> bool:
    return isinstance(value, str)


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _concurrency(value: Any) -> bool:
    low, high = CONCURRENCY_RANGE
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _timeout(value: Any) -> bool:
    return isinstance(value, float) and value > 0  # an int is for pydantic to judge


_RULES: dict[str, dict[str, Any]] = {
    "project": {"output_dir": _string, "cache_dir": _string},
    "cache": {"dir": _string, "remote": _string, "push": _flag},
    "server": {"url": _string, "websocket": _flag, "concurrency": _concurrency, "timeout": _timeout,
               "save_images": _flag, "model_changes": lambda v: v in MODEL_CHANGES,
               "unused_params": lambda v: v in UNUSED_PARAMS},
}
_TABLES = ("defaults", "styles", "assets")


def shape(raw: dict[str, Any]) -> FileShape | None:
    """The tables of ``raw`` when every value is one ``schema`` accepts as it is; else None."""
    if any(key not in _RULES and key not in _TABLES for key in raw):
        return None
    typed: dict[str, dict[str, Any]] = {}
    for name, rules in _RULES.items():
        table = raw.get(name, {})
        if not isinstance(table, dict) or any(key not in rules or not rules[key](value)
                                              for key, value in table.items()):
            return None
        typed[name] = table
    defaults, styles, assets = (raw.get(name, {}) for name in _TABLES)
    if not isinstance(defaults, dict) or not isinstance(styles, dict) or not isinstance(assets, dict):
        return None
    if not all(isinstance(table, dict) for table in styles.values()) or not all(
            isinstance(table, dict) for table in assets.values()):
        return None
    return FileShape(ProjectShape(**typed["project"], model_fields_set=set(typed["project"])),
                     ServerShape(**typed["server"], model_fields_set=set(typed["server"])),
                     CacheShape(**typed["cache"], model_fields_set=set(typed["cache"])),
                     defaults, styles, assets)


def refuse_non_finite(raw: dict[str, Any], locator: Locator) -> None:
    """Refuse nan and inf anywhere (known parameter or not): they are not JSON, so they could not be
    written to assets.lock. Iterative: the parsed TOML may be nested hundreds of levels deep."""
    stack: list[tuple[tuple[str, ...], Any]] = [((), raw)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend(((*path, str(key)), item) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((path, item) for item in value)
        elif isinstance(value, float) and not math.isfinite(value):
            table = path[:2] if path[:1] in (("assets",), ("styles",)) else path[:1]
            name = path[len(table)] if len(path) > len(table) else path[-1]
            where = locator.where(*path[:len(table) + 1]) if path else locator.shown
            owner = f"asset {table[1]!r}: " if table[:1] == ("assets",) and len(table) > 1 else ""
            raise ManifestError(where, f"{owner}{name} must be a finite number, not {value}",
                                hint="nan and inf cannot be stored in assets.lock; write a number")


def all_finite(value: Any) -> bool:
    """Whether ``value`` holds no nan or inf (the quick test before ``refuse_non_finite`` words the error)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is float:
            if not math.isfinite(item):
                return False
        elif kind is str or kind is int or kind is bool:
            continue
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            return False
    return True
