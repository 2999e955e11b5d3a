"""The asset keys an ``assets.lock`` records at a git ref: what ``gc --keep-ref`` (local and remote) keeps."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import UsageError


class NoLockAtRef(UsageError):
    """The ref exists but has no assets.lock: it needs nothing (unlike a lock that cannot be read)."""


def keys_at_ref(lock_path: Path, ref: str) -> set[str]:
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
        if "does not exist in" in message or "exists on disk, but not in" in message:
            raise NoLockAtRef(f"--keep-ref {ref}: there is no assets.lock there",
                              hint="use a branch, tag or commit that has assets.lock, e.g. origin/main")
        raise UsageError(f"--keep-ref {ref}: cannot read assets.lock there ({message})",
                         hint="use a branch, tag or commit that has assets.lock, e.g. origin/main")
    try:
        assets = json.loads(shown.stdout).get("assets", {})
        return {str(entry["key"]) for entry in assets.values()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UsageError(f"--keep-ref {ref}: assets.lock there is not valid") from None
