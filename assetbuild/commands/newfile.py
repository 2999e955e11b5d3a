"""Creating files that must not replace anything: atomic, and never over an existing file.

The bytes go to a temporary file in the same folder, are flushed to disk, and the temporary file is
hard-linked to the final name: ``link`` fails when the name exists, so a file that appeared meanwhile
is never overwritten, and readers see the whole file or nothing. On filesystems without hard links
the name is reserved with ``O_EXCL`` and the data renamed over that (empty) reservation.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterable
from pathlib import Path

from ..fsutil import place_new, write_temporary


def create_new(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically if nothing is there. False (and nothing written) if it exists."""
    return create_first_free([path], data) is not None


def create_first_free(candidates: Iterable[Path], data: bytes) -> Path | None:
    """Write ``data`` atomically to the first candidate path that does not exist; that path, or None.

    All candidates must be in one folder (it is created if needed).
    """
    names = iter(candidates)
    first = next(names, None)
    if first is None:
        return None
    first.parent.mkdir(parents=True, exist_ok=True)
    tmp = write_temporary(first.parent, first.name, data)
    try:
        for path in itertools.chain([first], names):
            if place_new(tmp, path):
                return path
        return None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def numbered(folder: Path, stem: str, suffix: str) -> Iterable[Path]:
    """``stem.suffix``, ``stem-2.suffix``, ``stem-3.suffix``, ...: names to try for a new file."""
    yield folder / f"{stem}{suffix}"
    for n in itertools.count(2):
        yield folder / f"{stem}-{n}{suffix}"
