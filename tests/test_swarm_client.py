"""The SwarmUI client (issue 3): the async SwarmClient and the sync SwarmUIGenerator, in-process, against
the FakeSwarm double over real loopback sockets (plus a few pure unit tests of the message parser and of
the frame-stream reader).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import io
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
import pytest
from helpers import free_port
from PIL import Image
from websockets.exceptions import ConnectionClosedError
from websockets.frames import Close, CloseCode
from websockets.protocol import State

from assetbuild.errors import AuthError, GenerationError, ServerError, ServerUnreachable
from assetbuild.generators.base import GenerationRequest, Progress
from assetbuild.generators.swarmui import SwarmUIGenerator
from assetbuild.manifest import ServerSettings
from assetbuild.swarm import client as swarm_client
from assetbuild.swarm import messages
from assetbuild.swarm.client import MAX_SESSION_RENEWALS, SwarmClient, _Dropped, data_url, sniff
from assetbuild.swarm.credentials import Credentials
from assetbuild.swarm.errors import (
    SessionInvalid,
    SwarmAPIError,
    SwarmAuthError,
    SwarmBadAnswer,
    SwarmBadImage,
    SwarmError,
    SwarmUnreachable,
)
from assetbuild.testing import FakeSwarm

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")
MODEL = "sd_xl_base_1.0"
FAST: dict[str, Any] = {"latency": 0.05, "steps": 4, "close_delay": 0.05, "model_load_delay": 0.01}
PARAMS: dict[str, Any] = {"prompt": "a cat", "model": MODEL, "width": 64, "height": 64, "seed": 7}


# --------------------------------------------------------------------------------------------- helpers


@pytest.fixture
def fake() -> Iterator[FakeSwarm]:
    with FakeSwarm(backends=1, **FAST) as server:
        yield server


def with_client(url: str, body: Callable[[SwarmClient], Awaitable[T]], **options: Any) -> T:
    """Run ``body(client)`` on a fresh event loop with a client that is always closed."""
    options.setdefault("backoff", 0.01)

    async def main() -> T:
        client = SwarmClient(url, **options)
        try:
            return await body(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


def generate(url: str, params: dict[str, Any] | None = None, images: dict[str, bytes] | None = None,
             progress: list[Progress] | None = None, **options: Any) -> bytes:
    """One generation; returns the image bytes."""
    seen = progress if progress is not None else []

    async def body(client: SwarmClient) -> bytes:
        result = await client.generate(dict(params or PARAMS), images or {}, seen.append)
        return result.data

    return with_client(url, body, **options)


def png(width: int = 8, height: int = 8, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.size


def routes(fake: FakeSwarm) -> list[str]:
    return [r.route for r in fake.requests]


def forgetful_sessions(fake: FakeSwarm, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the double forget every session right after GetNewSession hands it out."""
    engine = fake._engine  # noqa: SLF001 - a fault the double has no public hook for
    original = engine.create_session

    def create_and_forget(user: str) -> Any:
        session = original(user)
        engine.sessions.pop(session.id, None)
        return session

    monkeypatch.setattr(engine, "create_session", create_and_forget)


# ------------------------------------------------------------------------------- messages.py (unit)


def test_parse_status_frame() -> None:
    frame = messages.parse(json.dumps({"status": {"waiting_gens": 1, "loading_models": 0, "waiting_backends": 1,
                                                  "live_gens": 0}, "backend_status": {"status": "running"},
                                       "supported_features": []}))
    assert frame.kind == "status"
    assert frame.payload == messages.StatusCounters(waiting_gens=1, waiting_backends=1)


@pytest.mark.parametrize("index", ["2", 2])
def test_parse_gen_progress_with_string_or_int_batch_index(index: Any) -> None:
    frame = messages.parse(json.dumps({"gen_progress": {"batch_index": index, "request_id": "1001",
                                                        "overall_percent": 0.5, "current_percent": 0.25,
                                                        "preview": "data:image/jpeg;base64,AAAA"}}))
    assert frame.kind == "progress"
    assert frame.payload.batch_index == 2
    assert frame.payload.overall_percent == 0.5
    assert frame.payload.preview == "data:image/jpeg;base64,AAAA"
    assert messages.progress_of(frame.payload) == Progress("generating", 0.5)


def test_progress_fraction_is_clamped_and_falls_back_to_current_percent() -> None:
    only_current = messages.GenProgress(batch_index=0, current_percent=0.3)
    assert messages.progress_of(only_current).fraction == 0.3
    assert messages.progress_of(messages.GenProgress(overall_percent=1.7)).fraction == 1.0
    assert messages.progress_of(messages.GenProgress()).fraction is None


@pytest.mark.parametrize("index", ["1", 1])
def test_parse_flat_image_message(index: Any) -> None:
    metadata = json.dumps({"sui_image_params": {"prompt": "a cat", "seed": 1234}})
    frame = messages.parse(json.dumps({"image": "View/local/raw/x.png", "batch_index": index,
                                       "request_id": "1001", "metadata": metadata}))
    assert frame.kind == "image"
    assert frame.payload.image == "View/local/raw/x.png"
    assert frame.payload.batch_index == 1
    assert frame.payload.seed() == 1234


def test_image_seed_is_none_without_usable_metadata() -> None:
    assert messages.ImageMessage(image="x", metadata=None).seed() is None
    assert messages.ImageMessage(image="x", metadata="not json").seed() is None
    assert messages.ImageMessage(image="x", metadata='{"sui_image_params": {}}').seed() is None


def test_parse_discard_keep_alive_close_and_error_frames() -> None:
    assert messages.parse('{"discard_indices":["0",2]}') == messages.Frame("discard", {0, 2})
    assert messages.parse('{"discard_indices":[]}') == messages.Frame("discard", set())
    assert messages.parse('{"keep_alive":true}').kind == "keep_alive"
    assert messages.parse('{"socket_intention":"close"}').kind == "close_intent"
    error = messages.parse('{"error":"No backends available!"}')
    assert (error.kind, error.payload, error.error_id) == ("error", "No backends available!", None)
    session = messages.parse('{"error":"Invalid session ID. You may need to refresh the page.",'
                             '"error_id":"invalid_session_id"}')
    assert (session.kind, session.error_id) == ("error", "invalid_session_id")
    only_id = messages.parse('{"error_id":"invalid_login"}')
    assert (only_id.kind, only_id.payload) == ("error", "invalid_login")


@pytest.mark.parametrize("raw", [
    '{"raw_backend_data":{"type":"x","data":"AAAA"}}',
    '{"raw_swarm_data":{"params_used":["prompt"]}}',
    '{"socket_intention":"something-else"}',
    '{"something_new":1}',
    "[1, 2]",
    "not json at all",
    b'"a string"',
])
def test_unknown_frames_are_ignored(raw: str | bytes) -> None:
    assert messages.parse(raw).kind == "other"


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 57, 1000, 200_000])
def test_decode_base64_gives_what_the_base64_module_gives(size: int) -> None:
    data = bytes((i * 7919) % 256 for i in range(size))
    text = base64.b64encode(data).decode()
    assert messages.decode_base64(text) == data
    urlsafe = base64.urlsafe_b64encode(data).decode()
    if urlsafe != text:  # the URL-safe alphabet is not what SwarmUI sends: refused, as base64 refuses it
        with pytest.raises(ValueError):
            messages.decode_base64(urlsafe)


