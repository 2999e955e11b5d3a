"""``assetbuild pull``: fetch what assets.lock needs from the team store and restore missing targets.

For checkouts where the images are not committed. A target that exists with other bytes than the
lock records (edited, or hand-made) is never overwritten: it is reported (exit 1).

Each image is looked for in the local cache, then downloaded (at most ``TRANSFER_JOBS`` at once, and a
bounded window of work queued, so memory does not grow with the number of images), verified against
its header, the lock and the signing key before anything is written, and written once, to its target,
from the downloaded buffer (no copy): a temporary file, flushed to disk, then hard-linked to its name,
which fails if anything appeared there meanwhile. At the end each folder that received a file is synced
once, so a crash leaves every target either absent or whole.

The local cache is not filled: the restored target is itself the verified image the lock records, the
store keeps the durable copy, and a cache entry (a header before the bytes) cannot share the target's
blocks, so it would cost a second write of every image. ``run`` does fill the cache when it restores
from the store.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ._args import add_no_wait

if TYPE_CHECKING:
    from ..workspace import Workspace

HELP = "download the images assets.lock needs from the team store and restore missing targets"

PULLED, RESTORED, PRESENT = "pulled", "restored", "fresh"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("targets", nargs="*", metavar="TARGET", help="only these targets (paths or globs)")
    parser.add_argument("--json", action="store_true", help="one JSON object per event on stdout")
    add_no_wait(parser)


def main(args: argparse.Namespace) -> int:
    from ..projectlock import workspace

    with workspace(args, writes=True) as ws:  # it writes targets: one writer per project
        return pull(ws, args)


def pull(ws: Workspace, args: argparse.Namespace) -> int:
    from ..cache import CorruptEntry
    from ..display import make_display
    from ..errors import UsageError
    from ..fsutil import real_dir, sync_dir, write_new
    from ..lock import LockEntry
    from ..remote.remote import bounded_map
    from ..remote.report import TransferReport
    from .select import select

    out = sys.stdout
    events = make_display(json_output=args.json, quiet=args.quiet, verbose=args.verbose, stream=out)
    remote = ws.open_remote(events.warning)
    if remote is None:
        raise UsageError("no team store is configured", hint="set [cache] remote in assets.toml or ASSETBUILD_REMOTE")
    entries = ws.lock.entries()
    chosen = [t for t in select(ws.project, args.targets) if t in entries]
    report = TransferReport(events, out, as_json=args.json, command="pull")
    report.start(len(chosen))
    tmp_dir = real_dir(ws.project.state_dir / "tmp")
    folders: set[Path] = set()  # folders that received a file: each is synced once at the end

    def restore(target: str) -> tuple[str, str | None, float]:
        """(outcome, problem, seconds) for one target; problem is None when it went well."""
        try:
            return restore_one(target)
        except OSError as exc:  # a file where a folder should be, a read-only folder, a full disk...
            return "", f"{exc.strerror or exc} ({exc.filename or ws.project.target_path(target)})", 0.0

    def restore_one(target: str) -> tuple[str, str | None, float]:
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
        data: bytes | memoryview | None = hit.data if hit is not None and hit.hash == entry.hash else None
        if data is None:
            fetched = remote.fetch_view(entry.key, entry.hash)  # verified, or None (refused: reported)
            data = fetched.data if fetched is not None else None
            outcome = PULLED
        if data is None:
            down = remote.breaker.is_open or remote.breaker.warned
            return "", (f"the team store {remote.name} is unavailable" if down
                        else "not in the team store (nor in the local cache)"), 0.0
        try:
            written = write_new(path, data, tmp_dir=tmp_dir)
        except FileExistsError:  # it appeared while we downloaded: the user's now
            return "", f"{path} appeared meanwhile; not overwriting it", 0.0
        folders.add(path.parent)
        ws.hashes.remember(path, entry.hash, written)
        return outcome, None, time.monotonic() - started

    try:
        for target, (outcome, problem, seconds) in bounded_map(restore, chosen):
            if problem is None:
                report.item(target, outcome, seconds)
            else:
                report.failure(target, problem)
    finally:
        for folder in folders:
            sync_dir(folder)
        ws.hashes.save()
    return report.finish(remote.name)
