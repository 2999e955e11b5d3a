"""``assetbuild status`` / ``list``: the state of every asset, and ``why``: what changed.

Imported to build the command line parser: the planning machinery is imported inside the functions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..errors import UsageError
from ..safetext import safe_json, safe_text

if TYPE_CHECKING:
    from ..plan import Status
    from ..workspace import Workspace

HELP = "show the state of each asset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("targets", nargs="*", metavar="TARGET")
    parser.add_argument("--json", action="store_true", help="one JSON object per asset")
    parser.add_argument("--remote", action="store_true", help="whether the team store holds each asset's image")


def main(args: argparse.Namespace) -> int:
    from ..workspace import open_workspace

    if getattr(args, "remote", False):  # the team store (issue 14): commands/remote_status.py
        from .remote_status import remote_status

        return remote_status(open_workspace(args.file, server=args.server), args.targets, sys.stdout,
                             as_json=args.json)
    return show_status(open_workspace(args.file, server=args.server), args.targets, sys.stdout, as_json=args.json,
                       quiet=args.quiet)


def statuses(ws: Workspace, patterns: list[str], *, ask_server: bool = True) -> list[Status]:
    """Selected assets in dependency order, then orphans (only when nothing was selected). ``ask_server``
    False: the lock's model hashes are trusted (``run --dry-run`` contacts no server)."""
    from .select import select

    chosen = select(ws.project, patterns)
    if ask_server:
        _server_hashes(ws, chosen)
    result = ws.planner.plan(chosen)
    if not patterns:
        result += ws.planner.orphans()
    return result


def show_status(ws: Workspace, patterns: list[str], out: TextIO, *, as_json: bool, ask_server: bool = True,
                quiet: bool = False) -> int:
    """One line per asset and a count per state. ``quiet``: only the assets that are not fresh."""
    from ..plan import State

    result = statuses(ws, patterns, ask_server=ask_server)
    ws.hashes.save()
    if ws.lock.merged:
        from ..workspace import MERGED_LOCK

        print(f"assetbuild: warning: {MERGED_LOCK}", file=sys.stderr)
    if as_json:
        for status in result:
            out.write(safe_json({"target": status.target, "state": status.state.name.lower(),
                                 "label": status.state.value, "reason": status.reason,
                                 "key": status.key}) + "\n")
        return 0
    width = max((len(s.state.value) for s in result), default=5)
    for status in result:
        if quiet and status.state is State.FRESH:
            continue
        reason = f"  ({safe_text(status.reason)})" if status.reason else ""
        out.write(f"{status.state.value:<{width}}  {safe_text(status.target)}{reason}\n")
    counts: dict[str, int] = {}
    for status in result:
        counts[status.state.value] = counts.get(status.state.value, 0) + 1
    out.write(", ".join(f"{n} {label}" for label, n in counts.items()) + "\n" if counts else "no assets\n")
    return 0


def manifest_for(name: str, explicit: str | None) -> str:
    """The manifest ``why NAME`` reads: ``-f FILE``, else for an existing file the nearest assets.toml
    above it (then above the current folder)."""
    from ..layout import find_manifest

    path = Path(name)
    return str(find_manifest(explicit, near=path if not explicit and path.is_file() else None))


def why(ws: Workspace, name: str, out: TextIO) -> int:
    """Explain the state of one asset (by target, glob of one, or a file written by assetbuild)."""
    from .select import select

    project = ws.project
    path = Path(name)
    if name not in project.assets and path.is_file() and _by_path(ws, path) is None:
        return _why_file(ws, path, out)
    targets = select(project, [name])
    if len(targets) != 1:
        raise UsageError(f"{name!r} matches {len(targets)} assets; `why` explains one")
    target = targets[0]
    _server_hashes(ws, [target])
    [status] = ws.planner.plan([target])
    _explain_status(ws, status, out)
    ws.hashes.save()
    return 0