@pytest.mark.parametrize("text", ["aGk", "aGk==", "aG k=", "aGk=\n", "aGk\\u003d", 'aGk="', "a-_=", "!!!!", "=",
                                  "aGk=aGk=", "aGVsbG9=", "QR==", "QQ", "\u00e9AAA"])
def test_decode_base64_accepts_and_refuses_exactly_what_base64_validate_does(text: str) -> None:
    try:
        expected: bytes | None = base64.b64decode(text, validate=True)
    except ValueError:
        expected = None
    try:
        got: bytes | None = messages.decode_base64(text)
    except ValueError:
        got = None
    assert got == expected


def test_big_frames_parse_as_json_parses_them() -> None:
    image = "data:image/png;base64," + base64.b64encode(bytes(range(256)) * 400).decode()
    for frame in ({"image": image, "batch_index": "0", "metadata": json.dumps({"sui_image_params": {"seed": 2**40}})},
                  {"image": image, "x": [1.5, 1e400, -0.0, None, True, "\u00e9\ud800"]}):  # a lone surrogate too
        text = json.dumps(frame)
        assert len(text) > messages._BIG_JSON  # noqa: SLF001
        parsed, expected = messages.loads(text), json.loads(text)
        assert repr(parsed) == repr(expected)
        assert messages.loads(text.encode()) == expected
    with pytest.raises(ValueError):
        messages.loads('{"image": "' + "A" * 100_000 + '"')  # cut: not JSON, the same error as json's
    with pytest.raises(SwarmBadAnswer, match="nested too deep"):
        messages.loads("[" * 100_000 + "]" * 100_000)


def test_phase_of_status_counters() -> None:
    def phase(**counters: int) -> str | None:
        found = messages.phase_of(messages.StatusCounters(**counters))
        return found.phase if found is not None else None

    assert messages.phase_of(messages.StatusCounters(waiting_gens=1)) == Progress("queued")
    assert phase(waiting_gens=1, waiting_backends=1) == "waiting"
    assert phase(waiting_gens=1, loading_models=1) == "loading"
    assert phase(waiting_gens=1, live_gens=1, waiting_backends=1) == "generating"
    assert phase() is None


# ------------------------------------------------------------------ the frame-stream reader (unit)


class StubSocket:
    """An async iterable of frames standing in for a websockets connection."""

    def __init__(self, frames: list[Any], closed: Exception | None = None) -> None:
        self.frames = frames
        self.closed = closed
        self.consumed = 0

    def __aiter__(self) -> AsyncIterator[str]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[str]:
        for frame in self.frames:
            self.consumed += 1
            yield frame if isinstance(frame, str) else json.dumps(frame)
        if self.closed is not None:
            raise self.closed


def read_stream(frames: list[Any] | StubSocket, closed: Exception | None = None,
                seen: list[Progress] | None = None) -> messages.ImageMessage:
    stub = frames if isinstance(frames, StubSocket) else StubSocket(frames, closed)

    async def body(client: SwarmClient) -> messages.ImageMessage:
        return (await client._read_generation(stub, (seen if seen is not None else []).append))[0]  # type: ignore[arg-type]  # noqa: SLF001

    return with_client("http://127.0.0.1:9", body)


def status(waiting: int = 0, loading: int = 0, backends: int = 0, live: int = 0) -> dict[str, Any]:
    return {"status": {"waiting_gens": waiting, "loading_models": loading, "waiting_backends": backends,
                       "live_gens": live}, "backend_status": {"status": "running"}}


TAIL: list[Any] = [{"keep_alive": True}, {"discard_indices": []}, {"socket_intention": "close"}, status()]


def test_reader_follows_a_full_stream_and_ignores_unknown_frames() -> None:
    seen: list[Progress] = []
    frames = [status(waiting=1), status(waiting=1, backends=1), status(waiting=1, live=1),
              {"gen_progress": {"batch_index": 0, "request_id": "1001", "overall_percent": 0.5}},
              {"raw_backend_data": {"type": "x", "data": "AAAA"}}, "garbage",
              {"gen_progress": {"batch_index": "0", "request_id": "1001", "overall_percent": 1.0}},
              {"image": "data:image/png;base64,AAAA", "batch_index": "0", "request_id": "1001"}, *TAIL]
    image = read_stream(frames, seen=seen)
    assert image.image == "data:image/png;base64,AAAA"
    assert [p.phase for p in seen] == ["queued", "waiting", "generating", "generating", "generating"]
    assert [p.fraction for p in seen if p.fraction is not None] == [0.5, 1.0]


def test_reader_applies_discard_indices_with_string_and_int_batch_index() -> None:
    frames = [{"image": "data:first", "batch_index": "0"}, {"image": "data:second", "batch_index": 1},
              {"discard_indices": ["0"]}, {"socket_intention": "close"}]
    assert read_stream(frames).image == "data:second"


def test_reader_skips_intermediate_images_sent_before_the_final_one() -> None:
    """SwarmUI numbers images that are not final (``outputintermediateimages``) -11, -12, ... and may
    send them first: the asset gets its final image, and a request that sent only those has none."""
    frames = [{"image": "data:step-1", "batch_index": "-11"}, {"image": "data:step-2", "batch_index": -12},
              {"image": "data:final", "batch_index": "0"}, {"discard_indices": []}, {"socket_intention": "close"}]
    assert read_stream(frames).image == "data:final"
    with pytest.raises(SwarmAPIError, match="without sending an image"):
        read_stream([{"image": "data:step-1", "batch_index": "-11"}, {"discard_indices": []},
                     {"socket_intention": "close"}])


def test_reader_all_images_discarded_is_an_error() -> None:
    frames = [{"image": "data:first", "batch_index": 0}, {"discard_indices": [0]}, {"socket_intention": "close"}]
    with pytest.raises(SwarmAPIError, match="discarded"):
        read_stream(frames)


def test_reader_error_frame_does_not_end_the_stream_and_is_raised_with_the_servers_text() -> None:
    frames = [status(waiting=1), {"error": "All available backends failed to load the model 'x'."},
              status(), *TAIL]
    stub = StubSocket(frames)
    with pytest.raises(SwarmAPIError, match="failed to load the model") as info:
        read_stream(stub)
    assert not isinstance(info.value, SessionInvalid)
    # read on to the request's end, its discard list here (then socket_intention: close and the last status
    # are not needed)
    assert stub.consumed == len(frames) - 2


def test_reader_invalid_session_frame_raises_session_invalid() -> None:
    frames = [{"error": "Invalid session ID. You may need to refresh the page.", "error_id": "invalid_session_id"}]
    with pytest.raises(SessionInvalid):
        read_stream(frames, closed=ConnectionClosedError(None, None))


def test_reader_socket_lost_before_an_image_is_a_drop() -> None:
    frames = [status(waiting=1, live=1), {"gen_progress": {"batch_index": "0", "overall_percent": 0.25}}]
    with pytest.raises(_Dropped):
        read_stream(frames, closed=ConnectionClosedError(None, None))


def test_reader_socket_lost_after_the_image_keeps_the_image() -> None:
    frames = [{"image": "data:kept", "batch_index": "0"}]
    assert read_stream(frames, closed=ConnectionClosedError(None, None)).image == "data:kept"


def test_reader_close_without_image_is_an_error_not_a_retry() -> None:
    with pytest.raises(SwarmAPIError, match="without sending an image"):
        read_stream([{"discard_indices": []}, {"socket_intention": "close"}])


# ------------------------------------------------------------------------------------ images (unit)


