"""assets.toml -> a validated, fully resolved ``Project``.

Loading is pure (no network, no writes) and does every check the contract asks for before any work:
TOML syntax, section types (pydantic), unknown styles, parameter types and ranges, duplicate targets
after path normalisation, paths that escape the project (``..``, absolute, symlinks), image inputs that
name nothing, and dependency cycles. Every problem raises ``ManifestError`` naming the file, the line
when it can be found, the asset, and a hint.
"""

from __future__ import annotations

import functools
import graphlib
import heapq
import json
import math
import os
import posixpath
import re
import tomllib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import params as P
from .errors import ManifestError
from .layout import LOCK_NAME, STATE_DIR
from .postspec import POST_KEYS, Postprocess, PostprocessSpecError
from .postspec import parse as parse_post

PLACEHOLDER = "placeholder"

# Keys of an asset (or style, or defaults) table that assetbuild itself reads; the rest are SwarmUI params.
BUILD_KEYS = ("style", "count", "source", *POST_KEYS)


# --- the file's shape (pydantic) ---------------------------------------------------------------------


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


_SERVER_DEFAULTS = ServerTable()


class ManifestFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    project: ProjectTable = ProjectTable()
    server: ServerTable = ServerTable()
    cache: CacheTable = CacheTable()
    defaults: dict[str, Any] = {}
    styles: dict[str, dict[str, Any]] = {}
    assets: dict[str, dict[str, Any]] = {}


# --- the resolved project -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInput:
    """An image-valued parameter: the bytes of ``path`` go to the generator and into the key."""

    param: str
    reference: str  # as written in the manifest (normalised)
    path: Path
    asset: str | None  # the producing asset's target, or None for a source file in the repo


@dataclass(frozen=True)
class Asset:
    """One target image and everything that determines it."""

    target: str  # posix path relative to the output folder, normalised
    path: Path  # absolute path of the target file
    params: dict[str, Any]  # normalised SwarmUI params, prompt resolved, image params excluded
    inputs: tuple[ImageInput, ...]
    post: Postprocess
    source: str | None = None  # derived asset: post-processing of this asset's output, no generation
    line: int | None = None
    variant: int | None = None  # n of a `count = N` entry (keeps random-seed variants apart in keys)

    @property
    def upstream(self) -> list[str]:
        """Targets of the assets this one needs built first."""
        ups = [i.asset for i in self.inputs if i.asset]
        if self.source:
            ups.append(self.source)
        return ups


PLACEHOLDER_JOBS = 4  # the placeholder draws on this machine's CPU
FOLLOW_SERVER_JOBS = 64  # the SwarmUI client admits only what the server can take (swarm/capacity.py)


@dataclass(frozen=True)
class ServerSettings:
    """The ``[server]`` settings in force. The defaults are ServerTable's: one source for both."""

    url: str = _SERVER_DEFAULTS.url
    websocket: bool = _SERVER_DEFAULTS.websocket
    concurrency: int | None = _SERVER_DEFAULTS.concurrency  # generations in flight; None: follow the server
    timeout: float = _SERVER_DEFAULTS.timeout
    save_images: bool = _SERVER_DEFAULTS.save_images  # also keep images in SwarmUI's output history (/View)
    model_changes: str = _SERVER_DEFAULTS.model_changes  # a model's hash changed: "rebuild" its assets, or "warn"
    unused_params: str = _SERVER_DEFAULTS.unused_params  # parameters the server reports unused: "error"/"warn"

    @property
    def is_placeholder(self) -> bool:
        return self.url == PLACEHOLDER

    @property
    def default_jobs(self) -> int:
        """Assets processed at once without -n: enough threads to keep any server's slots filled."""
        if self.concurrency is not None:
            return self.concurrency
        return PLACEHOLDER_JOBS if self.is_placeholder else FOLLOW_SERVER_JOBS


