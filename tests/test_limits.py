"""Long names and big images (issue 12.14): everything a file system or the documented range allows
works; what is beyond is refused with a clear reason."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from conftest import run_cli, write_manifest
from PIL import Image

from assetbuild.postprocess import MAX_PIXELS, open_image


def manifest(*names: str) -> str:
    body = '[server]\nurl = "placeholder"\n[defaults]\nwidth = 64\nheight = 64\n'
    for n, name in enumerate(names):
        body += f'[assets."{name}"]\nprompt = "asset {n}"\n'
    return body


def name_of(size: int, stem: str = "x") -> str:
    """A .png name of exactly ``size`` bytes (é is two bytes: names are limited in bytes, not characters)."""
    name = stem + "é" * ((size - len(stem) - 4) // 2)
    name += "y" * (size - len(name.encode()) - 4)
    result = name + ".png"
    assert len(result.encode()) == size
    return result


def test_targets_of_242_to_255_bytes_build_and_rebuild(project: Path) -> None:
    names = [name_of(size, f"s{size}") for size in (242, 250, 255)]
    names.append("folder/" + name_of(255, "deep"))
    write_manifest(project, manifest(*names))
    result = run_cli(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert all((project / name).is_file() for name in names)
    for name in names:
        (project / name).unlink()
    again = run_cli(project)  # restored from the cache through the same short temporary names
    assert again.returncode == 0 and "4 restored" in again.stdout, again.stdout + again.stderr


def test_a_name_over_255_bytes_is_refused_as_too_long(project: Path) -> None:
    write_manifest(project, manifest(name_of(256)))
    for command in ((), ("status",)):
        result = run_cli(project, *command)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "name too long" in result.stderr and "256 bytes" in result.stderr and "assets.toml" in result.stderr
        assert "--force" not in result.stderr


def png_of(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("1", (width, height)).save(out, "PNG")  # 1 bit per pixel: 16384² stays small in memory
    return out.getvalue()


def with_claimed_size(data: bytes, width: int, height: int) -> bytes:
    """The PNG with its header claiming another size (a decompression bomb), CRC fixed."""
    start = 8 + 8  # signature, then length + "IHDR"
    header = struct.pack(">II", width, height) + data[start + 8:start + 13]
    chunk = b"IHDR" + header
    return data[:8] + data[8:12] + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[start + 13 + 4:]


@pytest.mark.timeout(120)
def test_16384_squared_opens_and_bigger_or_bombs_are_refused() -> None:
    image = open_image(png_of(16384, 16384))  # inside the documented range: Pillow's own guard used to refuse it
    assert image.size == (16384, 16384)
    with pytest.raises(ValueError, match="pixel limit"):
        open_image(png_of(16385, 16384))
    bomb = with_claimed_size(png_of(64, 64), 200_000, 200_000)
    with pytest.raises(ValueError, match="pixel limit"):
        open_image(bomb)
    assert MAX_PIXELS == 16384 * 16384
