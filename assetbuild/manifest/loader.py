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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from .. import params as P
from ..errors import ManifestError
from ..keys import hash_bytes
from ..layout import cache_folder
from ..postspec import POST_KEY_SET, POST_KEYS
from . import sections, toml
from .assets import expand_variants, forget_accepted, from_memo, make_asset, merge, normalised_table
from .graph import dependency_order
from .lines import KeyOrigin, Locator, line_from_message
from .memo import NO_POST, Resolved, ResolvedMemo
from .paths import TargetPaths, forget_folders, inside
from .project import Asset, Project, ServerSettings
from .quick import FileShape, all_finite, refuse_non_finite, shape

if TYPE_CHECKING:
    from .schema import ManifestFile


class Table(NamedTuple):
    """One [assets."..."] table of the file, for a load with a memo."""

    text_hash: str  # of its text
    written: str  # its name as written
    line: int | None  # of its header
    known: list[Resolved] | None  # its resolution, from the memo (None: resolved in this load)


def load(manifest: Path, *, cache_dir_override: str | None = None, text: str | None = None,
         memo: ResolvedMemo | None = None) -> Project:
    """Read and validate ``manifest`` (or ``text`` as if it were its content, e.g. an edit about to be
    written). Raises ``ManifestError`` on any problem.

    ``memo``: asset tables resolved by earlier loads (``memo``), reused where their text is unchanged; it
    is updated with this load's tables (the caller saves it). The result is the same with or without it.
    """
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
    if memo is not None:
        try:
            project = _load_by_tables(manifest, shown, text, cache_dir_override, memo)
        except ManifestError:
            project = None  # the whole file is read below, and reports the problem as it always does
        if project is not None:
            return project
    try:
        raw = toml.loads(text)
    except toml.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or line_from_message(str(exc))
        where = f"{shown}:{line}" if line else shown
        raise ManifestError(where, f"TOML syntax error: {exc}",
                            hint="see https://toml.io for the syntax; strings need quotes") from None
    except RecursionError:
        raise ManifestError(shown, "nested too deeply to read (arrays or tables inside each other hundreds of "
                            "levels deep)", hint="a manifest needs at most a few levels of nesting") from None
    locator = Locator(shown, text)
    shape = _validated(raw, locator)
    del raw  # the validated tables are all _resolve needs: 100,000 asset tables are ~100 MB to hold twice
    return _resolve(manifest, shape, locator, cache_dir_override)


def _load_by_tables(manifest: Path, shown: str, text: str, cache_override: str | None,
                    memo: ResolvedMemo) -> Project | None:
    """``load`` table by table: tables the memo knows by their text are not parsed or checked again, and
    the others are parsed, resolved and dropped one at a time (a first load of 100,000 tables never
    holds them all as TOML). None when the file cannot be read this way (see ``sections``): then the
    whole file is parsed. A ``ManifestError`` from here is never shown: ``load`` reads the whole file
    again, which words the problem as it always does."""
    cut = sections.split(text)
    parts: list[dict[str, Any]] = []
    for piece in cut.global_pieces:  # each piece must parse alone: proof that the cuts are real headers
        try:
            parts.append(toml.loads(piece.text))
        except (toml.TOMLDecodeError, RecursionError):
            return None
    global_text = "".join(piece.text for piece in cut.global_pieces)
    try:
        raw = toml.loads(global_text)  # and together, for TOML's rules across them (no table twice)
    except (toml.TOMLDecodeError, RecursionError):
        return None
    if "assets" in raw:  # [assets], [[assets]], [assets."x".sub] or dotted keys: the whole file decides
        return None
    memo.start(ResolvedMemo.context_of(global_text, manifest.parent))
    locator = Locator(shown, text)
    table_hashes: dict[str, str] = {}
    try:
        project = _resolve(manifest, _validated(raw, locator), locator, cache_override,
                           _tables_of(cut.assets, memo, locator, table_hashes), memo=memo, table_hashes=table_hashes)
    except _NotByTables:
        return None
    project.global_hash = hash_bytes(global_text.encode("utf-8", "surrogatepass"))
    memo.finish()
    return project


class _NotByTables(Exception):
    """The file cannot be read table by table (a piece that is not one whole table, a table twice)."""


# Asset tables the memo does not know are parsed this many at a time: one parse of their joined text
# costs far less than one per table, and a first load of 100,000 tables still never holds them all.
_CHUNK = 256


