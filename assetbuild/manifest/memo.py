"""The resolved assets of the last load, by the text of their tables, so one edit re-reads one table.

``.assetbuild/manifest.json`` (a header line with a checksum of the rest) maps the xxh3-128
of an asset table's text (``sections.Piece``) to what that table resolved to: its name as written and,
per target, the checked parameters, post-processing settings and variant. It is valid only for the
global part it was made with (the hash of the text of every non-asset table: [project], [defaults],
[styles.*]...), the project folder, this assetbuild version and this very state folder (so a memo
that came with a repository or an archive is never used); any change there makes every table resolve
again. Tables whose result depends on more than their text and the
global part are never kept: image inputs and ``source`` (other targets, files on disk) and tables
that gave a warning (its message names a line, which moves).

Target paths are checked again on every load (symlinks may have appeared), and so are duplicates
across tables. The memo is an accelerator only: a missing, damaged or foreign file is ignored.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import xxhash

from .. import __version__
from ..fsutil import atomic_write
from ..keys import hash_bytes

MEMO_NAME = "manifest.json"
FORMAT = 2

# One target of a kept table: (target as declared, checked params, post-processing settings, variant).
Resolved = tuple[str, dict[str, Any], dict[str, Any], int | None]
# A kept table: its name as written and its targets; or, for the common table of one target named as
# written and no post-processing settings, (name, params, variant): a third of the memory, which a first
# load of 100,000 tables holds for the whole build.
Entry = tuple[str, list[Resolved]] | tuple[str, dict[str, Any], int | None]


class ResolvedMemo:
    """Asset tables resolved by an earlier load (read) and by this one (``keep``; ``save`` writes them).

    The file after its header line holds one table per line, ``HASH JSON``; each table's JSON text is
    kept as read (or as made by ``keep``), so saving after one edit writes 10,000 lines without
    encoding 10,000 tables again."""

    def __init__(self, path: Path, context: str, known: dict[str, Entry],
                 texts: dict[str, bytes] | None = None) -> None:
        self.path = path
        self.context = context  # as read: the global part, version and state folder the entries were made with
        self._context = ""  # of this load (``start``), before it is bound to the state folder
        self._known = known
        self._texts = texts or {}  # table hash -> its JSON text in the file
        self._now: dict[str, Entry] = {}
        self.changed = False

    @classmethod
    def open(cls, state_dir: Path) -> ResolvedMemo:
        """The memo in ``state_dir`` (empty when missing, damaged or of another format). The caller has
        checked the state folder (``fsutil.check_state_dir``) before anything is read there."""
        path = state_dir / MEMO_NAME
        try:
            head, _, body = path.read_bytes().partition(b"\n")
            header = json.loads(head)
            if header.get("format") != FORMAT or header.get("check") != hash_bytes(body):
                return cls(path, "", {})  # another version's, or damaged (cut short, bytes changed)
            lines = body.split(b"\n") if body else []
            hashes = [line[:_HASH_CHARS].decode("ascii") for line in lines]
            texts = [line[_HASH_CHARS + 1:] for line in lines]
            entries = json.loads(b"[" + b",".join(texts) + b"]")  # one parse for every table
            known = {h: _entry(str(entry[0]), [(str(t), _dict(p), _dict(s) if s else NO_POST,
                                                v if isinstance(v, int) else None) for t, p, s, v in entry[1]])
                     for h, entry in zip(hashes, entries, strict=True)}
            return cls(path, str(header["context"]), known, dict(zip(hashes, texts, strict=True)))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return cls(path, "", {})

    @staticmethod
    def context_of(global_text: str, root: Path) -> str:
        """What every entry depends on besides its table's text (and the state folder, see ``_bound``)."""
        return hash_bytes(f"{__version__}|{FORMAT}|{root}|{global_text}".encode("utf-8", "surrogateescape"))

    def _bound(self, context: str) -> str | None:
        """``context`` bound to the identity of the state folder (device and inode), which no repository
        or archive can know in advance: a memo shipped in one is never used (its entries are not checked
        again, so they must be this checkout's own). None when the folder does not exist."""
        try:
            st = os.stat(self.path.parent)
        except OSError:
            return None
        return hash_bytes(f"{context}|{st.st_dev}:{st.st_ino}".encode())

    def start(self, context: str) -> None:
        """Begin a load whose global part gives ``context``: earlier entries count only if it is theirs."""
        if self._bound(context) != self.context:
            self._known = {}
            self._texts = {}
            self.changed = True
        self._context = context
        self._now = {}

    def get(self, text_hash: str) -> tuple[str, list[Resolved]] | None:
        found = self._known.get(text_hash)
        if found is None:
            return None
        self._now[text_hash] = found
        return _full(found)

    def keep(self, text_hash: str, written: str, resolved: list[Resolved]) -> None:
        """Remember what the table with this text resolved to (if it can be written as JSON and read
        back the same: a TOML date or a nan cannot). Its JSON text is made only when the memo is saved:
        a first load of 100,000 tables would otherwise hold ~30 MB of it for the whole build."""
        if not all(_json_exact(r[1]) and _json_exact(r[2]) for r in resolved):  # (targets: str; variants: int)
            return
        self._now[text_hash] = _entry(written, resolved)
        self._texts.pop(text_hash, None)
        self.changed = True

    def finish(self) -> None:
        """The load is complete: only the tables it saw stay (a removed table is forgotten)."""
        if len(self._now) != len(self._known):
            self.changed = True
        self._known = self._now

    def save(self, tmp_dir: Path) -> None:
        """Write the memo if this load changed it (never fails a build: it is only an accelerator)."""
        if not self.changed:
            return
        bound = self._bound(self._context)
        if bound is None:
            return
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            # Joined a piece at a time, hashed and written in pieces: at the end of a build of 100,000
            # assets, every line held at once, or the body joined (and joined again to its header), would
            # each be another copy of ~30 MB.
            pieces: list[bytes] = []
            lines: list[bytes] = []
            for text_hash, entry in self._known.items():
                text = self._texts.get(text_hash)
                if text is None:
                    written, resolved = _full(entry)
                    try:
                        text = _ENCODER.encode([written, [list(r) for r in resolved]]).encode("utf-8")
                    except (ValueError, TypeError):  # e.g. a lone surrogate: that table is simply not kept
                        continue
                lines.append(text_hash.encode("ascii") + b" " + text)
                if len(lines) == _PIECE:
                    pieces.append(b"\n".join(lines))
                    lines = []
            if lines:
                pieces.append(b"\n".join(lines))
            del lines
            check = xxhash.xxh3_128()
            for n, piece in enumerate(pieces):
                check.update(b"\n" + piece if n else piece)
            header = json.dumps({"format": FORMAT, "context": bound, "check": check.hexdigest()}).encode()
            atomic_write(self.path, _joined(header, pieces), tmp_dir=tmp_dir, sync=False)
            self.changed = False


