"""The work of ``assetbuild server status`` and ``cancel``, and how every server command finds its server.

The server is chosen like a build chooses it: ``--server`` > ``ASSETBUILD_SERVER`` > the manifest's
explicit ``server.url`` (``-f FILE``, or assets.toml here or above, when there is one) > the user
config's ``server`` > ``http://localhost:7801``. Credentials come from ``ASSETBUILD_API_KEY`` /
``ASSETBUILD_TOKEN``, else the user config's ``api-key`` / ``token``.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from .. import userconfig
from ..errors import UsageError
from ..layout import find_manifest
from ..manifest import ServerSettings
from ..safetext import safe_json, safe_text
from ..servercalls import DEADLINE, ServerCommandError, new_session, run
from ..swarm.client import SwarmClient
from ..swarm.credentials import Credentials, shown_url
from ..swarm.errors import SwarmAPIError
from ..swarm.messages import CurrentStatus, validated
from ..workspace import manifest_server, server_url


@dataclass(frozen=True)
class Target:
    """The server a command talks to: its settings (URL resolved) and the credentials to send."""

    settings: ServerSettings
    credentials: Credentials
    deadline: float = DEADLINE  # seconds for a whole command (--timeout); generation has server.timeout

    @property
    def url(self) -> str:
        return self.settings.url

    @property
    def is_placeholder(self) -> bool:
        return self.settings.is_placeholder


def resolve(manifest: str | None, server: str | None, deadline: float | None = None, *,
            use_manifest: bool = True) -> Target:
    """The server for ``-f manifest`` / ``--server server`` (see the module docstring); ``deadline``
    (``--timeout``) bounds a whole command, default ``DEADLINE``."""
    path: Path | None
    try:
        path = find_manifest(manifest) if use_manifest else None
    except UsageError:
        path = None  # no manifest: fine for these commands
    settings, explicit = manifest_server(path) if path is not None else (ServerSettings(), set())
    url = server_url(server, settings.url if "url" in explicit else None)
    return Target(replace(settings, url=url), userconfig.credentials(), deadline or DEADLINE)


# --- server status ------------------------------------------------------------------------------------


@dataclass
class ServerStatus:
    url: str
    reachable: bool
    error: str | None = None
    hint: str | None = None
    version: str | None = None
    user: str | None = None
    backend_status: str | None = None
    backend_message: str | None = None
    counters: dict[str, int] | None = None
    counters_scope: str | None = None  # "server" (GetGlobalStatus) or "session" (this command's own)
    features: list[str] | None = None
    credentials_refused: bool | None = None  # the server answered but refused our credentials

    @property
    def can_generate(self) -> bool:
        """Reachable, accepted, and with backends that can take work."""
        return (self.reachable and not self.credentials_refused
                and self.backend_status not in UNUSABLE_BACKENDS)

    def as_dict(self) -> dict[str, Any]:
        shown = dict(self.__dict__, url=shown_url(self.url))
        return {**{k: v for k, v in shown.items() if v is not None}, "can_generate": self.can_generate}


# backend_status values with which no generation can run (SwarmUI BackendHandler): exit 1.
UNUSABLE_BACKENDS = ("empty", "all_disabled", "errored")


async def fetch_status(client: SwarmClient) -> ServerStatus:
    """GetNewSession (version, user), GetCurrentStatus (backends), and GetGlobalStatus for the queue of the
    whole server: GetCurrentStatus counts only this command's new session, which is always idle.
    GetGlobalStatus needs an admin permission; without it the session's counters are shown, and said so."""
    info = await new_session(client)
    current = validated(CurrentStatus, await client.call("GetCurrentStatus", {}), "GetCurrentStatus")
    user = info.get("user_id")
    counters, scope = current.status, "session"
    with contextlib.suppress(SwarmAPIError):  # refused without the read_server_info_panels permission
        whole = validated(CurrentStatus, await client.call("GetGlobalStatus", {}), "GetGlobalStatus")
        counters, scope = whole.status, "server"
    return ServerStatus(
        client.base_url, True, version=str(info.get("version") or "unknown"), user=str(user) if user else None,
        backend_status=current.backend_status.status, backend_message=current.backend_status.message or None,
        counters={k: int(v) for k, v in counters.items() if math.isfinite(v)}, counters_scope=scope,
        features=current.supported_features,
    )


