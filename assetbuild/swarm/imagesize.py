"""Does an image from the server have the size that was asked for?

A server that ignores ``width``/``height`` (a misconfigured backend, a workflow that resizes, a proxy that
serves the wrong file) must not get its image cached and locked as the asset. The check is made only
when the answer is predictable: ``width`` and ``height`` are both set, and no parameter that
legitimately changes the output size is (``sidelength``, an ``aspectratio`` other than ``Custom``, or any
``*upscale*`` parameter such as ``refinerupscale``). Sides up to 63 px smaller or larger are accepted:
backends round latent sizes to their own multiple (8, 16 or 64 px).
"""

from __future__ import annotations

import io
import struct
from typing import Any

from .errors import SwarmBadImage

TOLERANCE = 64  # px per side: latent rounding, never a different image


def expected_size(params: dict[str, Any]) -> tuple[int, int] | None:
    """(width, height) the server must produce for ``params``, or None when it cannot be predicted."""
    width, height = params.get("width"), params.get("height")
    if not (isinstance(width, int) and isinstance(height, int)) or isinstance(width, bool) or isinstance(height, bool):
        return None
    for name, value in params.items():
        if "upscale" in name or name == "sidelength":
            return None
        if name == "aspectratio" and str(value).lower() != "custom":
            return None
    return width, height


def check_size(data: bytes, params: dict[str, Any]) -> None:
    """``SwarmBadImage`` naming both sizes when ``data`` is clearly not the size ``params`` asked for."""
    wanted = expected_size(params)
    if wanted is None:
        return
    got = _png_size(data) or _any_size(data)
    if any(abs(g - w) >= TOLERANCE for g, w in zip(got, wanted, strict=True)):
        raise SwarmBadImage(f"the server sent a {got[0]}x{got[1]} image for a {wanted[0]}x{wanted[1]} request",
                            hint="the server did not honour width/height: check its backend and model (a "
                                 "workflow that resizes?); nothing was cached or locked")


_PNG_START = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"  # signature, then IHDR's length and type


def _png_size(data: bytes) -> tuple[int, int] | None:
    """A PNG's size from its IHDR chunk (always the first), without opening the image: this runs on the
    client's event loop for every image. None for anything else (or a PNG too short to say)."""
    if not data.startswith(_PNG_START) or len(data) < 24:
        return None
    width, height = struct.unpack_from(">II", data, 16)
    return (width, height) if width and height else None


def _any_size(data: bytes) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            return image.size
    except (UnidentifiedImageError, OSError, ValueError):
        raise SwarmBadImage("the server sent an image that cannot be read") from None
