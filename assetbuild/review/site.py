"""Writes the review site: images and thumbnails, ``index.html`` and ``summary.md``, all under one folder
and all through atomic writes."""

from __future__ import annotations

import os
import time
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


def write(review: Review, out: Path, *, link: str | None = None, workers: int | None = None,
          live: bool = False) -> Site:
    """``live`` (``watch --review``): the page reloads itself when a later write changes the site.

    A folder that holds files but no ``meta.json`` was not written by review: it is refused (UsageError)
    rather than having someone's own ``index.html`` replaced."""
    _check_is_ours(out)
    images = SiteImages(out, workers=workers)
    built, shares = images.build(review.images(), review.pairs())
    index = out / "index.html"
    stamp = _stamp() if live else None
    atomic_write(index, html.render(review, built, shares, live_stamp=stamp).encode("utf-8"))
    if stamp is not None:  # after the page: an open page that sees the new stamp reloads the new page
        atomic_write(out / html.LIVE_STAMP_FILE, html.live_stamp_script(stamp).encode("utf-8"))
    text = markdown.summary(review, link)
    atomic_write(out / "summary.md", text.encode("utf-8"))
    return Site(index, text, images.made, images.reused)


def _stamp() -> str:
    return f"{os.getpid()}-{time.time_ns()}"


def _check_is_ours(out: Path) -> None:
    from ..errors import UsageError
    from .thumbs import META

    try:
        present = [entry.name for entry in out.iterdir()]
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise UsageError(f"{out} is a file, not a folder for the review site") from None
    if present and META not in present:
        raise UsageError(f"{out} holds files that assetbuild review did not write (no {META})",
                         hint="pass an empty or new folder with -o; review replaces index.html there")
