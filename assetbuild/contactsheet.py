"""The contact sheet of an asset's candidates: a small self-contained HTML page (no network, relative
paths only, every text escaped) at ``.assetbuild/explore/<target>/index.html``, with a copy of each
candidate's image beside it and the asset's current image for comparison."""

from __future__ import annotations

import html
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from .fsutil import atomic_write
from .manifest import Asset, Project


@dataclass(frozen=True)
class Sheet:
    """One candidate on the sheet."""

    seed: int
    key: str
    data: bytes


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;background:#1e1e1e;color:#ddd}
h1{font-size:1.2em;margin:0 0 .3em}p.prompt{color:#aaa;max-width:60em}
.grid{display:flex;flex-wrap:wrap;gap:1em}
figure{margin:0;background:#2a2a2a;padding:.6em;border-radius:6px;max-width:300px}
figure.current{outline:2px solid #6a6}
.img{background-color:#ccc;background-image:linear-gradient(45deg,#999 25%,transparent 25%),
linear-gradient(-45deg,#999 25%,transparent 25%),linear-gradient(45deg,transparent 75%,#999 75%),
linear-gradient(-45deg,transparent 75%,#999 75%);background-size:16px 16px;
background-position:0 0,0 8px,8px -8px,-8px 0}
img{display:block;max-width:280px;max-height:280px;image-rendering:auto}
figcaption{margin-top:.4em}code{font-size:12px;color:#9cf;user-select:all}
"""


def image_name(seed: int, target: str) -> str:
    suffix = os.path.splitext(target)[1] or ".png"
    return f"seed-{seed}{suffix}"


def write(project: Project, asset: Asset, folder: Path, candidates: list[Sheet], current_seed: int | None) -> Path:
    """Write each candidate's image and the page into ``folder``; remove images of candidates no longer
    shown. Returns the page's path."""
    tmp = project.state_dir / "tmp"
    shown = set()
    for candidate in candidates:
        name = image_name(candidate.seed, asset.target)
        shown.add(name)
        path = folder / name
        if not path.is_file() or path.read_bytes() != candidate.data:
            atomic_write(path, candidate.data, tmp_dir=tmp)
    for old in folder.glob("seed-*"):
        if old.name not in shown and old.is_file():
            old.unlink()
    page = folder / "index.html"
    atomic_write(page, render(project, asset, folder, candidates, current_seed).encode("utf-8"), tmp_dir=tmp)
    return page


def render(project: Project, asset: Asset, folder: Path, candidates: list[Sheet], current_seed: int | None) -> str:
    e = html.escape
    target = asset.target
    cards = []
    if asset.path.is_file():
        current = Path(os.path.relpath(asset.path, folder)).as_posix()
        seed_text = f"seed {current_seed}" if current_seed is not None else "seed unknown"
        cards.append(f'<figure class="current"><div class="img"><img src="{e(_url(current))}" alt="current"></div>'
                     f"<figcaption><b>current</b> ({e(seed_text)})</figcaption></figure>")
    for candidate in candidates:
        name = image_name(candidate.seed, target)
        command = f"assetbuild pick {shlex.quote(target)} {candidate.seed}"
        cards.append(
            f'<figure><div class="img"><img src="{e(_url(name))}?k={e(candidate.key[:12])}" '
            f'alt="seed {candidate.seed}"></div><figcaption><b>seed {candidate.seed}</b><br>'
            f"<code>{e(command)}</code></figcaption></figure>")
    params = ", ".join(f"{k} = {v!r}" for k, v in sorted(asset.params.items()) if k not in ("prompt", "seed"))
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width\"><title>{e(target)} candidates</title>"
        f"<style>{_STYLE}</style></head><body>\n"
        f"<h1>{e(target)}: {len(candidates)} candidate(s)</h1>\n"
        f"<p class=\"prompt\">{e(str(asset.params.get('prompt', '')))}</p>\n"
        f"<p class=\"prompt\">{e(params)}</p>\n"
        f"<div class=\"grid\">\n" + "\n".join(cards) + "\n</div>\n</body></html>\n"
    )


def _url(relative: str) -> str:
    """A relative URL for a posix path (spaces, #, ? and % in file names must not break it)."""
    from urllib.parse import quote

    return quote(relative, safe="/")
