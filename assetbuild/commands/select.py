"""Turning TARGET arguments (target paths, globs, or file paths) into asset targets."""

from __future__ import annotations

import fnmatch
import os
import posixpath
from pathlib import Path

from ..errors import UsageError
from ..manifest import Project
from ..params import closest


def select(project: Project, patterns: list[str]) -> list[str]:
    """The targets named by ``patterns`` (all when empty), in dependency order. Unknown names exit 2."""
    if not patterns:
        return list(project.assets)
    chosen: set[str] = set()
    by_path = {os.path.normcase(str(asset.path)): target for target, asset in project.assets.items()}
    for pattern in patterns:
        norm = posixpath.normpath(pattern.replace("\\", "/"))
        if norm in project.assets:
            chosen.add(norm)
            continue
        matches = fnmatch.filter(project.assets, norm)
        if not matches:  # a path from the current folder, e.g. tab-completed
            found = by_path.get(os.path.normcase(str(Path(pattern).absolute())))
            matches = [found] if found else []
        if not matches:
            guess = closest(norm, list(project.assets))
            hint = f"did you mean {guess!r}?" if guess else "`assetbuild list` shows the targets"
            raise UsageError(f"no asset matches {pattern!r}", hint=hint)
        chosen.update(matches)
    return [t for t in project.assets if t in chosen]
