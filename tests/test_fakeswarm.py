"""Tests of the SwarmUI test double itself, over real loopback sockets with raw httpx/websockets clients."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from PIL import Image
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from assetbuild.testing import FakeSwarm

pytestmark = pytest.mark.timeout(60)

INVALID_SESSION = {"error": "Invalid session ID. You may need to refresh the page.",
                   "error_id": "invalid_session_id"}
XL = "OfficialStableDiffusion/sd_xl_base_1.0.safetensors"
KINDS = ("status", "gen_progress", "image", "keep_alive", "discard_indices", "socket_intention", "error")
FAST: dict[str, Any] = {"latency": 0.02, "steps": 2, "close_delay": 0.05, "model_load_delay": 0.01}


# --------------------------------------------------------------------------------------------- helpers


@pytest.fixture
def fake() -> Iterator[FakeSwarm]:
    with FakeSwarm(backends=1, **FAST) as server:
        yield server


@pytest.fixture
def client(fake: FakeSwarm) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, timeout=20) as http:
        yield http


@pytest.fixture
def session(client: httpx.Client) -> str:
    return new_session(client)


def new_session(client: httpx.Client, **headers: str) -> str:
    response = client.post("/API/GetNewSession", json={}, headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["session_id"])


def api(client: httpx.Client, route: str, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return client.post(f"/API/{route}", json=body, **kwargs)


def kind(message: dict[str, Any]) -> str:
    return next(k for k in KINDS if k in message)


def status_counts(message: dict[str, Any]) -> tuple[int, int, int, int]:
    s = message["status"]
    return s["waiting_gens"], s["loading_models"], s["waiting_backends"], s["live_gens"]


class WSResult:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.dropped = False

    @property
    def kinds(self) -> list[str]:
        return [kind(m) for m in self.messages]

    def of(self, name: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if kind(m) == name]


def ws_generate(fake: FakeSwarm, body: dict[str, Any],
                on_message: Callable[[ClientConnection, dict[str, Any]], None] | None = None) -> WSResult:
    """Send one request frame and collect every frame until the server closes (or drops) the socket."""
    result = WSResult()
    with connect(f"{fake.ws_url}/API/GenerateText2ImageWS", open_timeout=10) as ws:
        ws.send(json.dumps(body))
        while True:
            try:
                raw = ws.recv(timeout=20)
            except ConnectionClosedOK:
                break
            except ConnectionClosedError:
                result.dropped = True
                break
            message = json.loads(raw)
            result.messages.append(message)
            if on_message is not None:
                on_message(ws, message)
        result.close_code = ws.close_code
    return result


def gen_body(session: str, **params: Any) -> dict[str, Any]:
    return {"session_id": session, "images": 1, "prompt": "a red fox", "model": "sd_xl_base_1.0",
            "width": 64, "height": 64, **params}


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


# ------------------------------------------------------------------------------------ envelope (§11.1)


def test_envelope_errors_in_dispatcher_order(fake: FakeSwarm, client: httpx.Client, session: str) -> None:
    def error(response: httpx.Response) -> tuple[int, str]:
        return response.status_code, response.text

    wrong_type = client.post("/API/ListModels", content=b"{}", headers={"Content-Type": "text/plain"})
    assert error(wrong_type) == (400, '{"error_id":"basic_api","error":"Wrong content type"}')
    empty = client.post("/API/ListModels", content=b"", headers={"Content-Type": "application/json"})
    assert error(empty) == (400, '{"error_id":"basic_api","error":"bad content length"}')
    chunked = client.post("/API/ListModels", content=iter([b"{}"]), headers={"Content-Type": "application/json"})
    assert error(chunked) == (400, '{"error_id":"basic_api","error":"bad content length"}')
    for bad in (b"{nope", b"[1, 2]"):
        response = client.post("/API/ListModels", content=bad, headers={"Content-Type": "application/json"})
        assert error(response) == (400, '{"error_id":"internal_error","error":"An internal error occurred"}')
    assert error(api(client, "ListModels", {})) == (400, '{"error_id":"basic_api","error":"missing session id"}')
    unknown = api(client, "ListModels", {"session_id": "0" * 40})
    assert unknown.status_code == 401 and unknown.json() == INVALID_SESSION
    assert list(unknown.json()) == ["error", "error_id"]
    # The session is checked before the route exists.
    assert api(client, "NoSuchRoute", {"session_id": "0" * 40}).status_code == 401
    assert error(api(client, "NoSuchRoute", {"session_id": session})) == (
        400, '{"error_id":"bad_route","error":"Unknown API route"}')
    assert error(api(client, "GenerateText2ImageWS", {"session_id": session, "images": 1})) == (
        400, '{"error_id":"bad_request_method","error":"API route needs websocket, request is HTTP"}')
    # Handler-level errors are HTTP 200 with an "error" key.
    missing = api(client, "ListModels", {"session_id": session})
    assert error(missing) == (200, '{"error":"Missing required parameter \'path\'"}')
    assert missing.headers["Cache-Control"] == "no-store"
    assert missing.headers["Content-Type"].startswith("application/json")


def test_route_names_case_insensitive_and_session_header(client: httpx.Client, session: str) -> None:
    assert client.post("/api/getnewsession", json={}).status_code == 200
    status = client.post("/API/getcurrentstatus", json={}, headers={"X-Session-ID": session})
    assert status.status_code == 200
    assert status.json()["status"] == {"waiting_gens": 0, "loading_models": 0, "waiting_backends": 0,
                                       "live_gens": 0}


def test_get_on_api_redirects(client: httpx.Client) -> None:
    response = client.get("/API/GetNewSession", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == "/Error/NoGetAPI"


def test_get_new_session_shape(client: httpx.Client, fake: FakeSwarm) -> None:
    response = api(client, "GetNewSession", {})
    data = response.json()
    assert list(data) == ["session_id", "user_id", "output_append_user", "version", "server_id", "permissions"]
    assert re.fullmatch(r"[0-9a-f]{40}", data["session_id"])
    assert data["user_id"] == "local" and data["output_append_user"] is True
    assert "*" in data["permissions"]
    assert ": " not in response.text and ", " not in response.text  # compact JSON
    assert data["session_id"] in fake.session_ids()


# ------------------------------------------------------------------------------------- HTTP generation


def test_http_generate_saves_view_paths_with_spaces(fake: FakeSwarm, client: httpx.Client, session: str) -> None:
    body = gen_body(session, images=2, seed=42, width=96, height=64)
    response = api(client, "GenerateText2Image", body)
    assert response.status_code == 200
    paths = response.json()["images"]
    assert len(paths) == 2
    for path in paths:
        assert re.fullmatch(r"View/local/raw/\d{4}-\d{2}-\d{2}/\d{7}-a red fox-"
                            r"OfficialStableDiffusionsd_xl_base_10\.png", path), path
    download = client.get("/" + quote(paths[0]))
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(download.content))
    assert image.size == (96, 64)
    metadata = json.loads(image.info["parameters"])
    assert metadata["sui_image_params"]["prompt"] == "a red fox"
    assert metadata["sui_image_params"]["seed"] == 42
    assert "generation_time" in metadata["sui_extra_data"]
    assert fake.downloads == [paths[0][len("View/"):]]
    assert [r.seed for r in fake.generation_log] == [42, 43]  # seed + index
    assert fake.generations == 2


def test_view_errors(client: httpx.Client) -> None:
    missing = client.get("/View/local/raw/2020-01-01/nothing.png")
    assert missing.status_code == 404
    assert missing.text == '{"error":"404, file not found.","error_id":"file_not_found"}'
    other = client.get("/View/bob/raw/2020-01-01/nothing.png")
    assert other.status_code == 400
    assert other.json() == {"error": "unauthorized - you may not view other users' outputs",
                            "error_id": "unauthorized"}


def test_images_are_deterministic_in_pixels_only(client: httpx.Client, session: str) -> None:
    def pixels(seed: int, prompt: str = "a red fox") -> tuple[bytes, bytes]:
        body = gen_body(session, seed=seed, prompt=prompt, donotsave=True)
        url = api(client, "GenerateText2Image", body).json()["images"][0]
        png = base64.b64decode(url.split(",", 1)[1])
        return Image.open(io.BytesIO(png)).convert("RGB").tobytes(), png

    first_pixels, first_png = pixels(7)
    again_pixels, again_png = pixels(7)
    assert first_pixels == again_pixels
    assert first_png != again_png  # volatile metadata (date, timings)
    assert pixels(8)[0] != first_pixels
    assert pixels(7, "a blue fox")[0] != first_pixels


def test_donotsave_returns_data_url(fake: FakeSwarm, client: httpx.Client, session: str) -> None:
    response = api(client, "GenerateText2Image", gen_body(session, donotsave=True, width=80, height=72))
    (url,) = response.json()["images"]
    assert url.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert image.size == (80, 72)
    assert fake.stored_files() == {}


def test_random_seed_and_coercion_and_key_aliases(fake: FakeSwarm, client: httpx.Client, session: str) -> None:
    body = {"session_id": session, "images": "2", "Prompt": "x", "model": "SD_XL_BASE", "cfg_scale": "7.5",
            "Do_Not_Save": True, "width": 64.0, "height": "64", "seed": -1, "not_a_param": [1, 2]}
    response = api(client, "GenerateText2Image", body)
    assert len(response.json()["images"]) == 2, response.text
    first, second = fake.generation_log
    assert first.model == XL and first.seed >= 0 and second.seed == first.seed + 1
    route, recorded = fake.requests[-1]
    assert route == "GenerateText2Image"
    assert recorded == {"images": "2", "prompt": "x", "model": "SD_XL_BASE", "cfgscale": "7.5",
                        "donotsave": True, "width": 64.0, "height": "64", "seed": -1, "notaparam": [1, 2]}


@pytest.mark.parametrize(("params", "message"), [
    ({"steps": 1000}, "Invalid value for parameter Steps: Invalid integer value for param Steps - '1000' - "
                      "must be between 0 and 500"),
    ({"steps": "ten"}, "Invalid value for parameter Steps: Invalid integer value for param Steps - 'ten' - "
                       "must be a valid integer (eg '0', '3', '-5', etc)"),
    ({"cfgscale": 101}, "Invalid value for parameter CFG Scale: Invalid decimal value for param CFG Scale - "
                        "'101' - must be between 0 and 100"),
    ({"width": 32}, "Invalid value for parameter Width: Invalid integer value for param Width - '32' - "
                    "must be between 64 and 16384"),
    ({"height": 20000}, "Invalid value for parameter Height: Invalid integer value for param Height - "
                        "'20000' - must be between 64 and 16384"),
    ({"images": 0}, "Invalid value for parameter Images: Invalid integer value for param Images - '0' - "
                    "must be between 1 and 10000"),
    ({"donotsave": "yes"}, "Invalid value for parameter Do Not Save: Invalid boolean value for param "
                           "Do Not Save - 'yes' - must be exactly 'true' or 'false'"),
    ({"model": "nope"}, "Invalid value for parameter Model: Invalid model value for param Model - 'nope' - "
                        "are you sure that model name is correct?"),
    ({"initimage": "not an image!"}, "Invalid value for parameter Init Image: Invalid image value for param "
                                     "Init Image - 'not an image!' - must be a valid base64 string - got "
                                     "'not an ima...'"),
    ({"images": "abc"}, "Invalid value 'abc' for parameter 'images', must be type 'Int32'"),
])
def test_validation_errors(client: httpx.Client, session: str, params: dict[str, Any], message: str) -> None:
    response = api(client, "GenerateText2Image", gen_body(session, **params))
    assert response.status_code == 200
    assert response.json() == {"error": message}


def test_missing_images_and_model(fake: FakeSwarm, client: httpx.Client, session: str) -> None:
    body = gen_body(session)
    del body["images"]
    assert api(client, "GenerateText2Image", body).json() == {"error": "Missing required parameter 'images'"}
    body = gen_body(session)
    del body["model"]
    assert api(client, "GenerateText2Image", body).json() == {
        "error": "No model input given. Did your UI load properly?"}
    assert fake.generations == 0


def test_init_image_data_url_accepted(client: httpx.Client, session: str) -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, "PNG")
    init = "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
    response = api(client, "GenerateText2Image", gen_body(session, initimage=init, donotsave=True))
    assert len(response.json()["images"]) == 1


def test_noise_option_makes_big_incompressible_pngs() -> None:
    with FakeSwarm(noise=True, **FAST) as fake, httpx.Client(base_url=fake.url, timeout=20) as client:
        body = gen_body(new_session(client), width=592, height=592, donotsave=True)
        url = api(client, "GenerateText2Image", body).json()["images"][0]
        assert len(base64.b64decode(url.split(",", 1)[1])) > 1_000_000


# ------------------------------------------------------------------------------------------ WebSocket


def test_ws_message_sequence(fake: FakeSwarm, session: str) -> None:
    result = ws_generate(fake, gen_body(session))
    assert result.kinds == [
        "status", "status", "status", "status", "status",  # claim, wait backend, model load, got it, live
        "gen_progress", "gen_progress", "image", "status", "keep_alive", "discard_indices",
        "socket_intention", "status",
    ]
    assert result.close_code == 1000
    assert [status_counts(m) for m in result.of("status")] == [
        (1, 0, 0, 0), (1, 0, 1, 0), (1, 1, 1, 0), (1, 0, 0, 0), (1, 0, 0, 1), (0, 0, 0, 0), (0, 0, 0, 0)]
    first, second = (m["gen_progress"] for m in result.of("gen_progress"))
    assert first == {"batch_index": "0", "request_id": "1001", "overall_percent": 0.5, "current_percent": 0.5}
    assert list(second) == ["batch_index", "request_id", "preview", "overall_percent", "current_percent"]
    assert second["preview"].startswith("data:image/jpeg;base64,")
    assert isinstance(second["current_percent"], float)
    (image,) = result.of("image")
    assert list(image) == ["image", "batch_index", "request_id", "metadata"]
    assert image["batch_index"] == "0" and image["request_id"] == "1001"
    assert image["image"].startswith("View/local/raw/")
    assert json.loads(image["metadata"])["sui_image_params"]["model"] == XL.removesuffix(".safetensors")
    assert result.messages[-4:-1] == [{"keep_alive": True}, {"discard_indices": []},
                                      {"socket_intention": "close"}]
    assert result.messages[0]["backend_status"] == {"status": "running", "class": "", "message": "",
                                                     "any_loading": False}


def test_ws_second_request_gets_no_model_load_and_no_previews(fake: FakeSwarm, session: str) -> None:
    ws_generate(fake, gen_body(session))
    result = ws_generate(fake, gen_body(session, nopreviews=True))
    assert result.kinds[:5] == ["status", "status", "status", "status", "gen_progress"]
    assert all("preview" not in m["gen_progress"] for m in result.of("gen_progress"))
    assert result.of("image")[0]["request_id"] == "1002"


def test_ws_validation_error_tail(fake: FakeSwarm, session: str) -> None:
    result = ws_generate(fake, gen_body(session, steps=1000))
    assert result.kinds == ["status", "error", "socket_intention", "status"]
    assert result.messages[1]["error"].startswith("Invalid value for parameter Steps:")
    assert result.close_code == 1000


@pytest.mark.parametrize(("body", "expected"), [
    ({"session_id": "f" * 40, "images": 1}, INVALID_SESSION),
    ({"images": 1}, {"error_id": "basic_api", "error": "missing session id"}),
    ({"prompt": "x"}, {"error": "Missing required parameter 'images'"}),
])
def test_ws_pre_handler_errors(fake: FakeSwarm, session: str, body: dict[str, Any],
                               expected: dict[str, Any]) -> None:
    if "session_id" not in body and "images" not in body:
        body = {**body, "session_id": session}
    result = ws_generate(fake, body)
    assert result.messages == [expected]
    assert result.close_code == 1000


def test_ws_unknown_route(fake: FakeSwarm, session: str) -> None:
    with connect(f"{fake.ws_url}/API/NoSuchRouteWS") as ws:
        ws.send(json.dumps({"session_id": session}))
        assert json.loads(ws.recv(timeout=10)) == {"error": "Unknown API route.", "error_id": "bad_route"}
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=10)


def test_ws_further_request_on_open_socket(fake: FakeSwarm, session: str) -> None:
    sent: list[bool] = []

    def send_another(ws: ClientConnection, message: dict[str, Any]) -> None:
        if "image" in message and not sent:
            sent.append(True)
            ws.send(json.dumps(gen_body(session, prompt="second")))

    result = ws_generate(fake, gen_body(session), on_message=send_another)
    assert [m["batch_index"] for m in result.of("image")] == ["0", "1"]
    assert [r.prompt for r in fake.generation_log] == ["a red fox", "second"]
    assert result.messages[-1]["status"]["waiting_gens"] == 0
    assert result.close_code == 1000


def test_ws_first_frame_timeout_closes() -> None:
    with FakeSwarm(first_frame_timeout=0.1, **FAST) as fake, \
            connect(f"{fake.ws_url}/API/GenerateText2ImageWS") as ws, pytest.raises(ConnectionClosedOK):
        ws.recv(timeout=10)


# ------------------------------------------------------------------------------------ queue and backends


@pytest.mark.parametrize(("backends", "peak"), [(1, 2), (2, 4)])
def test_queue_capacity_two_slots_per_backend(backends: int, peak: int) -> None:
    # Backends start "loading" so that all four requests are queued before any slot is handed out.
    with FakeSwarm(backends=backends, latency=0.15, steps=2, close_delay=0.05, model_load_delay=0,
                   loading=True) as fake:

        def one(index: int) -> list[str]:
            with httpx.Client(base_url=fake.url, timeout=20) as http:
                body = gen_body(new_session(http), prompt=f"p{index}", donotsave=True)
                return list(api(http, "GenerateText2Image", body).json()["images"])

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(one, i) for i in range(4)]
            wait_for(lambda: len(fake.active_jobs()) == 4)
            fake.set_loading(False)
            results = [f.result() for f in futures]
        assert all(len(r) == 1 for r in results)
        assert fake.generations == 4
        assert fake.peak_live_gens == peak
        assert fake.live_gens == 0 and fake.active_jobs() == []


def test_one_request_many_images_uses_both_slots() -> None:
    with FakeSwarm(backends=1, latency=0.05, steps=1, close_delay=0.05, model_load_delay=0) as fake, \
            httpx.Client(base_url=fake.url, timeout=20) as client:
        response = api(client, "GenerateText2Image", gen_body(new_session(client), images=5, donotsave=True))
        assert len(response.json()["images"]) == 5
        assert fake.peak_live_gens == 2


@pytest.mark.parametrize("slot_parallel", [False, True])
def test_slot_parallel_lets_both_slots_of_a_backend_generate_at_once(slot_parallel: bool) -> None:
    # Two WebSocket requests on one backend hold its two slots. By default its GPU runs one image at a
    # time: the second request gets no gen_progress until the first image is out. With slot_parallel
    # both make progress before either finishes. (Order of events, not timings, decides.)
    events: list[tuple[str, int]] = []
    lock = threading.Lock()
    with FakeSwarm(backends=1, latency=0.4, steps=4, close_delay=0.05, model_load_delay=0, loading=True,
                   slot_parallel=slot_parallel) as fake, httpx.Client(base_url=fake.url, timeout=20) as client:
        sessions = [new_session(client), new_session(client)]

        def one(index: int) -> None:
            def record(_ws: ClientConnection, message: dict[str, Any]) -> None:
                if kind(message) in ("gen_progress", "image"):
                    with lock:
                        events.append((kind(message), index))

            ws_generate(fake, gen_body(sessions[index], prompt=f"p{index}", nopreviews=True), record)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        wait_for(lambda: len(fake.active_jobs()) == 2)
        fake.set_loading(False)  # both requests are queued: hand out the two slots together
        for thread in threads:
            thread.join(30)
        assert fake.generations == 2 and fake.peak_live_gens == 2
    first_image = events.index(next(e for e in events if e[0] == "image"))
    progressed = {index for name, index in events[:first_image] if name == "gen_progress"}
    assert progressed == ({0, 1} if slot_parallel else {events[first_image][1]})


def test_per_request_cap_limits_tasks_in_flight() -> None:
    # 1 backend: cap = min(32, 2 x MaxUsages 2) = 4 image tasks of one request at a time, 2 of them live.
    with FakeSwarm(backends=1, latency=0.01, steps=1, close_delay=0.05, model_load_delay=0) as fake, \
            httpx.Client(base_url=fake.url, timeout=20) as client:
        result = ws_generate(fake, gen_body(new_session(client), images=10, nopreviews=True))
        counts = [status_counts(m) for m in result.of("status")]
        assert max(waiting + live for _gens, _loading, waiting, live in counts) == 4
        assert max(live for *_rest, live in counts) == 2
        assert counts[0] == (10, 0, 0, 0)
        assert sorted(int(m["batch_index"]) for m in result.of("image")) == list(range(10))


def test_no_backends() -> None:
    with FakeSwarm(backends=0, no_backend_delay=0.1, **FAST) as fake, \
            httpx.Client(base_url=fake.url, timeout=20) as client:
        session = new_session(client)
        assert api(client, "GenerateText2Image", gen_body(session)).json() == {"error": "No backends available!"}
        status = api(client, "GetCurrentStatus", {"session_id": session}).json()
        assert status["backend_status"] == {
            "status": "empty", "class": "error", "any_loading": False,
            "message": "No backends present. You must configure backends in the Backends section of the "
                       "Server tab before you can continue."}
        result = ws_generate(fake, gen_body(session))
        assert result.kinds == ["status", "status", "error", "status", "keep_alive", "discard_indices",
                                "socket_intention", "status"]
        assert result.of("error") == [{"error": "No backends available!"}]
        assert fake.generations == 0


def test_backend_added_while_waiting() -> None:
    with FakeSwarm(backends=0, no_backend_delay=10, **FAST) as fake, \
            httpx.Client(base_url=fake.url, timeout=20) as client:
        session = new_session(client)
        timer = threading.Timer(0.2, fake.set_backends, args=(1,))
        timer.start()
        try:
            response = api(client, "GenerateText2Image", gen_body(session, donotsave=True))
        finally:
            timer.join()
        assert len(response.json()["images"]) == 1


def test_loading_backends_wait_then_time_out_or_proceed() -> None:
    with FakeSwarm(loading=True, loading_timeout=0.2, **FAST) as fake, \
            httpx.Client(base_url=fake.url, timeout=20) as client:
        session = new_session(client)
        assert api(client, "GenerateText2Image", gen_body(session)).json() == {
            "error": "Timeout! All backends are occupied with other tasks."}
        status = api(client, "GetCurrentStatus", {"session_id": session}).json()["backend_status"]
        assert status["status"] == "loading" and status["any_loading"] is True
        fake.configure(loading_timeout=None)
        timer = threading.Timer(0.2, fake.set_loading, args=(False,))
        timer.start()
        try:
            response = api(client, "GenerateText2Image", gen_body(session, donotsave=True))
        finally:
            timer.join()
        assert len(response.json()["images"]) == 1


# --------------------------------------------------------------------------------- interrupts and faults


def test_interrupt_all_cancels_running_and_queued() -> None:
    with FakeSwarm(backends=1, latency=2.0, steps=20, close_delay=0.05, model_load_delay=0) as fake, \
            httpx.Client(base_url=fake.url, timeout=20) as http:
        session = new_session(http)
        answers: list[dict[str, Any]] = []

        def interrupt(_ws: ClientConnection, message: dict[str, Any]) -> None:
            if "gen_progress" in message and not answers:
                answers.append(api(http, "InterruptAll", {"session_id": session}).json())

        result = ws_generate(fake, gen_body(session, images=3), on_message=interrupt)
        assert answers == [{"success": True}]
        assert result.of("error") == [{"error": "Generation session interrupted."}]
        assert result.kinds[-3:] == ["discard_indices", "socket_intention", "status"]
        assert status_counts(result.messages[-1]) == (0, 0, 0, 0)
        assert fake.generations == 0 and fake.interrupts == 1
        assert fake.active_jobs() == []


def test_interrupt_other_sessions_of_the_user() -> None:
    with FakeSwarm(backends=1, latency=1.5, steps=10, close_delay=0.05, model_load_delay=0) as fake, \
            httpx.Client(base_url=fake.url, timeout=20) as client:
        first, second = new_session(client), new_session(client)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(api, client, "GenerateText2Image", gen_body(second))
            wait_for(lambda: fake.live_gens == 1)
            api(client, "InterruptAll", {"session_id": first})
            time.sleep(0.1)
            assert len(fake.active_jobs()) == 1  # only the caller's own session by default
            api(client, "InterruptAll", {"session_id": first, "other_sessions": True})
            assert pending.result().json() == {"error": "Generation session interrupted."}
        assert fake.active_jobs() == [] and fake.interrupts == 2


def test_required_authorization() -> None:
    with FakeSwarm(required_authorization="Bearer s3cret", **FAST) as fake, \
            httpx.Client(base_url=fake.url, timeout=20) as client:
        denied = api(client, "GetNewSession", {})
        assert (denied.status_code, denied.text) == (401, "Unauthorized")
        assert denied.headers["Content-Type"].startswith("text/plain")
        assert client.get("/View/local/raw/x.png").status_code == 401
        with pytest.raises(InvalidStatus) as info:
            connect(f"{fake.ws_url}/API/GenerateText2ImageWS")
        assert info.value.response.status_code == 401
        allowed = api(client, "GetNewSession", {}, headers={"Authorization": "Bearer s3cret"})
        assert allowed.status_code == 200


def test_forget_sessions_gives_401_then_new_session_works(fake: FakeSwarm, client: httpx.Client,
                                                          session: str) -> None:
    fake.forget_sessions()
    response = api(client, "GetCurrentStatus", {"session_id": session})
    assert response.status_code == 401 and response.json() == INVALID_SESSION
    assert api(client, "GetCurrentStatus", {"session_id": new_session(client)}).status_code == 200


def test_restart_forgets_sessions_and_changes_server_id(fake: FakeSwarm, client: httpx.Client,
                                                        session: str) -> None:
    before = api(client, "GetNewSession", {}).json()["server_id"]
    fake.restart()
    assert api(client, "GetCurrentStatus", {"session_id": session}).status_code == 401
    assert api(client, "GetNewSession", {}).json()["server_id"] != before


def test_fail_next_injects_5xx(fake: FakeSwarm, client: httpx.Client, session: str) -> None:
    fake.fail_next(2)
    assert [api(client, "GetNewSession", {}).status_code for _ in range(3)] == [503, 503, 200]
    fake.fail_next(1, status=502, route="GenerateText2Image")
    assert api(client, "GetNewSession", {}).status_code == 200
    failed = api(client, "GenerateText2Image", gen_body(session))
    assert (failed.status_code, failed.text) == (502, "502 Bad Gateway")
    assert len(api(client, "GenerateText2Image", gen_body(session)).json()["images"]) == 1
    assert fake.injected_failures == 3
    assert fake.request_count("GenerateText2Image") == 1  # the failed one never reached the dispatcher


def test_dropped_websocket_job_keeps_running() -> None:
    with FakeSwarm(backends=1, latency=0.3, steps=3, close_delay=0.05, model_load_delay=0) as fake, \
            httpx.Client(base_url=fake.url, timeout=20) as client:
        session = new_session(client)
        fake.drop_websockets_after(1)
        result = ws_generate(fake, gen_body(session, images=2))
        assert result.dropped
        assert "image" not in result.kinds and len(result.of("gen_progress")) == 1
        assert fake.active_jobs() != []  # the server-side job was not cancelled
        assert fake.wait_idle(10)
        assert fake.generations == 2
        again = ws_generate(fake, gen_body(session))
        assert not again.dropped and again.close_code == 1000 and len(again.of("image")) == 1


# ------------------------------------------------------------------------------------ accounts and users


def test_accounts_mode_login_cookie() -> None:
    with FakeSwarm(accounts={"alice": "pw"}, **FAST) as fake, \
            httpx.Client(base_url=fake.url, timeout=20) as client:
        assert api(client, "GetNewSession", {}).json() == {"error": "Invalid or unauthorized."}
        assert api(client, "Login", {"username": "alice", "password": "bad"}).json() == {
            "error_id": "invalid_login"}
        login = api(client, "Login", {"username": "alice", "password": "pw"})
        assert login.json() == {"success": "true"}
        token = login.cookies["swarm_token"]
        assert token.split(".")[0] == b"alice".hex()
        data = api(client, "GetNewSession", {}).json()  # the client now sends the cookie
        assert data["user_id"] == "alice"
        path = api(client, "GenerateText2Image", gen_body(data["session_id"])).json()["images"][0]
        assert path.startswith("View/alice/raw/")
        assert client.get("/" + quote(path)).status_code == 200
        client.cookies.clear()
        denied = client.get("/" + quote(path))
        assert denied.status_code == 400 and denied.json()["error_id"] == "invalid_user"
        client.cookies.set("swarm_token", fake.create_token("alice"))
        assert client.get("/" + quote(path)).status_code == 200


def test_user_header_selects_user_folder(client: httpx.Client) -> None:
    session = new_session(client, **{"X-SWARM-USER_ID": "bob"})
    path = api(client, "GenerateText2Image", gen_body(session)).json()["images"][0]
    assert path.startswith("View/bob/raw/")
    assert client.get("/" + quote(path)).status_code == 400
    assert client.get("/" + quote(path), headers={"X-SWARM-USER_ID": "bob"}).status_code == 200


# ------------------------------------------------------------------------------------------ other routes


def test_list_models_and_params(client: httpx.Client, session: str) -> None:
    assert api(client, "ListModels", {"session_id": session, "path": ""}).json() == {
        "error": "Missing required parameter 'depth'"}
    assert api(client, "ListModels", {"session_id": session, "path": "", "depth": 2, "sortBy": "x"}).json() == {
        "error": "Invalid sort mode 'x'."}
    listing = api(client, "ListModels", {"session_id": session, "path": "", "depth": "2"}).json()
    assert listing["folders"] == ["OfficialStableDiffusion", "sd15"]
    names = [m["name"] for m in listing["files"]]
    assert names == [XL, "sd15/v1-5-pruned-emaonly.safetensors"]
    assert {"name", "title", "architecture", "compat_class", "resolution", "loaded", "hash"} <= set(
        listing["files"][0])
    shallow = api(client, "ListModels", {"session_id": session, "path": "", "depth": 1}).json()
    assert shallow["files"] == []
    params = api(client, "ListT2IParams", {"session_id": session}).json()
    assert list(params) == ["list", "groups", "models", "model_compat_classes", "model_classes", "wildcards",
                            "param_edits"]
    ids = {p["id"] for p in params["list"]}
    assert {"prompt", "images", "steps", "cfgscale", "width", "height", "model", "donotsave"} <= ids
    assert api(client, "ServerDebugMessage", {"session_id": session, "message": "hi"}).json() == {
        "success": True}


def test_cli_runs_until_interrupted(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, "-m", "assetbuild.testing.fakeswarm", "--port", "0", "--latency", "0.01"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          cwd=tmp_path) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, line
        with httpx.Client(base_url=match.group(0), timeout=20) as client:
            assert api(client, "GetNewSession", {}).status_code == 200
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
