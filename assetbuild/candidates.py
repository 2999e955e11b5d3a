"""Candidates: an asset with its seed replaced, made into the cache only (``explore``) and pinned later
(``pick``).

A candidate's key is exactly the key the asset would have with ``seed = S`` in its table, so picking a
candidate restores it from the cache with no generation. The seeds explored for an asset are listed in
``.assetbuild/explore/<target>/candidates.json`` (local state, never committed) next to its contact sheet.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from pathlib import Path

from .errors import UsageError
from .fsutil import atomic_write
from .manifest import Asset, Project
from .plan import Planner

SEED_MAX = 2**31 - 1  # random seeds stay in the range every backend (and every other tool) accepts
SEED_LIMIT = 2**63 - 1  # the largest seed SwarmUI takes (a C# long)
EXPLORE_DIR = "explore"


def with_seed(asset: Asset, seed: int) -> Asset:
    """``asset`` as it would be with ``seed = seed`` in its table."""
    return dataclasses.replace(asset, params={**asset.params, "seed": seed})


def label(target: str, seed: int) -> str:
    """How a candidate is named in the display and in errors."""
    return f"{target} @ seed {seed}"


def candidate_key(planner: Planner, asset: Asset, seed: int) -> str | None:
    """The key of ``asset`` with ``seed``; None when one of its input images is missing."""
    identity = planner.identity(with_seed(asset, seed))
    return identity[0] if identity else None


def candidate_identity(planner: Planner, asset: Asset, seed: int) -> tuple[str, dict[str, str]] | None:
    """The key of ``asset`` with ``seed`` and the input hashes it was computed from (None: one is missing)."""
    identity = planner.identity(with_seed(asset, seed))
    return (identity[0], dict(identity[1]["inputs"])) if identity else None


def random_seeds(count: int) -> list[int]:
    """``count`` distinct random seeds."""
    seeds: list[int] = []
    while len(seeds) < count:
        seed = secrets.randbelow(SEED_MAX) + 1
        if seed not in seeds:
            seeds.append(seed)
    return seeds


def parse_seeds(text: str) -> list[int]:
    """``--seeds 1,2,3``: distinct whole numbers from 0."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            seed = int(part)
        except ValueError:
            raise UsageError(f"--seeds: {part!r} is not a whole number", hint="e.g. --seeds 7,42,1234") from None
        if not 0 <= seed <= SEED_LIMIT:
            raise UsageError(f"--seeds: {seed} is out of range; a candidate needs a fixed seed from 0 to {SEED_LIMIT}")
        if seed in seeds:
            raise UsageError(f"--seeds: {seed} is given twice; candidates need distinct seeds")
        seeds.append(seed)
    if not seeds:
        raise UsageError("--seeds needs at least one seed")
    return seeds


def explore_dir(project: Project, target: str) -> Path:
    """``.assetbuild/explore/<target>/``, refused if it would lead outside the project (a symlink)."""
    folder = project.state_dir / EXPLORE_DIR / target
    root = os.path.realpath(project.root)
    existing = folder
    while not existing.exists() and existing != project.root:
        existing = existing.parent
    real = os.path.realpath(existing)
    if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
        raise UsageError(f"{folder} leads outside the project (a symlink?); not writing there",
                         hint=f"remove the symlink under {project.state_dir / EXPLORE_DIR}")
    return folder


def explored_seeds(project: Project, target: str) -> list[int]:
    """The seeds explored so far for ``target`` (newest last); empty when there is no record."""
    path = project.state_dir / EXPLORE_DIR / target / "candidates.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [int(s) for s in data.get("seeds", []) if isinstance(s, int) and not isinstance(s, bool)]
    except (OSError, ValueError, AttributeError, TypeError):
        return []


def record_seeds(project: Project, target: str, seeds: list[int]) -> None:
    folder = explore_dir(project, target)
    data = json.dumps({"target": target, "seeds": seeds}, indent=2) + "\n"
    atomic_write(folder / "candidates.json", data.encode(), tmp_dir=project.state_dir / "tmp")
