"""Everything a command needs about one project: manifest, lock, cache, file hashes, planner."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from .cache import Cache
from .errors import UsageError
from .fsutil import HashCache
from .generators import kind_for
from .lock import Lock
from .manifest import Project, load
from .plan import Planner

MANIFEST_NAME = "assets.toml"
SERVER_ENV = "ASSETBUILD_SERVER"
CACHE_ENV = "ASSETBUILD_CACHE_DIR"


@dataclass
class Workspace:
    project: Project
    lock: Lock
    cache: Cache
    hashes: HashCache
    planner: Planner

    @property
    def kind(self) -> str:
        return self.planner.kind


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


def open_workspace(manifest: str | None, *, server: str | None = None, force: bool = False) -> Workspace:
    """Load the project and its state. ``server`` (from --server) beats ASSETBUILD_SERVER beats the file."""
    project = load(find_manifest(manifest), cache_dir_override=os.environ.get(CACHE_ENV) or None)
    url = server or os.environ.get(SERVER_ENV) or None
    if url:
        project.server = replace(project.server, url=url)
    lock = Lock.load(project.lock_path)
    hashes = HashCache(project.state_dir / "hashes.json")
    cache = Cache(project.cache_dir)
    planner = Planner(project, lock, cache, hashes, kind_for(project.server), force=force)
    return Workspace(project, lock, cache, hashes, planner)
