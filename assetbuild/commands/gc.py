"""``assetbuild gc``: prune the cache to what the projects using it need.

Never removed: an entry this project's lock or manifest needs (also after ``clean``), one another
project registered with the same cache folder needs (see ``cacheusers``), one in ``assets.lock`` at a
``--keep-ref``, or one used within the grace period (``--keep-days``, 14 by default, like git's gc
keeps recent objects). ``--dry-run`` says what would go and why the rest stays.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..errors import UsageError
from ._args import add_no_wait, days

if TYPE_CHECKING:
    from ..workspace import Workspace

HELP = "prune the cache"
DESCRIPTION = ("Remove cache entries that no project using the cache needs (its assets.lock or assets.toml), "
               "unused for --keep-days (the cache folder may be shared: see [project] cache_dir and "
               "ASSETBUILD_CACHE_DIR).")
DEFAULT_KEEP_DAYS = 14.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep-days", type=days, metavar="N",
                        help="also keep entries used in the last N days (default 14; 0: keep only what a project "
                             "needs)")
    parser.add_argument("--keep-ref", action="append", default=[], metavar="REF",
                        help="also keep what assets.lock needs at git REF (repeatable), e.g. origin/main")
    parser.add_argument("--dry-run", action="store_true", help="say what would be removed and why, with sizes")
    add_no_wait(parser)
    add_remote_arguments(parser)


def add_remote_arguments(parser: argparse.ArgumentParser) -> None:
    """``gc --remote`` (the team store, issue 14; the logic is in assetbuild/remote/gc.py)."""
    parser.add_argument("--remote", action="store_true",
                        help="prune the team store instead; needs --keep-ref REF... or --all-refs")
    parser.add_argument("--all-refs", action="store_true",
                        help="with --remote: keep what assets.lock needs at every branch and tag")
    parser.add_argument("--grace-days", type=days, metavar="N",
                        help="with --remote: keep objects newer than N days (default 30)")
    parser.add_argument("--json", action="store_true", help="with --remote: one JSON object per event")


def main(args: argparse.Namespace) -> int:
    from ..projectlock import workspace

    if args.remote:
        from ..remote.gc import gc_remote
        from ..workspace import open_workspace

        return gc_remote(open_workspace(args.file, server=args.server), sys.stdout, keep_refs=args.keep_ref,
                         all_refs=args.all_refs, grace_days=args.grace_days, dry_run=args.dry_run, as_json=args.json)
    if args.all_refs or args.grace_days is not None or args.json:
        raise UsageError("--all-refs, --grace-days and --json go with gc --remote")
    with workspace(args, writes=not args.dry_run) as ws:  # one writer per project
        return gc(ws, sys.stdout, keep_days=args.keep_days, keep_refs=args.keep_ref, dry_run=args.dry_run)


def gc(ws: Workspace, out: TextIO, *, keep_days: float | None, keep_refs: list[str], dry_run: bool) -> int:
    """Remove cache entries no project needs and unused for ``keep_days`` (default 14; 0: no grace)."""
    from .. import cacheusers
    from ..lockrefs import keys_at_ref

    keep_days = DEFAULT_KEEP_DAYS if keep_days is None else keep_days
    if keep_days < 0:
        raise UsageError(f"--keep-days {keep_days:g}: must be 0 or more", hint="0 removes unneeded entries at once")
    why: dict[str, str] = {}  # key -> why it is kept (the first reason found)
    for locked in ws.lock.entries().values():
        why.setdefault(locked.key, "in assets.lock")
    for key in cacheusers.wanted_keys(ws.project, ws.hashes, ws.cache, ws.kind):
        why.setdefault(key, "used by assets.toml")
    for ref in keep_refs:
        for key in keys_at_ref(ws.project.lock_path, ref):
            why.setdefault(key, f"in assets.lock at {ref}")
    gone = []
    projects = 1
    for other in cacheusers.others(ws.cache, ws.project.manifest):
        if isinstance(other, Path):
            gone.append(other)
            continue
        projects += 1
        if other.note:
            out.write(f"note: registered project {other.manifest}: {other.note}\n")
        for key in other.keys:
            why.setdefault(key, f"needed by {other.manifest.parent}")
    cutoff = time.time() - keep_days * 86400
    removed = kept = 0
    freed = kept_bytes = 0
    kept_for: dict[str, int] = {}
    verb = "would remove" if dry_run else "removed"
    for entry in ws.cache.entries():
        reason = why.get(entry.key)
        if reason is None and keep_days > 0 and entry.last_used >= cutoff:
            reason = f"used in the last {keep_days:g} days"
        if reason is not None:
            kept += 1
            kept_bytes += entry.size
            kept_for[reason] = kept_for.get(reason, 0) + 1
            continue
        idle = (time.time() - entry.last_used) / 86400
        detail = f"unused for {idle:.0f} days, needed by none of {projects} project{'s' if projects > 1 else ''}"
        out.write(f"{verb} {entry.key} ({_size(entry.size)}): {detail}\n")
        if not dry_run:
            ws.cache.remove(entry.path)
        removed += 1
        freed += entry.size
    for registration in gone:
        out.write(f"{'would forget' if dry_run else 'forgot'} a project that no longer exists "
                  f"(registered in {registration.name})\n")
        if not dry_run:
            cacheusers.unregister(registration)
    # Temporary files of writers killed mid-write (cache entries, images and the lock).
    from ..fsutil import abandoned_files

    leftovers = ws.cache.stale_temporaries() + abandoned_files(ws.project.state_dir / "tmp", "*")
    for tmp in leftovers:
        if not dry_run:
            ws.cache.remove(tmp)
    out.write(f"{verb} {removed} entr{'y' if removed == 1 else 'ies'} ({_size(freed)}); kept {kept} "
              f"({_size(kept_bytes)}) in {ws.cache.folder}\n")
    for reason, count in sorted(kept_for.items(), key=lambda item: -item[1]):
        out.write(f"  kept {count}: {reason}\n")
    return 0


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"

