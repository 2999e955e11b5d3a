"""``assetbuild gc --remote``: prune the team store, only within an explicit scope.

Nothing deletes from the store by default. An object is kept when the lock needs it here or at any git
ref named with ``--keep-ref`` (or at every branch and tag with ``--all-refs``), or when it is newer than
the grace period (another branch may be about to commit a lock that needs it). Objects that are not
ours (another layout) are never touched. ``--dry-run`` says what would go.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import TextIO

from ..errors import UsageError
from ..workspace import Workspace
from .objects import key_of
from .remote import bounded_map
from .store import RemoteDown, StoredObject

DEFAULT_GRACE_DAYS = 30.0


def gc_remote(ws: Workspace, out: TextIO, *, keep_refs: list[str], all_refs: bool, grace_days: float | None,
              dry_run: bool, as_json: bool) -> int:
    from ..lockrefs import NoLockAtRef, keys_at_ref

    if not keep_refs and not all_refs:
        raise UsageError("gc --remote deletes from the shared store only with an explicit scope",
                         hint="name the branches whose images must stay: --keep-ref origin/main (repeatable), "
                              "or --all-refs; try --dry-run first")
    warnings: list[str] = []
    remote = ws.open_remote(warnings.append)
    if remote is None:
        raise UsageError("no team store is configured", hint="set [cache] remote in assets.toml or ASSETBUILD_REMOTE")
    if warnings:  # an outage: deleting on a partial view is not an option
        raise UsageError(warnings[0])
    needed = {entry.key for entry in ws.lock.entries().values()}
    for ref in keep_refs:
        needed |= keys_at_ref(ws.project.lock_path, ref)
    if all_refs:
        for ref in _every_ref(ws):
            try:
                needed |= keys_at_ref(ws.project.lock_path, ref)
            except NoLockAtRef:  # a branch without assets.lock needs nothing; one that cannot be read
                continue  # stops gc (UsageError): deleting what it may need is not an option
    grace = DEFAULT_GRACE_DAYS if grace_days is None else grace_days
    cutoff = time.time() - grace * 86400
    doomed = []
    kept = 0
    try:
        for obj in remote.store.objects():
            key = key_of(obj.path)
            if key is None:
                continue
            if key in needed or obj.modified >= cutoff:
                kept += 1
            else:
                doomed.append(obj)
    except RemoteDown as exc:
        raise UsageError(f"the team store failed while listing its objects ({exc}); nothing was removed",
                         hint="run gc --remote again when the store answers") from None
    verb = "would remove" if dry_run else "removed"

    def remove(obj: StoredObject) -> None:
        if not dry_run:
            remote.store.delete(obj.path)

    freed = removed = 0
    try:
        for obj, _ in bounded_map(remove, doomed):
            freed += obj.size
            removed += 1
            if as_json:
                out.write(json.dumps({"event": "object", "action": verb, "key": key_of(obj.path),
                                      "size": obj.size}) + "\n")
            else:
                out.write(f"{verb} {key_of(obj.path)} ({obj.size} B)\n")
    except RemoteDown as exc:
        raise UsageError(f"the team store failed while removing objects ({exc}); {removed} of {len(doomed)} "
                         "were removed", hint="run gc --remote again when the store answers") from None
    if as_json:
        out.write(json.dumps({"event": "gc_finished", "store": remote.name, "dry_run": dry_run,
                              "removed": len(doomed), "bytes": freed, "kept": kept}) + "\n")
    else:
        out.write(f"{verb} {len(doomed)} object(s) ({freed} B); kept {kept} in {remote.name} "
                  f"(needed by the lock at {len(keep_refs) + (1 if all_refs else 0)} scope(s), or newer than "
                  f"{grace:g} days)\n")
    return 0


def _every_ref(ws: Workspace) -> list[str]:
    try:
        listed = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/heads", "refs/tags",
                                 "refs/remotes"], cwd=ws.project.root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        raise UsageError(f"--all-refs: {ws.project.root} is not in a git repository (or git is missing)") from None
    return [line for line in listed.stdout.splitlines() if line and not line.endswith("/HEAD")]