def _tables_of(pieces: Iterable[sections.Piece], memo: ResolvedMemo, locator: Locator,
               table_hashes: dict[str, str]) -> Iterator[tuple[Table, dict[str, Any] | None]]:
    """Each asset table in file order: what the memo knows of it, else its values parsed from its text.
    ``table_hashes`` (name as written -> text hash) fills as it goes, and proves no table comes twice."""
    unknown: list[tuple[sections.Piece, str]] = []  # waiting to be parsed together, in file order
    for piece in pieces:
        text_hash = hash_bytes(piece.text.encode("utf-8", "surrogatepass"))
        known = memo.get(text_hash)
        if known is None:
            unknown.append((piece, text_hash))
            if len(unknown) == _CHUNK:
                yield from _parsed(unknown, locator, table_hashes)
                unknown = []
            continue
        if unknown:
            yield from _parsed(unknown, locator, table_hashes)
            unknown = []
        _claim(known[0], text_hash, table_hashes)
        yield Table(text_hash, known[0], piece.line, known[1]), None
    if unknown:
        yield from _parsed(unknown, locator, table_hashes)


def _parsed(unknown: list[tuple[sections.Piece, str]], locator: Locator,
            table_hashes: dict[str, str]) -> Iterator[tuple[Table, dict[str, Any]]]:
    for (piece, text_hash), (written, values) in zip(unknown, _parse_tables([p for p, _ in unknown]), strict=True):
        if not all_finite(values):
            refuse_non_finite({"assets": {written: values}}, locator)  # as the whole file's validation would
        _claim(written, text_hash, table_hashes)
        yield Table(text_hash, written, piece.line, None), values


def _parse_tables(pieces: list[sections.Piece]) -> list[tuple[str, dict[str, Any]]]:
    """(name as written, values) of each piece, which must be one [assets."..."] table of its own.

    Parsed together first: every piece starts at a line that begins with ``[`` and every such line of the
    file starts a piece, so their joined text has as many asset tables as pieces only when each of those
    lines is a real header (one inside a multi-line string or array is swallowed, and nothing can add a
    table). Then each table is the one its piece holds. Else each piece is parsed alone, which says
    whether the file can be read table by table at all."""
    if len(pieces) > 1:
        try:
            joined = toml.loads("".join(piece.text for piece in pieces))
        except (toml.TOMLDecodeError, RecursionError):
            joined = {}
        tables = joined.get("assets")
        if (list(joined) == ["assets"] and isinstance(tables, dict) and len(tables) == len(pieces)
                and all(isinstance(values, dict) for values in tables.values())):
            return list(tables.items())
    return [_one_table(piece) for piece in pieces]


def _one_table(piece: sections.Piece) -> tuple[str, dict[str, Any]]:
    found = sections.one_asset_table(piece.text)
    if found is None:
        raise _NotByTables
    return found


def _claim(written: str, text_hash: str, table_hashes: dict[str, str]) -> None:
    if written in table_hashes:
        raise _NotByTables  # a table declared twice: TOML's error, from the whole file
    table_hashes[written] = text_hash


