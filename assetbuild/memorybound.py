"""A bound on the memory a block may add, for reading a state file someone may have forged (Linux only).

The manifest memo is read by pickle's C unpickler, whose PUT opcodes size its memo table by the index they
name: five forged bytes make it fill hundreds of MB (LONG_BINPUT 2**26 is 1 GiB). Under this bound such a
request fails at once (MemoryError, which the reader turns into "memo not used") and nothing is filled.

The bound is the soft RLIMIT_DATA, which is per process: it is set only while the process has one thread
(no other thread's allocation can fail for it) and put back as soon as the block ends. Elsewhere (other
threads, another system, a limit that cannot be set) ``bounded`` yields False and the caller must read
another way.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def bounded(extra: int) -> Iterator[bool]:
    """Allocations in the block may add at most about ``extra`` bytes to the process's data (more raises
    MemoryError); yields whether that bound is in force."""
    old = _lower_to(extra) if sys.platform == "linux" else None
    if old is None:
        yield False
        return
    import resource

    try:
        yield True
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, old)


def _lower_to(extra: int) -> tuple[int, int] | None:
    """Set the soft data limit to the data now in use plus ``extra``; the limits it replaced, or None when
    none was set (more than one thread, no /proc, a limit that may not be changed)."""
    import resource

    try:
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()  # after the command name, which may hold spaces
        if int(fields[17]) != 1:  # num_threads (the 20th field; the name was the 2nd)
            return None
        with open("/proc/self/statm", "rb") as statm:
            in_use = int(statm.read().split()[5]) * resource.getpagesize()  # data + stack
        old = resource.getrlimit(resource.RLIMIT_DATA)
        soft, hard = old
        limit = in_use + extra
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        if soft != resource.RLIM_INFINITY and soft <= limit:
            return old  # already at least this tight: set it again (a no-op) and put it back as it was
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
        return old
    except (OSError, ValueError, IndexError):
        return None
