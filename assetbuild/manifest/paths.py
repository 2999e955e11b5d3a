"""Path rules: every path a manifest names stays inside the project, and every target can be a file.

Targets are relative to the output folder, image inputs to the project folder; absolute paths, ``..``
and symlinks that leave the project are refused, as are names no file system can hold, targets in
assetbuild's own state folder, and two targets that would be one file on macOS or Windows.
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

from ..errors import ManifestError
from ..layout import LOCK_NAME, STATE_DIR

NAME_MAX = 255  # bytes in one file or folder name: the limit of every common file system


def check_name(target: str, where: str) -> None:
    """Refuse target names no file system can hold: a NUL byte, or a part longer than NAME_MAX bytes."""
    for part in target.replace("\\", "/").split("/"):
        size = len(part.encode("utf-8", "surrogateescape"))
        if size > NAME_MAX:
            raise ManifestError(where, f"name too long: {part[:40]!r}… is {size} bytes; file systems allow "
                                f"{NAME_MAX} bytes per file or folder name", hint="shorten the target's name")


def inside(base: Path, relative: str, where: str, what: str, root: Path | None = None) -> str:
    """Normalise ``relative`` (posix) and check it stays inside ``root`` (default ``base``), symlinks too.

    ``base`` must itself be inside ``root`` (it is the root or the checked output folder).
    """
    root = root or base
    if "\0" in relative:
        raise ManifestError(where, f"{what} {relative!r} contains a NUL byte", hint="file names cannot contain one")
    # Paths are relative to ``base``: the output folder (output_dir) for targets, else the project folder.
    relative_to = "the project folder (where assets.toml is)" if base == root else (
        f"the output folder {os.path.relpath(base, root)!r} (output_dir)")
    text = relative.replace("\\", "/")
    if not text or text.startswith("/") or re.match(r"^[A-Za-z]:", text) or text.startswith("~"):
        raise ManifestError(where, f"{what} must be a relative path inside the project, not {relative!r}",
                            hint=f"write paths relative to {relative_to}, e.g. \"sprites/hero.png\"")
    norm = posixpath.normpath(text)
    # Plain strings, not pathlib: this runs for every target, and a manifest may have 10,000 of them.
    candidate = os.path.normpath(os.path.join(base, norm))
    if not _within(candidate, str(root)):
        raise ManifestError(where, f"{what} {relative!r} leaves the project folder {root}",
                            hint=f"paths are relative to {relative_to} and may not use .. to leave the project")
    if norm == ".." or norm.startswith("../"):  # inside the project, but outside the output folder
        raise ManifestError(where, f"{what} {relative!r} leaves {relative_to}",
                            hint=f"{what}s are relative to {relative_to}; to write there, move output_dir up "
                                 "or use a path inside it")
    if not _within(_real(candidate), _real_dir(str(root))):
        raise ManifestError(where, f"{what} {relative!r} goes through a symlink that leaves the project",
                            hint="point the symlink inside the project or use a real folder")
    return norm


def forget_folders() -> None:
    """Drop the resolved folders: they may have changed (or become symlinks) since the last load."""
    _real_dir.cache_clear()


class TargetPaths:
    """The rules every target of one manifest passes: a name a file system can hold, inside the output
    folder, not assetbuild's own files, and no two targets that would be one file where names are
    compared without letter case (macOS, Windows) or without Unicode normalisation (macOS: "café" typed
    as one é or as e + a combining accent)."""

    def __init__(self, root: Path, output_dir: Path, line_of: Callable[[str], int | None]) -> None:
        self.root = root
        self.output_dir = output_dir
        self._state_real = _real_dir(str(root / STATE_DIR))  # symlinks into the state folder count too
        self._line_of = line_of  # the manifest line of an already accepted target
        self._folded: dict[str, str] = {}  # folded name -> the first target that folds to it
        out, top = str(output_dir), str(root)
        # The quick path (``_plain``) needs folders written in normal form, so that joining is normalising.
        self._quick = (out == os.path.normpath(out) and top == os.path.normpath(top) and out != os.sep
                       and os.sep == "/")
        self._out_prefix = out + os.sep
        self._root_real = _real_dir(top)
        # The quickest path: a plain target in a folder already resolved (``_folder``) that is not a symlink.
        self._quickest = self._quick and _within(out, top)
        self._folders: dict[str, _Folder | None] = {}  # folder of targets (relative) -> what ``_folder`` found
        self._state_parent, self._state_name = os.path.split(self._state_real)

    def check(self, target: str, where: str) -> str:
        """``target`` normalised; raises ``ManifestError`` naming ``where`` when it breaks a rule."""
        if self._quickest and len(target) <= NAME_MAX and _PLAIN.fullmatch(target):
            # The rules below, for a plain relative path in a folder that resolves inside the project and
            # outside the state folder (checked once per folder): the target itself is not a symlink (one
            # lstat), is not the state folder itself or the lock, and has no twin that differs in case.
            folder, _, name = target.rpartition("/")
            known = self._folders.get(folder, _UNSEEN)
            if known is _UNSEEN:
                known = self._folders[folder] = self._folder(folder)
            if (known is not None and target != LOCK_NAME and not target.startswith(STATE_DIR + "/")
                    and not (name == self._state_name and known[0] == self._state_parent)
                    and (not known[1] or name.lower() not in known[1])):
                if self._folded.setdefault(target.lower(), target) != target:  # ASCII: NFC changes nothing
                    self._refuse_folded_twin(target, where)
                return target
        if self._quick and _PLAIN.fullmatch(target) and len(target) <= NAME_MAX:
            # The common case, with each rule below reduced to what can still fail for a plain relative
            # path of ordinary names: a symlink on the way (one lstat), the state folder, a folded twin.
            path = self._out_prefix + target
            real = _real(path)
            if (_within(path, str(self.root)) and _within(real, self._root_real) and target != LOCK_NAME
                    and not target.startswith(STATE_DIR + "/") and not _within(real, self._state_real)):
                self._refuse_folded_twin(target, where)
                return target
        check_name(target, where)
        norm = inside(self.output_dir, target, where, "target", root=self.root)
        if norm in (LOCK_NAME,) or norm.startswith(STATE_DIR + "/") or _within(
                _real(os.path.join(self.output_dir, norm)), self._state_real):
            raise ManifestError(where, f"target {norm!r} is reserved for assetbuild's own files",
                                hint="a target may not be (or go through a symlink into) .assetbuild/")
        self._refuse_folded_twin(norm, where)
        return norm

    def _folder(self, folder: str) -> _Folder | None:
        """A folder of plain targets, when it resolves inside the project and outside the state folder
        (then only each target's own name can break a rule; else None): its real path and the names in it
        that are symlinks, lower-cased (a file system may ignore case). One listing of the folder instead
        of an lstat per target: 10,000 targets in 100 folders are 100 listings."""
        lexical = self._out_prefix + folder if folder else str(self.output_dir)
        real = os.path.realpath(lexical)
        if not _within(real, self._root_real) or _within(real, self._state_real):
            return None
        try:
            with os.scandir(lexical) as entries:
                links = frozenset(entry.name.lower() for entry in entries if entry.is_symlink())
        except FileNotFoundError:
            links = frozenset()  # nothing there yet (a first build): no symlink either
        except OSError:
            return None  # not a readable folder: each target is checked on its own
        return real, links

    def _refuse_folded_twin(self, norm: str, where: str) -> None:
        folded = self._folded.setdefault(unicodedata.normalize("NFC", norm).lower(), norm)
        if folded == norm:  # the first of its name (or the same target again: the caller reports that)
            return
        first_line = self._line_of(folded)
        line = f" (line {first_line})" if first_line else ""
        if unicodedata.normalize("NFC", folded) == unicodedata.normalize("NFC", norm):
            raise ManifestError(where, f"target {ascii(norm)} differs from {ascii(folded)}{line} only in "
                                "Unicode normalisation (NFC/NFD: the same letters, encoded differently)",
                                hint="they would be one file on macOS; write both the same way (NFC)")
        raise ManifestError(where, f"target {norm!r} differs from {folded!r}{line} only in letter case",
                            hint="they would be one file on macOS and Windows; rename one")


# A relative path of ordinary names (ASCII letters, digits, ``_+,@-``, and dots or ``~`` after the first
# character), already in normal form: no empty, ``.`` or ``..`` part, no backslash, drive or NUL.
_PLAIN = re.compile(r"[A-Za-z0-9_+,@-][A-Za-z0-9_.+,@~-]*(?:/[A-Za-z0-9_+,@-][A-Za-z0-9_.+,@~-]*)*")


_Folder = tuple[str, frozenset[str]]  # a folder's real path, and the lower-cased names of its symlinks
_UNSEEN: _Folder = ("", frozenset())


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@functools.lru_cache(maxsize=4096)
def _real_dir(folder: str) -> str:
    return os.path.realpath(folder)


def _real(path: str) -> str:
    """``realpath`` of ``path``, resolving each folder once (targets share folders; 10,000 of them must
    not cost 10,000 full resolutions)."""
    if os.path.islink(path):
        return os.path.realpath(path)
    folder, name = os.path.split(path)
    return os.path.join(_real_dir(folder), name)
