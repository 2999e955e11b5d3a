"""Credentials for SwarmUI: never in the manifest, never printed.

``ASSETBUILD_API_KEY`` is sent as ``Authorization: Bearer <key>`` (SwarmUI's network-wide
``RequiredAuthorization`` check); ``ASSETBUILD_TOKEN`` as the ``swarm_token`` cookie (accounts mode).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

API_KEY_ENV = "ASSETBUILD_API_KEY"
TOKEN_ENV = "ASSETBUILD_TOKEN"


def mask(secret: str | None) -> str:
    """A secret as it may be shown: its presence and length class, never its characters."""
    if not secret:
        return "(not set)"
    return "****" + ("" if len(secret) < 12 else f" ({len(secret)} chars)")


@dataclass(frozen=True)
class Credentials:
    api_key: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_environment(cls, fallback: dict[str, str] | None = None) -> Credentials:
        """From the environment, else ``fallback`` (the user config: ``api-key``, ``token``)."""
        fallback = fallback or {}
        return cls(os.environ.get(API_KEY_ENV) or fallback.get("api-key") or None,
                   os.environ.get(TOKEN_ENV) or fallback.get("token") or None)

    def headers(self) -> dict[str, str]:
        """Headers for every request, including the WebSocket upgrade and downloads."""
        headers = {}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.token:
            headers["Cookie"] = f"swarm_token={self.token}"
        return headers

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced, for messages and logs."""
        for secret in (self.api_key, self.token):
            if secret:
                text = text.replace(secret, "****")
        return text

    def __repr__(self) -> str:
        return f"Credentials(api_key={mask(self.api_key)}, token={mask(self.token)})"
