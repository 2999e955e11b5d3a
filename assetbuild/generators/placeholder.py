"""The built-in placeholder generator: a deterministic image of the requested size, offline.

It draws the asset's name and prompt on a background whose colours come from the prompt and seed, so
different assets look different and the same request always gives the same pixels (``seed = -1``, or
no seed, picks a random seed as SwarmUI does; the seed used is returned and recorded in the lock). It lets the
quickstart, offline work and CI smoke tests run the whole pipeline (keys, lock, cache,
post-processing) without a GPU or a server.

Set ``ASSETBUILD_PLACEHOLDER_LOG`` to a file path to have every generation appended to it as one line
(the asset name): tests and CI checks count generations that way, across processes.
"""

from __future__ import annotations

import io
import os
import posixpath
import random
import textwrap
import threading

import xxhash
from PIL import Image, ImageDraw, ImageFont

from ..errors import GenerationError
from ..postprocess import open_image
from .base import GenerationRequest, GenerationResult, Progress, ProgressCallback

LOG_ENV = "ASSETBUILD_PLACEHOLDER_LOG"
_log_lock = threading.Lock()


class PlaceholderGenerator:
    kind = "placeholder"

    def __init__(self) -> None:
        self.count = 0
        self._count_lock = threading.Lock()

    def generate(self, request: GenerationRequest, progress: ProgressCallback) -> GenerationResult:
        width, height = request.width, request.height
        if not (16 <= width <= 16384 and 16 <= height <= 16384):
            raise GenerationError(request.asset, f"placeholder cannot draw {width}x{height}")
        progress(Progress("generating", 0.0))
        seed = int(request.params.get("seed", -1))
        if seed < 0:  # like SwarmUI: -1 is a random seed, and the one used is what the lock records
            seed = random.randint(0, 2**31 - 1)
        prompt = str(request.params.get("prompt", ""))
        image = render(request.asset, prompt, seed, width, height, request.images.get("initimage"))
        progress(Progress("generating", 1.0))
        out = io.BytesIO()
        image.save(out, "PNG", compress_level=1)
        with self._count_lock:
            self.count += 1
        _log(request.asset)
        return GenerationResult(out.getvalue(), seed=seed, model=str(request.params.get("model") or "placeholder"))

    def interrupt(self) -> None:
        """Nothing runs elsewhere: nothing to interrupt."""

    def close(self) -> None:
        """No resources held."""


def _log(asset: str) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    with _log_lock, open(path, "a", encoding="utf-8") as handle:
        handle.write(asset + "\n")


def _colour(digest: bytes, offset: int) -> tuple[int, int, int]:
    return (digest[offset], digest[offset + 1], digest[offset + 2])


def render(name: str, prompt: str, seed: int, width: int, height: int, init: bytes | None = None) -> Image.Image:
    """Draw the placeholder image. Pure: the same arguments give the same pixels.

    The asset's short name is drawn large (it must stay readable after a ``resize`` to an icon) and the
    colours come from the name too, so that assets sharing a prompt still look different.
    """
    digest = xxhash.xxh3_128_digest(f"{name}\0{prompt}\0{seed}".encode())
    top, bottom, accent = _colour(digest, 0), _colour(digest, 3), _colour(digest, 6)
    image = Image.new("RGB", (width, height), top)
    draw = ImageDraw.Draw(image)
    # A vertical gradient, in bands (cheap even for big images).
    bands = min(height, 64)
    for band in range(bands):
        t = band / max(1, bands - 1)
        colour = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        y0 = band * height // bands
        y1 = (band + 1) * height // bands
        draw.rectangle([0, y0, width, y1], fill=colour)
    if init is not None:
        _blend_init(image, init)
    border = max(1, min(width, height) // 32)
    draw.rectangle([border, border, width - 1 - border, height - 1 - border], outline=accent, width=border)
    _draw_text(draw, _printable(name), _printable(prompt), width, height)
    _draw_label(draw, _printable(short_name(name)), width, height)
    return image


def _printable(text: str) -> str:
    """Control characters (a newline in a target name...) drawn as '?': Pillow measures one line only."""
    return "".join(char if char.isprintable() else "?" for char in text)


def short_name(target: str) -> str:
    """``ui/icon_sword.png`` -> ``icon_sword`` (at most 12 characters: it is drawn large)."""
    stem = posixpath.splitext(posixpath.basename(target))[0] or target
    return stem if len(stem) <= 12 else stem[:11] + "~"


def _draw_label(draw: ImageDraw.ImageDraw, label: str, width: int, height: int) -> None:
    """The short name as large as fits 90 % of the width and a third of the height, in the lower half,
    with a thick outline: still legible when a 1024 px placeholder is resized to a 64 px icon."""
    size = max(8, height // 3)
    font = ImageFont.load_default(size)
    length = draw.textlength(label, font=font)
    if length > width * 0.9:
        size = max(6, int(size * width * 0.9 / length))
        font = ImageFont.load_default(size)
    left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
    x = (width - (right - left)) / 2 - left
    y = height * 0.72 - (bottom - top) / 2 - top
    draw.text((x, y), label, fill=(255, 255, 255), font=font, stroke_width=max(1, size // 8), stroke_fill=(0, 0, 0))


def _blend_init(image: Image.Image, init: bytes) -> None:
    try:
        base = open_image(init).convert("RGB").resize(image.size)
    except ValueError:  # not an image: the real server would refuse it; the placeholder ignores it
        return
    image.paste(Image.blend(image, base, 0.5))


def _draw_text(draw: ImageDraw.ImageDraw, name: str, prompt: str, width: int, height: int) -> None:
    size = max(8, min(width, height) // 14)
    font = ImageFont.load_default(size)
    chars = max(8, int(width / (size * 0.55)))
    # The upper half: the lower one holds the large short name.
    lines = [name, ""] + textwrap.wrap(prompt, chars)[: max(1, int(height * 0.45 / (size * 1.3)) - 2)]
    y = size
    for line in lines:
        draw.text((size, y), line, fill=(255, 255, 255), font=font, stroke_width=max(1, size // 12),
                  stroke_fill=(0, 0, 0))
        y += int(size * 1.3)
