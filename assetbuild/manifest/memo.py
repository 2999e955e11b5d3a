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
tuples and dicts, the types ``keep`` lets in.

The checksum is no secret, so whoever may write to the state folder can still make a memo that passes it.
Such a memo must never do harm, only go unused: the unpickler runs under a memory bound
(``memorybound``: its PUT opcodes would otherwise fill hundreds of MB from five bytes; where the bound
cannot be set, a body with such opcodes, which ``save`` never writes, is refused before it is read), and
each entry is used only if it is one the loader could have made (``_full``): its parameters pass the
loader's checks, strings are UTF-8, numbers finite, its post-processing settings parse, its variant is a
``count``'s. A table whose entry fails is resolved from its text, as if the memo had not known it.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
import os
import pickle
from pathlib import Path
from typing import Any

import xxhash

from .. import __version__
from .. import params as P
from ..fsutil import atomic_write
from ..keys import hash_bytes
from ..memorybound import bounded
from ..postspec import POST_KEY_SET, PostprocessSpecError
from ..postspec import parse as parse_post
from .assets import COUNT_MAX, suffix_of

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
        self._accepted: dict[str, Any] = {}  # parameter -> a value object that passed ``_sound_params`` (see there)
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
        self._accepted = {}

    def get(self, text_hash: str) -> tuple[str, list[Resolved]] | None:
        found = self._known.get(text_hash)
        if found is None:
            return None
        full = _full(found, self._accepted)
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
        self._accepted = {}

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


# What reading a body may add to the process's memory: what its entries take (a pickle byte makes at
# most a few pointers' worth of objects) and a margin. Beyond it the unpickler's request fails (a forged
# PUT index) and the memo is not used.
_MARGIN = 32 << 20
_PER_BYTE = 16


def _read(body: bytes) -> dict[str, Any] | None:
    """The entries of a memo's body (its pickles, one after the other); None if it is not made so."""
    stream = io.BytesIO(body)
    known: dict[str, Any] = {}
    with bounded(_MARGIN + _PER_BYTE * len(body)) as in_force:
        try:
            if not in_force and _puts(body):
                return None
            reader = _Plain(stream)
            while stream.tell() < len(body):
                piece = reader.load()
                if type(piece) is not dict:
                    return None
                known.update(piece)
        except Exception:  # noqa: BLE001  (whatever bytes make the unpickler raise: the memo is not used)
            return None
    return known


def _puts(body: bytes) -> bool:
    """Whether ``body`` has a PUT opcode (which stores by an index it names, see ``memorybound``); ``save``
    writes none (protocol 5 stores with MEMOIZE). Slow (~60 ms at 10,000 entries): used where the memory
    bound cannot be set. Raises on bytes that are not pickles."""
    import pickletools

    stream = io.BytesIO(body)
    while stream.tell() < len(body):
        for opcode, _, _ in pickletools.genops(stream):
            if opcode.name.endswith("PUT"):
                return True
    return False


# The post-processing settings of the many tables that have none: one shared (never modified) dict.
NO_POST: dict[str, Any] = {}


def _full(entry: Any, accepted: dict[str, Any]) -> tuple[str, list[Resolved]] | None:
    """A kept table as its name and targets (see ``Entry``); None if it is not of that shape or holds what
    the loader could not have made (see the module's doc). ``accepted``: see ``_sound_params``."""
    if type(entry) is not tuple:
        return None
    if len(entry) == 3:
        written, params, variant = entry
        if (type(written) is str and type(params) is dict and _variant(variant)
                and _sound_params(params, accepted) and (written.isascii() or _text(written))):
            return written, [(written, params, NO_POST, variant)]
        return None
    if len(entry) != 2 or type(entry[0]) is not str or type(entry[1]) is not list or not entry[1]:
        return None
    for resolved in entry[1]:
        if not (type(resolved) is tuple and len(resolved) == 4 and type(resolved[0]) is str
                and type(resolved[1]) is dict and type(resolved[2]) is dict and _variant(resolved[3])
                and _sound_params(resolved[1], accepted) and _text(resolved[0])
                and _sound_post(resolved[2], resolved[0])):
            return None
    return entry if _text(entry[0]) else None


def _variant(variant: Any) -> bool:
    """None (a table without ``count``) or the number of one of its variants."""
    return variant is None or (type(variant) is int and 1 <= variant <= COUNT_MAX)


def _text(value: str) -> bool:
    """Whether ``value`` can be written as UTF-8 (a manifest's strings can; a forged one may hold a lone
    surrogate, which no key, lock or request could take)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# The parameters a kept table may hold, and how make_asset checks them: image inputs make a table that is
# never kept, and the reserved ones are refused (an unknown one gives a warning: never kept either).
_KEPT_PARAMS = {key: spec for key, spec in P.KNOWN.items() if key not in P.RESERVED and key not in P.IMAGE_PARAMS}
_TAKE_STRINGS = frozenset(key for key, spec in _KEPT_PARAMS.items() if P.check_value(spec, "") is None)


def _sound_params(params: dict[Any, Any], accepted: dict[str, Any]) -> bool:
    """Whether ``params`` are parameters ``make_asset`` could have made: known and not reserved, each value
    accepted by ``params.check_value``, strings UTF-8, numbers finite and within 64 bits, a prompt.

    ``accepted`` maps a parameter to a value object that passed before: the values of [defaults] and of
    styles are one object in every entry that has them (pickled once), so each is checked once per load.
    (A full plan checks every entry: this is the part of its time that grows with the parameters.)"""
    get = accepted.get
    for key, value in params.items():
        if get(key) is value:
            continue
        kind = type(value)
        if kind is str:  # (the common new value: a prompt)
            if key not in _TAKE_STRINGS or not (value.isascii() or _text(value)):
                return False
        elif kind is int and key in _INT_RANGES:
            low, high = _INT_RANGES[key]
            if not low <= value <= high:
                return False
        else:
            spec = _KEPT_PARAMS.get(key)
            if spec is None or not _portable(value) or P.check_value(spec, value) is not None:
                return False
        accepted[key] = value
    return bool(params.get("prompt"))


# Parameters whose whole numbers ``check_value`` takes in a range: checked inline, for the many values
# that differ from entry to entry (a seed). tests/test_memo_forged.py proves it agrees with check_value.
_INT_RANGES = {key: (-(2**63) if spec.min is None else spec.min, 2**63 - 1 if spec.max is None else spec.max)
               for key, spec in _KEPT_PARAMS.items() if spec.type in ("int", "decimal")}


def _portable(value: Any) -> bool:
    """Whether ``value`` is one TOML could give and JSON can write (``check_value``, which words a refusal
    with the value, may then judge it): a finite number, an integer within 64 bits, a UTF-8 string, a
    boolean, or a list of those."""
    kind = type(value)
    if kind is list:
        return all(type(item) is not list and _portable(item) for item in value)
    if kind is float:
        return math.isfinite(value)
    if kind is int:
        return bool(-(2**63) <= value < 2**64)
    if kind is str:
        return _text(value)
    return kind is bool


def _sound_post(post: dict[Any, Any], target: str) -> bool:
    """Whether ``post`` are post-processing settings that parse for ``target``'s file type."""
    if not post:
        return True
    if not POST_KEY_SET.issuperset(post):
        return False
    try:
        parse_post(post, suffix_of(target))
    except (PostprocessSpecError, TypeError):
        return False
    return True


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
