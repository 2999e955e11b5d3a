"""Errors of the SwarmUI client, before they are attributed to an asset.

    SwarmError
    ├── SwarmAPIError       the server answered with {"error": ..., "error_id"?: ...}
    │   ├── SessionInvalid  401 invalid_session_id (handled inside the client by renewing)
    │   └── SwarmBadAnswer  an answer or message that does not validate (wrong types, JSON too deep)
    ├── SwarmAuthError      the server refused our credentials (or their absence)
    ├── SwarmUnreachable    connection refused, 5xx, timeouts: after bounded retries
    ├── SwarmBadImage       an image that is not what was asked for, too big, or off-origin
    └── WebSocketUnavailable the WebSocket route cannot be opened (the client falls back to HTTP)
"""

from __future__ import annotations


class SwarmError(Exception):
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint


class SwarmAPIError(SwarmError):
    def __init__(self, message: str, error_id: str | None = None, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.error_id = error_id


class SessionInvalid(SwarmAPIError):
    pass


class SwarmBadAnswer(SwarmAPIError):
    hint = "the server (or a proxy in front of it) sent data SwarmUI never sends: check its version and logs"


class SwarmAuthError(SwarmError):
    hint = ("set ASSETBUILD_API_KEY (sent as 'Authorization: Bearer <key>') or ASSETBUILD_TOKEN "
            "(SwarmUI's swarm_token cookie), or `assetbuild config set api-key ...`")


class SwarmUnreachable(SwarmError):
    hint = "check that SwarmUI is running and server.url (or ASSETBUILD_SERVER / --server) points at it"


class SwarmBadImage(SwarmError):
    pass


class WebSocketUnavailable(SwarmError):
    pass