def _joined(header: bytes, pieces: list[bytes]) -> Iterator[bytes]:
    """The file: its header line, then the pieces of its body separated by newlines."""
    yield header + b"\n"
    for n, piece in enumerate(pieces):
        yield b"\n" + piece if n else piece


_PIECE = 1024  # tables per piece of the body written at once


# The post-processing settings of the many tables that have none: one shared (never modified) dict.
NO_POST: dict[str, Any] = {}


def _entry(written: str, resolved: list[Resolved]) -> Entry:
    """A kept table in its smallest form (see ``Entry``)."""
    if len(resolved) == 1 and resolved[0][0] == written and not resolved[0][2]:
        return written, resolved[0][1], resolved[0][3]
    return written, resolved


def _full(entry: Entry) -> tuple[str, list[Resolved]]:
    """A kept table as its name and targets (see ``Entry``)."""
    if len(entry) == 3:
        written, params, variant = entry
        return written, [(written, params, NO_POST, variant)]
    return entry


def _dict(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise TypeError("a memo entry's parameters must be a table")
    return value


_HASH_CHARS = 32  # an xxh3-128 digest in hex
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _json_exact(value: Any) -> bool:
    """Whether ``value`` reads back equal from JSON: str, int, finite float, bool, None, and lists and
    string-keyed dicts of them (a tuple would read back as a list, a date not at all). Iterative."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif type(item) is list:
            stack.extend(item)
        elif type(item) is dict:
            if not all(isinstance(key, str) for key in item):
                return False
            stack.extend(item.values())
        else:
            return False
    return True
