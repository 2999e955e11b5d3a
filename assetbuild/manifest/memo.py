"""The resolved assets of the last load, by the text of their tables, so one edit re-reads one table.

``.assetbuild/manifest.json`` maps the xxh3-128 of an asset table's text (``sections.Piece``) to what that
table resolved to: its name as written and, per target, the checked parameters, post-processing settings
and variant. It is valid only for the global part it was made with (the hash of the text of every
non-asset table: [project], [defaults], [styles.*]...), the project folder, this assetbuild version and
this very state folder (so a memo that came with a repository or an archive is never used); any change
there makes every table resolve again. Tables whose result depends on more than their text and the
global part are never kept: image inputs and ``source`` (other targets, files on disk) and tables
that gave a warning (its message names a line, which moves).

Target paths are checked again on every load (symlinks may have appeared), and so are duplicates
across tables. The memo is an accelerator only: a missing, damaged or foreign file is ignored.

The file (its name is the one of the earlier JSON format, which scripts delete by name) is a JSON header
line (format, context, checksum of the rest) and then the entries as pickles of plain values, a few
thousand a pickle: reading and writing 10,000 of them takes ~5 ms each way, against ~30 ms as JSON, and
a full plan reads them all. The pickles are read only after the header proved the file is this state
folder's own (its context) and undamaged (its checksum), and even then by an unpickler that refuses to
look up any class or function (``_Plain``): it can make nothing but str, int, float, bool, None, lists,
tuples and dicts, the types ``keep`` lets in. Each entry's shape is checked again when it is used.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import pickle
from pathlib import Path
from typing import Any

import xxhash

from .. import __version__
from ..fsutil import atomic_write
from ..keys import hash_bytes

MEMO_NAME = "manifest.json"
FORMAT = 3  # 2: JSON lines; 3: pickles of plain values (a memo of another format is ignored)

# One target of a kept table: (target as declared, checked params, post-processing settings, variant).
Resolved = tuple[str, dict[str, Any], dict[str, Any], int | None]
# A kept table: its name as written and its targets; or, for the common table of one target named as
# written and no post-processing settings, (name, params, variant): a third of the memory, which a first
# load of 100,000 tables holds for the whole build.
Entry = tuple[str, list[Resolved]] | tuple[str, dict[str, Any], int | None]


class ResolvedMemo:
    """Asset tables resolved by an earlier load (read) and by this one (``keep``; ``save`` writes them)."""

    def __init__(self, path: Path, context: str, body: bytes = b"") -> None:
        self.path = path
        self.context = context  # as read: the global part, version and state folder the entries were made with
        self._body = body  # the entries as read, parsed by ``start`` once the context proved them ours
        self._context = ""  # of this load (``start``), before it is bound to the state folder
        self._known: dict[str, Any] = {}  # text hash -> Entry (as read: checked when used, see ``_full``)
        self._now: dict[str, Any] = {}
        self.changed = False

    @classmethod
    def open(cls, state_dir: Path) -> ResolvedMemo:
        """The memo in ``state_dir`` (empty when missing, damaged or of another format). The caller has
        checked the state folder (``fsutil.check_state_dir``) before anything is read there."""
        path = state_dir / MEMO_NAME
        try:
            head, _, body = path.read_bytes().partition(b"\n")
            header = json.loads(head)
            context = header.get("context")
            if header.get("format") != FORMAT or type(context) is not str or header.get("check") != hash_bytes(body):
                return cls(path, "")  # another version's, or damaged (cut short, bytes changed)
            return cls(path, context, body)
        except (OSError, ValueError, AttributeError, RecursionError):
            return cls(path, "")

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
        if not self.context or self._bound(context) != self.context:
            self._known = {}
            self.changed = True
        elif self._body:
            known = _read(self._body)
            self._known = known if known is not None else {}
            self.changed = self.changed or known is None
        self._body = b""
        self._context = context
        self._now = {}

    def get(self, text_hash: str) -> tuple[str, list[Resolved]] | None:
        found = self._known.get(text_hash)
        if found is None:
            return None
        full = _full(found)
        if full is not None:
            self._now[text_hash] = found
        return full

    def keep(self, text_hash: str, written: str, resolved: list[Resolved]) -> None:
        """Remember what the table with this text resolved to (if it holds only plain values, which read
        back the same: a TOML date, say, is not kept)."""
        if len(resolved) == 1:
            target, params, post, variant = resolved[0]
            if target == written and not post:  # the common table, in its smallest form (see ``Entry``)
                if _plain(params):
                    self._now[text_hash] = (written, params, variant)
                    self.changed = True
                return
        if all(_plain(r[1]) and _plain(r[2]) for r in resolved):  # (targets: str; variants: int or None)
            self._now[text_hash] = (written, resolved)
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
        with contextlib.suppress(OSError, pickle.PicklingError, RecursionError):
            # A few thousand entries a pickle: the pickler's table of what it wrote (a few objects per
            # entry) stays small at 100,000 assets, and no second copy of the body is made.
            pieces: list[bytes] = []
            entries = iter(self._known.items())
            while chunk := dict(itertools.islice(entries, _PIECE)):
                pieces.append(pickle.dumps(chunk, protocol=_PROTOCOL))
            check = xxhash.xxh3_128()
            for piece in pieces:
                check.update(piece)
            header = json.dumps({"format": FORMAT, "context": bound, "check": check.hexdigest()}).encode()
            atomic_write(self.path, [header + b"\n", *pieces], tmp_dir=tmp_dir, sync=False)
            self.changed = False


_PIECE = 4096  # entries per pickle
_PROTOCOL = 5  # Python 3.8+


class _Plain(pickle.Unpickler):
    """An unpickler that looks up no class and no function: all it can make is plain values."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError("the manifest memo holds plain values only")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("the manifest memo holds plain values only")


