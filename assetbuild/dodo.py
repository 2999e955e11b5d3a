"""Plain-doit integration: ``from assetbuild.dodo import *`` in a dodo.py gives doit the asset tasks.

The manifest is ``$ASSETBUILD_MANIFEST``, else assets.toml in the folder doit runs in. Tasks are the
same as ``assetbuild run`` builds (``assets:<target>``), with the same lock, cache and freshness
rules; output is plain lines. Use ``doit -n 4 -P thread`` for parallel builds (threads, not processes:
every task shares one SwarmUI client).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import generators
from .builder import Builder
from .display.plain import PlainDisplay
from .fsutil import make_state_dir
from .layout import STATE_DIR
from .tasks import PREFIX, task_dicts
from .workspace import open_workspace

# doit's own state goes with assetbuild's (doit does not create the folder of its dep_file itself).
_STATE = Path(STATE_DIR)
make_state_dir(_STATE)
DOIT_CONFIG = {
    "default_tasks": [PREFIX],
    "par_type": "thread",
    "verbosity": 2,
    "backend": "json",
    "dep_file": str(_STATE / "doit.json"),
}


def task_assets() -> Iterator[dict[str, Any]]:
    """Generate the images declared in assets.toml."""
    ws = open_workspace(os.environ.get("ASSETBUILD_MANIFEST"))
    for warning in ws.project.warnings:
        print(f"warning: {warning}")
    builder = Builder(ws, lambda: generators.create(ws.project.server), PlainDisplay())
    atexit.register(ws.settle)  # doit has no end-of-run hook for us: settle state when it exits
    for task in task_dicts(builder):
        task.pop("basename")
        yield task
