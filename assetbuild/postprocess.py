"""Post-processing of generated images (Pillow): crop, trim, resize, encode, metadata.

Steps run in a fixed order (crop, trim, resize, then encoding in the target's format), so a style and
an asset can each contribute steps without order surprises. Every step is part of the asset's key.

Encoding strips the generator's volatile metadata (SwarmUI writes dates and timings into PNGs, so
identical pixels would give different bytes) and embeds assetbuild's key in a PNG text chunk so a file
can be traced to its manifest entry. A PNG that needs no pixel change keeps its pixel chunks as they
are (:mod:`.pngchunks`, which still proves the image whole); everything else is decoded and re-encoded.
Pillow is imported only then: a build whose PNGs need no pixel change never loads it.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from . import pngchunks
from .postspec import (  # noqa: F401 (re-exported: the spec is part of this module's public face)
    FILTER_NAMES,
    FORMATS,
    POST_KEYS,
    RESIZE_MODES,
    TRIM_MODES,
    Postprocess,
    PostprocessSpecError,
    parse,
)

if TYPE_CHECKING:
    from PIL import Image

# SwarmUI's largest side is 16384; nothing legitimate is bigger than that square.
MAX_PIXELS = 16384 * 16384


def limit_pixels() -> None:
    """Set Pillow's own decompression-bomb guard (it applies to every Image.open in the process): the one
    place it is set; every module that decodes images calls this first (``open_image`` and ``read_key``
    do). Pillow's default (~179 MP before an error) refused 16384x16384, inside the documented range;
    ours is exactly MAX_PIXELS: Pillow errors above twice that, and open_image refuses anything above it."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS

_Z_RLE = 3  # zlib.Z_RLE, as Pillow's PNG ``compress_type``

KEY_CHUNK = "assetbuild-key"
PROMPT_CHUNK = "assetbuild-prompt"


def open_image(data: bytes) -> Image.Image:
    """Decode ``data`` safely: refuse non-images and decompression bombs before decoding pixels.

    Raises ``ValueError`` with a readable reason.
    """
    from PIL import Image  # on first need: a chunk-level strip never loads Pillow (~10 ms)

    limit_pixels()
    try:
        with warnings.catch_warnings():
            # Pillow warns about big images by its own smaller limit; we apply ours just below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ValueError(f"image is {width}x{height}, larger than the {MAX_PIXELS} pixel limit")
            image.load()
    except Image.DecompressionBombError:
        raise ValueError(f"image is larger than the {MAX_PIXELS} pixel limit (a decompression bomb?)") from None
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"not a readable image ({exc})") from exc
    return image


class Final(NamedTuple):
    """Post-processed bytes, and the check of them left to run before they are used (``apply_unproven``)."""

    data: bytes
    prove: Callable[[], None] | None  # raises ValueError when the image is damaged; None: nothing left


def apply(data: bytes, post: Postprocess, *, key: str, prompt: str | None = None) -> bytes:
    """Run the post-processing on encoded image ``data`` and return the final encoded bytes."""
    final = apply_unproven(data, post, key=key, prompt=prompt)
    if final.prove is not None:
        final.prove()
    return final.data


def apply_unproven(data: bytes, post: Postprocess, *, key: str, prompt: str | None = None) -> Final:
    """``apply``, except that a PNG stripped at the chunk level comes back with the inflate that proves
    its image data whole still to run (``Final.prove``): the caller runs it beside its writes (it releases
    the GIL) and must not rename the bytes anywhere before it passed. Raises ``ValueError`` as ``apply``."""
    if post.format == "PNG" and not (post.crop or post.trim or post.resize):
        # No pixel changes: drop the generator's metadata chunk by chunk instead of decoding and
        # re-encoding (the bulk of a download's CPU cost); unusual PNGs take the full path below.
        text = [(KEY_CHUNK, key)] + ([(PROMPT_CHUNK, prompt)] if post.embed_prompt and prompt is not None else [])
        stripped = pngchunks.strip_unproven(data, text, max_pixels=MAX_PIXELS)
        if stripped is not None:
            return Final(stripped.data, stripped.prove)
    image = open_image(data)
    if post.crop:
        image = _crop(image, post.crop)
    if post.trim:
        image = _trim(image, post.trim)
    if post.resize:
        image = _resize(image, post.resize, post.resize_mode, _filter(post.resize_filter))
    return Final(encode(image, post, key=key, prompt=prompt if post.embed_prompt else None), None)


