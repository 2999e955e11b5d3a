"""The work of ``assetbuild models``: the server's models (ListModels) as a table or JSON."""

from __future__ import annotations

import difflib
from typing import Any, TextIO

from rich.text import Text

from ..errors import UsageError
from ..safetext import safe_json, safe_text
from ..servercalls import run
from ..servermodels import list_models
from ..swarm.client import SwarmClient
from ..swarm.credentials import shown_url
from ..swarm.messages import ModelList, validated
from .server_ops import Target

SUBTYPES = ("Stable-Diffusion", "LoRA", "VAE", "Embedding", "ControlNet", "Clip", "ClipVision")


def models(target: Target, out: TextIO, *, path: str = "", depth: int = 2, subtype: str = "Stable-Diffusion",
           as_json: bool = False) -> int:
    """Print the server's models as a table (name, architecture, resolution, loaded) or as JSON."""
    if target.is_placeholder:
        raise UsageError("the placeholder generator has no model list (it accepts any model name)",
                         hint="pass --server URL (or set ASSETBUILD_SERVER) to list a SwarmUI server's models")
    by_lower = {name.lower(): name for name in SUBTYPES}
    if subtype.lower() not in by_lower:
        guess = difflib.get_close_matches(subtype.lower(), list(by_lower), n=1)
        hint = f"did you mean {by_lower[guess[0]]!r}? " if guess else ""
        raise UsageError(f"unknown model type {subtype!r}", hint=f"{hint}types: {', '.join(SUBTYPES)}")
    subtype = by_lower[subtype.lower()]

    async def work(client: SwarmClient) -> dict[str, Any]:
        data = await list_models(client, path=path, depth=depth, subtype=subtype)
        validated(ModelList, data, "ListModels")  # inside `run`: its error is a clear one, exit 1
        return data

    data = run(target.url, work, credentials=target.credentials, deadline=target.deadline)
    if as_json:
        out.write(safe_json(data) + "\n")
        return 0
    files = [f for f in data.get("files") or [] if isinstance(f, dict)]
    if not files:
        where = f" under {path!r}" if path else ""
        out.write(f"no {subtype} models{where} on {shown_url(target.url)} (depth {depth})\n")
        folders = data.get("folders") or []
        if folders:
            out.write(f"folders: {', '.join(map(safe_text, folders))} (try --path FOLDER or a larger --depth)\n")
        return 0
    _print_table(files, out)
    return 0


def _print_table(files: list[dict[str, Any]], out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    terminal = hasattr(out, "isatty") and out.isatty()
    # Off a terminal rich would wrap long names at 80 columns; a table is only as wide as it needs anyway.
    console = Console(file=out, width=None if terminal else 240, no_color=not terminal,
                      highlight=False, soft_wrap=False)
    table = Table(box=None, header_style="bold", padding=(0, 2), pad_edge=False)
    table.add_column("name", no_wrap=True)
    table.add_column("architecture", no_wrap=True)
    table.add_column("resolution", no_wrap=True)
    table.add_column("loaded", no_wrap=True)
    for model in files:
        # Text, not str: rich would read brackets in a model name ("anime [v2]") as markup.
        table.add_row(Text(safe_text(model.get("name", "?"))), Text(safe_text(model.get("architecture") or "-")),
                      Text(safe_text(model.get("resolution") or "-")), "yes" if model.get("loaded") else "no")
    console.print(table)
    console.print(f"{len(files)} model(s)", style="dim")

