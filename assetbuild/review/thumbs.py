"""The images of the review site: full-size copies and thumbnails, named by content hash.

``img/<hash><ext>`` is the image itself, ``thumbs/<hash>.webp`` (or ``.png`` without WebP support) a
thumbnail at most ``THUMB`` pixels on its longer side; an image already that small is its own thumbnail.
Both are written only when missing, so a second review redoes only what changed; ``meta.json`` keeps
each image's pixel size and each compared pair's changed-pixel share for the same reason. The work runs
on a thread pool (Pillow releases the GIL while it decodes, resizes and encodes). Files of images no
longer shown are removed (only files named by a hash, only in these two folders).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ..fsutil import atomic_write
from ..postprocess import limit_pixels
from .data import ImageRef

limit_pixels()  # Pillow's pixel limit: the same as in a build

THUMB = 256
META = "meta.json"
META_VERSION = 1
_HASHED = re.compile(r"^[0-9a-f]{32}\.[a-z0-9]+$")


@dataclass(frozen=True)
class SiteImage:
    full: str  # relative URL of the full-size image
    thumb: str  # relative URL of the thumbnail
    width: int
    height: int


def thumb_format() -> tuple[str, str]:
    from PIL import features

    return ("WEBP", ".webp") if features.check("webp") else ("PNG", ".png")


def changed_share(before: bytes, after: bytes) -> float:
    """The share (0..1) of the after image's pixels that differ from the before image.

    Images of another size are compared after scaling the before image to the after image's size, with
    a small tolerance so that resampling alone does not count as a change.
    """
    from PIL import Image, ImageChops

    with Image.open(io.BytesIO(before)) as b, Image.open(io.BytesIO(after)) as a:
        new = a.convert("RGBA")
        old = b.convert("RGBA")
    tolerance = 0
    if old.size != new.size:
        old = old.resize(new.size, Image.Resampling.BILINEAR)
        tolerance = 16
    diff = ImageChops.difference(old, new)
    r, g, b_, alpha = diff.split()
    peak = ImageChops.lighter(ImageChops.lighter(r, g), ImageChops.lighter(b_, alpha))
    changed = peak.point(lambda v: 255 if v > tolerance else 0).histogram()[255]
    total = new.size[0] * new.size[1]
    return changed / total if total else 0.0


class SiteImages:
    """Writes (or reuses) the site's images under ``out``."""

    def __init__(self, out: Path, *, workers: int | None = None) -> None:
        self.out = out
        self.workers = workers or min(8, (os.cpu_count() or 2) + 1)
        self.format, self.thumb_ext = thumb_format()
        self._meta = self._load_meta()
        self.made = 0  # thumbnails written this run (for the summary and the benchmark)
        self.reused = 0
        self._count = threading.Lock()

    def _load_meta(self) -> dict[str, Any]:
        try:
            meta = json.loads((self.out / META).read_text(encoding="utf-8"))
            if isinstance(meta, dict) and meta.get("version") == META_VERSION:
                return meta
        except (OSError, ValueError):
            pass
        return {"version": META_VERSION, "images": {}, "pairs": {}}

    def build(self, images: Iterable[ImageRef], pairs: Iterable[tuple[str, str]]
              ) -> tuple[dict[str, SiteImage], dict[tuple[str, str], float | None]]:
        """Every image's files, and the changed-pixel share of each (before, after) pair."""
        refs = {ref.hash: ref for ref in images}
        wanted_pairs = list(pairs)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="assetbuild-thumb") as pool:
            built = dict(zip(refs, pool.map(self._image, refs.values()), strict=True))
            shares = dict(zip(wanted_pairs, pool.map(lambda p: self._share(refs, p), wanted_pairs), strict=True))
        self._meta["images"] = {h: self._meta["images"][h] for h in refs if h in self._meta["images"]}
        self._meta["pairs"] = {f"{a}:{b}": shares[(a, b)] for a, b in wanted_pairs if shares[(a, b)] is not None}
        atomic_write(self.out / META, json.dumps(self._meta, sort_keys=True, separators=(",", ":")).encode())
        made = {h: i for h, i in built.items() if i is not None}
        self._prune({Path(i.full).name for i in made.values()} | {Path(i.thumb).name for i in made.values()})
        return made, shares

    def _image(self, ref: ImageRef) -> SiteImage | None:
        full_name = f"img/{ref.hash}{ref.ext}"
        full = self.out / full_name
        known = self._meta["images"].get(ref.hash)
        try:
            raw = None
            if not full.is_file() or full.stat().st_size != ref.size:
                raw = ref.read()
                atomic_write(full, raw)
            if known is not None and (known[2] == full_name or (self.out / known[2]).is_file()):
                with self._count:
                    self.reused += 1
                return SiteImage(full_name, known[2], known[0], known[1])
            width, height, thumb = self._thumbnail(ref, raw if raw is not None else ref.read(), full_name)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):  # shown without a preview
            return None
        with self._count:
            self._meta["images"][ref.hash] = [width, height, thumb]
            self.made += 1
        return SiteImage(full_name, thumb, width, height)

    def _thumbnail(self, ref: ImageRef, raw: bytes, full_name: str) -> tuple[int, int, str]:
        from PIL import Image

        with Image.open(io.BytesIO(raw)) as image:
            width, height = image.size
            if width <= THUMB and height <= THUMB:
                return width, height, full_name
            image.draft("RGB", (THUMB, THUMB))  # JPEG: decode at a reduced scale
            small = image.copy() if image.mode in ("RGB", "RGBA") else image.convert("RGBA")
        # reducing_gap: a cheap box reduction first, then Lanczos (about twice as fast, the same to the eye).
        small.thumbnail((THUMB, THUMB), Image.Resampling.LANCZOS, reducing_gap=3.0)
        buffer = io.BytesIO()
        if self.format == "WEBP":
            small.save(buffer, "WEBP", quality=85, method=2)
        else:
            small.save(buffer, "PNG", optimize=False)
        thumb = f"thumbs/{ref.hash}{self.thumb_ext}"
        atomic_write(self.out / thumb, buffer.getvalue())
        return width, height, thumb

    def _share(self, refs: dict[str, ImageRef], pair: tuple[str, str]) -> float | None:
        before, after = pair
        if before == after:
            return 0.0
        known = self._meta["pairs"].get(f"{before}:{after}")
        if isinstance(known, (int, float)):
            return float(known)
        try:
            return changed_share(refs[before].read(), refs[after].read())
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            return None

    def _prune(self, keep: set[str]) -> None:
        for folder in ("img", "thumbs"):
            with contextlib.suppress(FileNotFoundError):
                for path in (self.out / folder).iterdir():
                    if _HASHED.match(path.name) and path.name not in keep:
                        with contextlib.suppress(OSError):
                            path.unlink()
