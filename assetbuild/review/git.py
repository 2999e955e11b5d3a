"""The git questions ``review`` asks: which commit is REF, where the project sits in the repository, the
bytes of files at REF (one ``git cat-file --batch`` process for all of them), and the default ``--since``
in CI (the merge base with the default branch)."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path

from ..errors import UsageError


def _git(cwd: Path, *args: str) -> str | None:
    """stdout of ``git ARGS`` (stripped), or None when git fails or is missing."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def toplevel(folder: Path) -> Path | None:
    """The root of the git work tree holding ``folder`` (None outside git)."""
    top = _git(folder, "rev-parse", "--show-toplevel")
    return Path(top) if top else None


def resolve(folder: Path, ref: str) -> str:
    """The commit ``ref`` names (a branch, tag or commit); a clear usage error otherwise."""
    if not ref or ref.startswith("-"):  # it would be read as a git option
        raise UsageError(f"--since {ref!r}: not a git ref", hint="use a branch, tag or commit, e.g. origin/main")
    if toplevel(folder) is None:
        raise UsageError(f"--since {ref}: {folder} is not in a git repository (or git is missing)")
    commit = _git(folder, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if not commit:
        raise UsageError(f"--since {ref}: no such branch, tag or commit",
                         hint="`git branch -a` and `git tag` list them; in CI fetch it first "
                              "(e.g. `git fetch origin main`)")
    return commit


def repo_path(top: Path, path: Path) -> str | None:
    """``path`` as git names it (posix, relative to the work tree root), or None when outside it."""
    rel = os.path.relpath(os.path.realpath(path), os.path.realpath(top))
    if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
        return None
    return Path(rel).as_posix()


def read_at(top: Path, commit: str, paths: Iterable[str]) -> dict[str, bytes]:
    """The bytes of each of ``paths`` (repository paths) at ``commit``; absent ones are left out.

    One ``git cat-file --batch`` process answers every path; a writer thread feeds it so that neither
    side blocks on a full pipe.
    """
    wanted = [p for p in dict.fromkeys(paths) if "\n" not in p and "\r" not in p]
    if not wanted:
        return {}
    proc = subprocess.Popen(["git", "cat-file", "--batch"], cwd=top, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    stdin = proc.stdin

    def feed() -> None:
        try:
            for path in wanted:
                stdin.write(f"{commit}:{path}\n".encode())
            stdin.close()
        except OSError:  # git went away; the reader sees the end of its output
            pass

    writer = threading.Thread(target=feed, name="assetbuild-git-feed", daemon=True)
    writer.start()
    found: dict[str, bytes] = {}
    try:
        for path in wanted:
            header = proc.stdout.readline().split()
            if len(header) != 3:  # "<object> missing" / "ambiguous", or git stopped
                if not header:
                    break
                continue
            size = int(header[2])
            data = proc.stdout.read(size)
            proc.stdout.read(1)  # the newline after each object
            if header[1] == b"blob":
                found[path] = data
    finally:
        writer.join()
        proc.stdout.close()
        proc.wait()
    return found


def default_since(folder: Path) -> str | None:
    """In CI: the merge base of HEAD with the default branch, when one can be found (else None).

    The default branch is the pull request's base (``GITHUB_BASE_REF``), else what ``origin/HEAD`` points
    at, else the first of origin/main, origin/master, main, master that exists.
    """
    if toplevel(folder) is None:
        return None
    candidates = []
    base = os.environ.get("GITHUB_BASE_REF")
    if base:
        candidates += [f"origin/{base}", base]
    head = _git(folder, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD")
    if head:
        candidates.append(head)
    candidates += ["origin/main", "origin/master", "main", "master"]
    for branch in candidates:
        if branch.startswith("-") or not _git(folder, "rev-parse", "--verify", "--quiet", "--end-of-options",
                                              f"{branch}^{{commit}}"):
            continue
        merge_base = _git(folder, "merge-base", "HEAD", branch)
        if merge_base:
            return merge_base
    return None
