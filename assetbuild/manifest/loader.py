"""assets.toml -> a validated, fully resolved ``Project``.

Loading is pure (no network, no writes) and does every check the contract asks for before any work:
TOML syntax, section types (``schema``), unknown styles, parameter types and ranges (``assets``),
duplicate targets after path normalisation, paths that escape the project (``paths``), image inputs that
name nothing, and dependency cycles (``graph``). Every problem raises ``ManifestError`` naming the file,
the line when it can be found (``lines``), the asset, and a hint.
"""

from __future__ import annotations

import posixpath
import re
import tomllib
from pathlib import Path
from typing import Any

from ..errors import ManifestError
from ..layout import STATE_DIR
from .assets import expand_variants, make_asset, merge, normalised_table
from .graph import dependency_order
from .lines import KeyOrigin, Locator, line_from_message
from .paths import TargetPaths, forget_folders, inside
from .project import Asset, Project, ServerSettings
from .schema import ManifestFile, validate


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
        line = getattr(exc, "lineno", None) or line_from_message(str(exc))
        where = f"{shown}:{line}" if line else shown
        raise ManifestError(where, f"TOML syntax error: {exc}",
                            hint="see https://toml.io for the syntax; strings need quotes") from None
    except RecursionError:
        raise ManifestError(shown, "nested too deeply to read (arrays or tables inside each other hundreds of "
                            "levels deep)", hint="a manifest needs at most a few levels of nesting") from None
    locator = Locator(shown, text)
    shape = validate(raw, locator)
    del raw  # the validated copy is all _resolve needs: 100,000 asset tables are ~100 MB to hold twice
    return _resolve(manifest, shape, locator, cache_dir_override)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _resolve(manifest: Path, shape: ManifestFile, locator: Locator, cache_override: str | None) -> Project:
    forget_folders()  # folders may have changed (or become symlinks) since the last load
    root = manifest.parent
    output_dir, cache_dir = _folders(root, shape, locator, cache_override)

    warnings: list[str] = []
    defaults = normalised_table(shape.defaults, locator, ("defaults",))
    styles = {name: normalised_table(table, locator, ("styles", name)) for name, table in shape.styles.items()}
    for name, style in styles.items():
        if "style" in style:
            raise ManifestError(locator.where("styles", name), f"style {name!r} sets `style`; styles do not nest")

    drafts: dict[str, dict[str, Any]] = {}
    lines: dict[str, int | None] = {}
    declared: dict[str, str] = {}  # normalised target -> as written
    tables: dict[str, str] = {}  # normalised target -> the key of its table (with {n} for variants)
    origins: dict[str, KeyOrigin] = {}
    targets = TargetPaths(root, output_dir, lines.get)
    for written, table in shape.assets.items():
        where = locator.where("assets", written)
        own = normalised_table(table, locator, ("assets", written))
        style_name = own.get("style", defaults.get("style"))
        origin = KeyOrigin(locator, written, table, style_name if isinstance(style_name, str) else None,
                           shape.styles, shape.defaults)
        merged = merge(defaults, styles, own, written, origin)
        for target, values in expand_variants(written, merged, where):
            norm = targets.check(target, where)
            if norm in declared:
                # TOML forbids repeated keys: a duplicate is written differently (x/../r.png) or a variant.
                first = declared[norm]
                same = f" (both are {norm!r})" if norm not in (target, first) else ""
                raise ManifestError(where, f"duplicate target: {target!r} is the same file as {first!r}, "
                                    f"declared at {locator.where('assets', _written_of(first, shape))}{same}",
                                    hint="each target path may be declared once")
            declared[norm] = target
            tables[norm] = written
            drafts[norm] = values
            lines[norm] = locator.line("assets", written)
            origins[norm] = origin

    assets: dict[str, Asset] = {}
    for target, values in drafts.items():
        where = locator.where("assets", declared[target])
        assets[target] = make_asset(target, values, drafts, root, output_dir, where, lines[target], warnings,
                                    origins[target])
    ordered = dependency_order(assets, lambda t: locator.where("assets", declared[t]))
    explicit = frozenset([f"server.{name}" for name in shape.server.model_fields_set]
                         + [f"project.{name}" for name in shape.project.model_fields_set]
                         + [f"cache.{name}" for name in shape.cache.model_fields_set])
    if "cache.dir" in explicit:  # the new name of project.cache_dir: the same precedence applies
        explicit |= {"project.cache_dir"}
    return Project(manifest, root, output_dir, cache_dir, ServerSettings.of(shape.server), ordered, warnings,
                   explicit, remote=shape.cache.remote, push=shape.cache.push, tables=tables)


def _folders(root: Path, shape: ManifestFile, locator: Locator, cache_override: str | None) -> tuple[Path, Path]:
    """The output folder (inside the project) and the cache folder (anywhere: it may be shared)."""
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
    return output_dir, cache_dir


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
