"""A memo of the last state in which every asset was fresh, so a no-op build need not re-plan.

Parsing a 10,000-asset manifest and recomputing every key takes most of a second. When nothing has
changed since a build that left every asset fresh, none of that is needed. The memo
(``.assetbuild/noop.json``) records, at the end of such a build, everything the answer depends on:

- a context: the hash of assetbuild and key-format versions, the --server option, the environment
  variables and user config that choose the server (and so the generator kind), the manifest's path
  (a hash, because a server URL may carry a password);
- the xxh3-128 of the manifest's bytes and of assets.lock's bytes (and that no lock journal exists);
- (size, mtime_ns, inode) of every target and every input file, like git's index.

If all of it still matches, the build is a no-op: every asset is fresh. Anything else, even a touched
file, falls back to the full plan, which is always right. The memo is only an accelerator: deleting
it is harmless, and it is never consulted for a build of selected targets.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .fsutil import atomic_write, hash_file
from .keys import KEY_VERSION, hash_bytes
from .layout import LOCK_NAME, STATE_DIR

if TYPE_CHECKING:
    from .events import BuildEvents
    from .manifest import Project

MEMO_NAME = "noop.json"
_CONTEXT_ENV = ("ASSETBUILD_SERVER", "ASSETBUILD_CACHE_DIR", "ASSETBUILD_CONFIG_DIR", "XDG_CONFIG_HOME")


@dataclass(frozen=True)
class Memo:
    count: int
    warnings: list[str]
    orphans: list[str]


def context(manifest: Path, server_option: str | None) -> str:
    """What, besides the files, decides keys and freshness."""
    from .userconfig import config_path

    try:
        st = config_path().stat()
        config = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
    except OSError:
        config = "-"
    env = "|".join(f"{name}={os.environ.get(name, '')}" for name in _CONTEXT_ENV)
    text = f"{__version__}|k{KEY_VERSION}|{manifest.absolute()}|server={server_option or ''}|{env}|config={config}"
    # Only ever compared, so only its hash is stored: a server URL may carry a password (user:pass@host).
    return hash_bytes(text.encode("utf-8", "surrogateescape"))


def _stamp(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _memo_path(manifest: Path) -> Path:
    return manifest.absolute().parent / STATE_DIR / MEMO_NAME


def check(manifest: Path, ctx: str) -> Memo | None:
    """The memo when it proves every asset fresh right now; None when the full plan must decide."""
    try:
        memo = json.loads(_memo_path(manifest).read_bytes())
        if memo.get("context") != ctx:
            return None
        root = manifest.absolute().parent
        if (root / STATE_DIR / "lock.journal").exists():
            return None
        # Hashed in chunks: the lock of 100,000 assets is ~65 MB, which the no-op must not hold at once.
        if hash_file(manifest) != memo["manifest"]:
            return None
        if hash_file(root / LOCK_NAME) != memo["lock"]:
            return None
        for name, stamp in memo["files"]:
            if _stamp(root / name) != stamp:
                return None
        return Memo(int(memo["count"]), list(memo["warnings"]), list(memo["orphans"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record(project: Project, ctx: str, orphans: list[str],
           verified: Callable[[Path], list[int] | None]) -> None:
    """Write the memo for a project whose every asset was just found (or made) fresh.

    ``verified`` gives the stamp each file had when this run hashed (or wrote) it. The memo records only
    what was verified: a file changed since (edited while another asset was being built) has another
    stamp now, and then no memo is written, so the next run plans in full and sees the edit.
    """
    root = project.root
    files: list[tuple[str, list[int] | None]] = []
    seen: set[str] = set()
    for asset in project.assets.values():
        for path in (asset.path, *(image.path for image in asset.inputs)):
            name = os.path.relpath(path, root)
            if name not in seen:
                seen.add(name)
                stamp = _stamp(path)
                if stamp is None or stamp != verified(path):
                    return  # missing, or changed after it was checked: not a proven no-op state
                files.append((name, stamp))
    try:
        memo = {
            "context": ctx,
            "manifest": hash_file(project.manifest),
            "lock": hash_file(project.lock_path),
            "count": len(project.assets),
            "warnings": project.warnings,
            "orphans": orphans,
            "files": files,
        }
    except OSError:
        return
    with contextlib.suppress(OSError):
        atomic_write(_memo_path(project.manifest), json.dumps(memo, separators=(",", ":")).encode(),
                     tmp_dir=project.state_dir / "tmp")


def forget(manifest: Path) -> None:
    with contextlib.suppress(OSError):
        _memo_path(manifest).unlink()


def report(events: BuildEvents, memo: Memo) -> int:
    """Report a build the memo proved fresh, like any other no-op build."""
    from .events import Summary

    for warning in memo.warnings:
        events.warning(warning)
    events.run_started(memo.count, 0)
    events.run_finished(Summary(fresh=memo.count, orphans=memo.orphans))
    return 0
