"""One-off SwarmClient calls from synchronous code: the commands that are not builds.

``assetbuild models``, ``server status``, ``cancel`` and ``generate`` make a client, do a few calls on a
private event loop and close it. Builds use the long-lived bridge in ``generators.swarmui`` instead.
The client's errors become ``ServerCommandError`` (exit code 1) with secrets removed; a URL that is
not http(s) is a ``UsageError`` (exit code 2).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .errors import AssetbuildError, UsageError
from .swarm.client import CONTROL_TIMEOUT, SwarmClient, parse_server_url
from .swarm.credentials import Credentials, shown_url
from .swarm.errors import SwarmAuthError, SwarmError, SwarmUnreachable

T = TypeVar("T")

# Quick to give up on a dead server: these commands are interactive.
QUICK = {"retries": 1, "backoff": 0.2, "connect_timeout": 5.0}
DEADLINE = 60.0  # seconds for a whole command (server status, models, cancel): `--timeout` changes it


class ServerCommandError(AssetbuildError):
    """A server command failed: unreachable, refused, or the server answered with an error.
    ``refused``: the server answered, but refused our credentials."""

    exit_code = 1
    refused = False


def check_url(url: str) -> None:
    """A ``UsageError`` unless ``url`` is an http(s) URL with a host (what ``SwarmClient`` accepts)."""
    try:
        parse_server_url(url)
    except SwarmError as exc:
        raise UsageError(exc.message, hint=exc.hint) from None


def make_client(url: str, credentials: Credentials, **options: Any) -> SwarmClient:
    """A client for ``url`` (must be called on the loop that will use it)."""
    try:
        return SwarmClient(url, credentials, **{**QUICK, **options})
    except SwarmError as exc:
        raise UsageError(exc.message, hint=exc.hint) from None


def run(url: str, work: Callable[[SwarmClient], Awaitable[T]], *, credentials: Credentials | None = None,
        deadline: float = DEADLINE, **options: Any) -> T:
    """``await work(client)`` on a fresh loop with a fresh client for ``url``; the client is closed after.

    ``deadline``: seconds for the whole of it, whatever the server does (a server that answers one byte
    every few seconds never trips a read timeout); no single call may take longer either.
    """
    credentials = credentials or Credentials()
    options.setdefault("control_timeout", min(CONTROL_TIMEOUT, deadline))

    async def main() -> T:
        client = make_client(url, credentials, **options)
        try:
            async with asyncio.timeout(deadline):
                return await work(client)
        finally:
            await client.aclose()

    try:
        return asyncio.run(main())
    except TimeoutError:
        raise ServerCommandError(f"SwarmUI at {shown_url(url)} did not finish answering within {deadline:g} s",
                                 hint="the server (or a proxy in front of it) is stuck or very slow; check it, "
                                      "or allow more time with --timeout SECONDS") from None
    except SwarmError as exc:
        raise as_command_error(exc, url, credentials) from None


def as_command_error(exc: SwarmError, url: str, credentials: Credentials) -> ServerCommandError:
    message = credentials.redact(exc.message)
    url = shown_url(url)
    if isinstance(exc, SwarmUnreachable) and url not in message:
        message = f"{message} ({url})"
    if isinstance(exc, SwarmAuthError):
        error = ServerCommandError(f"{url}: {message}", hint=credentials.refused_hint(exc.hint))
        error.refused = True
        return error
    return ServerCommandError(message, hint=exc.hint)


async def new_session(client: SwarmClient) -> dict[str, Any]:
    """GetNewSession's whole answer; the client's control calls then use that session."""
    return await client.new_session()
