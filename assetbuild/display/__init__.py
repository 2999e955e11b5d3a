"""Displays for build events: rich live view (terminals), plain lines (CI, pipes), JSON lines."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TextIO

from ..events import BuildEvents


def wants_plain(stream: TextIO) -> bool:
    """Plain output unless ``stream`` is an interactive terminal that can take control codes."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb" or os.environ.get("CI"):
        return True
    return not (hasattr(stream, "isatty") and stream.isatty())


def make_display(*, json_output: bool = False, quiet: bool = False, verbose: bool = False,
                 stream: TextIO | None = None, jobs: int = 1, one_off: bool = False) -> BuildEvents:
    """``one_off``: images made by ``generate``, not a build: no build wording (to build, restored, fresh)."""
    stream = stream or sys.stdout
    if json_output:
        from .jsonl import JsonDisplay

        return JsonDisplay(stream)
    if wants_plain(stream):
        from .plain import PlainDisplay

        return PlainDisplay(stream, quiet=quiet, verbose=verbose, one_off=one_off)
    from rich.console import Console

    from .live import LiveDisplay

    return LiveDisplay(Console(file=stream), quiet=quiet, verbose=verbose, jobs=jobs, one_off=one_off)


def plural(count: int, noun: str) -> str:
    """``1 asset``, ``2 assets``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def forward_logs(events: BuildEvents, *, verbose: bool) -> contextlib.AbstractContextManager[None]:
    """Route assetbuild's log records (warnings; with --verbose, request-level debug) to the display.
    (``logging`` is imported only here: a build the no-op memo answers never needs it.)"""
    from ._logs import forward_logs as forward

    return forward(events, verbose=verbose)
