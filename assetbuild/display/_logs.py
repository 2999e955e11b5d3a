"""Log records to the display (``display.forward_logs``), in a module of its own: importing ``logging``
costs a build the no-op memo answers a few per cent of its time, and it never logs."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from ..events import BuildEvents
from ..safetext import safe_text


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
