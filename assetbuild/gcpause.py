"""Python's cyclic garbage collector paused while a big project is read and planned.

Loading a 10,000-asset manifest, its lock and its plan makes a few hundred thousand long-lived objects
(tables, entries, statuses) and no garbage cycles; the collector, triggered by the allocations alone,
scans them again and again (a quarter of a cold plan's time). Objects are still freed by reference
counting meanwhile; the collector runs again, as usual, once the block ends.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


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
        gc.enable()
