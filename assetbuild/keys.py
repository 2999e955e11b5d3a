"""The key of an asset: xxh3-128 of a canonical form of everything that determines its image.

The canonical form is a JSON object with sorted keys: the key-format version, the generator kind, the
normalised parameters (resolved prompt, whitespace at its ends stripped), the xxh3-128 of the bytes of
every image input, and the post-processing steps. Renaming a parameter to an alias or reordering the
TOML cannot change it; any value that reaches the generator does. The same form is stored in the lock,
so ``assetbuild why`` can say which field changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import xxhash

if TYPE_CHECKING:  # only for types: a no-op build must not pay for pydantic
    from .manifest import Asset

# Bump when the canonical form changes meaning: every key changes, so everything rebuilds (or restores).
KEY_VERSION = 1


def hash_bytes(data: bytes) -> str:
    """xxh3-128 of ``data`` as 32 hex digits: the content hash used everywhere."""
    return xxhash.xxh3_128_hexdigest(data)


def _canonical_value(value: Any) -> Any:
    # 7 and 7.0 reach SwarmUI as the same decimal; give them one key.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_canonical_value(v) for v in value]
    return value


def canonical(asset: Asset, generator_kind: str, input_hashes: Mapping[str, str]) -> dict[str, Any]:
    """The canonical description of ``asset``. ``input_hashes`` maps image param (or ``source``) to hash."""
    form: dict[str, Any] = {
        "v": KEY_VERSION,
        "generator": "derive" if asset.source else generator_kind,
        # (Strings, whole numbers and booleans are their own canonical value: no call for them. A plan
        # makes this form for every asset.)
        "params": {k: v if type(v) in _AS_THEY_ARE else _canonical_value(v) for k, v in sorted(asset.params.items())},
        "inputs": dict(sorted(input_hashes.items())) if input_hashes else {},
        "post": asset.post.canonical(),
    }
    seed = asset.params.get("seed", -1)
    if asset.variant is not None and not (isinstance(seed, int) and seed >= 0):
        # Variants with a random seed have identical parameters; without this they would share one key
        # (and one cached image). With a fixed seed, each variant's seed already tells them apart.
        form["variant"] = asset.variant
    return form


_AS_THEY_ARE = frozenset({str, int, bool})  # exact types whose values ``_canonical_value`` returns unchanged

# One encoder for every key (``json.dumps`` with these options would build a new one per call).
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _one_shot_encoder(encoder: json.JSONEncoder) -> Callable[[Any], str] | None:
    """``encoder.encode`` without its per-call set-up: the C encoder it builds for each call (with the same
    settings), built once. None without the C accelerator. No circular-reference check: a canonical form is
    a tree made for the call (a cycle would end in RecursionError rather than ValueError)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None or encoder.indent is not None:
        return None
    strings = json.encoder.encode_basestring_ascii if encoder.ensure_ascii else json.encoder.encode_basestring
    chunks = make(None, encoder.default, strings, None, encoder.key_separator, encoder.item_separator,
                  encoder.sort_keys, encoder.skipkeys, encoder.allow_nan)
    return lambda form: "".join(chunks(form, 0))


_ENCODE = _one_shot_encoder(_CANONICAL_JSON) or _CANONICAL_JSON.encode


def key_of(form: Mapping[str, Any]) -> str:
    """xxh3-128 of the canonical JSON of ``form``."""
    return hash_bytes(_ENCODE(form).encode("utf-8"))
