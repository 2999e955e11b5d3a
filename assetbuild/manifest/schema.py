"""The file's shape: the TOML tables of assets.toml as pydantic models, and their errors as messages.

Only the tables assetbuild itself defines are typed here; asset, style and defaults tables are free
dictionaries of parameters, checked per asset by ``assets``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import params as P
from ..errors import ManifestError
from .lines import Locator


class ProjectTable(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    output_dir: str = "."
    cache_dir: str | None = None


class CacheTable(BaseModel):
    """``[cache]``: the local cache folder and the team store (see assetbuild.remote)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    dir: str | None = None
    remote: str | None = None  # s3:// gs:// az:// http(s):// file:// or a folder
    push: bool = True


class ServerTable(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    url: str = "http://localhost:7801"
    websocket: bool = True
    concurrency: int | None = Field(default=None, ge=1, le=256)  # None: follow the server's capacity
    timeout: float = Field(default=900.0, gt=0)
    save_images: bool = False
    model_changes: Literal["rebuild", "warn"] = "rebuild"
    unused_params: Literal["error", "warn"] = "error"


class ManifestFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    project: ProjectTable = ProjectTable()
    server: ServerTable = ServerTable()
    cache: CacheTable = CacheTable()
    defaults: dict[str, Any] = {}
    styles: dict[str, dict[str, Any]] = {}
    assets: dict[str, dict[str, Any]] = {}


def validate(raw: dict[str, Any], locator: Locator) -> ManifestFile:
    """The parsed TOML as a ``ManifestFile``; raises ``ManifestError`` naming each problem and its line."""
    refuse_non_finite(raw, locator)
    try:
        return ManifestFile.model_validate(raw)
    except ValidationError as exc:
        raise _from_validation(exc, locator) from None


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


def _from_validation(exc: ValidationError, locator: Locator) -> ManifestError:
    problems = []
    first_where = None
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        where = locator.where(*loc)
        first_where = first_where or where
        name = ".".join(loc)
        if error["type"] == "extra_forbidden":
            known = _known_fields(loc[:-1])
            guess = P.closest(loc[-1], known) if known else None
            hint = f" (did you mean {guess!r}?)" if guess else (f"; known: {', '.join(known)}" if known else "")
            problems.append(f"unknown setting {name!r}{hint}")
        else:
            problems.append(f"{name}: {error['msg']} (got {error.get('input')!r})")
    return ManifestError(first_where or locator.shown, "; ".join(problems),
                         hint="see the manifest reference in the README")


def _known_fields(loc: list[str]) -> list[str]:
    models: dict[str, type[BaseModel]] = {"project": ProjectTable, "server": ServerTable, "cache": CacheTable}
    if not loc:
        return list(ManifestFile.model_fields)
    model = models.get(loc[0])
    return list(model.model_fields) if model else []
