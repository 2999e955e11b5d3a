"""A hostile or broken SwarmUI server (issue 12, items 2, 9, 10, 11): redirects on the WebSocket upgrade,
malformed messages, images of the wrong size and answers that never end. Every fault is injected by the
FakeSwarm double over real loopback sockets; the client must fail the asset with a clear message, never
follow the server elsewhere, never hang and never show a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, write_manifest
from PIL import Image

from assetbuild.swarm.client import SwarmClient
from assetbuild.swarm.errors import SwarmAPIError, SwarmError
from assetbuild.testing import FakeSwarm

pytestmark = pytest.mark.timeout(120)

FAST: dict[str, Any] = {"latency": 0.05, "steps": 4, "close_delay": 0.05, "model_load_delay": 0.01}
PARAMS: dict[str, Any] = {"prompt": "a cat", "model": "sd_xl_base_1.0", "width": 64, "height": 64, "seed": 7}
DEEP = "[" * 100_000 + "]" * 100_000  # JSON nested 100k deep: json.loads raises RecursionError


@pytest.fixture
def fake() -> Iterator[FakeSwarm]:
    with FakeSwarm(backends=1, **FAST) as server:
        yield server


class Listener:
    """A TCP port that records every connection made to it (and answers nothing)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.settimeout(0.5)
            try:
                self.received += conn.recv(65536)
            except OSError:
                pass
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    other = Listener()
    yield other
    other.close()


def generate(url: str, params: dict[str, Any] | None = None, **options: Any) -> Any:
    options.setdefault("backoff", 0.01)

    async def main() -> Any:
        client = SwarmClient(url, **options)
        try:
            return await client.generate(dict(params or PARAMS), {}, lambda _: None)
        finally:
            await client.aclose()

    return asyncio.run(main())


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


# ------------------------------------------------------------------------- 2. WebSocket redirects


def test_websocket_upgrade_redirect_to_another_port_is_refused(fake: FakeSwarm, listener: Listener) -> None:
    fake.redirect_websockets(f"http://127.0.0.1:{listener.port}/API/GenerateText2ImageWS")
    with pytest.raises(SwarmAPIError) as info:
        generate(fake.url, {**PARAMS, "prompt": "secret prompt"})
    assert "redirected the WebSocket upgrade (HTTP 302)" in info.value.message
    assert f"127.0.0.1:{listener.port}" in info.value.message
    assert info.value.hint and "server.url" in info.value.hint
    assert listener.accepted == 0 and listener.received == b""
    assert fake.generations == 0  # not sent over HTTP either


def test_cli_build_refuses_a_websocket_redirect(project: Path, fake: FakeSwarm, listener: Listener) -> None:
    write_manifest(project, '[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\n\n'
                            '[assets."a.png"]\nprompt = "the secret prompt"\n')
    fake.redirect_websockets(f"ws://127.0.0.1:{listener.port}/x", count=10)
    result = run_cli(project, "run", "--server", fake.url)
    assert result.returncode == 1, result.stderr
    assert "redirected the WebSocket upgrade" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert listener.accepted == 0
    assert not (project / "a.png").exists()