def status(target: Target, out: TextIO, *, as_json: bool = False) -> int:
    """Print whether the server answers and what it says about itself. 0 reachable, 1 not."""
    if target.is_placeholder:
        result = ServerStatus("placeholder", True, version="built-in", backend_status="running",
                              backend_message="the offline placeholder generator needs no server")
    else:
        try:
            result = run(target.url, fetch_status, credentials=target.credentials, deadline=target.deadline)
        except ServerCommandError as exc:  # a refusal is an answer: the server is reachable
            result = ServerStatus(target.url, exc.refused, error=exc.message, hint=exc.hint,
                                  credentials_refused=exc.refused or None)
    if as_json:
        out.write(safe_json(result.as_dict()) + "\n")
    else:
        out.write(_status_text(result))
    return 0 if result.can_generate else 1


_COUNTER_WORDS = (("waiting_gens", "queued"), ("waiting_backends", "waiting for a backend"),
                  ("loading_models", "loading a model"), ("live_gens", "generating"))


def _status_text(s: ServerStatus) -> str:
    if not s.reachable or s.credentials_refused:
        state = "reachable, but the credentials were refused" if s.credentials_refused else "NOT reachable"
        lines = [f"SwarmUI at {safe_text(shown_url(s.url))}: {state}", f"  {safe_text(s.error)}"]
        if s.hint:
            lines.append(f"  hint: {safe_text(s.hint)}")
        return "\n".join(lines) + "\n"
    lines = [f"SwarmUI at {safe_text(shown_url(s.url))}: reachable"]
    lines.append(f"  version:   {safe_text(s.version)}")
    if s.user:
        lines.append(f"  user:      {safe_text(s.user)}")
    backend = s.backend_status or "unknown"
    if s.backend_message:
        backend += f" ({s.backend_message})"
    lines.append(f"  backends:  {safe_text(backend)}")
    if s.counters is not None:
        queue = ", ".join(f"{s.counters.get(key, 0)} {word}" for key, word in _COUNTER_WORDS)
        scope = ("whole server" if s.counters_scope == "server" else
                 "this command's own session only: the server refused GetGlobalStatus, an admin route")
        lines.append(f"  queue:     {queue} ({scope})")
    if s.features:
        lines.append(f"  features:  {safe_text(', '.join(s.features))}")
    if not s.can_generate:
        lines.append("  it cannot generate: configure a backend in SwarmUI (Server > Backends)")
    return "\n".join(lines) + "\n"


# --- cancel -------------------------------------------------------------------------------------------


async def interrupt_user(client: SwarmClient) -> dict[str, Any]:
    """InterruptAll with ``other_sessions: true`` from a new session: stops every queued and running
    generation of the user the credentials belong to (all of that user's sessions, not just this one)."""
    info = await new_session(client)
    await client.call("InterruptAll", {"other_sessions": True})
    return info


def cancel(target: Target, out: TextIO) -> int:
    """Stop this user's generations on the server. 0 done, 1 the server could not be asked."""
    if target.is_placeholder:
        out.write("nothing to cancel: the placeholder generator runs inside assetbuild\n")
        return 0
    info = run(target.url, interrupt_user, credentials=target.credentials, deadline=target.deadline)
    user = info.get("user_id") or "this user"
    out.write(f"asked SwarmUI at {safe_text(shown_url(target.url))} to interrupt every queued and running "
              f"generation of user {safe_text(repr(user))}, in all of its sessions "
              "(InterruptAll, other_sessions=true)\n"
              "other users' work is not affected; interrupted `assetbuild run`s report those assets as failed\n")
    return 0
