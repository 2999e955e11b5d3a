"""The dependency graph: assets ordered so that each comes after the assets it uses (``source`` and
image inputs), with ``graphlib`` (iterative: a 1,200-asset ``source`` chain is no recursion problem)."""

from __future__ import annotations

import graphlib
import heapq
from collections.abc import Callable

from ..errors import ManifestError
from .project import Asset


def dependency_order(assets: dict[str, Asset], where_of: Callable[[str], str]) -> dict[str, Asset]:
    """Assets in dependency order (upstream first); of the assets ready at the same point, the one first
    in the manifest comes first. A cycle is an error naming it, from its asset first in the manifest
    (``where_of(target)``: the ``file:line`` of an asset, for the message)."""
    if _in_order(assets):
        return dict(assets)  # every asset already comes after those it uses: that order is the answer
    index = {target: n for n, target in enumerate(assets)}
    sorter = graphlib.TopologicalSorter({target: asset.upstream for target, asset in assets.items()})
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        # graphlib lists the cycle from input to user; show it as "a uses b uses a", as the manifest reads.
        cycle = list(reversed(exc.args[1][:-1]))
        first = min(range(len(cycle)), key=lambda n: index[cycle[n]])
        cycle = cycle[first:] + cycle[:first] + [cycle[first]]
        raise ManifestError(where_of(cycle[0]), "dependency cycle: " + " -> ".join(cycle),
                            hint="an asset cannot (indirectly) use its own output as an input") from None
    order: dict[str, Asset] = {}
    ready: list[tuple[int, str]] = []
    while sorter.is_active():
        for target in sorter.get_ready():
            heapq.heappush(ready, (index[target], target))
        _, target = heapq.heappop(ready)
        order[target] = assets[target]
        sorter.done(target)
    return order


def _in_order(assets: dict[str, Asset]) -> bool:
    """Whether every asset comes after the assets it uses (the common case: most use none)."""
    seen: set[str] = set()
    for target, asset in assets.items():
        if (asset.inputs or asset.source) and not all(up in seen for up in asset.upstream):
            return False
        seen.add(target)
    return True