def test_data_url_and_sniff() -> None:
    data = png()
    assert data_url(data).startswith("data:image/png;base64,")
    assert base64.b64decode(data_url(data).split(",", 1)[1]) == data
    assert sniff(data) == "png"
    assert sniff(b"\xff\xd8\xff\xe0rest") == "jpeg"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert sniff(b"<html>") is None


def test_fetch_image_checks_the_bytes_before_returning_them() -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (4, 4)).save(jpeg, "JPEG")

    async def body(client: SwarmClient) -> None:
        assert await client.fetch_image(data_url(png())) == png()
        with pytest.raises(SwarmBadImage, match="expected a PNG"):
            await client.fetch_image(data_url(jpeg.getvalue()), "png")
        assert await client.fetch_image(data_url(jpeg.getvalue()), "jpeg") == jpeg.getvalue()
        with pytest.raises(SwarmBadImage, match="not an image"):
            await client.fetch_image("data:image/png;base64," + base64.b64encode(b"<html>oops</html>").decode())
        with pytest.raises(SwarmBadImage, match="not base64"):
            await client.fetch_image("data:image/png,rawtext")
        with pytest.raises(SwarmBadImage, match="invalid base64"):
            await client.fetch_image("data:image/png;base64,@@@@")

    with_client("http://127.0.0.1:9", body)


def test_downloads_go_only_to_the_servers_origin() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request may leave: {request.url}")

    async def body(client: SwarmClient) -> None:
        for reference in ("http://evil.example/View/local/x.png", "https://127.0.0.1:7801/View/local/x.png",
                          "//evil.example/View/x.png"):
            with pytest.raises(SwarmBadImage, match="another origin"):
                await client.fetch_image(reference)

    with_client("http://127.0.0.1:7801", body, transport=httpx.MockTransport(handler))


def test_bad_server_url_is_refused() -> None:
    with pytest.raises(SwarmError, match="not an http"):
        SwarmClient("ftp://example.com")


# ----------------------------------------------------------------------------------- generation


@pytest.mark.parametrize("websocket", [True, False], ids=["ws", "http"])
def test_generate_returns_a_png_and_records_the_transport(fake: FakeSwarm, websocket: bool) -> None:
    data = generate(fake.url, websocket=websocket)
    assert image_size(data) == (64, 64)
    assert fake.generations == 1
    record = fake.generation_log[0]
    assert record.transport == ("ws" if websocket else "http")
    assert record.image.startswith("data:image/png;base64,")  # donotsave by default
    assert fake.downloads == []
    assert record.seed == 7
    assert fake.active_jobs() == []


def test_seed_used_by_the_server_is_returned(fake: FakeSwarm) -> None:
    async def body(client: SwarmClient) -> int | None:
        result = await client.generate(dict(PARAMS, seed=-1), {}, lambda _: None)
        return result.seed

    seed = with_client(fake.url, body)
    assert seed is not None and seed == fake.generation_log[0].seed


@pytest.mark.parametrize("websocket", [True, False], ids=["ws", "http"])
def test_generate_returns_the_reference_and_can_skip_the_download(fake: FakeSwarm, websocket: bool) -> None:
    """Issue 13.4: the image's reference is part of the result; download=False fetches nothing."""
    progress: list[Progress] = []

    async def body(client: SwarmClient) -> list[Any]:
        kept = await client.generate(dict(PARAMS), {}, lambda _: None)
        only_ref = await client.generate(dict(PARAMS, seed=8), {}, progress.append, download=False)
        return [kept, only_ref]

    kept, only_ref = with_client(fake.url, body, save_images=True, websocket=websocket)
    first, second = fake.generation_log
    assert (kept.reference, only_ref.reference) == (first.image, second.image)
    assert only_ref.reference.startswith("View/local/") and not only_ref.inline
    assert kept.data == fake.stored_files()[kept.reference.removeprefix("View/")]
    assert only_ref.data is None
    assert fake.downloads == [kept.reference.removeprefix("View/")]  # the second image was not fetched
    assert "downloading" not in [p.phase for p in progress]
    assert only_ref.seed == 8 if websocket else only_ref.seed is None  # HTTP: the seed is in the PNG only


def test_an_inline_image_says_so(fake: FakeSwarm) -> None:
    async def body(client: SwarmClient) -> Any:
        return await client.generate(dict(PARAMS), {}, lambda _: None)

    result = with_client(fake.url, body)  # donotsave: the server answers with a data: URL
    assert result.inline and result.reference.startswith("data:image/png;base64,")
    assert result.data == base64.b64decode(result.reference.split(",", 1)[1])


def test_jpeg_output_is_accepted_when_asked_for(fake: FakeSwarm) -> None:
    assert sniff(generate(fake.url, dict(PARAMS, imageformat="JPG"))) == "jpeg"


def test_sessions_are_lazy_cached_and_one_per_slot(fake: FakeSwarm) -> None:
    async def body(client: SwarmClient) -> None:
        await asyncio.sleep(0)
        assert fake.requests == []  # creating a client contacts nothing
        for _ in range(3):
            await client.generate(dict(PARAMS), {}, lambda _: None)
        await asyncio.gather(*(client.generate(dict(PARAMS), {}, lambda _: None) for _ in range(4)))

    with_client(fake.url, body, concurrency=2)
    assert fake.generations == 7
    assert 1 <= fake.request_count("GetNewSession") <= 2


