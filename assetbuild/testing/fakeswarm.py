"""A faithful SwarmUI test double on loopback: HTTP API, WebSocket generation and /View downloads.

It follows the facts in ``swarmui-api.md`` (status codes, exact error strings, WebSocket message order),
simulates N backends x 2 slots with a FIFO queue, and renders real, deterministic PNGs with Pillow.

Usage from synchronous tests::

    with FakeSwarm(backends=2, latency=0.05, steps=4, close_delay=0.05) as fake:
        httpx.post(f"{fake.url}/API/GetNewSession", json={})
        ...
        assert fake.generations == 3
        assert fake.active_jobs() == []

The server runs on its own event loop in a daemon thread; every method below is safe to call from the
test thread. Options are the fields of :class:`FakeSwarmConfig` (``backends``, ``latency``, ``steps``,
``models``, ``user_id``, ``required_authorization``, ``accounts``, ``noise``, ``loading``,
``loading_timeout``, ``no_backend_delay``, ``model_load_delay``, ``close_delay``, ``slot_parallel``, ...),
given as keyword arguments and changeable later with :meth:`FakeSwarm.configure`.

Each backend has two slots, but by default its "GPU" runs one image at a time: the second slot's job
waits for the first, as with a real ComfyUI backend, so B backends finish about B images per
``latency``. ``slot_parallel=True`` lets both slots of a backend generate at once (2B images per
``latency``): the ideal server that throughput benchmarks compare against.

Fault injection:

* ``forget_sessions()``: every session id becomes invalid (401 ``invalid_session_id``), as after a
  restart without persistence. ``restart()`` also drops connections, cancels jobs and unloads models.
* ``drop_websockets_after(progress_messages=1, count=1)``: the next ``count`` WebSocket generations get
  their TCP connection reset after that many ``gen_progress`` frames; the job keeps running server-side.
* ``fail_next(count=1, status=503, route=None)``: the next ``count`` requests (optionally only one API
  route) get a plain-text 5xx before any other processing, like a proxy in front of the server.
* ``answer_next(route, body, count=1, status=200)``: the next calls of an API route get ``body`` as it is
  (malformed, mistyped or 100k-deep JSON).
* ``dribble_next(interval=2.0, count=1, route=None)``: the next requests get headers, then one byte every
  ``interval`` seconds, forever.
* ``send_ws_frames(*frames, count=1)``: the next WebSocket generations first get these raw text frames.
* ``redirect_websockets(location, count=1)``: the next WebSocket upgrades are answered ``302`` to it.
* ``wrong_size_next(width, height, count=1)``: the next images are rendered at that size.
* ``set_backends(n)``, ``set_loading(flag)``: change the backend pool while requests wait.
* ``global_status=False`` (an option): GetGlobalStatus (server-wide counters, an admin route) answers
  a permission error, as SwarmUI does for users without ``read_server_info_panels``.
* ``replace_model(name, subtype="Stable-Diffusion")``: a new file under the same model name, while
  running: a new hash (DescribeModel, ListModels, image metadata) and different pixels.
* ``websocket=False`` (an option): every WebSocket upgrade is answered HTTP 400 ``{"error_id":
  "bad_request_method", ...}``, like a reverse proxy that does not pass upgrades (clients fall back to HTTP).

Recording (snapshots, safe to read any time): ``requests`` (route, body without session_id),
``generations``, ``generation_log``, ``interrupts``, ``injected_failures``, ``live_gens``, ``peak_live_gens``,
``peak_in_flight``, ``downloads``, ``debug_messages``, ``active_jobs()``; ``wait_idle()`` blocks until no job
is running.

Server truth (issue 15): ``ListT2IParams`` lists every parameter with SwarmUI's fields plus the
"Dynamic Thresholding" extension's parameters (``extensions=False``: not installed), and ``models`` as
``{subtype: [[name, archid], ...]}`` (``models``, ``vaes``, ``loras`` options). ``DescribeModel`` gives
``hash``/``hash_sha256`` (``lazy_hashes=True``: "" until a generation used the model). Model, LoRA and
dropdown values are fuzzy-matched as SwarmUI does (exact cleaned name, else the shortest containing
one). Image metadata carries ``sui_image_params`` (the real seed), ``sui_extra_data.unused_parameters``
(``unused_params`` option, and ``initimagecreativity`` without an init image) and ``sui_models`` with
hashes.

Deliberate simplifications: auth checks apply to loopback too (the real server exempts localhost by
default); a request without ``model`` fails like a ComfyUI backend does ("No model input given. Did your
UI load properly?"); ``request_id`` is one per request; presets, grids, webhooks, ``exactbackendid``
filtering and rate limits are not simulated; outputs are kept in memory.

Run standalone with ``python -m assetbuild.testing.fakeswarm --port 7801 --backends 2``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import threading
import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from assetbuild.testing._fake_engine import Engine
from assetbuild.testing._fake_faults import Dribble, FailRule, Faults, RawAnswer
from assetbuild.testing._fake_server import FakeServer
from assetbuild.testing._fake_state import (
    ActiveJob,
    FakeSwarmConfig,
    GenerationRecord,
    RecordedRequest,
    Recorder,
)

__all__ = ["ActiveJob", "FakeSwarm", "FakeSwarmConfig", "GenerationRecord", "RecordedRequest", "main"]

T = TypeVar("T")
_CALL_TIMEOUT = 15.0


class FakeSwarm:
    """A SwarmUI server double running in a background thread. See the module docstring."""

    def __init__(self, config: FakeSwarmConfig | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 **options: Any) -> None:
        self.config = dataclasses.replace(config or FakeSwarmConfig(), **options)
        self.config.models = list(self.config.models)
        self.host = host
        self.port = port
        self._recorder = Recorder()
        self._faults = Faults()
        self._engine = Engine(self.config, self._recorder, self._faults)
        self._server = FakeServer(self._engine, self._recorder, self._faults)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._startup_error: BaseException | None = None

    # ------------------------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (the real port once started)."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> FakeSwarm:
        """Bind the port and serve in a daemon thread; returns once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("FakeSwarm is already running")
        ready = threading.Event()
        self._startup_error = None
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="FakeSwarm", daemon=True)
        self._thread.start()
        ready.wait(_CALL_TIMEOUT)
        if self._startup_error is not None or not ready.is_set():
            self._thread.join(_CALL_TIMEOUT)
            self._thread = None
            raise RuntimeError(f"FakeSwarm failed to start on {self.host}:{self.port}") from self._startup_error
        return self

    def stop(self) -> None:
        """Cancel jobs, close connections and the port, and end the thread. Idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._server.stop(), loop).result(_CALL_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_CALL_TIMEOUT)
            self._thread = None

    def __enter__(self) -> FakeSwarm:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            # Fresh backends: their asyncio locks must belong to this loop (matters on a second start()).
            self._engine.scheduler.rebuild()
            try:
                self.port = loop.run_until_complete(self._server.start(self.host, self.port))
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                self._startup_error = exc
                return
            finally:
                ready.set()
            loop.run_forever()
        finally:
            self._close_loop(loop)

    @staticmethod
    def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server loop (or directly when not running) and return its result."""
        loop = self._loop
        if self._thread is None or loop is None or threading.current_thread() is self._thread:
            return fn()

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(_CALL_TIMEOUT)

    # -------------------------------------------------------------------------------- configuration

    def configure(self, **changes: Any) -> None:
        """Change :class:`FakeSwarmConfig` fields at runtime (``backends``/``loading`` included)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(FakeSwarmConfig)}
        if unknown:
            raise TypeError(f"unknown FakeSwarm options: {sorted(unknown)}")

        def apply() -> None:
            for name, value in changes.items():
                if name == "backends":
                    self._engine.scheduler.set_backends(value)
                elif name == "loading":
                    self._engine.scheduler.set_loading(value)
                else:
                    setattr(self.config, name, value)

        self._call(apply)

    def set_backends(self, count: int) -> None:
        """Grow or shrink the backend pool; waiting requests are re-dispatched at once."""
        self._call(lambda: self._engine.scheduler.set_backends(count))

    def set_loading(self, loading: bool) -> None:
        """Put all backends into (or out of) the "loading" state."""
        self._call(lambda: self._engine.scheduler.set_loading(loading))

    # ------------------------------------------------------------------------------ fault injection

    def forget_sessions(self) -> None:
        """Invalidate every session id, as after a restart without persistence."""
        self._call(self._engine.forget_sessions)

    def restart(self) -> None:
        """Simulate a server restart on the same port: jobs cancelled, sockets reset, sessions forgotten,
        models unloaded and a new ``server_id``. Stored images survive (they are files on disk)."""
        if self._loop is None or self._thread is None:
            raise RuntimeError("FakeSwarm is not running")

        async def restart() -> None:
            await self._server.drop_connections()  # first, so no half-finished answer gets out
            await self._engine.cancel_all()
            self._engine.forget_sessions()
            self._engine.scheduler.unload_models()
            self._engine.server_id = str(uuid.uuid4())

        asyncio.run_coroutine_threadsafe(restart(), self._loop).result(_CALL_TIMEOUT)

    def drop_websockets_after(self, progress_messages: int = 1, count: int = 1) -> None:
        """Reset the TCP connection of the next ``count`` WebSocket generations after that many
        ``gen_progress`` frames (0 = right after the request frame). The job itself keeps running."""

        def arm() -> None:
            self._faults.drop_budget = count
            self._faults.drop_after = progress_messages

        self._call(arm)

    def fail_next(self, count: int = 1, status: int = 503, route: str | None = None) -> None:
        """Answer the next ``count`` requests (all, or only API route ``route``) with a plain-text
        ``status``, before authentication or any other check."""
        rule = FailRule(count, status, route.lower() if route else None)
        self._call(lambda: self._faults.fail_rules.append(rule))

    def answer_next(self, route: str, body: str | bytes, *, count: int = 1, status: int = 200) -> None:
        """Answer the next ``count`` calls of API ``route`` with ``body`` as it is (any bytes, e.g.
        malformed or absurdly nested JSON), HTTP ``status``, before any other processing."""
        raw = body.encode() if isinstance(body, str) else body
        rule = RawAnswer(count, route.lower(), raw, status)
        self._call(lambda: self._faults.raw_answers.append(rule))

    def dribble_next(self, *, interval: float = 2.0, count: int = 1, route: str | None = None) -> None:
        """The next ``count`` requests (all, or only API route ``route``) get HTTP 200 headers and then
        one byte every ``interval`` seconds, forever: alive, but never finishing an answer."""
        rule = Dribble(count, route.lower() if route else None, interval)
        self._call(lambda: self._faults.dribbles.append(rule))

    def send_ws_frames(self, *frames: str, count: int = 1) -> None:
        """The next ``count`` WebSocket generations first receive ``frames`` (raw text, sent as they are),
        then run normally."""
        self._call(lambda: self._faults.ws_frames.extend([list(frames)] * count))

    def redirect_websockets(self, location: str, count: int = 1) -> None:
        """Answer the next ``count`` WebSocket upgrades with ``302 Found`` to ``location``."""
        self._call(lambda: self._faults.ws_redirects.extend([location] * count))

    def wrong_size_next(self, width: int, height: int, count: int = 1) -> None:
        """Render the next ``count`` images at ``width`` x ``height``, whatever the request asked."""
        self._call(lambda: self._faults.image_sizes.extend([(width, height)] * count))

    def replace_model(self, name: str, subtype: str = "Stable-Diffusion") -> None:
        """Replace model ``name``'s file on the server: new hash, new pixels, same name."""
        self._call(lambda: self._engine.replace_model(name, subtype))

    def model_hash(self, name: str, subtype: str = "Stable-Diffusion") -> str:
        """The hash DescribeModel gives for ``name`` right now ("" while lazily not computed)."""
        return self._call(lambda: self._engine.model_hash(subtype, name))

    # ----------------------------------------------------------------------------------- test hooks

    def create_session(self, user: str | None = None) -> str:
        """A valid session id without calling GetNewSession."""
        return self._call(lambda: self._engine.create_session(user or self.config.user_id).id)

    def create_token(self, username: str) -> str:
        """A valid ``swarm_token`` cookie value for ``username`` (accounts mode), without Login."""
        return self._call(lambda: self._engine.issue_token(username))

    def session_ids(self) -> list[str]:
        return self._call(lambda: list(self._engine.sessions))

    def status(self, session_id: str) -> dict[str, Any]:
        """What GetCurrentStatus would return for that session."""
        return self._call(lambda: self._engine.status_payload(self._engine.sessions[session_id]))

    def stored_files(self) -> dict[str, bytes]:
        """Saved outputs by path under /View/ (``local/raw/2024-01-02/...png``)."""
        return self._call(lambda: {path: f.data for path, f in self._engine.files.items()})

    def active_jobs(self) -> list[ActiveJob]:
        """Generation requests that have not finished (queued or running), oldest first."""
        return self._call(self._engine.active_jobs)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until no generation is running; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.active_jobs():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def reset_records(self) -> None:
        """Clear every record (requests, generation log, counters, downloads, live-gen peak)."""
        self._recorder.reset()

    # ------------------------------------------------------------------------------------ recording

    @property
    def requests(self) -> list[RecordedRequest]:
        """API calls in arrival order as ``(route, body)``; T2I bodies have normalised keys."""
        with self._recorder.lock:
            return list(self._recorder.requests)

    def request_count(self, route: str) -> int:
        """How many calls reached ``route`` (case-insensitive), whatever their outcome."""
        return sum(1 for r in self.requests if r.route.lower() == route.lower())

    @property
    def generation_log(self) -> list[GenerationRecord]:
        with self._recorder.lock:
            return list(self._recorder.generation_log)

    @property
    def generations(self) -> int:
        """Images actually finished (not counting interrupted or failed ones)."""
        with self._recorder.lock:
            return len(self._recorder.generation_log)

    @property
    def interrupts(self) -> int:
        with self._recorder.lock:
            return self._recorder.interrupts

    @property
    def websockets_opened(self) -> int:
        """WebSocket connections accepted on any route (further requests on an open one are not counted)."""
        with self._recorder.lock:
            return self._recorder.websockets_opened

    @property
    def injected_failures(self) -> int:
        """Requests answered by ``fail_next`` (they are not in ``requests``: their body is never read)."""
        with self._recorder.lock:
            return self._recorder.injected_failures

    @property
    def live_gens(self) -> int:
        """Images holding a backend slot right now (all sessions)."""
        with self._recorder.lock:
            return self._recorder.live

    @property
    def peak_live_gens(self) -> int:
        """The most images that held backend slots at the same time."""
        with self._recorder.lock:
            return self._recorder.peak_live

    @property
    def peak_in_flight(self) -> int:
        """The most generation requests the server held at once (running or waiting for a backend)."""
        with self._recorder.lock:
            return self._recorder.peak_in_flight

    @property
    def downloads(self) -> list[str]:
        """Successful GET /View paths (decoded, without the ``View/`` prefix)."""
        with self._recorder.lock:
            return list(self._recorder.downloads)

    @property
    def debug_messages(self) -> list[str]:
        with self._recorder.lock:
            return list(self._recorder.debug_messages)


def main(argv: list[str] | None = None) -> int:
    """``python -m assetbuild.testing.fakeswarm``: serve until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m assetbuild.testing.fakeswarm",
                                     description="Run the SwarmUI test double until Ctrl-C.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7801)
    parser.add_argument("--backends", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per image")
    parser.add_argument("--steps", type=int, default=4, help="gen_progress messages per image")
    parser.add_argument("--noise", action="store_true", help="incompressible images (benchmarks)")
    parser.add_argument("--slot-parallel", action="store_true",
                        help="both slots of a backend generate at once (default: one at a time, like ComfyUI)")
    parser.add_argument("--close-delay", type=float, default=2.0)
    parser.add_argument("--authorization", default=None, help="required exact Authorization header")
    args = parser.parse_args(argv)
    fake = FakeSwarm(host=args.host, port=args.port, backends=args.backends, latency=args.latency,
                     steps=args.steps, noise=args.noise, close_delay=args.close_delay,
                     slot_parallel=args.slot_parallel,
                     required_authorization=args.authorization)
    fake.start()
    print(f"FakeSwarm listening on {fake.url} ({args.backends} backend(s)); Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
