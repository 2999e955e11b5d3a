"""``assetbuild pull``: fetch what assets.lock needs from the team store and restore missing targets.

For checkouts where the images are not committed. A target that exists with other bytes than the
lock records (edited, or hand-made) is never overwritten: it is reported (exit 1).

Each image is looked for in the local cache, then downloaded (at most ``TRANSFER_JOBS`` at once, and a
bounded window of work queued, so memory does not grow with the number of images), and verified
against its header, the lock and the signing key before anything is written. It is then written once,
from the downloaded buffer (no copy), and landed in batches (``remote.landing``): one ``syncfs`` per
batch makes the bytes durable before each file is hard-linked to its target name, which fails if
anything appeared there meanwhile; each folder is synced once at the end. A crash leaves every target
either absent or whole.

The local cache is not filled: the restored target is itself the verified image the lock records, the
store keeps the durable copy, and a cache entry (a header before the bytes) cannot share the target's
blocks, so it would cost a second write of every image. ``run`` does fill the cache when it restores
from the store.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
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
    import gc

    from ..projectlock import workspace

    # The manifest, lock and file-hash index of a big project are many objects that live until the end:
    # the cycle collector would scan them again and again while they are built (~6 % of a 1,000-image
    # pull's CPU under perf). Off while they load, then they are set aside (freeze) and collection
    # resumes, so memory stays flat during the transfers.
    gc.disable()
    try:
        with workspace(args, writes=True) as ws:  # it writes targets: one writer per project
            gc.enable()
            gc.freeze()
            return pull(ws, args)
    finally:
        gc.enable()


def pull(ws: Workspace, args: argparse.Namespace) -> int:
    from ..cache import CorruptEntry
    from ..display import make_display
    from ..errors import UsageError
    from ..fsutil import real_dir
    from ..lock import LockEntry
    from ..remote.landing import Landed, Landing, Staged
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
    landing: Landing[tuple[str, str, str, float]] = Landing(real_dir(ws.project.state_dir / "tmp"))
    cache_exists = ws.cache.folder.is_dir()  # a fresh clone has none: no lookup per image

    def restore(target: str) -> Staged[tuple[str, str, str, float]] | tuple[str, str | None]:
        """The image of ``target`` staged for landing, or (outcome, problem) when there is nothing to write:
        problem is None when the target is already fresh."""
        try:
            return restore_one(target)
        except OSError as exc:  # a full disk, an unreadable folder...
            return "", f"{exc.strerror or exc} ({exc.filename or ws.project.target_path(target)})"

    def restore_one(target: str) -> Staged[tuple[str, str, str, float]] | tuple[str, str | None]:
        if stopping.is_set():  # interrupted: the transfers still queued do nothing
            return "", "interrupted"
        started = time.monotonic()
        entry: LockEntry = entries[target]
        path = ws.project.target_path(target)
        on_disk = ws.hashes.hash(path) if folder_exists(path.parent) else None
        if on_disk == entry.hash:
            return PRESENT, None
        if on_disk is not None:
            return "", f"{path} differs from what assets.lock records; not overwriting it"
        try:
            hit = ws.cache.get(entry.key) if cache_exists else None
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
                        else "not in the team store (nor in the local cache)")
        if stopping.is_set():
            return "", "interrupted"
        return landing.stage(path, data, (target, entry.hash, outcome, time.monotonic() - started))

    folders: dict[Path, bool] = {}

    def folder_exists(folder: Path) -> bool:
        """Whether ``folder`` was there when first asked (once per folder). In a fresh clone the images'
        folders often are not: no target in them can exist, and a stat per target is saved. A file that
        appears later is still never overwritten: the link that places each image refuses it."""
        there = folders.get(folder)
        if there is None:
            there = folders[folder] = os.path.lexists(folder)
        return there

    def landed(placed: list[Landed[tuple[str, str, str, float]]]) -> None:
        for item in placed:
            target, digest, outcome, seconds = item.payload
            if item.written is None:
                report.failure(target, item.problem or "not restored")
            else:
                ws.hashes.remember(item.path, digest, item.written)
                report.item(target, outcome, seconds)

    stopping = threading.Event()
    results = bounded_map(restore, chosen)
    try:
        for target, result in results:
            if isinstance(result, Staged):
                landed(landing.add(result))
            elif result[1] is None:
                report.item(target, result[0])
            else:
                report.failure(target, result[1])
    finally:
        stopping.set()  # on Ctrl-C (or a bug): the transfers in flight end without writing, and
        results.close()  # are waited for; what was already staged is placed (it is verified) ...
        landed(landing.finish())  # ... and a temporary file nobody will place is removed
        ws.hashes.save()
    return report.finish(remote.name)