@pytest.mark.parametrize("websocket", [True, False], ids=["ws", "http"])
def test_forgotten_session_is_renewed_and_the_request_retried(fake: FakeSwarm, websocket: bool,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # No kept WebSocket: SwarmUI would run the second request on it with the socket's own session, with
    # nothing to renew (the next test); here the second one connects again and must renew.
    monkeypatch.setattr(swarm_client, "SOCKET_REUSE_SECONDS", -1.0)

    async def body(client: SwarmClient) -> None:
        await client.generate(dict(PARAMS), {}, lambda _: None)
        await asyncio.to_thread(fake.forget_sessions)
        await client.generate(dict(PARAMS, prompt="a dog"), {}, lambda _: None)

    with_client(fake.url, body, concurrency=1, websocket=websocket)
    assert fake.generations == 2
    assert fake.request_count("GetNewSession") == 2


@pytest.mark.parametrize("websocket", [True, False], ids=["ws", "http"])
def test_session_renewal_is_bounded(fake: FakeSwarm, monkeypatch: pytest.MonkeyPatch, websocket: bool) -> None:
    forgetful_sessions(fake, monkeypatch)
    with pytest.raises(SwarmAPIError, match="keeps rejecting new sessions") as info:
        generate(fake.url, websocket=websocket, concurrency=1)
    assert info.value.error_id == "invalid_session_id"
    assert fake.request_count("GetNewSession") == MAX_SESSION_RENEWALS + 1
    assert fake.generations == 0


def test_session_renewal_is_bounded_for_plain_calls() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        route = request.url.path.rsplit("/", 1)[-1]
        calls.append(route)
        if route == "GetNewSession":
            return httpx.Response(200, json={"session_id": f"{len(calls):040x}"})
        return httpx.Response(401, json={"error": "Invalid session ID. You may need to refresh the page.",
                                         "error_id": "invalid_session_id"})

    async def body(client: SwarmClient) -> None:
        with pytest.raises(SwarmAPIError, match="keeps rejecting"):
            await client.call("ListModels", {"path": "", "depth": 1})

    with_client("http://swarm.test", body, transport=httpx.MockTransport(handler))
    assert calls.count("GetNewSession") == MAX_SESSION_RENEWALS + 1
    assert calls.count("ListModels") == MAX_SESSION_RENEWALS + 1


@pytest.mark.parametrize("websocket", [True, False], ids=["ws", "http"])
def test_restart_during_a_generation_recovers(fake: FakeSwarm, websocket: bool) -> None:
    fake.configure(latency=0.4)

    async def body(client: SwarmClient) -> bytes:
        task = asyncio.create_task(client.generate(dict(PARAMS), {}, lambda _: None))
        while not fake.active_jobs():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        await asyncio.to_thread(fake.restart)
        return (await task).data

    data = with_client(fake.url, body, websocket=websocket)
    assert image_size(data) == (64, 64)
    assert fake.generations == 1  # the job the restart killed never finished
    assert fake.request_count("GetNewSession") == 2
    assert fake.active_jobs() == []


def test_server_error_message_is_kept_for_every_transport(fake: FakeSwarm) -> None:
    for websocket in (True, False):
        with pytest.raises(SwarmAPIError, match="Invalid model value for param Model - 'nope'") as info:
            generate(fake.url, dict(PARAMS, model="nope"), websocket=websocket)
        assert info.value.hint is not None and "assetbuild models" in info.value.hint
    assert fake.generations == 0


def test_no_backends_reports_the_servers_message() -> None:
    with FakeSwarm(backends=0, no_backend_delay=0.1, **FAST) as fake:
        for websocket in (True, False):
            with pytest.raises(SwarmAPIError, match="^No backends available!$") as info:
                generate(fake.url, websocket=websocket)
            assert info.value.hint is not None and "backend" in info.value.hint


def test_dispatcher_errors_are_checked_whatever_the_status(fake: FakeSwarm) -> None:
    async def body(client: SwarmClient) -> None:
        with pytest.raises(SwarmAPIError, match="Unknown API route") as info:
            await client.call("NoSuchRoute", {})
        assert info.value.error_id == "bad_route"
        with pytest.raises(SwarmAPIError, match="needs websocket"):
            await client.call("GenerateText2ImageWS", {})
        with pytest.raises(SwarmAPIError, match="Missing required parameter 'path'"):
            await client.call("ListModels", {})
        listing = await client.call("ListModels", {"path": "", "depth": 3})
        assert listing["files"]

    with_client(fake.url, body)


def test_error_id_without_error_text_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("GetNewSession"):
            return httpx.Response(200, json={"session_id": "a" * 40})
        return httpx.Response(200, json={"error_id": "ratelimit"})

    async def body(client: SwarmClient) -> None:
        with pytest.raises(SwarmAPIError, match="ratelimit") as info:
            await client.call("Login", {"username": "u", "password": "p"})
        assert info.value.error_id == "ratelimit"

    with_client("http://swarm.test", body, transport=httpx.MockTransport(handler))


# --------------------------------------------------------------------------- transport failures


def test_5xx_burst_is_retried(fake: FakeSwarm) -> None:
    fake.fail_next(3)
    assert image_size(generate(fake.url)) == (64, 64)
    assert fake.injected_failures == 3
    assert fake.generations == 1


def test_5xx_on_the_http_generation_route_is_retried_without_duplicates(fake: FakeSwarm) -> None:
    fake.fail_next(2, status=502, route="GenerateText2Image")
    assert image_size(generate(fake.url, websocket=False)) == (64, 64)
    assert fake.injected_failures == 2
    assert fake.generations == 1
    assert fake.active_jobs() == []


def test_5xx_that_does_not_stop_ends_with_a_clear_error(fake: FakeSwarm) -> None:
    fake.fail_next(50)
    with pytest.raises(SwarmUnreachable, match=f"cannot reach SwarmUI at {fake.url}.*HTTP 503"):
        generate(fake.url, retries=2)
    assert fake.injected_failures == 3
    assert fake.generations == 0


def test_server_down_fails_fast_with_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(SwarmUnreachable, match=f"cannot reach SwarmUI at {url}") as info:
        generate(url, backoff=0.05)
    assert time.monotonic() - started < 30
    assert info.value.hint is not None and "server.url" in info.value.hint


def test_server_down_is_remembered_so_later_calls_fail_at_once() -> None:
    attempts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request.url.path)
        raise httpx.ConnectError("Connection refused", request=request)

    async def body(client: SwarmClient) -> None:
        for _ in range(3):
            with pytest.raises(SwarmUnreachable):
                await client.generate(dict(PARAMS), {}, lambda _: None)

    with_client("http://swarm.test", body, transport=httpx.MockTransport(handler), retries=3, websocket=False)
    assert len(attempts) == 4  # one bounded series of attempts, then the client knows


def test_generation_timeout_interrupts_the_servers_job() -> None:
    with FakeSwarm(backends=1, **dict(FAST, latency=5.0)) as fake:
        with pytest.raises(SwarmAPIError, match="longer than 0.5 s"):
            generate(fake.url, timeout=0.5)
        assert fake.interrupts >= 1
        assert fake.wait_idle(5)
        assert fake.generations == 0


# ------------------------------------------------------------------------------ WebSocket faults


@pytest.mark.parametrize("after", [0, 2])
def test_websocket_dropped_mid_generation_interrupts_the_orphan_and_finishes(after: int) -> None:
    with FakeSwarm(backends=1, **dict(FAST, latency=0.4)) as fake:
        fake.drop_websockets_after(progress_messages=after, count=1)

        async def body(client: SwarmClient) -> bytes:
            data = (await client.generate(dict(PARAMS), {}, lambda _: None)).data
            assert client.stats["drops"] == 1
            return data

        assert image_size(with_client(fake.url, body)) == (64, 64)
        assert fake.interrupts >= 1
        assert fake.wait_idle(5)
        assert fake.active_jobs() == []
        assert fake.generations == 1  # the orphan was stopped, not finished next to the retry
        assert fake.request_count("GenerateText2ImageWS") == 2


def test_websocket_refused_falls_back_to_http() -> None:
    with FakeSwarm(backends=1, websocket=False, **FAST) as fake:
        async def body(client: SwarmClient) -> None:
            for _ in range(2):
                await client.generate(dict(PARAMS), {}, lambda _: None)
            assert client.stats["ws_fallbacks"] == 1  # tried once, then HTTP for the rest of the run

        with_client(fake.url, body)
        assert [r.transport for r in fake.generation_log] == ["http", "http"]
        assert fake.request_count("GenerateText2Image") == 2


def test_intermediate_images_are_refused_on_the_http_route(fake: FakeSwarm) -> None:
    """The HTTP route answers a bare list of images, intermediates first: asked for them, it cannot say
    which image is the final one, so the asset fails with what to do instead of keeping the wrong one."""
    for name, value in (("outputintermediateimages", True), ("saveintermediateimages", "true")):
        with pytest.raises(SwarmAPIError, match="needs SwarmUI's WebSocket route"):
            generate(fake.url, dict(PARAMS, **{name: value}), websocket=False)
    assert fake.generations == 0
    generate(fake.url, dict(PARAMS, outputintermediateimages=False), websocket=False)  # (off: as usual)
    assert fake.generations == 1


