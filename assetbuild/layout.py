"""Where a project's files are: the manifest, the lock and assetbuild's state folder.

Kept free of heavy imports: a no-op build reads only this, the memo and the files it checks.
"""

from __future__ import annotations

from pathlib import Path

from .errors import UsageError

MANIFEST_NAME = "assets.toml"
LOCK_NAME = "assets.lock"
STATE_DIR = ".assetbuild"


def find_manifest(explicit: str | None) -> Path:
    """``-f FILE``, else assets.toml in this folder or the nearest parent (like git finds .git)."""
    if explicit:
        return Path(explicit)
    here = Path.cwd()
    for folder in (here, *here.parents):
        candidate = folder / MANIFEST_NAME
        if candidate.is_file():
            return candidate
    raise UsageError(f"no {MANIFEST_NAME} in {here} or any parent folder",
                     hint="run `assetbuild init` to write one, or pass -f FILE")