@dataclass
class Project:
    """A loaded manifest: where things live and the assets in dependency order."""

    manifest: Path
    root: Path
    output_dir: Path
    cache_dir: Path
    server: ServerSettings
    assets: dict[str, Asset]
    warnings: list[str] = field(default_factory=list)
    explicit: frozenset[str] = frozenset()  # settings the file itself sets, e.g. "server.url"
    remote: str | None = None  # [cache] remote, as written (the environment may override it: remote.settings)
    push: bool = True  # [cache] push
    tables: dict[str, str] = field(default_factory=dict)  # target -> its [assets."..."] key as written

    @property
    def lock_path(self) -> Path:
        return self.root / LOCK_NAME

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def target_path(self, target: str) -> Path:
        return self.output_dir / target

    def display(self, target: str) -> str:
        return target


# --- loading ------------------------------------------------------------------------------------------


def load(manifest: Path, *, cache_dir_override: str | None = None, text: str | None = None) -> Project:
    """Read and validate ``manifest`` (or ``text`` as if it were its content, e.g. an edit about to be
    written). Raises ``ManifestError`` on any problem."""
    manifest = manifest.absolute()
    shown = _shown(manifest)
    try:
        if text is None:
            text = manifest.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(shown, "no such file", hint="run `assetbuild init` to write a starter manifest, "
                            "or pass the manifest with -f FILE") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(shown, f"cannot read: {exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _line_from_message(str(exc))
        where = f"{shown}:{line}" if line else shown
        raise ManifestError(where, f"TOML syntax error: {exc}",
                            hint="see https://toml.io for the syntax; strings need quotes") from None
    except RecursionError:
        raise ManifestError(shown, "nested too deeply to read (arrays or tables inside each other hundreds of "
                            "levels deep)", hint="a manifest needs at most a few levels of nesting") from None
    locator = _Locator(shown, text)
    _refuse_non_finite(raw, locator)
    try:
        shape = ManifestFile.model_validate(raw)
    except ValidationError as exc:
        raise _from_validation(exc, locator) from None
    return _resolve(manifest, shape, locator, cache_dir_override)


def _refuse_non_finite(raw: dict[str, Any], locator: _Locator) -> None:
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


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _line_from_message(message: str) -> int | None:
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None


class _KeyOrigin:
    """Where an asset's merged parameter was written: its own table, else its style, else [defaults].

    Errors about a value point at the line of the key that set it (a bad ``steps`` in [defaults] is
    reported there, not at some asset that inherits it), and say which table it came from.
    """

    def __init__(self, locator: _Locator, asset: str, own: dict[str, Any], style: str | None,
                 styles: dict[str, dict[str, Any]], defaults: dict[str, Any]) -> None:
        self.locator = locator
        self.asset = asset
        self.tables: list[tuple[tuple[str, ...], dict[str, Any]]] = [(("assets", asset), own)]
        if style is not None and style in styles:
            self.tables.append((("styles", style), styles[style]))
        self.tables.append((("defaults",), defaults))

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


class _Locator:
    """Finds the line of a table or key in the manifest text, for messages (best effort).

    Table headers are indexed once (a manifest can have 10,000 assets); keys are looked up only within
    their table's lines.
    """

    def __init__(self, shown: str, text: str) -> None:
        self.shown = shown
        self.lines = text.splitlines()
        self.headers: dict[tuple[str, ...], int] = {}  # dotted header parts -> 0-based line index
        for number, line in enumerate(self.lines):
            match = _HEADER.match(line)
            if match:
                parts = _split_dotted(match.group(1))
                if parts is not None:
                    self.headers.setdefault(parts, number)

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


def _from_validation(exc: ValidationError, locator: _Locator) -> ManifestError:
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


# --- resolution ---------------------------------------------------------------------------------------


def _resolve(manifest: Path, shape: ManifestFile, locator: _Locator, cache_override: str | None) -> Project:
    _real_dir.cache_clear()  # folders may have changed (or become symlinks) since the last load
    root = manifest.parent
    out_rel = inside(root, shape.project.output_dir, locator.where("project", "output_dir"), "output_dir")
    output_dir = (root / out_rel) if out_rel != "." else root
    if shape.cache.dir and shape.project.cache_dir and shape.cache.dir != shape.project.cache_dir:
        raise ManifestError(locator.where("cache", "dir"), "[cache] dir and [project] cache_dir disagree",
                            hint="keep only [cache] dir ([project] cache_dir is its old name)")
    cache_setting = cache_override or shape.cache.dir or shape.project.cache_dir
    # A cache dir may be shared across projects (CI cache, network share): it may live anywhere.
    cache_dir = Path(cache_setting).expanduser() if cache_setting else root / STATE_DIR / "cache"
    if not cache_dir.is_absolute():
        cache_dir = (root if not cache_override else Path.cwd()) / cache_dir
    server = ServerSettings(**shape.server.model_dump())

    warnings: list[str] = []
    defaults = _normalised_table(shape.defaults, locator, ("defaults",))
    styles = {name: _normalised_table(table, locator, ("styles", name)) for name, table in shape.styles.items()}
    for name, style in styles.items():
        if "style" in style:
            raise ManifestError(locator.where("styles", name), f"style {name!r} sets `style`; styles do not nest")

    state_real = _real_dir(str(root / STATE_DIR))  # no target may land in the state folder, symlinks too
    drafts: dict[str, dict[str, Any]] = {}
    lines: dict[str, int | None] = {}
    declared: dict[str, str] = {}  # normalised target -> as written
    tables: dict[str, str] = {}  # normalised target -> the key of its table (with {n} for variants)
    by_case: dict[str, str] = {}  # lower-cased target -> target
    origins: dict[str, _KeyOrigin] = {}
    for written, table in shape.assets.items():
        where = locator.where("assets", written)
        own = _normalised_table(table, locator, ("assets", written))
        style_name = own.get("style", defaults.get("style"))
        origin = _KeyOrigin(locator, written, table, style_name if isinstance(style_name, str) else None,
                            shape.styles, shape.defaults)
        merged = _merge(defaults, styles, own, written, origin)
        for target, values in _expand_variants(written, merged, where):
            _check_name(target, where)
            norm = inside(output_dir, target, where, "target", root=root)
            if norm in declared:
                # TOML forbids repeated keys: a duplicate is written differently (x/../r.png) or a variant.
                first = declared[norm]
                same = f" (both are {norm!r})" if norm not in (target, first) else ""
                raise ManifestError(where, f"duplicate target: {target!r} is the same file as {first!r}, "
                                    f"declared at {locator.where('assets', _written_of(first, shape))}{same}",
                                    hint="each target path may be declared once")
            if norm in (LOCK_NAME,) or norm.startswith(STATE_DIR + "/") or _within(
                    _real(os.path.join(output_dir, norm)), state_real):
                raise ManifestError(where, f"target {norm!r} is reserved for assetbuild's own files",
                                    hint="a target may not be (or go through a symlink into) .assetbuild/")
            # macOS and Windows compare names without letter case, and macOS also without Unicode
            # normalisation ("café" typed as one é or as e + a combining accent): one file there.
            folded = by_case.setdefault(unicodedata.normalize("NFC", norm).lower(), norm)
            if folded != norm:
                first_line = lines.get(folded)
                line = f" (line {first_line})" if first_line else ""
                other = f"{folded!r}{line}"
                if unicodedata.normalize("NFC", folded) == unicodedata.normalize("NFC", norm):
                    raise ManifestError(where, f"target {ascii(norm)} differs from {ascii(folded)}{line} only in "
                                        "Unicode normalisation (NFC/NFD: the same letters, encoded differently)",
                                        hint="they would be one file on macOS; write both the same way (NFC)")
                raise ManifestError(where, f"target {norm!r} differs from {other} only in letter case",
                                    hint="they would be one file on macOS and Windows; rename one")
            declared[norm] = target
            tables[norm] = written
            drafts[norm] = values
            lines[norm] = locator.line("assets", written)
            origins[norm] = origin

    assets: dict[str, Asset] = {}
    for target, values in drafts.items():
        where = locator.where("assets", declared[target])
        assets[target] = _make_asset(target, values, drafts, root, output_dir, where, lines[target], warnings,
                                     origins[target])
    ordered = _topological(assets, lambda t: locator.where("assets", declared[t]))
    explicit = frozenset([f"server.{name}" for name in shape.server.model_fields_set]
                         + [f"project.{name}" for name in shape.project.model_fields_set]
                         + [f"cache.{name}" for name in shape.cache.model_fields_set])
    if "cache.dir" in explicit:  # the new name of project.cache_dir: the same precedence applies
        explicit |= {"project.cache_dir"}
    return Project(manifest, root, output_dir, cache_dir, server, ordered, warnings, explicit,
                   remote=shape.cache.remote, push=shape.cache.push, tables=tables)


def _normalised_table(table: dict[str, Any], locator: _Locator, path: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    written: dict[str, str] = {}
    for key, value in table.items():
        norm = P.normalise(key)
        if not norm:
            raise ManifestError(locator.where(*path, key), f"{key!r} is not a parameter name (it has no letters)")
        if norm in out:
            raise ManifestError(locator.where(*path, key),
                                f"{key!r} and {written[norm]!r} are the same parameter ({norm!r})",
                                hint="keep one of them")
        out[norm] = value
        written[norm] = key
    return out


def _written_of(target: str, shape: ManifestFile) -> str:
    """The [assets."..."] name as written that declared ``target`` (its first match: a ``{n}`` entry or
    a path written another way, such as ``x/../r.png``)."""
    for written in shape.assets:
        if written == target:
            return written
    for written in shape.assets:
        pattern = re.escape(written).replace(re.escape("{n}"), r"\d+")
        if re.fullmatch(pattern, target) or posixpath.normpath(written) == posixpath.normpath(target):
            return written
    return target


def _merge(defaults: dict[str, Any], styles: dict[str, dict[str, Any]], own: dict[str, Any],
           asset: str, origin: _KeyOrigin) -> dict[str, Any]:
    """defaults < style < asset, with ``{prompt}`` templates in a style's prompts."""
    style_name = own.get("style", defaults.get("style"))
    style: dict[str, Any] = {}
    where = origin.where("style")
    if style_name is not None:
        if not isinstance(style_name, str):
            raise ManifestError(where, f"style must be a string naming a [styles.NAME] table, not {style_name!r}")
        if style_name not in styles:
            guess = P.closest(style_name, list(styles))
            hint = f"did you mean {guess!r}?" if guess else (
                f"defined styles: {', '.join(styles)}" if styles else "define it as [styles." + style_name + "]")
            raise ManifestError(where, f"asset {asset!r} uses unknown style {style_name!r}", hint=hint)
        style = styles[style_name]
    merged = {**defaults, **style, **own}
    for key in ("prompt", "negativeprompt"):
        template = style.get(key)
        if isinstance(template, str) and "{prompt}" in template:
            inner = own.get(key, defaults.get(key, ""))
            if not isinstance(inner, str):
                raise ManifestError(origin.where(key), f"{key} must be a string, not {inner!r}")
            merged[key] = template.replace("{prompt}", inner.strip())
    merged.pop("style", None)
    return merged


def _expand_variants(target: str, values: dict[str, Any], where: str) -> Iterable[tuple[str, dict[str, Any]]]:
    count = values.pop("count", None)
    if count is None:
        if "{n}" in target:
            raise ManifestError(where, f"target {target!r} has {{n}} but no `count`",
                                hint="add `count = N` to make N variants, or remove {n}")
        yield target, values
        return
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
        raise ManifestError(where, f"count must be a whole number from 1 to 1000, not {count!r}")
    if "{n}" not in target:
        raise ManifestError(where, "`count` needs {n} in the target path, e.g. \"trees/oak_{n}.png\"")
    seed = values.get("seed", -1)
    for n in range(1, count + 1):
        variant = dict(values, **{_VARIANT: n})
        if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0:
            variant["seed"] = seed + n - 1
        yield target.replace("{n}", str(n)), variant


_VARIANT = "_variant"  # not a normalised name (those are letters only), so it cannot clash with a parameter


NAME_MAX = 255  # bytes in one file or folder name: the limit of every common file system


def _check_name(target: str, where: str) -> None:
    """Refuse target names no file system can hold: a NUL byte, or a part longer than NAME_MAX bytes."""
    for part in target.replace("\\", "/").split("/"):
        size = len(part.encode("utf-8", "surrogateescape"))
        if size > NAME_MAX:
            raise ManifestError(where, f"name too long: {part[:40]!r}… is {size} bytes; file systems allow "
                                f"{NAME_MAX} bytes per file or folder name", hint="shorten the target's name")


def inside(base: Path, relative: str, where: str, what: str, root: Path | None = None) -> str:
    """Normalise ``relative`` (posix) and check it stays inside ``root`` (default ``base``), symlinks too.

    ``base`` must itself be inside ``root`` (it is the root or the checked output folder).
    """
    root = root or base
    if "\0" in relative:
        raise ManifestError(where, f"{what} {relative!r} contains a NUL byte", hint="file names cannot contain one")
    # Paths are relative to ``base``: the output folder (output_dir) for targets, else the project folder.
    relative_to = "the project folder (where assets.toml is)" if base == root else (
        f"the output folder {os.path.relpath(base, root)!r} (output_dir)")
    text = relative.replace("\\", "/")
    if not text or text.startswith("/") or re.match(r"^[A-Za-z]:", text) or text.startswith("~"):
        raise ManifestError(where, f"{what} must be a relative path inside the project, not {relative!r}",
                            hint=f"write paths relative to {relative_to}, e.g. \"sprites/hero.png\"")
    norm = posixpath.normpath(text)
    # Plain strings, not pathlib: this runs for every target, and a manifest may have 10,000 of them.
    candidate = os.path.normpath(os.path.join(base, norm))
    if not _within(candidate, str(root)):
        raise ManifestError(where, f"{what} {relative!r} leaves the project folder {root}",
                            hint=f"paths are relative to {relative_to} and may not use .. to leave the project")
    if norm == ".." or norm.startswith("../"):  # inside the project, but outside the output folder
        raise ManifestError(where, f"{what} {relative!r} leaves {relative_to}",
                            hint=f"{what}s are relative to {relative_to}; to write there, move output_dir up "
                                 "or use a path inside it")
    if not _within(_real(candidate), _real_dir(str(root))):
        raise ManifestError(where, f"{what} {relative!r} goes through a symlink that leaves the project",
                            hint="point the symlink inside the project or use a real folder")
    return norm


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@functools.lru_cache(maxsize=4096)
def _real_dir(folder: str) -> str:
    return os.path.realpath(folder)


def _real(path: str) -> str:
    """``realpath`` of ``path``, resolving each folder once (targets share folders; 10,000 of them must
    not cost 10,000 full resolutions)."""
    if os.path.islink(path):
        return os.path.realpath(path)
    folder, name = os.path.split(path)
    return os.path.join(_real_dir(folder), name)


def _make_asset(target: str, values: dict[str, Any], drafts: dict[str, dict[str, Any]], root: Path,
                output_dir: Path, where: str, line: int | None, warnings: list[str],
                origin: _KeyOrigin | None = None) -> Asset:
    def where_key(key: str) -> str:  # the line of the key that set ``key``: own table, style or [defaults]
        return origin.where(key) if origin else where

    def set_in(key: str) -> str:
        return origin.table(key) if origin else ""

    def written(key: str) -> str:  # as the user wrote it: `cfg_scale = "high"`, not the normalised cfgscale
        return origin.written(key) if origin else key

    post_settings = {k: values.pop(k) for k in POST_KEYS if k in values}
    source = values.pop("source", None)
    variant = values.pop(_VARIANT, None)
    try:
        post = parse_post(post_settings, posixpath.splitext(target)[1])
    except PostprocessSpecError as exc:
        key = next((k for k in post_settings if str(exc).startswith(k)), None)  # messages name the setting
        at = where_key(key) if key else where
        raise ManifestError(at, f"asset {target!r}: {exc}{set_in(key) if key else ''}") from None

    if source is not None:
        if not isinstance(source, str):
            raise ManifestError(where_key("source"), f"asset {target!r}: source must name another asset's target")
        norm_source = posixpath.normpath(source.replace("\\", "/"))
        if norm_source not in drafts:
            raise ManifestError(where_key("source"), f"asset {target!r}: source {source!r} is not an asset target",
                                hint="`source` derives an image from another asset's output")
        return Asset(target, output_dir / target, {}, (), post, source=norm_source, line=line)

    inputs: list[ImageInput] = []
    params: dict[str, Any] = {}
    for key, value in sorted(values.items()):
        if key in P.RESERVED:
            raise ManifestError(where_key(key), f"asset {target!r}: `{key}` cannot be set in a manifest{set_in(key)}",
                                hint=P.RESERVED[key])
        if key == "loras" and isinstance(value, dict):
            if "loraweights" in values:
                raise ManifestError(where, f"asset {target!r}: `loras` as a table gives the weights already",
                                    hint="remove `loraweights`, or write `loras` as a list")
            if value:
                params["loras"], params["loraweights"] = _lora_table(value, where, target)
            continue
        spec = P.KNOWN.get(key)
        if spec is None:
            if isinstance(value, dict):
                raise ManifestError(where_key(key),
                                    f"asset {target!r}: `{key}` is a table; parameters take values{set_in(key)}")
            guess = P.closest(key) or P.closest(key, list(BUILD_KEYS))
            hint = f" (did you mean {guess!r}?)" if guess else ""
            warnings.append(f"{where_key(key)}: asset {target!r}: unknown parameter {key!r}{hint}{set_in(key)}; "
                            "passed to the server as-is")
            params[key] = value
            continue
        problem = P.check_value(spec, value)
        if problem:
            raise ManifestError(where_key(key), f"asset {target!r}: {written(key)} {problem}{set_in(key)}")
        if spec.type == "image":
            inputs.append(_image_input(key, value, drafts, root, output_dir, where_key(key), target))
        elif spec.type in ("text",) and key in ("prompt", "negativeprompt"):
            params[key] = value.strip()
        else:
            params[key] = value
    if not params.get("prompt"):
        raise ManifestError(where, f"asset {target!r} has no prompt",
                            hint="add `prompt = \"...\"` (or derive it with `source = \"other.png\"`)")
    return Asset(target, output_dir / target, params, tuple(inputs), post, line=line, variant=variant)


def _lora_table(table: dict[str, Any], where: str, target: str) -> tuple[list[str], list[float]]:
    """``loras = { "name" = weight, ... }`` as SwarmUI's parallel ``loras`` and ``loraweights`` lists, in
    name order (so the order of the TOML does not change the key)."""
    names: list[str] = []
    weights: list[float] = []
    for name in sorted(table):
        weight = table[name]
        if not name.strip():
            raise ManifestError(where, f"asset {target!r}: a LoRA name in `loras` is empty")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not -10 <= weight <= 10:
            raise ManifestError(where, f"asset {target!r}: the weight of LoRA {name!r} must be a number from "
                                f"-10 to 10, not {weight!r}", hint='e.g. loras = { "pixel-art-xl" = 0.8 }')
        names.append(name)
        weights.append(weight)
    return names, weights


def _image_input(param: str, value: str, drafts: dict[str, dict[str, Any]], root: Path, output_dir: Path,
                 where: str, target: str) -> ImageInput:
    reference = posixpath.normpath(value.replace("\\", "/"))
    if reference in drafts:
        return ImageInput(param, reference, output_dir / reference, reference)
    rel = inside(root, value, where, f"{param} of {target!r}")
    path = root / rel
    if not path.is_file():
        raise ManifestError(where, f"asset {target!r}: {param} {value!r} is neither an asset target nor a file",
                            hint="name another asset's target, or a file relative to the manifest's folder")
    return ImageInput(param, rel, path, None)


def _topological(assets: dict[str, Asset], where_of: Any) -> dict[str, Asset]:
    """Assets in dependency order (upstream first); of the assets ready at the same point, the one first
    in the manifest comes first. A cycle is an error naming it, from its asset first in the manifest."""
    sorter = graphlib.TopologicalSorter({target: asset.upstream for target, asset in assets.items()})
    index = {target: n for n, target in enumerate(assets)}
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        # graphlib lists the cycle from input to user; show it as "a uses b uses a", as the manifest reads.
        cycle = list(reversed(exc.args[1][:-1]))
        first = min(range(len(cycle)), key=lambda n: index[cycle[n]])
        cycle = cycle[first:] + cycle[:first] + [cycle[first]]
        raise ManifestError(where_of(cycle[0]), "dependency cycle: " + " -> ".join(cycle),
                            hint="an asset cannot (indirectly) use its own output as an input") from None
    order: dict[str, Asset] = {}
    ready: list[tuple[int, str]] = []
    while sorter.is_active():
        for target in sorter.get_ready():
            heapq.heappush(ready, (index[target], target))
        _, target = heapq.heappop(ready)
        order[target] = assets[target]
        sorter.done(target)
    return order
