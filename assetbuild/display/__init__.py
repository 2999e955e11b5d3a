"""Displays for build events: rich live view (terminals), plain lines (CI, pipes), JSON lines."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import TextIO

from ..events import BuildEvents
from ..safetext import safe_text


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


class _ToDisplay(logging.Handler):
    def __init__(self, events: BuildEvents) -> None:
        super().__init__()
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.events.warning(self.format(record))  # every display escapes it
        else:  # --verbose detail: to stderr, so it is not mistaken for a warning (or break --json on stdout)
            # The message may quote a name or the server: escaped. A traceback (exc_info) keeps its lines.
            trace = f"\n{logging.Formatter().formatException(record.exc_info)}" if record.exc_info else ""
            sys.stderr.write(f"debug: {safe_text(record.getMessage())}{trace}\n")


@contextlib.contextmanager
def forward_logs(events: BuildEvents, *, verbose: bool) -> Iterator[None]:
    """Route assetbuild's log records (warnings; with --verbose, request-level debug) to the display."""
    logger = logging.getLogger("assetbuild")
    handler = _ToDisplay(events)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
