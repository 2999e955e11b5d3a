"""``assetbuild gc``: prune the cache to what the lock (and optionally other refs) needs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..errors import UsageError

if TYPE_CHECKING:
    from ..workspace import Workspace

HELP = "prune the cache"
DESCRIPTION = ("Remove cache entries that assets.lock does not need (the cache folder may be shared: see "
               "[project] cache_dir and ASSETBUILD_CACHE_DIR).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep-days", type=float, metavar="N", help="also keep entries used in the last N days")
    parser.add_argument("--keep-ref", action="append", default=[], metavar="REF",
                        help="also keep what assets.lock needs at git REF (repeatable), e.g. origin/main")
    parser.add_argument("--dry-run", action="store_true", help="say what would be removed, with sizes")
    add_remote_arguments(parser)


def add_remote_arguments(parser: argparse.ArgumentParser) -> None:
    """``gc --remote`` (the team store, issue 14; the logic is in assetbuild/remote/gc.py)."""
    parser.add_argument("--remote", action="store_true",
                        help="prune the team store instead; needs --keep-ref REF... or --all-refs")
    parser.add_argument("--all-refs", action="store_true",
                        help="with --remote: keep what assets.lock needs at every branch and tag")
    parser.add_argument("--grace-days", type=float, metavar="N",
                        help="with --remote: keep objects newer than N days (default 30)")
    parser.add_argument("--json", action="store_true", help="with --remote: one JSON object per event")


def main(args: argparse.Namespace) -> int:
    from ..workspace import open_workspace

    if args.remote:
        from ..remote.gc import gc_remote

        return gc_remote(open_workspace(args.file, server=args.server), sys.stdout, keep_refs=args.keep_ref,
                         all_refs=args.all_refs, grace_days=args.grace_days, dry_run=args.dry_run, as_json=args.json)
    if args.all_refs or args.grace_days is not None or args.json:
        raise UsageError("--all-refs, --grace-days and --json go with gc --remote")
    return gc(open_workspace(args.file, server=args.server), sys.stdout, keep_days=args.keep_days,
              keep_refs=args.keep_ref, dry_run=args.dry_run)


def gc(ws: Workspace, out: TextIO, *, keep_days: float | None, keep_refs: list[str], dry_run: bool) -> int:
    """Remove cache entries no lock needs. Kept: keys in assets.lock, in assets.lock at each of
    ``keep_refs`` (git refs, e.g. ``origin/main``), and entries used within ``keep_days``."""
    needed = {entry.key for entry in ws.lock.entries().values()}
    for ref in keep_refs:
        needed |= _keys_at_ref(ws.project.lock_path, ref)
    cutoff = time.time() - keep_days * 86400 if keep_days is not None else None
    removed = kept = 0
    freed = kept_bytes = 0
    verb = "would remove" if dry_run else "removed"
    for entry in ws.cache.entries():
        if entry.key in needed or (cutoff is not None and entry.last_used >= cutoff):
            kept += 1
            kept_bytes += entry.size
            continue
        out.write(f"{verb} {entry.key} ({_size(entry.size)})\n")
        if not dry_run:
            ws.cache.remove(entry.path)
        removed += 1
        freed += entry.size
    # Temporary files of writers killed mid-write (cache entries, images and the lock).
    from ..fsutil import abandoned_files

    leftovers = ws.cache.stale_temporaries() + abandoned_files(ws.project.state_dir / "tmp", "*")
    for tmp in leftovers:
        if not dry_run:
            ws.cache.remove(tmp)
    out.write(f"{verb} {removed} entr{'y' if removed == 1 else 'ies'} ({_size(freed)}); kept {kept} "
              f"({_size(kept_bytes)}) in {ws.cache.folder}\n")
    return 0


def _keys_at_ref(lock_path: Path, ref: str) -> set[str]:
    """Keys recorded in ``assets.lock`` as it is at git ``ref``."""
    import subprocess

    folder = lock_path.parent
    if ref.startswith("-"):  # it would be read as a git option
        raise UsageError(f"--keep-ref {ref}: not a git ref", hint="use a branch, tag or commit, e.g. origin/main")
    try:
        top = subprocess.run(["git", "rev-parse", "--show-prefix"], cwd=folder, capture_output=True,
                             text=True, check=True).stdout.strip()
        shown = subprocess.run(["git", "show", f"{ref}:{top}{lock_path.name}"], cwd=folder,
                               capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        raise UsageError(f"--keep-ref {ref}: {folder} is not in a git repository (or git is missing)") from None
    if shown.returncode != 0:
        message = shown.stderr.strip().splitlines()[-1] if shown.stderr.strip() else "unknown error"
        raise UsageError(f"--keep-ref {ref}: cannot read assets.lock there ({message})",
                         hint="use a branch, tag or commit that has assets.lock, e.g. origin/main")
    try:
        assets = json.loads(shown.stdout).get("assets", {})
        return {str(entry["key"]) for entry in assets.values()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UsageError(f"--keep-ref {ref}: assets.lock there is not valid") from None


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"

