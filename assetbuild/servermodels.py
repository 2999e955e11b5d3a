"""Model names on a SwarmUI server: ListModels, and "did you mean" when the server refuses a name.

``suggest_model`` is what a build uses when SwarmUI refuses a model name ("Invalid model value for
param Model - 'nope' - are you sure that model name is correct?"): it asks the server for its models
and returns the closest name, so the error can say which model was probably meant.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Iterable
from typing import Any

from .errors import AssetbuildError
from .servercalls import run
from .swarm.client import SwarmClient
from .swarm.credentials import Credentials

MAX_DEPTH = 20  # SwarmUI clamps depth to 1..20
_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")


async def list_models(client: SwarmClient, *, path: str = "", depth: int = MAX_DEPTH,
                      subtype: str = "Stable-Diffusion") -> dict[str, Any]:
    """ListModels' answer: ``{"folders": [...], "files": [model objects]}``."""
    return await client.call("ListModels", {"path": path, "depth": depth, "subtype": subtype})


def _stem(name: str) -> str:
    lowered = name.lower()
    for ext in _EXTENSIONS:
        if lowered.endswith(ext):
            return name[: -len(ext)]
    return name


def closest_model(name: str, names: Iterable[str]) -> str | None:
    """The model in ``names`` that ``name`` most likely meant (as it can be written in a manifest: without
    the file extension), or None when nothing is close. Compares both the full name and its last part,
    ignoring case and the extension, like SwarmUI's own lenient matching."""
    wanted = _stem(name).lower()
    wanted_base = wanted.rsplit("/", 1)[-1]
    best: tuple[float, str] | None = None
    for candidate in names:
        stem = _stem(candidate)
        full = stem.lower()
        base = full.rsplit("/", 1)[-1]
        score = max(difflib.SequenceMatcher(None, wanted, full).ratio(),
                    difflib.SequenceMatcher(None, wanted_base, base).ratio())
        if best is None or score > best[0]:
            best = (score, stem)
    if best is None or best[0] < 0.6:
        return None
    return best[1]


async def suggest_model_async(client: SwarmClient, name: str) -> str | None:
    """The closest of the server's Stable-Diffusion models to ``name``; None on any failure."""
    try:
        data = await list_models(client)
    except Exception:  # noqa: BLE001 - a suggestion is a nicety; never let it hide the real error
        return None
    names = [str(f["name"]) for f in data.get("files") or [] if isinstance(f, dict) and f.get("name")]
    return closest_model(name, names)


def suggest_model(client_or_url: SwarmClient | str, name: str, *, loop: asyncio.AbstractEventLoop | None = None,
                  credentials: Credentials | None = None, timeout: float = 10.0) -> str | None:
    """``suggest_model_async`` from synchronous code. Never raises.

    ``client_or_url``: a server URL (a short-lived client is made, with ``credentials``), or a
    ``SwarmClient`` together with the ``loop`` it runs on in another thread (``SwarmUIGenerator``'s).
    """
    try:
        if isinstance(client_or_url, str):
            if client_or_url == "placeholder":
                return None

            async def work(client: SwarmClient) -> str | None:
                return await suggest_model_async(client, name)

            return run(client_or_url, work, credentials=credentials)
        if loop is None:
            return None  # a client is bound to its own loop: without it there is no safe way to call it
        future = asyncio.run_coroutine_threadsafe(suggest_model_async(client_or_url, name), loop)
        return future.result(timeout)
    except Exception:  # noqa: BLE001
        return None


def is_unknown_model_error(message: str) -> bool:
    """Whether a server message says the model name is not one of its models."""
    return "Invalid model value" in message or "model name is correct" in message


def with_model_suggestion(error: AssetbuildError, model: Any, client: SwarmClient | None,
                          loop: asyncio.AbstractEventLoop | None) -> AssetbuildError:
    """``error`` with a "did you mean" hint when it is SwarmUI refusing ``model``; otherwise unchanged.

    Used on ``SwarmUIGenerator.generate``'s error path.
    """
    if not isinstance(model, str) or not model or not is_unknown_model_error(error.message):
        return error
    if client is None or loop is None:
        return error
    guess = suggest_model(client, model, loop=loop)
    if guess and guess != model:
        error.hint = f"did you mean {guess!r}? (`assetbuild models` lists the server's models)"
    return error