def _server_hashes(ws: Workspace, targets: list[str]) -> None:
    """Ask the server for its model hashes when the lock has some to compare (a replaced model makes an
    asset stale); offline, the lock is trusted."""
    from ..servercheck import attach

    attach(ws, targets)


def _by_path(ws: Workspace, path: Path) -> str | None:
    absolute = path.absolute()
    for target, asset in ws.project.assets.items():
        if asset.path == absolute:
            return target
    return None


def _explain_status(ws: Workspace, status: Status, out: TextIO) -> None:
    from ..plan import State, explain, modified_hint

    target, entry = status.target, status.entry
    shown = safe_text(target)
    out.write(f"{shown}: {status.state.value}\n")
    if status.state is State.FRESH:
        out.write(f"  nothing changed since it was built (key {status.key})\n")
        return
    if status.state is State.MODIFIED:
        if ws.project.assets[target].path.is_dir():
            out.write(f"  {safe_text(status.reason)}; {safe_text(modified_hint(ws.project.assets[target].path))}\n")
        else:
            out.write(f"  the file was {safe_text(status.reason)}; `assetbuild run --force {shown}` replaces it\n")
        return
    if status.state is State.UPSTREAM:
        asset = ws.project.assets[target]
        ups = [s for s in ws.planner.plan(asset.upstream) if s.state is not State.FRESH]
        out.write(f"  {safe_text(status.reason)}: " + ", ".join(f"{safe_text(s.target)} ({s.state.value})"
                                                              for s in ups) + "\n")
        return
    if entry is None:
        out.write("  never built (no entry in assets.lock)\n")
        return
    assert status.form is not None
    changes = explain(entry.inputs, status.form)
    model_change = ws.planner.model_change(ws.project.assets[target], entry)
    if model_change and changes:
        changes.append(model_change)
    if not changes:
        out.write(f"  {safe_text(status.reason)}\n")
    for line in changes:
        out.write(f"  {safe_text(line)}\n")


def _why_file(ws: Workspace, path: Path, out: TextIO) -> int:
    """Which asset made ``path``: by the key embedded in it (PNG), else by its bytes (any format), in
    assets.lock first, then among the manifest's assets as declared now (not built here, or cleaned)."""
    from .. import postprocess
    from ..keys import hash_bytes

    data = path.read_bytes()
    key = postprocess.read_key(data)
    digest = hash_bytes(data)
    entries = [(t, e) for t in ws.lock.targets() if (e := ws.lock.get(t)) is not None]
    owners = [t for t, e in entries if (key is not None and e.key == key) or e.hash == digest]
    if not owners and key is not None:
        declared = [s.target for s in ws.planner.plan() if s.key == key]
        if declared:
            for target in declared:
                out.write(f"{safe_text(path)}: made by asset {safe_text(repr(target))} as it is declared now "
                          f"(key {key}); assets.lock has no entry for it (never built here, or cleaned)\n")
                prompt = ws.project.assets[target].params.get("prompt")
                if prompt:
                    out.write(f"  prompt: {safe_text(prompt)}\n")
            return 0
        out.write(f"{safe_text(path)}: written by assetbuild with key {key}, which neither assets.lock nor the "
                  "manifest's assets have (made from an older manifest?)\n")
        return 0
    if not owners:
        raise UsageError(f"{path} was not written by assetbuild (it has no assetbuild key, and its bytes match "
                         "no image in assets.lock)")
    key = key or next(e.key for t, e in entries if t == owners[0])
    for target in owners:
        entry = ws.lock.get(target)
        assert entry is not None
        out.write(f"{safe_text(path)}: made by asset {safe_text(repr(target))} (key {key})\n")
        prompt = entry.inputs.get("params", {}).get("prompt")
        if prompt:
            out.write(f"  prompt: {safe_text(prompt)}\n")
        if entry.model or entry.seed is not None:
            out.write(f"  model: {safe_text(entry.model)}, seed: {entry.seed}\n")
    return 0