def _read(body: bytes) -> dict[str, Any] | None:
    """The entries of a memo's body (its pickles, one after the other); None if it is not made so."""
    stream = io.BytesIO(body)
    reader = _Plain(stream)
    known: dict[str, Any] = {}
    try:
        while stream.tell() < len(body):
            piece = reader.load()
            if type(piece) is not dict:
                return None
            known.update(piece)
    except Exception:  # noqa: BLE001  (whatever bytes make the unpickler raise: the memo is not used)
        return None
    return known


# The post-processing settings of the many tables that have none: one shared (never modified) dict.
NO_POST: dict[str, Any] = {}


def _full(entry: Any) -> tuple[str, list[Resolved]] | None:
    """A kept table as its name and targets (see ``Entry``); None if it is not of that shape."""
    if type(entry) is not tuple:
        return None
    if len(entry) == 3:
        written, params, variant = entry
        if type(written) is str and type(params) is dict and (variant is None or type(variant) is int):
            return written, [(written, params, NO_POST, variant)]
        return None
    if len(entry) != 2 or type(entry[0]) is not str or type(entry[1]) is not list:
        return None
    for resolved in entry[1]:
        if not (type(resolved) is tuple and len(resolved) == 4 and type(resolved[0]) is str
                and type(resolved[1]) is dict and type(resolved[2]) is dict
                and (resolved[3] is None or type(resolved[3]) is int)):
            return None
    return entry


_SCALARS = frozenset({str, int, float, bool, type(None)})
_DEEPEST = 64  # nesting levels a kept value may have (a deeper one is resolved each time instead)


def _plain(value: dict[str, Any]) -> bool:
    """Whether ``value`` (a table) holds only str, int, float, bool, None and lists, tuples and dicts of
    them (no subclass: what ``_Plain`` reads back equal), nested at most ``_DEEPEST`` levels."""
    if _SCALARS.issuperset(map(type, value.values())) and _SCALARS.issuperset(map(type, value)):
        return True  # the common, flat table
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind in _SCALARS:
            continue
        if depth >= _DEEPEST:
            return False
        if kind is list or kind is tuple:
            stack.extend((member, depth + 1) for member in item)
        elif kind is dict:
            stack.extend((key, depth + 1) for key in item)
            stack.extend((member, depth + 1) for member in item.values())
        else:
            return False
    return True
