"""The team store's objects: layout, format, signature, verification.

Layout: ``<prefix>/<key[:2]>/<key>.img``, the same as the local cache, and the same format: a one-line
JSON header (``hash`` of the image bytes, ``size``, ``seed``, ``model``, and with a signing key ``sig``)
followed by the image bytes. An object downloaded from the store is therefore a valid local cache
entry, and a folder remote can be browsed like a cache folder.

``sig`` is HMAC-SHA256 (hex) over ``key``, a NUL byte and the image bytes, keyed with
``ASSETBUILD_REMOTE_SIGNING_KEY`` (like Turborepo's artifact signatures): a pull-request job without the
key cannot fill a slot that a signing reader would accept.

Every object read is checked before anything is written: header shape, size, the bytes' hash against
the header, the header's hash against the lock (when the lock names this key), and the signature.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import xxhash

from ..keys import hash_bytes

Buffer = bytes | bytearray | memoryview


class BadObject(Exception):
    """An object that failed verification (never restored)."""


@dataclass(frozen=True)
class Entry:
    data: bytes
    hash: str
    seed: int | None
    model: str | None


@dataclass(frozen=True)
class View:
    """A verified entry whose image bytes are a view into the downloaded object (no copy)."""
    data: memoryview
    hash: str
    seed: int | None
    model: str | None


def path_of(key: str) -> str:
    return f"{key[:2]}/{key}.img"


_OBJECT_PATH = re.compile(r"([0-9a-f]{2})/(\1[0-9a-f]{30})\.img")


def key_of(path: str) -> str | None:
    """The key of an object path directly under the store's prefix (``ab/ab….img``); None for anything
    else, such as another project's objects under a deeper prefix of the same store."""
    match = _OBJECT_PATH.fullmatch(path)
    return match.group(2) if match else None


def sign(signing_key: bytes, key: str, data: Buffer) -> str:
    import hashlib  # only with a signing key: loading OpenSSL costs ~10 ms of every pull's start
    import hmac

    mac = hmac.new(signing_key, key.encode() + b"\0", hashlib.sha256)
    mac.update(data)
    return mac.hexdigest()


def encode(key: str, data: bytes, *, seed: int | None, model: str | None, signing_key: bytes | None) -> bytes:
    header: dict[str, object] = {"hash": hash_bytes(data), "size": len(data), "seed": seed, "model": model}
    if signing_key:
        header["sig"] = sign(signing_key, key, data)
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\n" + data


# A header is a few hundred bytes (a model name is its only free-form field); looking for its end stops here.
MAX_HEADER = 64 * 1024


def decode(key: str, raw: Buffer, *, expected_hash: str | None, signing_key: bytes | None) -> Entry:
    """The verified entry in ``raw`` (its image bytes copied out). Raises ``BadObject`` saying what is wrong."""
    entry = decode_view(key, raw, expected_hash=expected_hash, signing_key=signing_key)
    return Entry(bytes(entry.data), entry.hash, entry.seed, entry.model)


def decode_view(key: str, raw: Buffer, *, expected_hash: str | None, signing_key: bytes | None) -> View:
    """``decode`` without copying: the image bytes stay a view into ``raw`` (``pull`` writes them from
    there). Every check of ``decode`` is made, in the same order. Raises ``BadObject``."""
    view = memoryview(raw).cast("B")
    end = bytes(view[:1024]).find(b"\n")  # a header is a few hundred bytes: no 64 KiB copy per object
    if end < 0:
        end = bytes(view[:MAX_HEADER]).find(b"\n")
    if end < 0:
        raise BadObject("no header")
    try:
        header = json.loads(bytes(view[:end]))
        claimed, size = str(header["hash"]), int(header["size"])
        seed, model = header.get("seed"), header.get("model")
    except (ValueError, KeyError, TypeError, RecursionError):
        raise BadObject("unreadable header") from None
    data = view[end + 1:]
    if len(data) != size:
        raise BadObject(f"{len(data)} bytes where the header says {size}")
    if xxhash.xxh3_128_hexdigest(data) != claimed:  # keys.hash_bytes, on a view
        raise BadObject("its bytes do not match the hash it claims")
    if expected_hash is not None and claimed != expected_hash:
        raise BadObject("its image is not the one assets.lock records for this key")
    if signing_key:
        signature = header.get("sig")
        if not isinstance(signature, str):
            raise BadObject("it is not signed (ASSETBUILD_REMOTE_SIGNING_KEY is set)")
        import hmac

        if not hmac.compare_digest(signature, sign(signing_key, key, data)):
            raise BadObject("its signature is wrong")
    if not (seed is None or isinstance(seed, int)) or not (model is None or isinstance(model, str)):
        raise BadObject("unreadable header")
    return View(data, claimed, seed, model)
