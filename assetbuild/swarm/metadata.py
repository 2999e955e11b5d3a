"""SwarmUI's metadata of a generated image: what the server actually did.

The WebSocket's image message carries it as a string of JSON (``metadata``); a PNG also has it in its
``parameters`` text chunk, which is where the HTTP route (which returns only image paths) finds it.
Keys (swarmui-api.md §3.5, §13): ``sui_image_params`` (the values used, with the real ``seed``),
``sui_extra_data.unused_parameters`` (parameters given but not used) and ``sui_models`` (``[{name,
param, hash}]``, when the server setting that adds them is on).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from .messages import checked_seed, loads

_PNG = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class UsedModel:
    param: str  # "model", "vae", "loras", ...
    name: str  # the server's full name (with extension)
    hash: str | None  # None: the server gave none


@dataclass(frozen=True)
class ImageMetadata:
    seed: int | None = None
    unused: tuple[str, ...] = ()
    models: tuple[UsedModel, ...] = field(default_factory=tuple)


def parse(text: str | None) -> ImageMetadata | None:
    """The parts of SwarmUI's metadata assetbuild uses; None when ``text`` is not SwarmUI metadata."""
    if not text:
        return None
    try:
        doc = loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("sui_image_params"), dict):
        return None
    params: dict[str, Any] = doc["sui_image_params"]
    extra = doc.get("sui_extra_data") if isinstance(doc.get("sui_extra_data"), dict) else {}
    seed_value = checked_seed(params.get("seed"))  # 1e400 or 2**64: SwarmBadAnswer, not OverflowError
    unused = extra.get("unused_parameters") if isinstance(extra, dict) else None
    models = []
    for item in doc.get("sui_models") or []:
        if isinstance(item, dict) and item.get("name"):
            models.append(UsedModel(str(item.get("param") or ""), str(item["name"]),
                                    str(item["hash"]) if item.get("hash") else None))
    return ImageMetadata(seed_value, tuple(str(u) for u in unused) if isinstance(unused, list) else (),
                         tuple(models))


def png_text(data: bytes, keyword: str = "parameters") -> str | None:
    """The ``tEXt``/``iTXt``/``zTXt`` chunk ``keyword`` of a PNG, or None (not a PNG, or no such chunk)."""
    if not data.startswith(_PNG):
        return None
    position = len(_PNG)
    wanted = keyword.encode("latin-1")
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        start = position + 8
        position += 12 + length
        if kind == b"IEND":
            break
        if kind not in (b"tEXt", b"zTXt", b"iTXt"):
            continue  # (pixel data is not copied: only text chunks are sliced)
        body = data[start:start + length]
        name, _, rest = body.partition(b"\x00")
        if name != wanted:
            continue
        try:
            if kind == b"tEXt":
                return rest.decode("latin-1")
            if kind == b"zTXt":
                return zlib.decompress(rest[1:]).decode("latin-1")
            if kind == b"iTXt":  # compression flag, method, language\0, translated keyword\0, text
                compressed = rest[:1] == b"\x01"
                text = rest[2:].split(b"\x00", 2)[-1]
                return (zlib.decompress(text) if compressed else text).decode("utf-8")
        except (zlib.error, UnicodeDecodeError):
            return None
    return None
