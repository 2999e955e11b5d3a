"""What an asset's post-processing is (part of its key), read from the manifest: no Pillow here.

Reading a manifest, planning and ``status`` need only this module; :mod:`.postprocess` applies the steps
with Pillow when an image is actually made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FORMATS = {".png": "PNG", ".webp": "WEBP", ".jpg": "JPEG", ".jpeg": "JPEG"}
FILTER_NAMES = ("nearest", "box", "bilinear", "hamming", "bicubic", "lanczos")
RESIZE_MODES = ("exact", "fit", "fill")
TRIM_MODES = ("auto", "transparent", "uniform")


class PostprocessSpecError(ValueError):
    """A post-processing setting is malformed; the message says which and how to fix it."""


@dataclass(frozen=True)
class Postprocess:
    """The post-processing of one asset, in canonical form (part of the key)."""

    format: str = "PNG"
    crop: tuple[int, int, int, int] | None = None
    trim: str | None = None
    resize: tuple[int, int] | None = None
    resize_mode: str = "exact"
    resize_filter: str = "lanczos"
    quality: int | None = None
    embed_prompt: bool = False

    def canonical(self) -> dict[str, Any]:
        """A JSON-able form for keys and the lock: only the steps that apply."""
        out: dict[str, Any] = {"format": self.format}
        if self.crop:
            out["crop"] = list(self.crop)
        if self.trim:
            out["trim"] = self.trim
        if self.resize:
            out["resize"] = {"size": list(self.resize), "mode": self.resize_mode, "filter": self.resize_filter}
        if self.quality is not None and self.format != "PNG":
            out["quality"] = self.quality
        if self.embed_prompt:
            out["embed_prompt"] = True
        return out


POST_KEYS = ("resize", "crop", "trim", "quality", "embedprompt")
POST_KEY_SET = frozenset(POST_KEYS)  # (one test of a table's keys: most tables have none of these)


def parse(settings: dict[str, Any], suffix: str) -> Postprocess:
    """Build a ``Postprocess`` from the (merged, normalised) post keys of one asset.

    Raises ``PostprocessSpecError`` with a message naming the setting.
    """
    fmt = FORMATS.get(suffix.lower())
    if fmt is None:
        raise PostprocessSpecError(
            f"unsupported target extension {suffix or '(none)'!r}; use one of {', '.join(FORMATS)}"
        )
    resize, mode, filt = _parse_resize(settings.get("resize"))
    return Postprocess(
        format=fmt,
        crop=_parse_crop(settings.get("crop")),
        trim=_parse_trim(settings.get("trim")),
        resize=resize,
        resize_mode=mode,
        resize_filter=filt,
        quality=_parse_quality(settings.get("quality"), fmt),
        embed_prompt=_parse_bool(settings.get("embedprompt", False), "embed_prompt"),
    )


def _pair(value: Any, what: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 16384 for v in value)
    ):
        return (value[0], value[1])
    raise PostprocessSpecError(f"{what} must be [width, height] in pixels (1..16384), e.g. [64, 64]")


def _parse_resize(value: Any) -> tuple[tuple[int, int] | None, str, str]:
    if value is None:
        return None, "exact", "lanczos"
    if isinstance(value, dict):
        unknown = set(value) - {"size", "mode", "filter"}
        if unknown:
            raise PostprocessSpecError(f"resize has unknown keys {sorted(unknown)}; use size, mode, filter")
        size = _pair(value.get("size"), "resize.size")
        mode = value.get("mode", "exact")
        filt = value.get("filter", "lanczos")
        if mode not in RESIZE_MODES:
            raise PostprocessSpecError(f"resize.mode must be one of {', '.join(RESIZE_MODES)}, not {mode!r}")
        if filt not in FILTER_NAMES:
            raise PostprocessSpecError(f"resize.filter must be one of {', '.join(FILTER_NAMES)}, not {filt!r}")
        return size, mode, filt
    return _pair(value, "resize"), "exact", "lanczos"


def _parse_crop(value: Any) -> tuple[int, int, int, int] | None:
    if value is None:
        return None
    if (
        isinstance(value, list)
        and len(value) == 4
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
        and value[2] > value[0]
        and value[3] > value[1]
    ):
        return (value[0], value[1], value[2], value[3])
    raise PostprocessSpecError("crop must be [left, top, right, bottom] in pixels, right > left, bottom > top")


def _parse_trim(value: Any) -> str | None:
    if value is None or value is False:
        return None
    if value is True:
        return "auto"
    if value in TRIM_MODES:
        return str(value)
    raise PostprocessSpecError(f"trim must be true, false or one of {', '.join(TRIM_MODES)}, not {value!r}")


def _parse_quality(value: Any, fmt: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 100:
        return value if fmt != "PNG" else None
    raise PostprocessSpecError(f"quality must be a whole number from 1 to 100, not {value!r}")


def _parse_bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    raise PostprocessSpecError(f"{what} must be true or false, not {value!r}")
