"""``assetbuild clean``: delete generated outputs and orphans; never hand-made or edited files."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..safetext import safe_text
from ._args import add_no_wait

if TYPE_CHECKING:
    from ..workspace import Workspace

HELP = "delete generated images and orphans"
DESCRIPTION = ("Delete generated images (never hand-made or edited files) and orphans of removed entries. "
               "The cache is kept.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("targets", nargs="*", metavar="TARGET")
    parser.add_argument("--dry-run", action="store_true", help="say what would be removed")
    add_no_wait(parser)


def main(args: argparse.Namespace) -> int:
    from ..projectlock import workspace

    with workspace(args, writes=not args.dry_run) as ws:  # one writer per project
        return clean(ws, args.targets, sys.stdout, dry_run=args.dry_run, quiet=args.quiet)


def clean(ws: Workspace, patterns: list[str], out: TextIO, *, dry_run: bool, quiet: bool = False) -> int:
    """Remove what assetbuild wrote (and orphans when no TARGET is given). The cache stays.
    ``quiet``: no line per removed file (kept files and the summary still show)."""
    from ..display import plural
    from ..plan import State
    from .select import select

    selected = select(ws.project, patterns)
    candidates = [s for s in ws.planner.plan(selected)]
    if not patterns:
        candidates += ws.planner.orphans()
    removed = kept = 0
    verb = "would remove" if dry_run else "removed"
    for status in candidates:
        entry = status.entry
        if entry is None:
            continue  # nothing of ours is recorded for it
        path = ws.project.target_path(status.target)
        try:
            on_disk = ws.hashes.hash(path)
        except OSError as exc:  # e.g. a folder now stands where the image was: not ours to delete
            out.write(f"kept      {safe_text(status.target)} (not a readable file: {exc.strerror})\n")
            kept += 1
            continue
        if on_disk is not None and on_disk != entry.hash:
            out.write(f"kept      {safe_text(status.target)} (edited after assetbuild wrote it)\n")
            kept += 1
            continue
        if not dry_run:
            if on_disk is not None:
                path.unlink()
                ws.hashes.forget(path)
                _prune_empty_parents(path.parent, ws.project.output_dir)
            ws.lock.commit(status.target, None)
        if on_disk is not None:
            label = "orphan " if status.state is State.ORPHAN else ""
            if not quiet:
                out.write(f"{verb:<9} {label}{safe_text(status.target)}\n")
            removed += 1
    ws.settle()
    out.write(f"{verb} {plural(removed, 'file')}; kept {plural(kept, 'edited file')}; the cache is kept\n")
    return 0


def _prune_empty_parents(folder: Path, stop: Path) -> None:
    while folder != stop and stop in folder.parents:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only succeeds when empty
        if folder.exists():
            return
        folder = folder.parent