def _filter(name: str) -> Image.Resampling:
    """Pillow's resampling filter for a ``postspec.FILTER_NAMES`` name (nearest, box, ..., lanczos)."""
    from PIL import Image

    resampling: Image.Resampling = getattr(Image.Resampling, name.upper())
    return resampling


def _crop(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    left, top, right, bottom = box
    if right > image.width or bottom > image.height:
        raise ValueError(f"crop box {list(box)} is outside the {image.width}x{image.height} image")
    return image.crop(box)


def _trim(image: Image.Image, mode: str) -> Image.Image:
    if mode == "auto":
        mode = "transparent" if image.mode in ("RGBA", "LA") or "transparency" in image.info else "uniform"
    if mode == "transparent":
        bbox = image.convert("RGBA").getchannel("A").getbbox()
    else:
        from PIL import Image, ImageChops

        rgb = image.convert("RGB")
        background = Image.new("RGB", rgb.size, rgb.getpixel((0, 0)))
        bbox = ImageChops.difference(rgb, background).getbbox()
    # A fully uniform image has nothing to keep; leave it as it is rather than produce 0x0.
    return image.crop(bbox) if bbox else image


def _resize(image: Image.Image, size: tuple[int, int], mode: str, resample: Image.Resampling) -> Image.Image:
    width, height = size
    if mode == "exact":
        return image.resize((width, height), resample)
    scale = (min if mode == "fit" else max)(width / image.width, height / image.height)
    scaled = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), resample)
    if mode == "fit":
        return scaled
    left = (scaled.width - width) // 2
    top = (scaled.height - height) // 2
    return scaled.crop((left, top, left + width, top + height))


def encode(image: Image.Image, post: Postprocess, *, key: str, prompt: str | None) -> bytes:
    """Encode deterministically, with no metadata but assetbuild's own (PNG only)."""
    out = io.BytesIO()
    if post.format == "PNG":
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_text(KEY_CHUNK, key)
        if prompt is not None:
            info.add_itxt(PROMPT_CHUNK, prompt)
        clean = image if image.mode in ("RGB", "RGBA", "L", "LA", "P", "1", "I", "I;16") else image.convert("RGBA")
        # Pillow re-emits some metadata (ICC profile, ...) from image.info; keep only what pixels need.
        clean.info = {k: v for k, v in clean.info.items() if k == "transparency"}
        # Photo-like images (generated art: more than 256 colours) use zlib's run-length strategy: after
        # PNG's row filters it compresses them as well as the default (within ~1%) and 4x faster (a
        # 1024x1024 image: ~70 ms instead of ~300). Flat art keeps the default, which packs it tighter.
        photo_like = clean.mode in ("RGB", "RGBA") and clean.getcolors(256) is None
        clean.save(out, "PNG", pnginfo=info, compress_level=6, compress_type=_Z_RLE if photo_like else -1)
    elif post.format == "JPEG":
        image.convert("RGB").save(out, "JPEG", quality=post.quality or 90, optimize=True)
    else:
        rgb = image if image.mode in ("RGB", "RGBA") else image.convert("RGBA")
        rgb.save(out, "WEBP", quality=post.quality or 90, method=4)
    return out.getvalue()


def read_key(data: bytes) -> str | None:
    """The assetbuild key embedded in a PNG written by assetbuild, or None.

    The target path is deliberately not embedded: the same bytes serve any target with the same key
    (a renamed target restores from the cache).
    """
    from PIL import Image  # on first need: a chunk-level strip never loads Pillow (~10 ms)

    limit_pixels()
    try:
        image = Image.open(io.BytesIO(data))
    except (OSError, SyntaxError, Image.DecompressionBombError):
        return None
    text = getattr(image, "text", {}) or {}
    return text.get(KEY_CHUNK)