def _validated(raw: dict[str, Any], locator: Locator) -> FileShape | ManifestFile:
    """The file's tables; ``ManifestError`` naming each problem and its line."""
    refuse_non_finite(raw, locator)
    quick = shape(raw)
    if quick is not None:
        return quick
    from .schema import validate  # pydantic: it decides, and words the errors

    return validate(raw, locator)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _resolve(manifest: Path, shape: FileShape | ManifestFile, locator: Locator, cache_override: str | None,
             pieces: Iterable[tuple[Table, dict[str, Any] | None]] | None = None, *,
             memo: ResolvedMemo | None = None, table_hashes: dict[str, str] | None = None) -> Project:
    """The project of a validated file. ``pieces`` (with ``memo``): every asset table in file order, with
    what the memo knows of it or its values (else they are in ``shape``); the tables resolved here are
    kept in the memo.

    Each table is resolved as it comes, and only what the project keeps stays: an asset that uses other
    targets (``source``, image inputs) is made once every target is known, and the first problem in a
    value is raised only after every table's target was checked, so that which problem is reported
    first does not depend on this order."""
    forget_folders()  # folders may have changed (or become symlinks) since the last load
    forget_accepted()  # (only to free what the last load's values hold)
    root = manifest.parent
    output_dir, cache_dir = _folders(root, shape, locator, cache_override)

    defaults = normalised_table(shape.defaults, locator, ("defaults",))
    styles = {name: normalised_table(table, locator, ("styles", name)) for name, table in shape.styles.items()}
    for name, style in styles.items():
        if "style" in style:
            raise ManifestError(locator.where("styles", name), f"style {name!r} sets `style`; styles do not nest")

    lines: dict[str, int | None] = {}
    declared: dict[str, str] = {}  # normalised target -> as written
    tables: dict[str, str] = {}  # normalised target -> the key of its table (with {n} for variants)
    assets: dict[str, Asset | None] = {}  # in declaration order; None: made below, once every target is known
    later: dict[str, tuple[dict[str, Any], KeyOrigin]] = {}  # those targets' values and origins
    failed: tuple[str, ManifestError] | None = None  # the first target whose values were refused
    warned: dict[str, list[str]] = {}  # target -> the warnings it gave
    targets = TargetPaths(root, output_dir, lines.get)
    if pieces is None:
        pieces = ((Table("", written, None, None), table) for written, table in shape.assets.items())
    for piece, table in pieces:
        written = piece.written
        if piece.known is not None:
            where = f"{locator.shown}:{piece.line}"
            for resolved in piece.known:
                norm = targets.check(resolved[0], where)
                if norm in declared:  # the whole file is read again, and names both declarations
                    raise ManifestError(where, f"duplicate target {norm!r}")
                declared[norm], tables[norm], lines[norm] = resolved[0], written, piece.line
                assets[norm] = from_memo(norm, resolved, output_dir, piece.line)
            continue
        assert table is not None
        # The line of a table cut from the file is known (and then it is the one the locator would find:
        # every header-like line was a cut); looking it up would index the whole file.
        line = piece.line if piece.line is not None else locator.line("assets", written)
        where = f"{locator.shown}:{line}" if line else locator.shown
        own = normalised_table(table, locator, ("assets", written))
        style_name = own.get("style", defaults.get("style"))
        origin = KeyOrigin(locator, written, table, style_name if isinstance(style_name, str) else None,
                           shape.styles, shape.defaults)
        merged = merge(defaults, styles, own, written, origin)
        kept: list[Resolved] | None = [] if memo is not None else None
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
            lines[norm] = line
            assets[norm] = None
            if failed is not None:
                continue  # the load fails at that target at the latest: no need to make this one
            if "source" in values or not P.IMAGE_PARAMS.isdisjoint(values):
                later[norm] = (values, origin)  # needs every target known (drafts); never kept
                kept = None
                continue
            post = NO_POST if POST_KEY_SET.isdisjoint(values) else (
                {key: values[key] for key in POST_KEYS if key in values})
            mine: list[str] = []
            try:
                asset = make_asset(norm, values, declared, root, output_dir, where, line, mine, origin)
            except ManifestError as exc:
                failed = (norm, exc)
                continue
            assets[norm] = asset
            if mine:
                warned[norm] = mine
            if kept is not None:
                if mine or asset.inputs or asset.source:
                    kept = None  # depends on more than its text (other targets, files, a line)
                else:
                    kept.append((target, asset.params, post, asset.variant))
        if memo is not None and kept and failed is None:
            memo.keep(piece.text_hash, written, kept)

    if failed is not None or later:
        for norm, made in assets.items():
            if made is not None:
                continue
            if failed is not None and norm == failed[0]:
                raise failed[1]
            values, origin = later.pop(norm)
            line = lines[norm]
            mine = []
            assets[norm] = make_asset(norm, values, declared, root, output_dir,
                                      f"{locator.shown}:{line}" if line else locator.shown, line, mine, origin)
            if mine:
                warned[norm] = mine
    warnings = [text for norm in assets for text in warned.get(norm, ())] if warned else []
    ordered = dependency_order(cast("dict[str, Asset]", assets), lambda t: locator.where("assets", declared[t]))
    explicit = frozenset([f"server.{name}" for name in shape.server.model_fields_set]
                         + [f"project.{name}" for name in shape.project.model_fields_set]
                         + [f"cache.{name}" for name in shape.cache.model_fields_set])
    if "cache.dir" in explicit:  # the new name of project.cache_dir: the same precedence applies
        explicit |= {"project.cache_dir"}
    return Project(manifest, root, output_dir, cache_dir, ServerSettings.of(shape.server), ordered, warnings,
                   explicit, remote=shape.cache.remote, push=shape.cache.push, tables=tables,
                   table_hashes=table_hashes if table_hashes is not None else {})


def _folders(root: Path, shape: FileShape | ManifestFile, locator: Locator,
             cache_override: str | None) -> tuple[Path, Path]:
    """The output folder (inside the project) and the cache folder (anywhere: it may be shared)."""
    try:  # the line is looked up only for the message (finding it indexes the whole file)
        out_rel = inside(root, shape.project.output_dir, locator.shown, "output_dir")
    except ManifestError:
        inside(root, shape.project.output_dir, locator.where("project", "output_dir"), "output_dir")
        raise
    output_dir = (root / out_rel) if out_rel != "." else root
    if shape.cache.dir and shape.project.cache_dir and shape.cache.dir != shape.project.cache_dir:
        raise ManifestError(locator.where("cache", "dir"), "[cache] dir and [project] cache_dir disagree",
                            hint="keep only [cache] dir ([project] cache_dir is its old name)")
    cache_setting = cache_override or shape.cache.dir or shape.project.cache_dir
    # A cache dir may be shared across projects (CI cache, network share): it may live anywhere.
    try:
        cache_dir = cache_folder(cache_setting, relative_to=Path.cwd() if cache_override else root, root=root)
    except ValueError as exc:  # ~name of a user this system does not have
        table, field = ("cache", "dir") if shape.cache.dir else ("project", "cache_dir")
        where = "ASSETBUILD_CACHE_DIR" if cache_override else locator.where(table, field)
        raise ManifestError(where, f"cache folder {exc}") from None
    return output_dir, cache_dir


def _written_of(target: str, shape: FileShape | ManifestFile) -> str:
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
