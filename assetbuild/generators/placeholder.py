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
from collections import OrderedDict
from typing import TYPE_CHECKING, NamedTuple

import xxhash

from ..errors import GenerationError
from ..postprocess import open_image
from .base import GenerationRequest, GenerationResult, Progress, ProgressCallback

if TYPE_CHECKING:  # Pillow is imported when an image is drawn: a run with nothing to build never pays it
    from PIL import Image, ImageFont

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
    from PIL import Image, ImageDraw

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
    _draw_text(image, _printable(name), _printable(prompt), width, height)
    _draw_label(image, _printable(short_name(name)), width, height)
    return image


def _printable(text: str) -> str:
    """Control characters (a newline in a target name...) drawn as '?': Pillow measures one line only."""
    return "".join(char if char.isprintable() else "?" for char in text)


def short_name(target: str) -> str:
    """``ui/icon_sword.png`` -> ``icon_sword`` (at most 12 characters: it is drawn large)."""
    stem = posixpath.splitext(posixpath.basename(target))[0] or target
    return stem if len(stem) <= 12 else stem[:11] + "~"


def _draw_label(image: Image.Image, label: str, width: int, height: int) -> None:
    """The short name as large as fits 90 % of the width and a third of the height, in the lower half,
    with a thick outline: still legible when a 1024 px placeholder is resized to a 64 px icon."""
    size = max(8, height // 3)
    length = GLYPHS.length(label, size)
    if length > width * 0.9:
        size = max(6, int(size * width * 0.9 / length))
    left, top, right, bottom = GLYPHS.bbox(label, size)
    x = (width - (right - left)) / 2 - left
    y = height * 0.72 - (bottom - top) / 2 - top
    draw_line(image, (round(x), round(y)), label, size, stroke=max(1, size // 8))


def _blend_init(image: Image.Image, init: bytes) -> None:
    try:
        base = open_image(init).convert("RGB").resize(image.size)
    except ValueError:  # not an image: the real server would refuse it; the placeholder ignores it
        return
    from PIL import Image

    image.paste(Image.blend(image, base, 0.5))


def _draw_text(image: Image.Image, name: str, prompt: str, width: int, height: int) -> None:
    size = max(8, min(width, height) // 14)
    chars = max(8, int(width / (size * 0.55)))
    # The upper half: the lower one holds the large short name.
    lines = [name, ""] + textwrap.wrap(prompt, chars)[: max(1, int(height * 0.45 / (size * 1.3)) - 2)]
    y = size
    for line in lines:
        if line:
            draw_line(image, (size, y), line, size, stroke=max(1, size // 12))
        y += int(size * 1.3)


def draw_line(image: Image.Image, xy: tuple[int, int], text: str, size: int, *, stroke: int) -> None:
    """``text`` in white with a black outline of ``stroke`` pixels, its top-left at ``xy`` (Pillow's "la"
    anchor), in Pillow's default font at ``size``: what ``ImageDraw.text(..., stroke_width=stroke)`` draws,
    but from cached glyphs. Rendering an outlined line with FreeType took ~40 % of a small placeholder
    build; a build draws the same few dozen characters at the same few sizes thousands of times."""
    glyphs = [GLYPHS.glyph(char, size, stroke) for char in text]
    x, y = xy
    placed = []
    for glyph in glyphs:
        if x >= image.width:  # the rest of the line is cut off by the image's edge: nothing to draw
            break
        placed.append((x, glyph))
        x += glyph.advance
    # Every outline first, then every fill, as Pillow does: a letter's outline never covers its neighbour.
    for pen, glyph in placed:
        if glyph.outline is not None:
            image.paste(_BLACK, (pen + glyph.outline_box[0], y + glyph.outline_box[1]), glyph.outline)
    for pen, glyph in placed:
        if glyph.fill is not None:
            image.paste(_WHITE, (pen + glyph.fill_box[0], y + glyph.fill_box[1]), glyph.fill)


_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)


class Glyph(NamedTuple):
    advance: int
    outline: Image.Image | None  # "L" mask of the outlined glyph (None for a blank one such as a space)
    outline_box: tuple[int, int]  # its offset from the pen position, at the line's top
    fill: Image.Image | None
    fill_box: tuple[int, int]


class GlyphCache:
    """Rendered glyph masks by (character, size, outline width), bounded by their total pixels.

    Thread-safe: builds render placeholders on several threads, and one FreeType face must not be used by
    two threads at once, so every use of a font happens under the cache's lock (a miss is rare)."""

    def __init__(self, budget_pixels: int = 16 * 1024 * 1024) -> None:
        self._budget = budget_pixels
        self._pixels = 0
        self._glyphs: OrderedDict[tuple[str, int, int], Glyph] = OrderedDict()
        self._fonts: dict[int, ImageFont.FreeTypeFont | ImageFont.ImageFont] = {}
        self._lock = threading.Lock()

    def _font(self, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
        font = self._fonts.get(size)
        if font is None:
            if len(self._fonts) > 256:
                self._fonts.clear()
            from PIL import ImageFont

            font = self._fonts[size] = ImageFont.load_default(size)
        return font

    def length(self, text: str, size: int) -> float:
        with self._lock:
            return self._font(size).getlength(text)

    def bbox(self, text: str, size: int) -> tuple[float, float, float, float]:
        with self._lock:
            box = self._font(size).getbbox(text)
        return (box[0], box[1], box[2], box[3])

    def glyph(self, char: str, size: int, stroke: int) -> Glyph:
        key = (char, size, stroke)
        with self._lock:
            glyph = self._glyphs.get(key)
            if glyph is not None:
                self._glyphs.move_to_end(key)
                return glyph
            glyph = self._render(char, size, stroke)
            self._glyphs[key] = glyph
            self._pixels += _pixels(glyph)
            while self._pixels > self._budget and len(self._glyphs) > 1:
                self._pixels -= _pixels(self._glyphs.popitem(last=False)[1])
            return glyph

    def _render(self, char: str, size: int, stroke: int) -> Glyph:
        font = self._font(size)
        outline, outline_box = _mask(font, char, stroke)
        fill, fill_box = _mask(font, char, 0)
        return Glyph(int(round(font.getlength(char))), outline, outline_box, fill, fill_box)


def _mask(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, char: str,
          stroke: int) -> tuple[Image.Image | None, tuple[int, int]]:
    from PIL import Image, ImageDraw

    left, top, right, bottom = (int(v) for v in font.getbbox(char, stroke_width=stroke))
    if right <= left or bottom <= top:
        return None, (0, 0)
    mask = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(mask).text((-left, -top), char, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    if mask.getbbox() is None:
        return None, (0, 0)
    return mask, (left, top)


def _pixels(glyph: Glyph) -> int:
    return sum(m.width * m.height for m in (glyph.outline, glyph.fill) if m is not None)


GLYPHS = GlyphCache()
