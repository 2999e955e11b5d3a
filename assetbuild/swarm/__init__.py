"""A SwarmUI API client (async): sessions, error envelopes, WebSocket generation, downloads.

It follows the real server's behaviour as read from its source (shared/swarmui-api.md): handler errors
come back as HTTP 200 ``{"error": ...}``, unknown sessions as 401 ``invalid_session_id``, WebSocket
image messages are flat, and closing a socket does not stop the server's work (``InterruptAll`` does).
"""
