"""Chunk-level metadata stripping (issue 16): same pixels, no generator metadata, damage still refused."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, PngImagePlugin

from assetbuild import pngchunks, postprocess
from assetbuild.postprocess import KEY_CHUNK, MAX_PIXELS, PROMPT_CHUNK, Postprocess

KEY = "0123456789abcdef0123456789abcdef"


def swarm_png(mode: str = "RGB", *, stamp: str = "2026-11-30 12:00") -> bytes:
    """A PNG as a generator writes it: pixels plus volatile parameters in text chunks."""
    image = Image.new(mode, (37, 23))
    image.putdata([((x * 7) % 256, (x * 13) % 256, (x * 29) % 256, 200)[:len(mode)] if len(mode) > 1
                   else (x * 7) % 256 for x in range(37 * 23)])
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", f'{{"sui_image_params": {{"seed": 1}}, "date": "{stamp}"}}')
    info.add_itxt("Comment", f"made at {stamp} — with love")
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def pixels(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    image = Image.open(io.BytesIO(data))
    return image.mode, image.size, image.tobytes()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_same_pixels_no_generator_metadata_and_the_key(mode: str) -> None:
    original = swarm_png(mode)
    stripped = pngchunks.strip(original, [(KEY_CHUNK, KEY)], max_pixels=MAX_PIXELS)
    assert stripped is not None
    assert pixels(stripped) == pixels(original)
    text = Image.open(io.BytesIO(stripped)).text  # type: ignore[attr-defined]
    assert text == {KEY_CHUNK: KEY}
    assert postprocess.read_key(stripped) == KEY


def test_identical_pixels_with_other_metadata_give_identical_bytes() -> None:
    first = postprocess.apply(swarm_png(stamp="12:00"), Postprocess(), key=KEY)
    second = postprocess.apply(swarm_png(stamp="12:07"), Postprocess(), key=KEY)
    assert first == second
    assert b"sui_image_params" not in first and b"made at" not in first


def test_a_non_ascii_prompt_is_embedded_as_utf8() -> None:
    data = postprocess.apply(swarm_png(), Postprocess(embed_prompt=True), key=KEY, prompt="café ☕")
    text = Image.open(io.BytesIO(data)).text  # type: ignore[attr-defined]
    assert text == {KEY_CHUNK: KEY, PROMPT_CHUNK: "café ☕"}


def test_interlaced_and_non_png_take_the_full_path() -> None:
    chunks = pngchunks._chunks(swarm_png())
    header = chunks[0][1][:-1] + b"\x01"  # Adam7: the row-size check does not apply, Pillow decides
    assert pngchunks.strip(_rebuild([(b"IHDR", header), *chunks[1:]]), [], max_pixels=MAX_PIXELS) is None
    assert pngchunks.strip(b"\xff\xd8\xff not a png", [], max_pixels=MAX_PIXELS) is None


def _rebuild(chunks: list[tuple[bytes, bytes]], *, bad_crc: bytes | None = None) -> bytes:
    out = [pngchunks.SIGNATURE]
    for kind, body in chunks:
        crc = zlib.crc32(kind + body) ^ (1 if kind == bad_crc else 0)
        out.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc))
    return b"".join(out)


def test_damaged_pngs_are_refused() -> None:
    chunks = pngchunks._chunks(swarm_png())
    with pytest.raises(ValueError, match="CRC"):
        pngchunks.strip(_rebuild(chunks, bad_crc=b"IDAT"), [], max_pixels=MAX_PIXELS)
    short = [(k, b[: len(b) // 2] if k == b"IDAT" else b) for k, b in chunks]
    with pytest.raises(ValueError, match="image data"):
        pngchunks.strip(_rebuild(short), [], max_pixels=MAX_PIXELS)
    with pytest.raises(ValueError, match="truncated"):
        pngchunks.strip(swarm_png()[:-20], [], max_pixels=MAX_PIXELS)
    with pytest.raises(ValueError, match="pixel limit"):
        pngchunks.strip(swarm_png(), [], max_pixels=100)
    with pytest.raises(ValueError):  # the same refusal through the post-processing entry point
        postprocess.apply(_rebuild(short), Postprocess(), key=KEY)


def _split_idat(chunks: list[tuple[bytes, bytes]], size: int) -> list[tuple[bytes, bytes]]:
    """The same PNG with its image data spread over IDAT chunks of ``size`` bytes (as encoders do)."""
    stream = b"".join(body for kind, body in chunks if kind == b"IDAT")
    pieces = [(b"IDAT", stream[i:i + size]) for i in range(0, len(stream), size)]
    first = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
    rest = [c for c in chunks if c[0] != b"IDAT"]
    return rest[:first] + pieces + rest[first:]


def test_image_data_over_many_chunks_is_checked_as_one_stream_and_copied_verbatim() -> None:
    chunks = _split_idat(pngchunks._chunks(swarm_png("RGBA")), 25)
    assert sum(1 for kind, _ in chunks if kind == b"IDAT") > 5
    original = _rebuild(chunks)
    stripped = pngchunks.strip(original, [(KEY_CHUNK, KEY)], max_pixels=MAX_PIXELS)
    assert stripped is not None and pixels(stripped) == pixels(original)
    kept = [c for c in pngchunks._chunks(stripped) if c[0] != b"tEXt"]
    assert kept == [c for c in chunks if c[0] in pngchunks.KEPT]  # the same chunks, in order, unchanged
    idat = [i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT"]
    without_one = [c for i, c in enumerate(chunks) if i != idat[len(idat) // 2]]
    with pytest.raises(ValueError, match="image data"):  # a missing middle piece: CRCs fine, stream broken
        pngchunks.strip(_rebuild(without_one), [], max_pixels=MAX_PIXELS)
