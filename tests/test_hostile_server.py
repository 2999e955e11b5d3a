"""A hostile or broken SwarmUI server (issue 12, items 2, 9, 10, 11): redirects on the WebSocket upgrade,
malformed messages, images of the wrong size and answers that never end. Every fault is injected by the
FakeSwarm double over real loopback sockets; the client must fail the asset with a clear message, never
follow the server elsewhere, never hang and never show a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, write_manifest
from PIL import Image

from assetbuild.swarm.client import SwarmClient
from assetbuild.swarm.errors import SwarmAPIError, SwarmBadAnswer, SwarmBadImage, SwarmError
from assetbuild.testing import FakeSwarm

pytestmark = pytest.mark.timeout(150)

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
            with contextlib.suppress(OSError):
                self.received += conn.recv(65536)
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


# ----------------------------------------------------------------------- 9. malformed server data

def _image_frame(metadata: str) -> str:
    url = "data:image/png;base64," + base64.b64encode(png(64, 64)).decode()
    return json.dumps({"image": url, "batch_index": "0", "request_id": "1", "metadata": metadata})


WS_FAULTS = {
    "gen_progress": '{"gen_progress":"x"}',
    "status": '{"status":"x"}',
    "image": '{"image":5}',
    "discard": '{"discard_indices":"abc"}',
    "seed": _image_frame('{"sui_image_params":{"seed":1e400}}'),
    "deep": DEEP,
    "deep metadata": _image_frame('{"sui_image_params":' + "[" * 100_000 + "]" * 100_000 + "}"),
    "counter": '{"status":{"live_gens":1e400}}',
}
WS_MESSAGES = {
    "gen_progress": "malformed gen_progress message", "status": "malformed status message",
    "image": "malformed image message", "discard": "malformed discard_indices message",
    "seed": "invalid seed: Infinity", "deep": "nested too deep", "deep metadata": "nested too deep",
    "counter": "malformed status message",
}


@pytest.mark.parametrize("fault", list(WS_FAULTS))
def test_malformed_websocket_message_fails_the_generation(fake: FakeSwarm, fault: str) -> None:
    fake.send_ws_frames(WS_FAULTS[fault])
    with pytest.raises(SwarmBadAnswer) as info:
        generate(fake.url)
    assert WS_MESSAGES[fault] in info.value.message
    assert len(info.value.message) < 400  # an excerpt, not the whole frame
    assert fake.wait_idle(10)  # the server's job was interrupted or finished; nothing left behind


HTTP_FAULTS = {
    "number": ('{"images":[5]}', "malformed GenerateText2Image answer: images.0"),
    "string": ('{"images":"x"}', "malformed GenerateText2Image answer: images"),
    "deep": (DEEP, "nested too deep"),
}


@pytest.mark.parametrize("fault", list(HTTP_FAULTS))
def test_malformed_http_generation_answer_fails_the_generation(fake: FakeSwarm, fault: str) -> None:
    body, expected = HTTP_FAULTS[fault]
    fake.answer_next("GenerateText2Image", body)
    with pytest.raises(SwarmBadAnswer) as info:
        generate(fake.url, websocket=False)
    assert expected in info.value.message


def test_malformed_http_session_answer_is_a_clear_error(fake: FakeSwarm) -> None:
    fake.answer_next("GetNewSession", DEEP)
    with pytest.raises(SwarmError) as info:
        generate(fake.url)
    assert "nested too deep" in info.value.message


def _build_project(project: Path, count: int = 3) -> None:
    body = '[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\n\n'
    for n in range(count):
        body += f'[assets."a{n}.png"]\nprompt = "asset {n}"\nseed = {n + 1}\n\n'
    write_manifest(project, body)


def _lock_targets(project: Path) -> set[str]:
    lock = project / "assets.lock"
    return set(json.loads(lock.read_text())["assets"]) if lock.exists() else set()


@pytest.mark.parametrize("fault", ["gen_progress", "image", "seed", "deep"])
def test_cli_build_with_a_malformed_message_fails_only_that_asset(project: Path, fake: FakeSwarm,
                                                                   fault: str) -> None:
    _build_project(project, 3)
    fake.configure(latency=0.3)  # the others are still generating when the bad frame arrives
    fake.send_ws_frames(WS_FAULTS[fault])
    result = run_cli(project, "run", "--server", fake.url, "-n", "3", "--keep-going")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    output = result.stdout + result.stderr
    assert WS_MESSAGES[fault] in output
    built = {p.name for p in project.glob("*.png")}
    assert len(built) == 2 and _lock_targets(project) == built
    assert len(list((project / ".assetbuild" / "cache").rglob("*.img"))) == 2
    again = run_cli(project, "run", "--server", fake.url)  # the server behaves again: only that one is made
    assert again.returncode == 0, again.stdout + again.stderr
    assert {p.name for p in project.glob("*.png")} == {"a0.png", "a1.png", "a2.png"}


@pytest.mark.parametrize("body", ['{"backend_status":"x"}', '{"status":"x"}', '{"supported_features":7}', DEEP])
def test_server_status_with_a_malformed_answer_is_a_clear_error(project: Path, fake: FakeSwarm, body: str) -> None:
    fake.answer_next("GetCurrentStatus", body)
    result = run_cli(project, "server", "status", "--server", fake.url)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "NOT reachable" not in result.stdout or "malformed" in result.stdout or "nested" in result.stdout
    assert "malformed GetCurrentStatus answer" in result.stdout or "nested too deep" in result.stdout


# --------------------------------------------------------------------- 11. total deadlines

DRIBBLE = 0.5  # seconds between bytes: far below any read timeout, so only a total deadline ends it


@pytest.mark.parametrize("command", [["server", "status"], ["models"], ["cancel"]])
def test_server_commands_end_at_their_deadline_against_a_dribbling_server(project: Path, fake: FakeSwarm,
                                                                          command: list[str]) -> None:
    fake.dribble_next(interval=DRIBBLE, count=100)
    result = run_cli(project, *command, "--server", fake.url, "--timeout", "2", timeout=40)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    output = result.stdout + result.stderr
    assert "within 2 s" in output, output


def test_a_single_call_has_a_total_deadline(fake: FakeSwarm) -> None:
    fake.dribble_next(interval=DRIBBLE, count=100)

    async def main() -> None:
        client = SwarmClient(fake.url, control_timeout=1.0, retries=0)
        try:
            await client.call("ListModels", {"path": "", "depth": 1})
        finally:
            await client.aclose()

    with pytest.raises(SwarmError) as info:
        asyncio.run(main())
    assert "did not answer GetNewSession within 1 s" in info.value.message


@pytest.mark.parametrize("command", [["generate", "--prompt", "a cat", "--model", "sd_xl_base_1.0"], ["run"]])
def test_generation_ends_at_its_deadline_against_a_dribbling_server(project: Path, fake: FakeSwarm,
                                                                    command: list[str]) -> None:
    """`generate` fails at server.timeout; a build first checks the assets against the server, a control
    step with the 60 s deadline of any API call (then the server counts as down for the generation)."""
    write_manifest(project, '[server]\ntimeout = 2\n\n[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\n'
                            'height = 64\n\n[assets."a.png"]\nprompt = "a cat"\n')
    fake.dribble_next(interval=DRIBBLE, count=100)
    result = run_cli(project, *command, "--server", fake.url, timeout=110)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in result.stderr
    if command == ["run"]:
        assert "did not answer GetNewSession within 60 s" in output
    else:
        assert "longer than 2 s (server.timeout)" in output
    assert not (project / "a.png").exists()


# ----------------------------------------------------------------------------- 10. wrong image size

BIG = {**PARAMS, "width": 512, "height": 512}


def test_an_image_of_the_wrong_size_fails_the_generation(fake: FakeSwarm) -> None:
    fake.wrong_size_next(64, 48)
    with pytest.raises(SwarmBadImage) as info:
        generate(fake.url, BIG)
    assert "the server sent a 64x48 image for a 512x512 request" in info.value.message


@pytest.mark.parametrize("extra", [{"aspectratio": "16:9"}, {"sidelength": 768}, {"refinerupscale": 2.0},
                                   {"width": None}])
def test_the_size_is_not_checked_when_a_parameter_may_change_it(fake: FakeSwarm, extra: dict[str, Any]) -> None:
    fake.wrong_size_next(64, 48)
    params = {k: v for k, v in {**BIG, **extra}.items() if v is not None}
    result = generate(fake.url, params)
    with Image.open(io.BytesIO(result.data)) as image:
        assert image.size == (64, 48)


def _encoded(fmt: str, size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_the_size_is_read_from_the_header_of_every_format(fmt: str) -> None:
    from assetbuild.swarm.imagesize import check_size

    check_size(_encoded(fmt, (512, 512)), BIG)  # the right size passes
    with pytest.raises(SwarmBadImage) as info:
        check_size(_encoded(fmt, (64, 48)), BIG)
    assert "a 64x48 image for a 512x512 request" in info.value.message


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR",
                                  b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" + bytes(8) + b"junk"])
def test_an_unreadable_image_is_refused_by_the_size_check(data: bytes) -> None:
    from assetbuild.swarm.imagesize import check_size

    with pytest.raises(SwarmBadImage) as info:
        check_size(data, BIG)
    assert "cannot be read" in info.value.message


def test_latent_rounding_is_not_a_wrong_size(fake: FakeSwarm) -> None:
    fake.wrong_size_next(496, 512)  # 500 rounded down to a multiple of 16
    generate(fake.url, {**BIG, "width": 500, "aspectratio": "Custom"})


def test_cli_build_fails_the_asset_of_the_wrong_size_and_keeps_nothing(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, '[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 512\nheight = 512\n\n'
                            '[assets."big.png"]\nprompt = "big"\nresize = [32, 32]\n\n'
                            '[assets."other.png"]\nprompt = "other"\nwidth = 64\nheight = 64\n')
    fake.wrong_size_next(64, 48)
    result = run_cli(project, "run", "--server", fake.url, "-n", "1", "--keep-going")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in result.stderr
    assert "big.png" in output and "64x48 image for a 512x512 request" in output
    assert not (project / "big.png").exists()
    assert _lock_targets(project) == {"other.png"}
    assert len(list((project / ".assetbuild" / "cache").rglob("*.img"))) == 1  # other.png's only
    again = run_cli(project, "run", "--server", fake.url)
    assert again.returncode == 0, again.stdout + again.stderr
    with Image.open(project / "big.png") as image:
        assert image.size == (32, 32)


@pytest.mark.parametrize("body", ['{"files":5}', '{"folders":5}', '{"files":["x"]}', DEEP, "[1]"])
def test_models_with_a_malformed_answer_is_a_clear_error(project: Path, fake: FakeSwarm, body: str) -> None:
    fake.answer_next("ListModels", body)
    result = run_cli(project, "models", "--server", fake.url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "ListModels" in result.stderr or "nested too deep" in result.stderr or "unexpected answer" in result.stderr
