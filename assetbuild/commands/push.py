"""``assetbuild push``: upload to the team store every image assets.lock references that it lacks."""

from __future__ import annotations

import argparse
import os
import sys
import time

HELP = "upload the images assets.lock references to the team store ([cache] remote)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("targets", nargs="*", metavar="TARGET", help="only these targets (paths or globs)")
    parser.add_argument("--json", action="store_true", help="one JSON object per event on stdout")


def main(args: argparse.Namespace) -> int:
    from ..display import make_display
    from ..errors import UsageError
    from ..remote.remote import NOT_LOCAL, SKIPPED, bounded_map
    from ..remote.report import TransferReport
    from ..remote.settings import FALSE_WORDS, PUSH_ENV
    from ..workspace import open_workspace
    from .select import select

    out = sys.stdout
    ws = open_workspace(args.file, server=args.server)
    events = make_display(json_output=args.json, quiet=args.quiet, verbose=args.verbose, stream=out)
    remote = ws.open_remote(events.warning)
    if remote is None:
        raise UsageError("no team store is configured", hint="set [cache] remote in assets.toml or ASSETBUILD_REMOTE")
    if os.environ.get(PUSH_ENV, "").strip().lower() in FALSE_WORDS:
        raise UsageError(f"{PUSH_ENV}=0 forbids uploading to the team store", hint=f"unset {PUSH_ENV} to push")
    entries = ws.lock.entries()
    chosen = [t for t in select(ws.project, args.targets) if t in entries] if args.targets else sorted(entries)
    report = TransferReport(events, out, as_json=args.json, command="push")
    report.start(len(chosen))

    def upload(target: str) -> tuple[str, float]:
        started = time.monotonic()
        entry = entries[target]
        outcome = remote.upload(entry.key, fallback=ws.project.target_path(target), expected_hash=entry.hash,
                                seed=entry.seed, model=entry.model)
        return outcome, time.monotonic() - started

    for target, (outcome, seconds) in bounded_map(upload, chosen):
        if outcome == SKIPPED:
            report.failure(target, f"not uploaded: the team store {remote.name} is unavailable",
                           "run `assetbuild push` again when it is back")
        elif outcome == NOT_LOCAL:
            report.failure(target, "its image is neither in the local cache nor on disk with the lock's hash",
                           "build it (`assetbuild run`) on a machine that has it, then push from there")
        else:
            report.item(target, outcome, seconds)
    return report.finish(remote.name)