def test_a_failed_websocket_connect_is_retried_not_sent_over_http_when_intermediates_are_asked(
        fake: FakeSwarm, monkeypatch: pytest.MonkeyPatch) -> None:
    """One failed connect sends that image over HTTP, unless it asks for intermediate images (which the
    HTTP route cannot tell from the final one): then the WebSocket connect is tried again."""
    real = swarm_client._connect_no_redirects  # noqa: SLF001
    attempts: list[str] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        attempts.append("connect")
        if len(attempts) == 1:
            raise OSError("connection refused (test)")
        return real(*args, **kwargs)

    monkeypatch.setattr(swarm_client, "_connect_no_redirects", flaky)
    generate(fake.url, dict(PARAMS, outputintermediateimages=True))
    assert attempts == ["connect", "connect"]
    assert [r.transport for r in fake.generation_log] == ["ws"]
    attempts.clear()
    generate(fake.url, dict(PARAMS))
    assert [r.transport for r in fake.generation_log] == ["ws", "http"]  # (as before: HTTP for that image)


def test_websocket_disabled_uses_only_http(fake: FakeSwarm) -> None:
    generate(fake.url, websocket=False)
    assert "GenerateText2ImageWS" not in routes(fake)
    assert [r.transport for r in fake.generation_log] == ["http"]


def test_websocket_proxy_is_looked_up_once_per_client_not_per_image(fake: FakeSwarm,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.request

    lookups: list[int] = []
    real = urllib.request.getproxies
    monkeypatch.setattr(urllib.request, "getproxies", lambda: lookups.append(1) or real())

    def lookups_for(images: int) -> int:
        lookups.clear()

        async def body(client: SwarmClient) -> None:
            for seed in range(images):
                await client.generate(dict(PARAMS, seed=seed), {}, lambda _: None)

        with_client(fake.url, body)
        return len(lookups)

    assert lookups_for(4) == lookups_for(1)  # websockets alone would read the environment on every connect
    assert [r.transport for r in fake.generation_log] == ["ws"] * 5


def test_websocket_proxy_from_the_environment_is_still_used(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("websockets.proxy")  # websockets >= 15; older versions use no proxy at all
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    client = SwarmClient("http://swarm.invalid:7801")
    uri = client._ws_url("/API/GenerateText2ImageWS")  # noqa: SLF001
    assert client._websocket_proxy(uri) == {"proxy": "http://proxy.invalid:3128"}  # noqa: SLF001
    monkeypatch.setenv("no_proxy", "swarm.invalid")
    assert SwarmClient("http://swarm.invalid:7801")._websocket_proxy(uri) == {"proxy": None}  # noqa: SLF001


# ------------------------------------------------------------------------------------- progress


def test_progress_phases_and_increasing_fractions() -> None:
    with FakeSwarm(backends=1, **dict(FAST, latency=0.3, steps=5, model_load_delay=0.05)) as fake:
        seen: list[Progress] = []
        generate(fake.url, progress=seen)
    phases = [p.phase for p in seen]
    assert phases[0] == "queued"
    assert phases[-1] == "downloading"
    order = [phase for i, phase in enumerate(phases) if i == 0 or phases[i - 1] != phase]
    assert order == ["queued", "waiting", "loading", "generating", "downloading"], phases
    fractions = [p.fraction for p in seen if p.fraction is not None]
    assert len(fractions) == 5
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] > 0


def test_http_generation_reports_coarse_progress(fake: FakeSwarm) -> None:
    seen: list[Progress] = []
    generate(fake.url, progress=seen, websocket=False)
    assert [p.phase for p in seen] == ["queued", "generating", "downloading"]


# ---------------------------------------------------------------------------------- images and views


def test_initimage_is_sent_as_a_data_url(fake: FakeSwarm) -> None:
    source = png(32, 32, (10, 200, 10))
    generate(fake.url, dict(PARAMS, initimagecreativity=0.6), images={"initimage": source})
    body = next(r.body for r in fake.requests if r.route == "GenerateText2ImageWS")
    assert body["initimage"] == data_url(source)
    assert base64.b64decode(body["initimage"].split(",", 1)[1]) == source
    assert body["initimagecreativity"] == 0.6
    assert body["images"] == 1 and body["donotsave"] is True


@pytest.mark.parametrize("websocket", [True, False], ids=["ws", "http"])
def test_view_paths_with_spaces_are_downloaded(fake: FakeSwarm, websocket: bool) -> None:
    data = generate(fake.url, dict(PARAMS, prompt="a cat with a hat & 100% style"), save_images=True,
                    websocket=websocket)
    assert fake.generation_log[0].image.startswith("View/local/")
    [downloaded] = fake.downloads
    assert " " in downloaded
    assert fake.stored_files()[downloaded] == data
    body = next(r.body for r in fake.requests if r.route.startswith("GenerateText2Image"))
    assert body["donotsave"] is False


def test_absolute_view_url_on_the_same_origin_is_allowed(fake: FakeSwarm) -> None:
    generate(fake.url, dict(PARAMS, prompt="keep me"), save_images=True)
    [path] = fake.stored_files()

    async def body(client: SwarmClient) -> bytes:
        return await client.fetch_image(f"{fake.url}/View/{path}")

    assert with_client(fake.url, body) == fake.stored_files()[path]


def test_missing_view_file_is_the_servers_error(fake: FakeSwarm) -> None:
    async def body(client: SwarmClient) -> None:
        with pytest.raises(SwarmAPIError, match="file not found") as info:
            await client.fetch_image("View/local/raw/nope.png")
        assert info.value.error_id == "file_not_found"

    with_client(fake.url, body)


@pytest.mark.parametrize(("save_images", "websocket"), [(False, True), (False, False), (True, True)],
                         ids=["data-ws", "data-http", "view"])
def test_image_size_limit(save_images: bool, websocket: bool) -> None:
    with FakeSwarm(backends=1, noise=True, **FAST) as fake:
        # Over HTTP the data URL arrives inside the JSON answer, which is bounded too (at 2x the image limit).
        with pytest.raises(SwarmBadImage, match="5000 byte" if websocket or save_images else "10000 byte"):
            generate(fake.url, dict(PARAMS, width=128, height=128), max_image_bytes=5000,
                     save_images=save_images, websocket=websocket)
        assert fake.generations == 1  # refused, not retried
        assert fake.wait_idle(5)


# -------------------------------------------------------------------------------------------- auth


def test_api_key_is_sent_on_every_request_including_upgrade_and_download() -> None:
    key = "k3y-for-tests-0123456789"
    with FakeSwarm(backends=1, required_authorization=f"Bearer {key}", **FAST) as fake:
        generate(fake.url, credentials=Credentials(api_key=key), save_images=True)
        assert fake.generation_log[0].transport == "ws"
        assert len(fake.downloads) == 1
        with pytest.raises(SwarmAuthError, match="401") as info:
            generate(fake.url)
        assert info.value.hint is not None and "ASSETBUILD_API_KEY" in info.value.hint
        with pytest.raises(SwarmAuthError):
            generate(fake.url, credentials=Credentials(api_key="wrong"))
        assert fake.generations == 1


def test_api_key_is_sent_on_the_websocket_upgrade() -> None:
    key = "k3y-for-tests-0123456789"
    with FakeSwarm(backends=1, **FAST) as fake:
        generate(fake.url)  # a session exists, then the upgrade alone requires the key
        fake.configure(required_authorization=f"Bearer {key}")
        generate(fake.url, credentials=Credentials(api_key=key))
        assert [r.transport for r in fake.generation_log] == ["ws", "ws"]


def test_swarm_token_cookie() -> None:
    with FakeSwarm(backends=1, accounts={"alice": "pw"}, **FAST) as fake:
        token = fake.create_token("alice")
        generate(fake.url, credentials=Credentials(token=token), save_images=True)
        assert fake.generation_log[0].user == "alice"
        assert fake.downloads[0].startswith("alice/")
        with pytest.raises(SwarmAuthError, match="Invalid or unauthorized"):
            generate(fake.url)


def test_credentials_are_never_in_repr() -> None:
    credentials = Credentials(api_key="super-secret-key-value", token="token-value-secret")
    assert "secret" not in repr(credentials)
    assert "secret" not in repr(SwarmClient("http://127.0.0.1:9", credentials).credentials)


# ----------------------------------------------------------------------------------- concurrency


def test_concurrency_caps_generations_in_flight() -> None:
    with FakeSwarm(backends=3, **dict(FAST, latency=0.2)) as fake:
        async def body(client: SwarmClient) -> None:
            await asyncio.gather(*(client.generate(dict(PARAMS, prompt=f"image {n}"), {}, lambda _: None)
                                   for n in range(6)))

        with_client(fake.url, body, concurrency=2)
        assert fake.generations == 6
        assert fake.peak_live_gens == 2  # never more, and the two slots were used together
        assert fake.request_count("GetNewSession") == 2


# ------------------------------------------------------------------------------ cancellation


def test_cancelled_generation_interrupts_the_servers_job() -> None:
    with FakeSwarm(backends=1, **dict(FAST, latency=5.0)) as fake:
        async def body(client: SwarmClient) -> None:
            task = asyncio.create_task(client.generate(dict(PARAMS), {}, lambda _: None))
            while not any(job.finished == 0 for job in fake.active_jobs()):
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        with_client(fake.url, body)
        assert fake.interrupts >= 1
        assert fake.wait_idle(5)
        assert fake.generations == 0


# --------------------------------------------------------------------- SwarmUIGenerator (sync bridge)


def settings(url: str, **changes: Any) -> ServerSettings:
    return ServerSettings(**{"url": url, "concurrency": 2, "timeout": 30.0, **changes})


def request(asset: str = "sprites/hero.png", **params: Any) -> GenerationRequest:
    return GenerationRequest(asset, dict(PARAMS, **params))


@pytest.fixture
def generator_for() -> Iterator[Callable[..., SwarmUIGenerator]]:
    made: list[SwarmUIGenerator] = []

    def make(url: str, credentials: Credentials | None = None, **changes: Any) -> SwarmUIGenerator:
        generator = SwarmUIGenerator(settings(url, **changes), credentials or Credentials(), backoff=0.01)
        made.append(generator)
        return generator

    yield make
    for generator in made:
        generator.close()


def test_generator_from_worker_threads_shares_one_client(fake: FakeSwarm,
                                                          generator_for: Callable[..., SwarmUIGenerator]) -> None:
    fake.set_backends(3)
    generator = generator_for(fake.url)
    assert generator.client is None  # nothing contacted before the first generation
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda n: generator.generate(request(f"a{n}.png", prompt=f"p{n}", seed=n),
                                                             lambda _: None), range(6)))
    assert all(image_size(r.data) == (64, 64) for r in results)
    assert [r.seed for r in results] == list(range(6))
    assert all(r.model == MODEL for r in results)
    assert fake.generations == 6
    assert fake.peak_live_gens <= 2
    assert fake.request_count("GetNewSession") <= 2


