"""Credentials for SwarmUI: never in the manifest, never printed.

``ASSETBUILD_API_KEY`` is sent as ``Authorization: Bearer <key>`` (SwarmUI's network-wide
``RequiredAuthorization`` check); ``ASSETBUILD_TOKEN`` as the ``swarm_token`` cookie (accounts mode).
"""

from __future__ import annotations

from dataclasses import dataclass, field


def shown_url(url: str) -> str:
    """``url`` as it may be printed: a password in it (``http://user:pass@host``) is masked."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not sep or not at or ":" not in userinfo or "/" in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:****@{host}"


def mask(secret: str | None) -> str:
    """A secret as it may be shown: its presence and length class, never its characters."""
    if not secret:
        return "(not set)"
    return "****" + ("" if len(secret) < 12 else f" ({len(secret)} chars)")


@dataclass(frozen=True)
class Credentials:
    api_key: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    def headers(self) -> dict[str, str]:
        """Headers for every request, including the WebSocket upgrade and downloads."""
        headers = {}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.token:
            headers["Cookie"] = f"swarm_token={self.token}"
        return headers

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced (also as Python would quote it), for messages and logs."""
        for secret in (self.api_key, self.token):
            if secret:
                for form in (secret, repr(secret)[1:-1], repr(secret.encode())[2:-1]):
                    text = text.replace(form, "****")
        return text

    def refused_hint(self, default: str | None) -> str | None:
        """What to try when the server refused us: about the credentials that are set, if any."""
        if self.api_key or self.token:
            return ("credentials are set (ASSETBUILD_API_KEY/ASSETBUILD_TOKEN or the user config) but the "
                    "server refused them: check they match the server's settings")
        return default

    def __repr__(self) -> str:
        return f"Credentials(api_key={mask(self.api_key)}, token={mask(self.token)})"
