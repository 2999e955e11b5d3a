"""``assetbuild status --remote``: for each asset, whether the team store holds its image."""

from __future__ import annotations

from typing import TextIO

from ..errors import UsageError
from ..plan import State
from ..safetext import safe_json, safe_text
from ..workspace import Workspace
from .select import select


def remote_status(ws: Workspace, patterns: list[str], out: TextIO, *, as_json: bool) -> int:
    """One line (or JSON object) per asset: in the store, not in it, or unknown (the store is down).

    The key looked up is the asset's current key (what a build would restore); an asset whose key cannot
    be known yet (an input is stale) is looked up by its lock entry's key.
    """
    from ..remote.remote import bounded_map

    warnings: list[str] = []
    remote = ws.open_remote(warnings.append)
    if remote is None:
        raise UsageError("no team store is configured", hint="set [cache] remote in assets.toml or ASSETBUILD_REMOTE")
    rows: list[tuple[str, str | None, str]] = []
    for status in ws.planner.plan(select(ws.project, patterns)):
        if status.state is State.ORPHAN:
            continue
        key = status.key or (status.entry.key if status.entry else None)
        rows.append((status.target, key, status.state.name.lower()))
    found = dict(bounded_map(lambda row: remote.has(row[1]) if row[1] else False, rows))
    for text in warnings:
        out.write(safe_json({"event": "warning", "message": text}) + "\n" if as_json else
                  f"warning: {safe_text(text)}\n")
    present = 0
    for row in rows:
        target, key, state = row
        has = found[row]
        present += has is True
        if as_json:
            out.write(safe_json({"target": target, "key": key, "state": state, "remote": has}) + "\n")
        else:
            word = {True: "in store", False: "missing", None: "unknown"}[has]
            out.write(f"{word:<9} {safe_text(target)}\n")
    if not as_json:
        out.write(f"{present} of {len(rows)} in {safe_text(remote.name)}\n")
    return 0
