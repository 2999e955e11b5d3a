"""``assetbuild init``: write a commented starter assets.toml (never over an existing file)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from ..errors import UsageError
from ..layout import MANIFEST_NAME
from ._args import Options

HELP = "write a commented starter assets.toml"
DESCRIPTION = "Write a commented starter assets.toml here (or FILE). Never overwrites."
OPTIONS: Options = "verbose"  # reads no manifest: -f names the file to write


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", metavar="FILE", help="where to write it (default ./assets.toml)")


def main(args: argparse.Namespace) -> int:
    return init(args.file, sys.stdout)

STARTER = '''\
# assets.toml: the images this project generates, and how. Build with `assetbuild`.
#
#   assetbuild --server placeholder   # offline placeholder images: try the pipeline without a GPU
#   assetbuild                        # real images from SwarmUI (server below, ASSETBUILD_SERVER, or
#                                     # `assetbuild config set server URL`)
#   assetbuild status                 # what is fresh, stale or modified
#
# Commit this file, assets.lock and the images. Credentials never go here: use ASSETBUILD_API_KEY /
# ASSETBUILD_TOKEN or `assetbuild config set api-key` (stored in your user config, mode 0600).

[project]
output_dir = "assets"            # targets below are relative to this folder (next to this file)

[server]
# url = "http://localhost:7801"  # SwarmUI base URL, or "placeholder". Unset: your user config decides.
websocket = true                 # live progress over SwarmUI's WebSocket; falls back to HTTP
# concurrency = 2                # cap on images in flight; unset: as many as the server can take
timeout = 900                    # seconds allowed for one image

# SwarmUI text-to-image parameters for every asset (names as in SwarmUI: cfgscale, negativeprompt, ...).
[defaults]
model = "sd_xl_base_1.0"         # `assetbuild models` lists the models on your server
width = 1024
height = 1024
steps = 25
cfgscale = 7
seed = 1                         # fixed seeds make rebuilds reproducible

# A style is a named bundle of parameters; "{prompt}" is replaced by the asset's own prompt.
[styles.pixel]
prompt = "pixel art of {prompt}, 16-bit palette, clean outline, plain background"
negativeprompt = "photo, blurry, text, watermark"

# Each [assets."PATH"] table is one target image.
[assets."sprites/hero.png"]
prompt = "a knight in silver armor, idle pose"
style = "pixel"
seed = 42

[assets."sprites/hero_attack.png"]
prompt = "the same knight swinging a sword"
style = "pixel"
initimage = "sprites/hero.png"   # img2img from another asset: it is built first
initimagecreativity = 0.6

[assets."ui/icon_sword.png"]
prompt = "a steel sword icon, flat shading, centered"
resize = [64, 64]                # post-processing after generation

[assets."ui/icon_sword_small.png"]
source = "ui/icon_sword.png"     # derived from another asset's output: no generation
resize = [32, 32]

[assets."props/crate_{n}.png"]
prompt = "a wooden crate, top-down view"
style = "pixel"
count = 2                        # two variants, crate_1 and crate_2, with seeds 1 and 2
'''


def init(file: str | None, out: TextIO) -> int:
    """Write the starter manifest to ``file`` (default ./assets.toml). Refuses to overwrite: exit 2."""
    from .newfile import create_new

    path = Path(file) if file else Path.cwd() / MANIFEST_NAME
    if path.is_dir():
        path = path / MANIFEST_NAME
    if path.exists() or path.is_symlink():
        raise UsageError(f"{path} already exists; not overwriting it",
                         hint="edit it, move it away, or pass another file with -f FILE")
    if not path.parent.is_dir():
        raise UsageError(f"folder {path.parent} does not exist", hint="create it first, or pass -f FILE")
    try:
        # Atomic, and even a file created between the check and now is never overwritten.
        created = create_new(path, STARTER.encode("utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    if not created:
        raise UsageError(f"{path} already exists; not overwriting it")
    shown = _shown(path)
    flag = "" if path.name == MANIFEST_NAME and path.parent == Path.cwd() else f" -f {shown}"
    out.write(f"wrote {shown}\n"
              f"next: `assetbuild{flag} --server placeholder` builds it offline; "
              f"`assetbuild{flag}` builds it on SwarmUI\n")
    return 0


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
