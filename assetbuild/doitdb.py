"""doit's dependency database, made safe to lose.

assetbuild's truth is assets.lock; doit's own file (``.assetbuild/doit.json``) only remembers what doit
saw. doit's stock JSON backend truncates and rewrites that file in place, so a kill or a full disk
during the save left a file that made every later build stop, and it opens the file by name (a planted
symlink would make it write elsewhere). This backend reads a damaged file as empty (with a warning) and
saves atomically: a temporary file in the state folder, renamed over the old one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from doit.dependency import JsonDB

from .fsutil import atomic_write, open_nofollow

NAME = "assetbuild-json"
LOCATION = "assetbuild.doitdb:SafeJsonDB"

log = logging.getLogger("assetbuild")


class SafeJsonDB(JsonDB):  # type: ignore[misc]  # doit has no type hints
    """doit's JSON backend with a tolerant load and an atomic save."""

    desc = "JSON file, saved atomically; a damaged file is discarded (assetbuild)"

    def __init__(self, name: str, codec: Any, *, module_name: str | None = None) -> None:
        self.name = name
        self.codec = codec
        self._db = self._load()

    def _load(self) -> dict[str, Any]:
        path = Path(self.name)
        try:
            fd = open_nofollow(path, os.O_RDONLY)
        except FileNotFoundError:
            return {}
        with os.fdopen(fd, "rb") as handle:
            raw = handle.read()
        try:
            data = self.codec.decode(raw.decode("utf-8"))
            if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
                raise ValueError("not a table of tasks")
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            log.warning("%s was damaged (%s); discarded it (it only speeds builds up; assets.lock is "
                        "unaffected)", path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return {}
        return data

    def dump(self) -> None:
        path = Path(self.name)
        # Not synced (an accelerator): after a power loss a damaged file is discarded like any other.
        atomic_write(path, self.codec.encode(self._db).encode("utf-8"), tmp_dir=path.parent / "tmp", sync=False)
