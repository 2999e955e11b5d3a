"""Where a project's files are: the manifest, the lock and assetbuild's state folder.

Kept free of heavy imports: a no-op build reads only this, the memo and the files it checks.
"""

from __future__ import annotations

from pathlib import Path

from .errors import UsageError

MANIFEST_NAME = "assets.toml"
LOCK_NAME = "assets.lock"
STATE_DIR = ".assetbuild"


def find_manifest(explicit: str | None, *, near: Path | None = None) -> Path:
    """``-f FILE``, else assets.toml in this folder or the nearest parent (like git finds .git).

    ``near`` (a file the command is about, e.g. ``why examples/game/art/x.png``): the nearest assets.toml
    above that file is looked for first, so the command works from anywhere, such as a repository's root.
    """
    if explicit:
        return Path(explicit)
    here = Path.cwd()
    starts = ([near.absolute().parent] if near is not None else []) + [here]
    for start in starts:
        for folder in (start, *start.parents):
            candidate = folder / MANIFEST_NAME
            if candidate.is_file():
                return candidate
    raise UsageError(f"no {MANIFEST_NAME} in {here} or any parent folder",
                     hint="run `assetbuild init` to write one, or pass -f FILE")


def manifest_text(raw: bytes) -> str:
    """The manifest's bytes as text, read the way ``Path.read_text`` reads it (universal newlines), so
    every reader of the file cuts and hashes the same text. ``UnicodeDecodeError`` when not UTF-8."""
    return raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


def cache_folder(setting: str | None, *, relative_to: Path, root: Path) -> Path:
    """The cache folder a setting names, as a build uses it: ``~`` expanded, a relative one taken from
    ``relative_to``, none (or empty) the project's own (under ``root``). ValueError as ``home_path``."""
    folder = home_path(setting) if setting else root / STATE_DIR / "cache"
    return folder if folder.is_absolute() else relative_to / folder


def home_path(text: str) -> Path:
    """``text`` as a path with a leading ``~`` or ``~user`` expanded. ValueError (saying so) for a user
    this system does not know, where pathlib raises RuntimeError."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        raise ValueError(f"{text!r}: no such user's home folder (write the folder's full path)") from None
