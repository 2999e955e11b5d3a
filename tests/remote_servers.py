"""Real object-store servers on loopback for the team-store tests (not a test module).

- ``SeaweedFS`` (S3): ``assetbuild.testing.seaweedfs``, shared with benchmarks/remote.py.
- ``WebDAV``: WsgiDAV on cheroot in a thread, behind a bearer-token check, for the HTTP backend.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from helpers import free_port

from assetbuild.testing.seaweedfs import ACCESS_KEY, BUCKET, SECRET_KEY, SeaweedFS, skip_reason

__all__ = ["ACCESS_KEY", "BUCKET", "SECRET_KEY", "SeaweedFS", "Unavailable", "WebDAV", "skip_reason"]


class Unavailable(Exception):
    """Raised by a WebDAV ``on_request`` hook: the request is answered 503 and not served."""


class WebDAV:
    """WsgiDAV serving ``folder`` at ``/``; requests without ``Authorization: Bearer <token>`` get 401."""

    def __init__(self, folder: Path, token: str, *, threads: int = 10,
                 on_request: Callable[[str, str], Callable[[], None] | None] | None = None) -> None:
        """``threads``: requests served at once. ``on_request(method, path)`` is called when an authorized
        request arrives, before it is served (a test can hold it there, or change the world meanwhile);
        the callable it may return is called once that request has been served."""
        from cheroot import wsgi
        from wsgidav.wsgidav_app import WsgiDAVApp

        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = free_port()
        dav = WsgiDAVApp({"host": "127.0.0.1", "port": self.port, "provider_mapping": {"/": str(folder)},
                          "simple_dc": {"user_mapping": {"*": True}}, "verbose": 0,
                          "logging": {"enable": False}})
        self.requests: list[str] = []

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            self.requests.append(f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}")
            if environ.get("HTTP_AUTHORIZATION") != f"Bearer {token}":
                start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("Content-Length", "12")])
                return [b"unauthorized"]
            if on_request is None:
                return dav(environ, start_response)  # type: ignore[no-any-return]
            try:
                served = on_request(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
            except Unavailable:
                start_response("503 Service Unavailable", [("Content-Type", "text/plain"), ("Content-Length", "4")])
                return [b"down"]
            try:
                return list(dav(environ, start_response))
            finally:
                if served is not None:
                    served()

        self.server = wsgi.Server(("127.0.0.1", self.port), app, numthreads=threads)
        self.server.prepare()
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()

    def url(self, prefix: str) -> str:
        (self.folder / prefix).mkdir(parents=True, exist_ok=True)  # WebDAV creates no parent collections
        return f"http://127.0.0.1:{self.port}/{prefix}"

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(10)
