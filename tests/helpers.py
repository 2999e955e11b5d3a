"""Small helpers shared by the core-build tests (not a test module)."""

from __future__ import annotations

import ast
import io
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

# A quickstart-like project: a style with {prompt}, an img2img dependency, a resize; offline generator.
QUICKSTART = """
[server]
url = "placeholder"

[defaults]
width = 128
height = 128
steps = 20
cfgscale = 7
seed = 1

[styles.pixel]
prompt = "pixel art of {prompt}, 16-bit palette, clean outline"
negativeprompt = "photo, blurry"

[assets."sprites/hero.png"]
prompt = "a knight in silver armor, idle pose"
style = "pixel"
seed = 42

[assets."sprites/hero_attack.png"]
prompt = "the same knight swinging a sword"
style = "pixel"
initimage = "sprites/hero.png"
initimagecreativity = 0.6

[assets."ui/icon_sword.png"]
prompt = "a steel sword icon, flat shading"
width = 96
height = 96
resize = [64, 64]
"""

TARGETS = ("sprites/hero.png", "sprites/hero_attack.png", "ui/icon_sword.png")


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``root``: relative path -> (mtime_ns, bytes)."""
    return {
        path.relative_to(root).as_posix(): (path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def generations(log: Path) -> list[str]:
    """The assets the placeholder generated, one per line of ASSETBUILD_PLACEHOLDER_LOG."""
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def png_size(data: bytes) -> tuple[int, int]:
    """The size of PNG ``data``; fails the test if it is not a complete, valid PNG."""
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        image.load()  # decodes every pixel: a truncated file raises here
        return image.size


def temp_files(root: Path) -> list[str]:
    """Leftover temporary files in the project outside assetbuild's own state folder."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and ".assetbuild" not in p.relative_to(root).parts and p.name.endswith(".tmp")
    )


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released): connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``assetbuild ARGS`` in-process: (exit code, stdout, stderr)."""
    from assetbuild.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


HEAVY_MODULES = ("pydantic", "doit", "PIL", "httpx", "rich", "websockets", "xxhash", "tomlkit", "watchfiles")


def heavy_imports(code: str) -> list[str]:
    """The heavy dependencies (HEAVY_MODULES) a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport sys\nprint(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return list(ast.literal_eval(result.stdout))
