"""Writes the review site: images and thumbnails, ``index.html`` and ``summary.md``, all under one folder
and all through atomic writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..fsutil import atomic_write
from . import html, markdown
from .data import Review
from .thumbs import SiteImages


@dataclass(frozen=True)
class Site:
    index: Path
    summary: str  # the markdown summary
    made: int  # thumbnails made this time
    reused: int  # thumbnails reused from the last review


def write(review: Review, out: Path, *, link: str | None = None, workers: int | None = None) -> Site:
    images = SiteImages(out, workers=workers)
    built, shares = images.build(review.images(), review.pairs())
    index = out / "index.html"
    atomic_write(index, html.render(review, built, shares).encode("utf-8"))
    text = markdown.summary(review, link)
    atomic_write(out / "summary.md", text.encode("utf-8"))
    return Site(index, text, images.made, images.reused)
