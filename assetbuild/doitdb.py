"""doit's dependency database for ``assetbuild run``: kept in memory, never read from or written to disk.

assetbuild's truth is assets.lock. Every task ``run`` hands doit is stale by the plan (no ``file_dep``,
no ``uptodate``: doit runs each one), so nothing doit would remember is ever consulted. Loading and
saving doit's JSON file cost two passes over every asset ever built (tens of milliseconds for one edit
in a 10,000-asset project, and a growing file rewritten after each batch of a first build), and a file
damaged by a kill or planted by a repository could stop builds. So ``run`` keeps doit's database in
memory; a ``.assetbuild/doit.json`` left by an older version is neither read nor removed. (A plain-doit
``dodo.py``, ``assetbuild.dodo``, uses doit's own JSON file, where ``uptodate`` does consult it.)
"""

from __future__ import annotations

from typing import Any

from doit.dependency import JsonDB

NAME = "assetbuild-memory"
LOCATION = "assetbuild.doitdb:MemoryDB"


class MemoryDB(JsonDB):  # type: ignore[misc]  # doit has no type hints
    """doit's JSON backend without the file: starts empty, and ``dump`` keeps nothing."""

    desc = "in memory only: every task of `assetbuild run` is stale by assetbuild's plan"

    def __init__(self, name: str, codec: Any, *, module_name: str | None = None) -> None:
        self.name = name
        self.codec = codec
        self._db: dict[str, Any] = {}

    def dump(self) -> None:
        """Nothing to save: no later run reads it."""
