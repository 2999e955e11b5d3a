"""Python's cyclic garbage collector paused while a big project is read and planned.

Loading a 10,000-asset manifest, its lock and its plan makes a few hundred thousand long-lived objects
(tables, entries, statuses) and no garbage cycles; the collector, triggered by the allocations alone,
scans them again and again (a quarter of a cold plan's time). Objects are still freed by reference
counting meanwhile; the collector runs again, as usual, once the block ends.

In a one-shot command (``one_shot``), what a block made is also frozen (``gc.freeze``) when it ends: the
collections that the next allocations trigger would otherwise scan all of it, two or three times over
(about 100 ms of a 10,000-asset plan). Frozen objects are still freed by reference counting; only a garbage
cycle among them would wait for the process to end. A long-lived process (``watch``, or a program using the
Python API, whose own objects would be frozen too) never freezes.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_freeze = False


@contextlib.contextmanager
def one_shot() -> Iterator[None]:
    """The block is the command this process runs before it ends: freeze what each paused block in it makes
    (see the module's doc). Afterwards nothing more is frozen (``runpy`` or a wrapper may go on in-process;
    what was frozen stays so, as unfreezing would have the next collection scan it all)."""
    global _freeze
    _freeze = True
    try:
        yield
    finally:
        _freeze = False


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Pause the cyclic collector for the block (nested blocks keep it paused until the outermost ends)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if _freeze:
            gc.freeze()
        gc.enable()
