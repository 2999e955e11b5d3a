"""SwarmUI text-to-image parameter ids: normalisation, the known-parameter table, typo hints.

SwarmUI turns a parameter's display name into its id by lower-casing it and dropping every character
that is not a-z ("CFG Scale" -> "cfgscale"), and cleans incoming keys the same way, so ``cfg_scale``,
``CFGScale`` and ``cfgscale`` are one parameter. assetbuild does the same, so an alias never changes a
key. SwarmUI silently ignores names it does not know; we pass them through but warn, with a hint.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Any

_NOT_A_TO_Z = re.compile(r"[^a-z]")

# Legacy names SwarmUI still accepts and maps to the new id (T2IParamTypes.cs).
_LEGACY = {"saveintermediateimages": "outputintermediateimages"}


def normalise(name: str) -> str:
    """The SwarmUI id of a parameter name: lower-case, letters only, legacy names mapped."""
    known = _NORMALISED.get(name)
    if known is None:
        cleaned = _NOT_A_TO_Z.sub("", name.lower())
        known = _NORMALISED[name] = _LEGACY.get(cleaned, cleaned)
    return known


# Names already normalised: a manifest repeats a handful of names in every table (at most as many
# entries as distinct names written).
_NORMALISED: dict[str, str] = {}


@dataclass(frozen=True)
class ParamSpec:
    """What assetbuild knows of one SwarmUI parameter: its value type and range."""

    id: str
    type: str  # text | int | decimal | bool | model | image | choice | list
    min: float | None = None
    max: float | None = None


def _spec(id: str, type: str, lo: float | None = None, hi: float | None = None) -> ParamSpec:
    return ParamSpec(id, type, lo, hi)


_LONG_MAX = 2**63 - 1

# The common SwarmUI T2I parameters (T2IParamTypes.cs and the ComfyUI backend's additions).
KNOWN: dict[str, ParamSpec] = {
    p.id: p
    for p in [
        _spec("prompt", "text"),
        _spec("negativeprompt", "text"),
        _spec("images", "int", 1, 10000),
        _spec("seed", "int", -1, _LONG_MAX),
        _spec("steps", "int", 0, 500),
        _spec("cfgscale", "decimal", 0, 100),
        _spec("width", "int", 64, 16384),
        _spec("height", "int", 64, 16384),
        _spec("aspectratio", "text"),
        _spec("sidelength", "int", 64, 16384),
        _spec("model", "model"),
        _spec("sampler", "choice"),
        _spec("scheduler", "choice"),
        _spec("batchsize", "int", 1, 100),
        _spec("vae", "model"),
        _spec("loras", "list"),
        _spec("loraweights", "list"),
        _spec("initimage", "image"),
        _spec("initimagecreativity", "decimal", 0, 1),
        _spec("initimageresettonorm", "decimal", 0, 1),
        _spec("initimagenoise", "decimal", 0, 1),
        _spec("maskimage", "image"),
        _spec("maskblur", "int", 0, 64),
        _spec("maskgrow", "int", 0, 512),
        _spec("maskshrinkgrow", "int", 0, 512),
        _spec("refinermodel", "model"),
        _spec("refinercontrolpercentage", "decimal", 0, 1),
        _spec("refinermethod", "choice"),
        _spec("refinerupscale", "decimal", 0.25, 8),
        _spec("refinersteps", "int", 0, 500),
        _spec("refinercfgscale", "decimal", 0, 100),
        _spec("clipstopatlayer", "int", -24, -1),
        _spec("variationseed", "int", -1, _LONG_MAX),
        _spec("variationseedstrength", "decimal", 0, 1),
        _spec("seamlesstileable", "choice"),
        _spec("removebackground", "bool"),
        _spec("controlnetimageinput", "image"),
        _spec("controlnetmodel", "model"),
        _spec("controlnetstrength", "decimal", 0, 2),
        _spec("controlnetstart", "decimal", 0, 1),
        _spec("controlnetend", "decimal", 0, 1),
        _spec("promptimages", "image"),
        _spec("imageformat", "choice"),
        _spec("donotsave", "bool"),
        _spec("donotsaveintermediates", "bool"),
        _spec("nopreviews", "bool"),
        _spec("noloadmodels", "bool"),
        _spec("nointernalspecialhandling", "bool"),
        _spec("continueaftererrors", "bool"),
        _spec("noseedincrement", "bool"),
    ]
}

# Parameters whose value is an image: in a manifest they name a file (an asset's target or a repo file).
IMAGE_PARAMS = frozenset(p.id for p in KNOWN.values() if p.type == "image")

# Parameters the build sets itself; a manifest may not set them.
RESERVED = {
    "images": "each asset is one image; use `count = N` with `{n}` in the target for variants",
    "donotsave": "assetbuild chooses how images are returned",
    "batchsize": "each asset is one image; use `count = N` with `{n}` in the target for variants",
}


def closest(name: str, candidates: list[str] | None = None) -> str | None:
    """The known name closest to ``name``, if any is close enough to be a likely typo."""
    pool = candidates if candidates is not None else list(KNOWN)
    matches = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    return matches[0] if matches else None


# Kinds whose every string value is acceptable (``check_value`` asks nothing more of them).
STRING_KINDS = frozenset(("text", "model", "image", "choice"))


def check_value(spec: ParamSpec, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``spec`` (a sentence), or None when it is."""
    kind = spec.type
    if kind in STRING_KINDS:
        if not isinstance(value, str):
            return f"must be a string, not {_type_name(value)}"
        return None
    if kind == "bool":
        return None if isinstance(value, bool) else f"must be true or false, not {_type_name(value)}"
    if kind == "list":
        if isinstance(value, str) or (isinstance(value, list) and all(_is_scalar(v) for v in value)):
            return None
        return f"must be a string or a list of values, not {_type_name(value)}"
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        return f"must be a whole number, not {_type_name(value)}"
    if kind == "decimal" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"must be a number, not {_type_name(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, not {value}"
    if spec.min is not None and value < spec.min or spec.max is not None and value > spec.max:
        return f"must be between {_num(spec.min)} and {_num(spec.max)}, not {value}"
    return None


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _num(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else str(value)


def _type_name(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a table"}
    return names.get(type(value), type(value).__name__)
