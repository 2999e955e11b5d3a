"""Ctrl-C and SIGTERM during a build: stop promptly, stop the server's work, keep what finished.

The first signal cancels the build (the generator interrupts its server-side work; running assets
fail as "interrupted"; nothing partial is written because every write is atomic). A second Ctrl-C
stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

INTERRUPTED_EXIT = 130


@contextlib.contextmanager
def on_interrupt(cancel: Callable[[], None]) -> Iterator[threading.Event]:
    """Call ``cancel`` (once) on SIGINT/SIGTERM while the block runs; the event tells if it happened."""
    happened = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield happened  # signals can only be handled on the main thread; nothing to install
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if happened.is_set():
            raise KeyboardInterrupt
        happened.set()
        # Cancelling may wait on the network (InterruptAll): do it off the signal handler.
        threading.Thread(target=cancel, name="assetbuild-cancel", daemon=True).start()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield happened
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
