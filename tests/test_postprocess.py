"""Post-processing: exact sizes, metadata stripped and the key embedded, non-images refused."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageCms, PngImagePlugin

from assetbuild import postprocess as pp

KEY = "0123456789abcdef0123456789abcdef"


def png(size: tuple[int, int] = (96, 80), colour: tuple[int, ...] = (200, 30, 30), mode: str = "RGB",
        text: dict[str, str] | None = None, icc: bytes | None = None) -> bytes:
    image = Image.new(mode, size, colour)
    image.paste((10, 10, 200) if mode == "RGB" else (10, 10, 200, 255), (20, 20, 40, 40))
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, v)
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info, icc_profile=icc) if icc else image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def post(**settings: object) -> pp.Postprocess:
    return pp.parse(dict(settings), ".png")


@pytest.mark.parametrize("size", [(64, 64), (32, 48), (200, 10)])
def test_resize_exact_gives_exactly_the_size(size: tuple[int, int]) -> None:
    out = pp.apply(png(), post(resize=list(size)), key=KEY)
    assert opened(out).size == size


def test_resize_fit_and_fill() -> None:
    fit = pp.apply(png((200, 100)), post(resize={"size": [50, 50], "mode": "fit"}), key=KEY)
    assert opened(fit).size == (50, 25)
    fill = pp.apply(png((200, 100)), post(resize={"size": [50, 50], "mode": "fill"}), key=KEY)
    assert opened(fill).size == (50, 50)


def test_resize_int_means_square() -> None:
    assert opened(pp.apply(png(), post(resize=16), key=KEY)).size == (16, 16)


def test_crop_and_trim() -> None:
    cropped = pp.apply(png(), post(crop=[10, 10, 50, 30]), key=KEY)
    assert opened(cropped).size == (40, 20)
    trimmed = pp.apply(png(), post(trim=True), key=KEY)  # uniform background around a 20x20 square
    assert opened(trimmed).size == (20, 20)
    with pytest.raises(ValueError, match="outside"):
        pp.apply(png(), post(crop=[0, 0, 500, 500]), key=KEY)


def test_generator_metadata_is_stripped_and_the_key_embedded() -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = png(text={"parameters": '{"date": "2024-05-01 12:00:00", "prompt": "secret"}', "Software": "x"},
                 icc=icc)
    assert b"parameters" in source and b"iCCP" in source
    out = pp.apply(source, post(), key=KEY)
    image = opened(out)
    assert image.text == {pp.KEY_CHUNK: KEY}
    assert "icc_profile" not in image.info
    assert b"parameters" not in out and b"secret" not in out and b"2024-05-01" not in out
    assert pp.read_key(out) == KEY
    assert image.tobytes() == opened(source).convert("RGB").tobytes()  # pixels untouched


def test_same_pixels_with_different_metadata_give_identical_bytes() -> None:
    a = pp.apply(png(text={"parameters": "date 2024-05-01"}), post(resize=[40, 40]), key=KEY)
    b = pp.apply(png(text={"parameters": "date 2025-12-31", "extra": "x"}), post(resize=[40, 40]), key=KEY)
    assert a == b
    assert pp.apply(png(), post(), key=KEY) != pp.apply(png(), post(), key="f" * 32)


def test_embed_prompt_is_opt_in() -> None:
    plain = pp.apply(png(), post(), key=KEY, prompt="a knight")
    assert "assetbuild-prompt" not in opened(plain).text
    embedded = pp.apply(png(), post(embedprompt=True), key=KEY, prompt="a knight")
    assert opened(embedded).text[pp.PROMPT_CHUNK] == "a knight"


def test_transparency_survives() -> None:
    out = pp.apply(png(colour=(0, 0, 0, 0), mode="RGBA"), post(), key=KEY)
    image = opened(out)
    assert image.mode == "RGBA"
    assert image.getpixel((0, 0))[3] == 0 and image.getpixel((25, 25))[3] == 255


@pytest.mark.parametrize(("suffix", "fmt"), [(".jpg", "JPEG"), (".webp", "WEBP"), (".PNG", "PNG")])
def test_output_format_follows_the_target_extension(suffix: str, fmt: str) -> None:
    out = pp.apply(png(), pp.parse({"quality": 80}, suffix), key=KEY)
    assert opened(out).format == fmt


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", b'{"error": "Model not found"}', png()[:60], b"<html>502 Bad Gateway</html>"],
    ids=["empty", "text", "json-error", "truncated", "html"],
)
def test_non_images_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a readable image"):
        pp.apply(data, post(), key=KEY)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    # A valid PNG header claiming 100000 x 100000 pixels, with almost no data.
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + \
        chunk(b"IEND", b"")
    with pytest.raises(ValueError, match="pixel limit|not a readable image"):
        pp.open_image(data)


def test_read_key_of_foreign_files() -> None:
    assert pp.read_key(png()) is None
    assert pp.read_key(b"garbage") is None


@pytest.mark.parametrize(
    ("settings", "suffix", "words"),
    [
        ({"resize": [0, 10]}, ".png", "resize"),
        ({"resize": {"size": [10, 10], "mode": "stretch"}}, ".png", "resize.mode"),
        ({"resize": {"size": [10, 10], "filter": "magic"}}, ".png", "resize.filter"),
        ({"resize": {"size": [10, 10], "colour": 1}}, ".png", "unknown keys"),
        ({"crop": [10, 10, 5, 20]}, ".png", "crop"),
        ({"trim": "sometimes"}, ".png", "trim"),
        ({"quality": 101}, ".jpg", "quality"),
        ({"embedprompt": "yes"}, ".png", "embed_prompt"),
        ({}, ".gif", "unsupported"),
    ],
)
def test_malformed_settings_are_refused(settings: dict[str, object], suffix: str, words: str) -> None:
    with pytest.raises(pp.PostprocessSpecError, match=words):
        pp.parse(settings, suffix)


def test_canonical_form_lists_only_steps_that_apply() -> None:
    assert post().canonical() == {"format": "PNG"}
    assert pp.parse({"quality": 80}, ".png").canonical() == {"format": "PNG"}  # PNG ignores quality
    assert pp.parse({"quality": 80}, ".jpg").canonical() == {"format": "JPEG", "quality": 80}
    assert post(resize=[8, 8], trim=True).canonical() == {
        "format": "PNG", "trim": "auto", "resize": {"size": [8, 8], "mode": "exact", "filter": "lanczos"}}


def test_reading_a_manifest_does_not_import_pillow(tmp_path: Path) -> None:
    """Issue 13: the post-processing spec (postspec) is read without Pillow; only making an image needs it."""
    from helpers import heavy_imports

    manifest = tmp_path / "assets.toml"
    manifest.write_text('[server]\nurl = "placeholder"\n\n[assets."a.png"]\nprompt = "a"\nresize = [8, 8]\n',
                        encoding="utf-8")
    code = f"from pathlib import Path\nfrom assetbuild.manifest import load\nload(Path({str(manifest)!r}))"
    loaded = heavy_imports(code)
    # The probe sees what the load imported (xxhash: the memo's hashes; pydantic only to word an error).
    assert "PIL" not in loaded and "xxhash" in loaded
    # Nor does importing the post-processing: Pillow is loaded when an image is decoded (a control).
    assert "PIL" not in heavy_imports("import assetbuild.postprocess")
    assert "PIL" in heavy_imports("from assetbuild.postprocess import read_key\nread_key(b'not a png')")
