"""The asset tables -> ``Asset`` objects: [defaults] < [styles.NAME] < the asset's own table, ``count``
variants, post-processing settings, ``source``, and each parameter checked against what SwarmUI takes."""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Container, Iterable
from pathlib import Path
from typing import Any

from .. import params as P
from ..errors import ManifestError
from ..postspec import POST_KEY_SET, POST_KEYS, Postprocess, PostprocessSpecError
from ..postspec import parse as parse_post
from .lines import KeyOrigin, Locator
from .paths import inside
from .project import Asset, ImageInput

# Keys of an asset (or style, or defaults) table that assetbuild itself reads; the rest are SwarmUI params.
BUILD_KEYS = ("style", "count", "source", *POST_KEYS)


def normalised_table(table: dict[str, Any], locator: Locator, path: tuple[str, ...]) -> dict[str, Any]:
    """``table`` with its keys normalised (``cfg_scale`` -> ``cfgscale``); two keys for one parameter are an error."""
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


def merge(defaults: dict[str, Any], styles: dict[str, dict[str, Any]], own: dict[str, Any],
          asset: str, origin: KeyOrigin) -> dict[str, Any]:
    """defaults < style < asset, with ``{prompt}`` templates in a style's prompts."""
    style_name = own.get("style", defaults.get("style"))
    style: dict[str, Any] = {}
    if style_name is not None:
        # (The line is looked up only for a message: finding it indexes the whole file.)
        if not isinstance(style_name, str):
            raise ManifestError(origin.where("style"),
                                f"style must be a string naming a [styles.NAME] table, not {style_name!r}")
        if style_name not in styles:
            guess = P.closest(style_name, list(styles))
            hint = f"did you mean {guess!r}?" if guess else (
                f"defined styles: {', '.join(styles)}" if styles else "define it as [styles." + style_name + "]")
            raise ManifestError(origin.where("style"), f"asset {asset!r} uses unknown style {style_name!r}",
                                hint=hint)
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


COUNT_MAX = 1000  # variants a table may have (``count``)


def expand_variants(target: str, values: dict[str, Any], where: str) -> Iterable[tuple[str, dict[str, Any]]]:
    """The (target, values) of each variant of a ``count = N`` entry ({n} -> 1..N), or the entry itself."""
    count = values.pop("count", None)
    if count is None:
        if "{n}" in target:
            raise ManifestError(where, f"target {target!r} has {{n}} but no `count`",
                                hint="add `count = N` to make N variants, or remove {n}")
        yield target, values
        return
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= COUNT_MAX:
        raise ManifestError(where, f"count must be a whole number from 1 to {COUNT_MAX}, not {count!r}")
    if "{n}" not in target:
        raise ManifestError(where, "`count` needs {n} in the target path, e.g. \"trees/oak_{n}.png\"")
    seed = values.get("seed", -1)
    for n in range(1, count + 1):
        variant = dict(values, **{_VARIANT: n})
        if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0:
            variant["seed"] = seed + n - 1
        yield target.replace("{n}", str(n)), variant


# Values that passed ``make_asset``'s checks as they are, by key: whether one passes depends on the key and
# the value alone, so the same object (one in [defaults] or a style, merged into every asset) is checked
# once, not once per asset. Holding the objects keeps ``is`` exact; ``forget_accepted`` frees them.
_ACCEPTED: dict[str, Any] = {}


def forget_accepted() -> None:
    _ACCEPTED.clear()


_VARIANT = "_variant"  # not a normalised name (those are letters only), so it cannot clash with a parameter


