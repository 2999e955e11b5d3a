"""``assetbuild pick TARGET SEED``: pin a candidate. Writes ``seed = SEED`` into the asset's table in
assets.toml (every other byte kept), then builds the asset, which restores the candidate from the cache.
``--current`` pins the seed the lock records as actually used (after a build with ``seed = -1``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # the heavy modules are imported when the command runs, not when the parser is built
    from collections.abc import Callable

    from ..workspace import Workspace

from ..safetext import safe_text
from ._args import add_no_wait

HELP = "pin a candidate: write seed = SEED into the asset's table, then restore it from the cache"


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= 2**63 - 1:
        raise argparse.ArgumentTypeError("a pinned seed is from 0 to 2**63-1 (-1 would mean random)")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="TARGET", help="the asset (its target path)")
    parser.add_argument("seed", nargs="?", type=_seed, metavar="SEED", help="the candidate's seed (see explore)")
    parser.add_argument("--current", action="store_true",
                        help="pin the seed assets.lock records as actually used for the current image")
    parser.add_argument("--generate", action="store_true",
                        help="accept a seed that was not explored (no cached candidate): generate it")
    add_no_wait(parser)


def main(args: argparse.Namespace) -> int:
    import sys

    from ..display import forward_logs, make_display
    from ..errors import UsageError
    from ..projectlock import workspace
    from ..workspace import load_project, workspace_of
    from .run import run

    if (args.seed is None) == (not args.current):
        raise UsageError("give either SEED or --current", hint="e.g. `assetbuild pick sprites/hero.png 42`")
    with workspace(args, writes=True) as ws:  # the edit and the build under one hold of the project lock
        events = make_display(quiet=args.quiet, verbose=args.verbose, stream=sys.stdout, jobs=1)
        pin(ws, args.target, args.seed, current=args.current, generate=args.generate, out=sys.stdout,
            warn=events.warning)
        # The build is `assetbuild run TARGET`'s, on the manifest as now written.
        ws = workspace_of(load_project(args.file, server=args.server))
        with forward_logs(events, verbose=args.verbose):
            return run(ws, [args.target], events, jobs=None, keep_going=False, frozen=False)


def pin(ws: Workspace, name: str, seed: int | None, *, current: bool, generate: bool, out: TextIO,
        warn: Callable[[str], None]) -> int:
    """Check the pick, make the cache hold the picked image under its new key when it can (the image the
    lock records for the seed, else the team store's candidate, verified), write the manifest. Returns the
    pinned seed. Raises ``UsageError`` (nothing written) when the pick is refused, ``RemoteConfigError``
    (exit 2, nothing written) for a misconfigured team store. ``warn``: where team store warnings go."""
    from .. import candidates as cand
    from .. import manifest_edit
    from ..errors import ModifiedFileError, UsageError
    from ..plan import State
    from .select import select

    project = ws.project
    chosen = select(project, [name])
    if len(chosen) != 1:
        raise UsageError(f"{name!r} matches {len(chosen)} assets; pick one asset", hint="name its target path")
    target = chosen[0]
    asset = project.assets[target]
    if asset.source:
        raise UsageError(f"{target} is derived from {asset.source} (no generation, no seed)",
                         hint=f"pick a seed for {asset.source} instead")
    entry = ws.lock.get(target)
    if current:
        if entry is None or entry.seed is None or entry.seed < 0:
            raise UsageError(f"assets.lock records no seed for {target}",
                             hint="build it first (`assetbuild run TARGET`), then pin its seed")
        seed = entry.seed
    assert seed is not None
    key = cand.candidate_key(ws.planner, asset, seed)
    if key is None:
        raise UsageError(f"{target}: an input image is missing, so its candidates cannot be matched",
                         hint="build its input assets first (`assetbuild run`)")
    edit = manifest_edit.set_seed(project, target, seed)  # refuses variants etc. before anything is written
    status = ws.planner.status(asset)
    if status.state is State.MODIFIED:  # the build would refuse to replace it: say so before editing
        raise ModifiedFileError(target, f"{asset.path.name} was {status.reason}; not pinning over it",
                                hint="move the file away first (its seed stays as it is)")
    if not ws.cache.has(key):
        _adopt_recorded_image(ws, target, seed, key)
    store = None
    if not ws.cache.has(key):
        store = _fetch_from_team(ws, target, key, warn)
    if not ws.cache.has(key) and not generate:
        explored = [s for s in cand.explored_seeds(project, target)
                    if (k := cand.candidate_key(ws.planner, asset, s)) and ws.cache.has(k)]
        listed = f" (explored here: {', '.join(map(str, explored))})" if explored else ""
        where = f"; it is in neither the local cache nor the team store {store}" if store else ""
        raise UsageError(f"seed {seed} was not explored for {target} with its current parameters{listed}{where}",
                         hint=f"`assetbuild explore {target} --seeds {seed}` first, or pick it with --generate "
                              "to generate it now")
    if edit.changed:
        manifest_edit.write(project, edit)
        out.write(f"pinned {safe_text(target)}: seed = {seed} in {safe_text(edit.table)} of "
                  f"{safe_text(project.manifest.name)}\n")
    else:
        out.write(f"{safe_text(target)} is already pinned to seed {seed}\n")
    if edit.note:
        out.write(f"note: {safe_text(edit.note)}\n")
    out.flush()
    return seed


def _fetch_from_team(ws: Workspace, target: str, key: str, warn: Callable[[str], None]) -> str | None:
    """A candidate explored on another machine: the team store's copy, verified (against the lock's hash
    when the lock records this key) and put into the local cache, as a build restores it. Returns the
    store's printable name (None: no team store)."""
    remote = ws.open_remote(warn)  # a misconfigured store raises here, before the manifest is written
    if remote is None:
        return None
    entry = ws.lock.get(target)
    remote.restore(key, entry.hash if entry is not None and entry.key == key else None)
    return remote.name


def _adopt_recorded_image(ws: Workspace, target: str, seed: int, key: str) -> None:
    """``seed`` is the one the lock records for the current image (made with a random seed): that image is
    what ``seed = S`` makes, so it is stored under the pinned key too, and pinning generates nothing."""
    from ..keys import key_of

    entry = ws.lock.get(target)
    if entry is None or entry.seed != seed:
        return
    form = dict(entry.inputs)
    form["params"] = {**dict(form.get("params") or {}), "seed": seed}
    form.pop("variant", None)  # only random-seed variants carry it
    if key_of(form) != key:
        return  # the recorded image was made from other parameters: it is not this candidate
    from ..cache import CorruptEntry

    try:
        hit = ws.cache.get(entry.key)
    except CorruptEntry:
        hit = None
    data = hit.data if hit is not None else None
    if data is None:
        path = ws.project.target_path(target)
        if ws.hashes.hash(path) == entry.hash:
            data = path.read_bytes()
    if data is not None and _hash(data) == entry.hash:
        ws.cache.put(key, data, seed=seed, model=entry.model)


def _hash(data: bytes) -> str:
    from ..keys import hash_bytes

    return hash_bytes(data)
