"""``assetbuild pull``: fetch what assets.lock needs from the team store and restore missing targets.

For checkouts where the images are not committed. A target that exists with other bytes than the
lock records (edited, or hand-made) is never overwritten: it is reported (exit 1).
"""

from __future__ import annotations

import argparse
import sys
import time

HELP = "download the images assets.lock needs from the team store and restore missing targets"

PULLED, RESTORED, PRESENT = "pulled", "restored", "fresh"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("targets", nargs="*", metavar="TARGET", help="only these targets (paths or globs)")
    parser.add_argument("--json", action="store_true", help="one JSON object per event on stdout")


def main(args: argparse.Namespace) -> int:
    from ..cache import CorruptEntry
    from ..display import make_display
    from ..errors import UsageError
    from ..fsutil import atomic_write
    from ..lock import LockEntry
    from ..remote.remote import bounded_map
    from ..remote.report import TransferReport
    from ..workspace import open_workspace
    from .select import select

    out = sys.stdout
    ws = open_workspace(args.file, server=args.server)
    events = make_display(json_output=args.json, quiet=args.quiet, verbose=args.verbose, stream=out)
    remote = ws.open_remote(events.warning)
    if remote is None:
        raise UsageError("no team store is configured", hint="set [cache] remote in assets.toml or ASSETBUILD_REMOTE")
    entries = ws.lock.entries()
    chosen = [t for t in select(ws.project, args.targets) if t in entries]
    report = TransferReport(events, out, as_json=args.json, command="pull")
    report.start(len(chosen))
    tmp_dir = ws.project.state_dir / "tmp"

    def restore(target: str) -> tuple[str, str | None, float]:
        """(outcome, problem) for one target; problem is None when it went well."""
        started = time.monotonic()
        entry: LockEntry = entries[target]
        path = ws.project.target_path(target)
        on_disk = ws.hashes.hash(path)
        if on_disk == entry.hash:
            return PRESENT, None, 0.0
        if on_disk is not None:
            return "", f"{path} differs from what assets.lock records; not overwriting it", 0.0
        try:
            hit = ws.cache.get(entry.key)
        except CorruptEntry as exc:
            events.warning(str(exc))
            hit = None
        outcome = RESTORED
        if hit is None or hit.hash != entry.hash:
            hit = remote.restore(entry.key, entry.hash)
            outcome = PULLED
        if hit is None:
            down = remote.breaker.is_open or remote.breaker.warned
            return "", (f"the team store {remote.name} is unavailable" if down
                        else "not in the team store (nor in the local cache)"), 0.0
        if ws.hashes.hash(path) is not None:  # appeared while we downloaded: the user's now
            return "", f"{path} appeared meanwhile; not overwriting it", 0.0
        atomic_write(path, hit.data, tmp_dir=tmp_dir)
        ws.hashes.remember(path, hit.hash)
        return outcome, None, time.monotonic() - started

    try:
        for target, (outcome, problem, seconds) in bounded_map(restore, chosen):
            if problem is None:
                report.item(target, outcome, seconds)
            else:
                report.failure(target, problem)
    finally:
        ws.hashes.save()
    return report.finish(remote.name)