def make_asset(target: str, values: dict[str, Any], drafts: Container[str], root: Path,
               output_dir: Path, where: str, line: int | None, warnings: list[str],
               origin: KeyOrigin | None = None) -> Asset:
    """One asset from its merged values (one variant); ``drafts``: every target, so that an image
    parameter naming another asset's target is told from a file in the project."""
    def where_key(key: str) -> str:  # the line of the key that set ``key``: own table, style or [defaults]
        return origin.where(key) if origin else where

    def set_in(key: str) -> str:
        return origin.table(key) if origin else ""

    def written(key: str) -> str:  # as the user wrote it: `cfg_scale = "high"`, not the normalised cfgscale
        return origin.written(key) if origin else key

    post_settings = {} if POST_KEY_SET.isdisjoint(values) else {k: values.pop(k) for k in POST_KEYS if k in values}
    source = values.pop("source", None)
    variant = values.pop(_VARIANT, None)
    try:
        suffix = suffix_of(target)
        post = parse_post(post_settings, suffix) if post_settings else _plain_post(suffix)
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
        return Asset(target, output_dir, {}, (), post, source=norm_source, line=line)

    inputs: list[ImageInput] = []
    params: dict[str, Any] = {}
    accepted = _ACCEPTED
    for key, value in sorted(values.items()):
        if accepted.get(key) is value:  # this very object passed below before ([defaults], a style)
            params[key] = value
            continue
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
        problem = None if spec.type in P.STRING_KINDS and type(value) is str else P.check_value(spec, value)
        if problem:
            raise ManifestError(where_key(key), f"asset {target!r}: {written(key)} {problem}{set_in(key)}")
        if spec.type == "image":
            inputs.append(_image_input(key, value, drafts, root, output_dir, where_key, target))
        elif spec.type in ("text",) and key in ("prompt", "negativeprompt"):
            params[key] = value.strip()
        else:
            params[key] = accepted[key] = value
    if not params.get("prompt"):
        raise ManifestError(where, f"asset {target!r} has no prompt",
                            hint="add `prompt = \"...\"` (or derive it with `source = \"other.png\"`)")
    return Asset(target, output_dir, params, tuple(inputs), post, line=line, variant=variant)


def from_memo(target: str, resolved: tuple[str, dict[str, Any], dict[str, Any], int | None], output_dir: Path,
              line: int | None) -> Asset:
    """The asset ``make_asset`` made from the same table before (``manifest.memo``): its checked params,
    post-processing settings and variant; no image inputs and no ``source`` (those are never kept)."""
    _, params, post, variant = resolved
    suffix = suffix_of(target)
    steps = parse_post(post, suffix) if post else _plain_post(suffix)
    return Asset(target, output_dir, params, (), steps, line=line, variant=variant)


def suffix_of(target: str) -> str:
    """``posixpath.splitext(target)[1]``, without its function calls when the file name does not start
    with a dot (then its last dot, if any, starts the suffix)."""
    dot, slash = target.rfind("."), target.rfind("/")
    if dot > slash + 1 and target[slash + 1] != ".":
        return target[dot:]
    return posixpath.splitext(target)[1]


_PLAIN_POST: dict[str, Postprocess] = {}  # suffix -> the post-processing of an asset with no settings


def _plain_post(suffix: str) -> Postprocess:
    """The post-processing of an asset with no settings (the common case): one shared object per file
    type, not one per asset (``Postprocess`` is frozen)."""
    found = _PLAIN_POST.get(suffix)
    if found is None:
        found = _PLAIN_POST.setdefault(suffix, parse_post({}, suffix))
    return found


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


def _image_input(param: str, value: str, drafts: Container[str], root: Path, output_dir: Path,
                 where_key: Callable[[str], str], target: str) -> ImageInput:
    """``where_key(param)``: the ``file:line`` of the key, looked up only for a message (it may index the
    whole file)."""
    reference = posixpath.normpath(value.replace("\\", "/"))
    if reference in drafts:
        return ImageInput(param, reference, output_dir / reference, reference)
    try:
        rel = inside(root, value, "", f"{param} of {target!r}")
    except ManifestError:
        inside(root, value, where_key(param), f"{param} of {target!r}")  # the same problem, with its line
        raise
    path = root / rel
    if not path.is_file():
        raise ManifestError(where_key(param),
                            f"asset {target!r}: {param} {value!r} is neither an asset target nor a file",
                            hint="name another asset's target, or a file relative to the manifest's folder")
    return ImageInput(param, rel, path, None)