def test_generator_errors_name_the_asset(generator_for: Callable[..., SwarmUIGenerator]) -> None:
    with FakeSwarm(backends=0, no_backend_delay=0.1, **FAST) as fake, pytest.raises(ServerError) as info:
        generator_for(fake.url).generate(request("ui/icon.png"), lambda _: None)
    assert str(info.value).startswith("ui/icon.png: No backends available!")


def test_generator_unreachable_and_auth_errors(generator_for: Callable[..., SwarmUIGenerator]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServerUnreachable, match=f"a.png: cannot reach SwarmUI at {url}"):
        generator_for(url).generate(request("a.png"), lambda _: None)
    key = "do-not-print-this-key-0123"
    with FakeSwarm(backends=1, required_authorization="Bearer right", **FAST) as fake, \
            pytest.raises(AuthError) as info:
        generator_for(fake.url, Credentials(api_key=key)).generate(request("b.png"), lambda _: None)
    assert "b.png" in str(info.value) and key not in str(info.value)


def test_generator_interrupt_stops_only_our_work(generator_for: Callable[..., SwarmUIGenerator]) -> None:
    with FakeSwarm(backends=2, **dict(FAST, latency=1.5)) as fake:
        foreign = fake.create_session()
        foreign_result: dict[str, Any] = {}

        def someone_else() -> None:
            with httpx.Client(base_url=fake.url, timeout=30) as http:
                foreign_result.update(http.post("/API/GenerateText2Image", json={
                    "session_id": foreign, "images": 1, "prompt": "not ours", "model": MODEL,
                    "width": 64, "height": 64, "donotsave": True}).json())

        other = threading.Thread(target=someone_else)
        other.start()
        generator = generator_for(fake.url)
        errors: list[BaseException] = []

        def ours() -> None:
            try:
                generator.generate(request("mine.png"), lambda _: None)
            except BaseException as exc:  # noqa: BLE001 - checked below
                errors.append(exc)

        worker = threading.Thread(target=ours)
        worker.start()
        deadline = time.monotonic() + 10
        while len(fake.active_jobs()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        generator.interrupt()
        worker.join(10)
        assert not worker.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], GenerationError)
        assert "mine.png" in str(errors[0])
        other.join(10)
        assert fake.interrupts >= 1
        assert fake.wait_idle(5)
        assert "images" in foreign_result  # the other session's job finished
        assert [r.prompt for r in fake.generation_log] == ["not ours"]


def test_generator_refuses_new_work_once_interrupted(fake: FakeSwarm,
                                                    generator_for: Callable[..., SwarmUIGenerator]) -> None:
    generator = generator_for(fake.url)
    generator.generate(request(), lambda _: None)
    before = fake.requests
    generator.interrupt()  # nothing in flight: nothing to cancel, and no new generation may start
    with pytest.raises(GenerationError, match="b.png: interrupted"):
        generator.generate(request("b.png"), lambda _: None)
    assert {r.route for r in fake.requests[len(before):]} <= {"InterruptAll"}  # no new generation request
    assert fake.generations == 1


def test_generator_close_is_idempotent_and_refuses_later_work(fake: FakeSwarm) -> None:
    generator = SwarmUIGenerator(settings(fake.url), Credentials())
    generator.generate(request(), lambda _: None)
    generator.close()
    generator.close()
    with pytest.raises(GenerationError, match="closed"):
        generator.generate(request(), lambda _: None)


def test_generator_close_right_after_interrupt_leaves_no_failed_task(caplog: pytest.LogCaptureFixture) -> None:
    """A cancelled generation still sends InterruptAll on its way out: close() must not pull the HTTP
    client from under it (that printed "Task exception was never retrieved" after Ctrl-C)."""
    with FakeSwarm(backends=1, **dict(FAST, latency=5.0)) as fake:
        for _ in range(4):
            generator = SwarmUIGenerator(settings(fake.url), Credentials())
            errors: list[BaseException] = []

            def work(generator: SwarmUIGenerator = generator, errors: list[BaseException] = errors) -> None:
                try:
                    generator.generate(request(), lambda _: None)
                except GenerationError as exc:
                    errors.append(exc)

            worker = threading.Thread(target=work)
            worker.start()
            deadline = time.monotonic() + 10
            while not fake.active_jobs() and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(0.1)  # generating, not just queued
            generator.interrupt()
            worker.join(10)
            generator.close()  # at once, as the CLI does when the build returns
            assert len(errors) == 1
            gc.collect()
            assert fake.wait_idle(5)
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections and reads requests but never answers (a hung process)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_a_server_that_never_answers_is_marked_down_after_one_timeout(silent_server: str) -> None:
    generator = SwarmUIGenerator(ServerSettings(url=silent_server, concurrency=2), Credentials(),
                                 control_timeout=0.5)
    try:
        started = time.monotonic()
        errors = []
        for n in range(4):
            with pytest.raises(ServerUnreachable) as info:
                generator.generate(GenerationRequest(f"a{n}.png", PARAMS), lambda _: None)
            errors.append(info.value)
        elapsed = time.monotonic() - started
    finally:
        generator.close()
    assert "did not answer GetNewSession within 0.5 s" in str(errors[0])
    assert silent_server in str(errors[0])
    assert all(str(e).endswith(str(errors[0]).split(": ", 1)[1]) for e in errors)
    assert elapsed < 20  # one timeout for the whole run, not one per asset (generous bound)


def test_refused_credentials_that_are_set_get_a_hint_about_them() -> None:
    with FakeSwarm(required_authorization="Bearer right", **FAST) as fake:
        generator = SwarmUIGenerator(ServerSettings(url=fake.url), Credentials(api_key="wrong-key-123456"))
        try:
            with pytest.raises(AuthError) as info:
                generator.generate(GenerationRequest("a.png", PARAMS), lambda _: None)
        finally:
            generator.close()
    assert "server refused them" in str(info.value)
    assert "wrong-key-123456" not in str(info.value)


def test_every_swarm_error_type_has_its_own_row_in_the_one_error_map() -> None:
    """Issue 13: SwarmUI errors become assetbuild's in exactly one place (generators.swarmui.ERROR_MAP)."""
    import inspect

    from assetbuild import errors as app_errors
    from assetbuild.generators.swarmui import ERROR_MAP, as_asset_error
    from assetbuild.swarm import errors as swarm_errors

    client_types = {cls for _name, cls in inspect.getmembers(swarm_errors, inspect.isclass)
                    if issubclass(cls, SwarmError) and cls.__module__ == swarm_errors.__name__}
    rows = [source for source, _target in ERROR_MAP]
    assert client_types == set(rows) and len(rows) == len(set(rows))
    for index, source in enumerate(rows):  # a subclass row must come before its base's, or it never matches
        assert not any(issubclass(source, earlier) for earlier in rows[:index]), source
    secret = Credentials(api_key="s3cr3t-key-value")
    for source, target in ERROR_MAP:
        mapped = as_asset_error("a.png", source("failed with s3cr3t-key-value"), secret)
        assert type(mapped) is target and issubclass(target, app_errors.AssetError)
        assert mapped.asset == "a.png" and "s3cr3t" not in str(mapped)


# ------------------------------------------------------------------------- kept WebSockets (issue 16)


def prompt_of(data: bytes) -> str:
    """The prompt the double wrote into an image's metadata (SwarmUI's ``parameters`` text chunk)."""
    with Image.open(io.BytesIO(data)) as image:
        return str(json.loads(image.text["parameters"])["sui_image_params"]["prompt"])  # type: ignore[attr-defined]


def test_a_slots_next_generation_is_sent_on_its_open_websocket(fake: FakeSwarm) -> None:
    """SwarmUI reads another request on a finished generation's socket for 2 s: one slot's generations
    share one connection, each gets its own image, and the run's end closes the socket."""
    kept: list[Any] = []

    async def body(client: SwarmClient) -> list[bytes]:
        images = [(await client.generate(dict(PARAMS, prompt=f"image {n}", seed=n), {}, lambda _: None)).data
                  for n in range(3)]
        kept.extend(slot.socket for slot in client.slots.all)
        return [data for data in images if data is not None]

    images = with_client(fake.url, body, concurrency=1)
    assert [prompt_of(data) for data in images] == ["image 0", "image 1", "image 2"]
    assert fake.generations == 3 and fake.request_count("GenerateText2ImageWS") == 3
    assert fake.websockets_opened == 1
    assert len(kept) == 1 and kept[0] is not None and kept[0].state is State.CLOSED  # aclose closed it


def test_a_kept_websocket_the_server_closed_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server closes a finished generation's socket after its wait (here 0.05 s, and the client would
    keep it for 30 s): the next generation connects again, with no drop, retry or interrupt."""
    monkeypatch.setattr(swarm_client, "SOCKET_REUSE_SECONDS", 30.0)
    with FakeSwarm(backends=1, **FAST) as fake:
        async def body(client: SwarmClient) -> dict[str, int]:
            await client.generate(dict(PARAMS), {}, lambda _: None)
            (slot,) = client.slots.all
            await asyncio.wait_for(slot.socket.wait_closed(), 10)  # the server's close, seen by the client
            await client.generate(dict(PARAMS, prompt="a dog"), {}, lambda _: None)
            return dict(client.stats)

        stats = with_client(fake.url, body, concurrency=1)
        assert fake.generations == 2 and fake.websockets_opened == 2
        assert stats["drops"] == 0 and stats["interrupts"] == 0 and fake.interrupts == 0


def test_a_kept_websocket_closed_before_any_answer_is_stale_not_a_dropped_generation() -> None:
    """Closed normally by the server before one frame came back for the request sent on it, a kept socket
    was no longer read (nothing of ours runs there: connect again, no interrupt). On a new socket the same
    close is a lost generation (retried after stopping the server's job), and so is a kept socket lost
    without the server's close frame: the request may have reached the server."""
    clean = ConnectionClosedError(Close(CloseCode.NORMAL_CLOSURE, ""), None)  # the server's close, unanswered
    lost = ConnectionClosedError(None, None)

    def read(frames: list[Any], *, reused: bool, closed: ConnectionClosedError = clean) -> object:
        async def body(client: SwarmClient) -> object:
            return await client._read_generation(StubSocket(frames, closed), lambda _: None, reused=reused)  # type: ignore[arg-type]  # noqa: SLF001

        return with_client("http://127.0.0.1:9", body)

    with pytest.raises(swarm_client._StaleSocket):  # noqa: SLF001
        read([], reused=True)
    with pytest.raises(_Dropped) as dropped:
        read([], reused=True, closed=lost)
    assert dropped.value.started  # the server's job is stopped before the request goes out again
    with pytest.raises(_Dropped):
        read([], reused=True, closed=ConnectionClosedError(Close(CloseCode.INTERNAL_ERROR, ""), None))
    # Closed normally (the iteration just ends) after only the server's own close intent and idle status.
    stale = StubSocket([{"socket_intention": "close"}, status()])
    with pytest.raises(swarm_client._StaleSocket):  # noqa: SLF001
        with_client("http://127.0.0.1:9", lambda client: client._read_generation(stale, lambda _: None, reused=True))  # type: ignore[arg-type]  # noqa: SLF001
    with pytest.raises(_Dropped):
        read([], reused=False)
    # One frame of the request came back: then it did run, and a close is a lost generation.
    with pytest.raises(_Dropped):
        read([status(waiting=1)], reused=True)


@pytest.mark.timeout(20)  # a request that waited for the close intent would wait out the server's 60 s
def test_a_request_on_a_kept_websocket_ends_with_its_discard_list_not_the_sockets_close_intent() -> None:
    """SwarmUI sends ``socket_intention: close`` only after its wait for more requests is over, even when
    one came during it: a request on a kept socket ends with its own ``discard_indices``."""
    with FakeSwarm(backends=1, **dict(FAST, close_delay=60.0)) as fake:
        async def body(client: SwarmClient) -> list[str]:
            results = [await client.generate(dict(PARAMS, prompt=f"image {n}"), {}, lambda _: None) for n in range(3)]
            return [prompt_of(result.data or b"") for result in results]

        assert with_client(fake.url, body, concurrency=1) == ["image 0", "image 1", "image 2"]
        assert fake.websockets_opened == 1 and fake.generations == 3


def test_reader_on_a_kept_socket_skips_the_servers_close_intents() -> None:
    """On a kept socket the close intent the server sent after the last request (before this one's frames,
    or just after its first one) is not this request's end; its discard list is."""
    image = {"image": "data:mine", "batch_index": "1"}
    for frames in ([{"socket_intention": "close"}, status(waiting=1), image, *TAIL],
                   [status(waiting=1), {"socket_intention": "close"}, status(live=1), image, *TAIL]):
        stub = StubSocket(frames)

        async def body(client: SwarmClient, stub: StubSocket = stub) -> tuple[messages.ImageMessage, bool]:
            return await client._read_generation(stub, lambda _: None, reused=True)  # type: ignore[arg-type]  # noqa: SLF001

        message, ended = with_client("http://127.0.0.1:9", body)
        assert message.image == "data:mine" and ended
        assert stub.consumed == len(frames) - 2  # up to its discard list
    # A second close intent is this request's own: its handler ended without an error frame or image.
    stub = StubSocket([{"socket_intention": "close"}, status(waiting=1), {"socket_intention": "close"}, status()])
    with pytest.raises(SwarmAPIError, match="without sending an image"):
        with_client("http://127.0.0.1:9", lambda client: client._read_generation(stub, lambda _: None, reused=True))  # type: ignore[arg-type]  # noqa: SLF001
    assert stub.consumed == 3  # it ended there, not at the socket's close
    # On a new socket the close intent ends the request (a server that sends no discard list): not kept.
    message, ended = with_client("http://127.0.0.1:9", lambda client: client._read_generation(  # type: ignore[arg-type]  # noqa: SLF001
        StubSocket([status(waiting=1), image, {"socket_intention": "close"}, status()]), lambda _: None))
    assert message.image == "data:mine" and not ended


def test_a_server_that_reads_one_request_per_socket_costs_one_wait_then_no_socket_is_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that never reads a second request on a socket closes it after its pause, unanswered: that
    request goes out again on a new socket (not a lost generation: no drop, no interrupt), and the run
    keeps no more sockets, so no other request waits out that pause."""
    from assetbuild.testing import _fake_server

    async def deaf(self: Any, conn: Any, *_args: Any) -> None:
        async for _message in conn.ws:  # frames are read (a close is answered) and ignored
            pass

    monkeypatch.setattr(_fake_server.FakeServer, "_read_more", deaf)
    with FakeSwarm(backends=1, **dict(FAST, close_delay=0.2)) as fake:
        async def body(client: SwarmClient) -> list[str]:
            results = [await client.generate(dict(PARAMS, prompt=f"image {n}"), {}, lambda _: None) for n in range(4)]
            assert client.stats["drops"] == 0 and client.stats["interrupts"] == 0
            return [prompt_of(result.data or b"") for result in results]

        assert with_client(fake.url, body, concurrency=1) == [f"image {n}" for n in range(4)]
        # the first socket, the second one's unread request on it then its own socket, then one each
        assert fake.websockets_opened == 4 and fake.generations == 4 and fake.interrupts == 0
        assert fake.request_count("GenerateText2ImageWS") == 4  # the unread request was never recorded


# A run that waited for the server's answers to its closes would wait out the double's 60 s pause, or
# websockets' close timeout, or the generator's drain and close (all three raised to 120 s below): the
# test's timeout catches it. Without such a wait, each of these tests takes about a second.
PATIENT_CLOSES = 20


@pytest.fixture
def patient_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    from assetbuild.generators import swarmui

    monkeypatch.setattr(swarm_client, "WS_CLOSE_TIMEOUT", 120.0)
    monkeypatch.setattr(swarmui, "DRAIN_SECONDS", 120.0)
    monkeypatch.setattr(swarmui, "CLOSE_SECONDS", 120.0)


@pytest.mark.timeout(PATIENT_CLOSES)
@pytest.mark.usefixtures("patient_closes")
def test_a_socket_that_is_not_kept_closes_in_the_background_and_the_run_end_does_not_wait_for_swarmui() -> None:
    """SwarmUI (and the double) answer a client's close only after the pause that follows the close
    intent: a generation whose socket is not kept returns at its discard list, its socket still closing,
    and the client's end gives such closes only a moment before ending them at the TCP level."""
    with FakeSwarm(backends=1, **dict(FAST, close_delay=60.0)) as fake:
        closing: list[list[State]] = []
        sockets: list[Any] = []

        async def body(client: SwarmClient) -> list[str]:
            client._keep_sockets = False  # noqa: SLF001 - as after a server that read only one request per socket
            prompts = []
            for n in range(2):
                result = await client.generate(dict(PARAMS, prompt=f"image {n}"), {}, lambda _: None)
                prompts.append(prompt_of(result.data or b""))
                closing.append([ws.state for ws in client._closing.values()])  # noqa: SLF001
                sockets.extend(client._closing.values())  # noqa: SLF001
            return prompts

        assert with_client(fake.url, body, concurrency=1) == ["image 0", "image 1"]
        assert [len(states) for states in closing] == [1, 2]  # being closed, in the background
        assert State.CLOSED not in closing[-1]  # neither close was answered yet
        assert fake.websockets_opened == 2 and fake.generations == 2
        assert {ws.state for ws in sockets} == {State.CLOSED}  # the client's end closed both


@pytest.mark.timeout(PATIENT_CLOSES)
@pytest.mark.usefixtures("patient_closes")
def test_closing_the_generator_does_not_wait_for_sockets_being_closed() -> None:
    """The generator's close drains generations still on their way out, not the sockets the client is
    closing in the background (it waited for each until websockets gave up, after 2 s)."""
    with FakeSwarm(backends=1, **dict(FAST, close_delay=60.0)) as fake:
        generator = SwarmUIGenerator(settings(fake.url, concurrency=1), Credentials())
        try:
            first = generator.generate(request(prompt="image 0"), lambda _: None)
            client = generator.client
            assert client is not None
            client._keep_sockets = False  # noqa: SLF001 - (a plain bool, read by the client's loop)
            second = generator.generate(request(prompt="image 1"), lambda _: None)
            assert len(client.closing_sockets()) == 2  # the first one's kept socket too, once not kept
        finally:
            generator.close()
        assert [prompt_of(first.data), prompt_of(second.data)] == ["image 0", "image 1"]
        assert fake.websockets_opened == 2


def test_no_socket_is_reused_once_the_run_keeps_none() -> None:
    """A socket kept before the run stopped keeping sockets is closed, not reused."""
    with FakeSwarm(backends=1, **FAST) as fake:
        async def body(client: SwarmClient) -> tuple[Any, Any]:
            await client.generate(dict(PARAMS), {}, lambda _: None)
            (slot,) = client.slots.all
            kept = slot.socket
            client._keep_sockets = False  # noqa: SLF001
            return kept, client._kept_socket(slot)  # noqa: SLF001

        kept, reused = with_client(fake.url, body, concurrency=1)
        assert kept is not None and reused is None and kept.state is State.CLOSED
