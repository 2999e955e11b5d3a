"""The async SwarmUI client: sessions, error envelopes, retries, WebSocket generation, downloads.

Sessions. The client holds a small pool of SwarmUI sessions, one per generation slot (``concurrency``),
plus one for control calls (ListModels, status). A generation owns its slot's session while it runs,
which gives it exact per-request status counters (SwarmUI counts per session) and lets the client stop
exactly that generation with ``InterruptAll`` -- for example the orphaned server-side job left behind
when a WebSocket drops mid-generation, before the request is sent again. Sessions are created on first
need and renewed when the server answers ``invalid_session_id`` (a bounded number of times per call).

Errors. Every response is checked for ``error``/``error_id`` whatever its HTTP status. Transport
failures (refused connections, 5xx, connect timeouts) are retried with exponential backoff and jitter
(``retry.Backoff``) a bounded number of times; after that the server is marked down and every later
call fails at once, so a dead server ends the run within seconds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, quote, urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.frames import CloseCode
from websockets.protocol import State

from ..events import Progress
from ..safetext import safe_text
from . import messages
from . import metadata as image_metadata
from .capacity import POLL_SECONDS, START_LIMIT, CapacityFollower
from .credentials import Credentials, shown_url
from .errors import (
    SessionInvalid,
    SwarmAPIError,
    SwarmAuthError,
    SwarmBadAnswer,
    SwarmBadImage,
    SwarmError,
    SwarmUnreachable,
    WebSocketUnavailable,
)
from .imagesize import check_size
from .retry import Backoff
from .slots import Slot as _Slot
from .slots import SlotPool

log = logging.getLogger("assetbuild.swarm")

MAX_SESSION_RENEWALS = 2
# SwarmUI reads another generation request on a finished generation's WebSocket for 2 s after its
# ``socket_intention: close`` (T2IAPI.cs), on the socket's session. A slot's next generation within half
# of that sends its request there: no new connection and handshake per image on either side.
SOCKET_REUSE_SECONDS = 1.0
# At a run's end, how long sockets being closed get before their connections are closed: enough for the
# close frames to go out. Waiting for the server's answer gains nothing, and SwarmUI (like the double)
# sends it only after its pause for more requests (2 s), which every run would otherwise sit through.
CLOSE_GRACE_SECONDS = 0.01
WS_CLOSE_TIMEOUT = 2.0  # websockets' own bound on a close handshake (then it drops the connection)
CONTROL_TIMEOUT = 60.0  # seconds for calls other than generation (sessions, model lists, status)
DEFAULT_MAX_IMAGE_BYTES = 256 * 1024 * 1024
_MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff"}


def parse_server_url(url: str) -> SplitResult:
    """``url`` split, or a ``SwarmError`` unless it is an http(s) URL with a host."""
    try:
        split = urlsplit(url.rstrip("/"))
        split.port  # noqa: B018  (raises ValueError for a port that is not a number)
        valid = split.scheme in ("http", "https") and bool(split.hostname)
    except ValueError:  # e.g. "http://[::1" (an unclosed IPv6 bracket)
        valid = False
    if not valid:
        hint = "use e.g. http://localhost:7801, or 'placeholder' for offline images"
        if "://" not in url and "@" not in url:  # host:port without a scheme: say what was meant
            hint = f"add the scheme: http://{url} (or https://), or use 'placeholder' for offline images"
        raise SwarmError(f"server URL {url!r} is not an http(s) URL", hint=hint)
    return split


def sniff(data: bytes) -> str | None:
    """The image format of ``data`` from its first bytes: png, jpeg, webp, or None."""
    if data.startswith(_MAGIC["png"]):
        return "png"
    if data.startswith(_MAGIC["jpeg"]):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def data_url(data: bytes) -> str:
    """``data`` as a ``data:`` URL, the form SwarmUI takes for image parameters."""
    mime = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}.get(sniff(data) or "", "image/png")
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


class _connect_no_redirects(connect):  # noqa: N801 - used like websockets' own ``connect``
    """websockets' ``connect`` follows up to 10 redirects, even to another origin, and would send the
    whole generation request (prompt, session id, input images) there. Never follow one: like the HTTP
    calls and downloads, a redirect is an answer we refuse."""

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


class _Dropped(Exception):
    """A generation attempt failed in a way worth retrying. ``started``: the request reached the server
    (the connection was lost while it may still be generating for us); False when the server refused
    the attempt up front (an HTTP 5xx answer), so nothing of ours runs there."""

    def __init__(self, message: str, *, started: bool = True) -> None:
        super().__init__(message)
        self.started = started


class _ConnectFailed(Exception):
    """The WebSocket could not connect at all (try HTTP for this request)."""


class _StaleSocket(Exception):
    """A kept WebSocket was closed before anything of the request sent on it came back: the server had
    stopped reading it (its 2 s were over). Nothing of ours runs there; a new connection takes over."""


@dataclass(frozen=True, kw_only=True)
class GeneratedImage:
    """One generated image: where the server put it and, when downloaded, its bytes."""

    reference: str  # the server's reference: a ``View/...`` path (relative to the server URL) or a ``data:`` URL
    data: bytes | None  # the image's bytes; None when ``generate(download=False)``
    seed: int | None
    metadata: image_metadata.ImageMetadata | None = None  # SwarmUI's metadata of the image, when it sent some

    @property
    def inline(self) -> bool:
        """The server sent the image itself (a ``data:`` URL) instead of storing it."""
        return self.reference.startswith("data:")


class SwarmClient:
    """One client per run, shared by every task. All methods run on one event loop."""

    def __init__(self, base_url: str, credentials: Credentials | None = None, *, concurrency: int | None = 4,
                 timeout: float = 900.0, websocket: bool = True, save_images: bool = False,
                 retries: int = 4, backoff: float = 0.25, connect_timeout: float = 10.0,
                 max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES, control_timeout: float = CONTROL_TIMEOUT,
                 transport: httpx.AsyncBaseTransport | None = None, max_in_flight: int | None = None,
                 capacity_poll: float = POLL_SECONDS) -> None:
        split = parse_server_url(base_url)
        self.base_url = f"{split.scheme}://{split.netloc}{split.path}"
        self.shown_url = shown_url(self.base_url)  # for messages: never a password from the URL
        self.origin = (split.scheme, split.netloc)
        self.credentials = credentials or Credentials()
        self.timeout = timeout
        self.websocket = websocket
        self.save_images = save_images
        self.retry = Backoff(retries, backoff)  # transport failures, 5xx answers, dropped generations
        self.connect_timeout = connect_timeout
        self.max_image_bytes = max_image_bytes
        self.control_timeout = control_timeout
        self._headers = self.credentials.headers()
        # Every request goes to base_url's origin (no redirects, downloads from another origin refused):
        # with plain http no TLS is ever used, so the CA bundle is not loaded (~15 ms of every run).
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self._headers, transport=transport, follow_redirects=False,
            timeout=httpx.Timeout(control_timeout, connect=connect_timeout), verify=split.scheme == "https",
        )
        # A fixed number of generations in flight, or (concurrency=None) as many as the server can take.
        self.slots = SlotPool(concurrency if concurrency is not None else START_LIMIT)
        self.capacity = (CapacityFollower(self.slots, self.list_backends, cap=max_in_flight,
                                          poll_seconds=capacity_poll)
                         if concurrency is None else None)
        self._control = _Slot("control")
        self._closing: dict[asyncio.Task[None], ClientConnection] = {}  # sockets being closed, in the background
        self._keep_sockets = True  # until a kept socket goes unread (see _generate_ws)
        self._session_locks: dict[str, asyncio.Lock] = {}
        self._down: SwarmUnreachable | None = None
        self._ws_proxy: dict[str, Any] | None = None  # see _websocket_proxy
        self.stats = {"sessions": 0, "generations": 0, "ws_fallbacks": 0, "drops": 0, "interrupts": 0}
        self.sent = 0  # generation requests sent so far (see until_sent)
        self._sent_event = asyncio.Event()

    async def aclose(self) -> None:
        if self.capacity is not None:
            await self.capacity.aclose()
        for slot in self.slots.all:
            if slot.socket is not None:
                self._close_in_background(slot.socket)
                slot.socket = None
        if self._closing:
            # (see CLOSE_GRACE_SECONDS) The close frames go out, then the connections are closed.
            _done, waiting = await asyncio.wait(self._closing, timeout=CLOSE_GRACE_SECONDS)
            for task in waiting:
                self._closing[task].transport.close()
            await asyncio.gather(*waiting, return_exceptions=True)
        await self._http.aclose()

    def closing_sockets(self) -> frozenset[asyncio.Task[None]]:
        """The tasks closing sockets in the background: ``aclose`` ends them, nobody need wait for them."""
        return frozenset(self._closing)

    # --- sessions ---

    async def _session(self, slot: _Slot) -> str:
        lock = self._session_locks.setdefault(slot.name, asyncio.Lock())
        async with lock:
            if slot.session_id is None:
                await self._new_session(slot)
            assert slot.session_id is not None
            return slot.session_id

    async def _new_session(self, slot: _Slot) -> dict[str, Any]:
        data = await self._post_raw("GetNewSession", {})
        session_id = data.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            raise SwarmAPIError(f"GetNewSession returned no session_id: {str(data)[:200]}")
        slot.session_id = session_id
        self.stats["sessions"] += 1
        log.debug("new session for %s (server version %s)", slot.name, data.get("version"))
        return data

    async def new_session(self) -> dict[str, Any]:
        """GetNewSession's whole answer (``version``, ``user_id``, ...); it becomes the session of the
        control calls that follow (ListModels, GetCurrentStatus, InterruptAll), so they open no other."""
        return await self._new_session(self._control)

    async def call(self, route: str, body: dict[str, Any] | None = None, *, slot: _Slot | None = None,
                   timeout: float | None = None, idempotent: bool = True) -> dict[str, Any]:
        """POST /API/<route> with a session, renewing it when the server forgot it.

        ``idempotent`` False (generation): a connection lost after the request went out raises
        ``_Dropped`` instead of being retried here, because the server may be working on it.
        """
        slot = slot or self._control
        for renewal in range(MAX_SESSION_RENEWALS + 1):
            payload = dict(body or {})
            payload["session_id"] = await self._session(slot)
            try:
                return await self._post_raw(route, payload, timeout=timeout, idempotent=idempotent)
            except SessionInvalid:
                log.debug("session of %s rejected (renewal %d)", slot.name, renewal + 1)
                slot.session_id = None
        raise SwarmAPIError("the server keeps rejecting new sessions (invalid_session_id)",
                            "invalid_session_id", hint="check the server's logs; is it restarting in a loop?")

    async def list_backends(self) -> dict[str, Any]:
        """``ListBackends``; :class:`PermissionError` when this user may not see the backends list."""
        try:
            return await self.call("ListBackends", {})
        except SwarmAPIError as exc:
            if exc.error_id in ("bad_permissions", "bad_route"):  # no permission, or an older server
                raise PermissionError(exc.message) from None
            raise

    async def _post_raw(self, route: str, payload: dict[str, Any], *, timeout: float | None = None,
                        idempotent: bool = True) -> dict[str, Any]:
        """One API call with bounded retries of transport failures and 5xx answers."""
        url = f"/API/{route}"
        last = "no attempt"
        async for attempt in self.retry.attempts():
            if self._down is not None:
                raise self._down
            try:
                # A total deadline per call, not only per read: a server that dribbles a byte now and then
                # would otherwise keep a read timeout from ever firing.
                async with asyncio.timeout(timeout or self.control_timeout), \
                        self._http.stream("POST", url, json=payload,
                                          timeout=timeout or httpx.USE_CLIENT_DEFAULT) as response:
                    if response.status_code >= 500:
                        last = f"HTTP {response.status_code}"
                        if not idempotent:
                            raise _Dropped(f"the server answered {route} with {last}", started=False)
                        log.debug("%s attempt %d: HTTP %d", route, attempt + 1, response.status_code)
                        continue
                    # A generation's answer can carry the image as a data URL: bounded like a download.
                    body = await self._read_limited(response, 2 * self.max_image_bytes, f"the {route} answer")
            except (httpx.ReadTimeout, TimeoutError):
                if not idempotent:
                    raise SwarmAPIError(f"{route} got no answer within {timeout or 60:.0f} s") from None
                # A server that accepts connections but cannot answer a trivial call is down for us:
                # say so now instead of making every asset wait for its own timeout.
                self._down = SwarmUnreachable(f"SwarmUI at {self.shown_url} accepted the connection but did not "
                                              f"answer {route} within {timeout or self.control_timeout:g} s")
                raise self._down from None
            except httpx.TransportError as exc:
                # Some transport errors quote the request's headers: never let a secret through.
                last = self.credentials.redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
                log.debug("%s attempt %d failed: %s", route, attempt + 1, last)
                if not idempotent and not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                    raise _Dropped(last) from None
                continue
            log.debug("%s: HTTP %d, %d bytes", route, response.status_code, len(body))
            return _checked(response.status_code, body)
        self._down = SwarmUnreachable(f"cannot reach SwarmUI at {self.shown_url} ({last}, "
                                      f"{self.retry.total} attempts)")
        raise self._down

    async def _capacity_known(self) -> None:
        """Following the server's capacity: wait for the first probe, which sizes the slot pool. It talks to
        the server, so no longer than a generation may take in all (a server that dribbles its answers must
        not hold every asset here); it then goes on in the background."""
        if self.capacity is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timeout):
                    await self.capacity.started()

    async def warm_up(self, generations: int) -> None:
        """Before a run's first generations: learn the server's capacity and open the sessions of the slots
        the first ``generations`` will take, all at once, so that each starts without a round trip of its
        own. Best effort: a session not opened here is opened (or its failure reported) by the generation
        that needs it."""
        await self._capacity_known()
        slots = [slot for slot in self.slots.spare(min(self.slots.limit, generations)) if slot.session_id is None]
        await asyncio.gather(*(self._session(slot) for slot in slots), return_exceptions=True)

    async def until_sent(self, count: int) -> None:
        """Return once ``count`` generation requests have been sent, or as many as the slots let out at
        once (the capacity known first). A run waits here, not importing or starting anything meanwhile,
        so that this loop has the interpreter to itself while its first wave goes out."""
        await self._capacity_known()
        goal = min(count, self.slots.limit)
        while self.sent < goal:
            self._sent_event.clear()
            await self._sent_event.wait()

    def _note_sent(self) -> None:
        self.sent += 1
        self._sent_event.set()

    # --- generation ---

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[_Slot]:
        await self._capacity_known()
        slot = await self.slots.acquire()
        try:
            yield slot
        finally:
            self.slots.release(slot)

    async def generate(self, params: dict[str, Any], images: dict[str, bytes],
                       on_progress: Callable[[Progress], None], *, label: str = "",
                       download: bool = True) -> GeneratedImage:
        """Generate one image with ``params`` (SwarmUI ids); image params given as bytes. ``label`` (the
        asset) names the image in retry warnings. ``download`` False: only the image's reference is
        wanted (its bytes are not fetched, nor its size checked)."""
        payload: dict[str, Any] = dict(params)
        payload.update({name: data_url(data) for name, data in images.items()})
        payload["images"] = 1
        payload["donotsave"] = not self.save_images
        expected = _expected_format(params)
        on_progress(Progress("queued"))
        async with self._slot() as slot:
            try:
                async with asyncio.timeout(self.timeout):
                    message = await self._generate_in_slot(slot, payload, on_progress, label)
                    data: bytes | None = None
                    if download:
                        on_progress(Progress("downloading"))
                        data = await self.fetch_image(message.image, expected)
                        check_size(data, params)
            except TimeoutError:
                await self._interrupt(slot)
                raise SwarmAPIError(f"generation took longer than {self.timeout:g} s (server.timeout); "
                                    "the server's job was interrupted") from None
            except SwarmBadAnswer:
                await self._interrupt(slot)  # the server may still be working on it: nobody will read it
                raise
            except asyncio.CancelledError:
                await asyncio.shield(self._interrupt(slot))
                raise
        self.stats["generations"] += 1
        return _with_metadata(data, message)

    async def _generate_in_slot(self, slot: _Slot, payload: dict[str, Any],
                                on_progress: Callable[[Progress], None], label: str = "") -> messages.ImageMessage:
        who = f"{label}: " if label else ""
        async for attempt in self.retry.attempts():
            try:
                if self.websocket:
                    try:
                        return await self._generate_ws(slot, payload, on_progress)
                    except WebSocketUnavailable as exc:
                        self.websocket = False
                        self.stats["ws_fallbacks"] += 1
                        log.warning("%sWebSocket generation unavailable (%s); using HTTP without live progress",
                                    who, exc.message)
                    except _ConnectFailed as exc:
                        if _wants_intermediates(payload):  # HTTP cannot tell its final image: try again
                            raise _Dropped(f"WebSocket connect failed: {exc}", started=False) from None
                        self.stats["ws_fallbacks"] += 1
                        log.debug("WebSocket connect failed (%s); trying HTTP for this image", exc)
                return await self._generate_http(slot, payload, on_progress)
            except _Dropped as exc:
                self.stats["drops"] += 1
                again = (f"retrying (attempt {attempt + 2} of {self.retry.total})"
                         if attempt < self.retry.retries else "giving up")
                if exc.started:  # our job may still run on the server: stop it before trying again
                    log.warning("%sconnection lost during generation (%s); stopping the server's job, %s",
                                who, exc, again)
                    await self._interrupt(slot)
                else:
                    log.warning("%s%s; %s", who, exc, again)
        raise SwarmUnreachable(f"the connection to {self.shown_url} kept failing during generation "
                               f"({self.retry.total} attempts)")

    async def _generate_http(self, slot: _Slot, payload: dict[str, Any],
                             on_progress: Callable[[Progress], None]) -> messages.ImageMessage:
        if _wants_intermediates(payload):
            # The HTTP route's answer is a bare list of images, intermediates included, with no index to
            # tell the final one (T2IAPI.cs GenerateText2Image): never file an intermediate as the asset.
            raise SwarmAPIError("outputintermediateimages needs SwarmUI's WebSocket route (the HTTP route's "
                                "answer does not say which image is the final one)",
                                hint="remove the parameter, or let WebSocket connections through to the server")
        on_progress(Progress("generating"))
        self._note_sent()  # (the call below sends it at once)
        data = await self.call("GenerateText2Image", payload, slot=slot, timeout=self.timeout, idempotent=False)
        if not data.get("images"):
            raise SwarmAPIError(f"the server returned no image: {safe_text(str(data)[:200])}")
        answer = messages.validated(messages.GenerateAnswer, data, "GenerateText2Image")
        return messages.ImageMessage(image=answer.images[0], batch_index=0)

    async def _generate_ws(self, slot: _Slot, payload: dict[str, Any],
                           on_progress: Callable[[Progress], None]) -> messages.ImageMessage:
        uri = self._ws_url("/API/GenerateText2ImageWS")
        for _renewal in range(MAX_SESSION_RENEWALS + 1):
            if self._down is not None:
                raise self._down
            body = dict(payload, session_id=await self._session(slot))
            try:
                kept = self._kept_socket(slot)
                if kept is not None:
                    try:
                        return await self._generate_on(kept, slot, body, on_progress, reused=True)
                    except _StaleSocket:
                        # A server that does not read a second request on a socket waits out its pause
                        # first: after one such answer, every generation of the run gets its own socket.
                        self._keep_sockets = False
                        log.debug("the kept WebSocket of %s was not read; connecting again, and keeping "
                                  "no more sockets", slot.name)
                try:
                    ws = await _connect_no_redirects(uri, additional_headers=self._headers,
                                                     max_size=self.max_image_bytes * 2,
                                                     open_timeout=self.connect_timeout, close_timeout=WS_CLOSE_TIMEOUT,
                                                     ping_interval=None, compression=None,
                                                     **self._websocket_proxy(uri))
                except InvalidStatus as exc:
                    raise _upgrade_refused(exc.response.status_code,
                                           exc.response.headers.get("Location", "(no Location)")) from None
                except InvalidHandshake as exc:
                    raise WebSocketUnavailable(f"WebSocket handshake failed: {exc}") from None
                except (OSError, TimeoutError) as exc:
                    raise _ConnectFailed(str(exc) or type(exc).__name__) from None
                return await self._generate_on(ws, slot, body, on_progress)
            except SessionInvalid:
                slot.session_id = None
                continue
        raise SwarmAPIError("the server keeps rejecting new sessions (invalid_session_id)", "invalid_session_id")

    async def _generate_on(self, ws: ClientConnection, slot: _Slot, body: dict[str, Any],
                           on_progress: Callable[[Progress], None], *, reused: bool = False) -> messages.ImageMessage:
        """Send ``body`` on ``ws`` and read its generation. A generation that ended with its own
        ``discard_indices`` leaves ``ws`` open in ``slot`` for the slot's next one (while the run still keeps
        sockets); any other end closes it. ``reused``: ``ws`` was kept from an earlier generation
        (``_StaleSocket`` when the server no longer reads it)."""
        keep = False
        try:
            try:
                await ws.send(json.dumps(body))
            except ConnectionClosed:
                if reused:
                    raise _StaleSocket from None
                raise
            self._note_sent()
            message, keep = await self._read_generation(ws, _tracking(slot, on_progress), reused=reused)
            return message
        finally:
            if keep and self._keep_sockets:
                slot.socket, slot.socket_since = ws, asyncio.get_running_loop().time()
            else:  # not awaited: SwarmUI answers a close only after its 2 s pause, and the slot is free now
                self._close_in_background(ws)

    def _kept_socket(self, slot: _Slot) -> ClientConnection | None:
        """``slot``'s WebSocket from its last generation, if the server still reads it; else None (a kept
        one that is too old is closed in the background)."""
        ws, slot.socket = slot.socket, None
        if ws is None:
            return None
        fresh = asyncio.get_running_loop().time() - slot.socket_since <= SOCKET_REUSE_SECONDS
        if self._keep_sockets and fresh and ws.state is State.OPEN:
            return ws  # type: ignore[no-any-return]
        self._close_in_background(ws)
        return None

    def _close_in_background(self, ws: ClientConnection) -> None:
        task = asyncio.get_running_loop().create_task(ws.close())
        self._closing[task] = ws
        task.add_done_callback(self._closing.pop)

    def _websocket_proxy(self, uri: str) -> dict[str, Any]:
        """The proxy argument for websockets' ``connect``: the environment's proxy for ``uri`` (or none),
        looked up once per client. websockets (>= 15) would look it up on every connect, reading the whole
        environment each time (~0.15-0.5 ms of the event loop per image); older versions use no proxy."""
        if self._ws_proxy is None:
            try:
                from websockets.proxy import get_proxy
                from websockets.uri import parse_uri
            except ImportError:  # websockets < 15: no proxy support, nothing to pass
                self._ws_proxy = {}
            else:
                self._ws_proxy = {"proxy": get_proxy(parse_uri(uri))}
        return self._ws_proxy

    def _ws_url(self, path: str) -> str:
        scheme = "wss" if self.origin[0] == "https" else "ws"
        return f"{scheme}://{self.origin[1]}{urlsplit(self.base_url).path}{path}"

    async def _read_generation(self, ws: ClientConnection, on_progress: Callable[[Progress], None], *,
                               reused: bool = False) -> tuple[messages.ImageMessage, bool]:
        """Read one request's frames; the first kept image wins. The request ends with its
        ``discard_indices`` (SwarmUI sends one per request, after its images) or, after an error or from a
        server that sends no discard list, with the socket's ``socket_intention: close``. Also says whether
        it ended with its discard list: only then may the socket carry the slot's next request.

        ``reused``: ``ws`` carried an earlier request. Its first close intent is the server saying it had no
        work left after that request (it may come just after this one's first frame), not this request's
        end, unless an error came first: the next one is (a handler that failed without an error frame).
        A socket the server closed normally before anything of this request came back raises
        ``_StaleSocket``: the server did not read the request. Closed in any other way, the request may
        be running there, so it counts as a lost generation (stopped before it is sent again)."""
        images: list[messages.ImageMessage] = []
        discard: set[int] = set()
        error: messages.Frame | None = None
        finished = False
        ended = False  # by this request's discard list
        left_queue = False
        answered = False  # a frame of this request came (not a close intent, nor the idle status sent at the end)
        earlier_close_intent = reused  # still to come: the one the server sent after the earlier request
        try:
            async for raw in ws:
                frame = messages.parse(raw)
                if frame.kind == "close_intent":
                    if earlier_close_intent and error is None:
                        earlier_close_intent = False
                        continue
                    finished = True
                    break
                phase = messages.phase_of(frame.payload) if frame.kind == "status" else None
                if frame.kind != "status" or phase is not None:
                    answered = True
                if frame.kind == "error":
                    if frame.error_id == "invalid_session_id":
                        raise SessionInvalid(frame.payload, frame.error_id)
                    error = error or frame  # read on to the close intent: the request is over then
                if frame.kind == "status":
                    # After waiting/loading, "only queued" means a backend was claimed and work is about
                    # to start: keep showing the last real phase rather than going back to "queued".
                    if phase is not None and not images and not (phase.phase == "queued" and left_queue):
                        left_queue = left_queue or phase.phase != "queued"
                        on_progress(phase)
                elif frame.kind == "progress":
                    on_progress(messages.progress_of(frame.payload))
                elif frame.kind == "image" and frame.payload.batch_index >= 0:
                    # (A negative index marks an intermediate image, e.g. with outputintermediateimages:
                    # SwarmUI numbers them -11, -12, ... and may send them before the final one.)
                    images.append(frame.payload)
                elif frame.kind == "discard":
                    discard |= frame.payload
                    finished = ended = True
                    break
        except ConnectionClosed as exc:
            if reused and not answered and exc.rcvd is not None and exc.rcvd.code in _NORMAL_CLOSES:
                raise _StaleSocket from None
            if exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
                # Not a lost connection: retrying would only generate the same oversized image again.
                raise SwarmBadImage(f"the server sent a message larger than the limit for an image of "
                                    f"{self.max_image_bytes} bytes") from None
            if error is None and not images:
                raise _Dropped(f"WebSocket closed: {exc}") from None
        if reused and not answered:  # closed normally (the iteration just ends) before anything of this request
            raise _StaleSocket
        if error is not None:
            raise _api_error(error.payload, error.error_id)
        kept = [image for image in images if image.batch_index not in discard]
        if kept:
            return kept[0], ended
        if images:
            raise SwarmAPIError("the server discarded the generated image (discard_indices)")
        if not finished:
            raise _Dropped("WebSocket closed before any image arrived")
        raise SwarmAPIError("the server finished without sending an image")

    # --- images ---

    async def fetch_image(self, reference: str, expected: str | None = "png") -> bytes:
        """The bytes of an image reference: a ``data:`` URL or a server path (``View/...``)."""
        if reference.startswith("data:"):
            data = self._decode_data_url(reference)
        else:
            data = await self._download(reference)
        found = sniff(data)
        if found is None:
            raise SwarmBadImage(f"the server sent {len(data)} bytes that are not an image")
        if expected and found != expected:
            raise SwarmBadImage(f"expected a {expected.upper()} image, the server sent {found.upper()}")
        return data

    def _decode_data_url(self, reference: str) -> bytes:
        header, _, payload = reference.partition(",")
        if ";base64" not in header:
            raise SwarmBadImage("the server sent a data URL that is not base64")
        if len(payload) * 3 // 4 > self.max_image_bytes:
            raise SwarmBadImage(f"image exceeds the {self.max_image_bytes} byte limit")
        try:
            return messages.decode_base64(payload)
        except ValueError:
            raise SwarmBadImage("the server sent a data URL with invalid base64") from None

    async def _download(self, reference: str) -> bytes:
        split = urlsplit(reference)
        if split.scheme or split.netloc:
            if (split.scheme, split.netloc) != self.origin:
                raise SwarmBadImage(f"refusing to download an image from another origin: {split.scheme}://"
                                    f"{split.netloc}")
            reference = split.path
        path = "/" + quote(reference.lstrip("/"), safe="/")
        last = "no attempt"
        async for _attempt in self.retry.attempts():
            try:
                async with self._http.stream("GET", path) as response:
                    if response.status_code >= 500:
                        last = f"HTTP {response.status_code}"
                        continue
                    if response.status_code != 200:
                        body = (await response.aread())[:500]
                        raise _download_error(response.status_code, body, reference)
                    return await self._read_limited(response)
            except httpx.TransportError as exc:
                last = type(exc).__name__
        raise SwarmUnreachable(f"cannot download {reference} from {self.shown_url} ({last})")

    async def _read_limited(self, response: httpx.Response, limit: int | None = None,
                            what: str = "image") -> bytes:
        """The body of ``response``, refusing (before buffering it) one larger than ``limit`` bytes."""
        limit = self.max_image_bytes if limit is None else limit
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise SwarmBadImage(f"{what} of {int(declared)} bytes exceeds the {limit} byte limit")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise SwarmBadImage(f"{what} exceeds the {limit} byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    # --- cancellation ---

    async def _interrupt(self, slot: _Slot) -> None:
        """Stop the server's work for ``slot``'s session. Best effort, never raises."""
        if slot.session_id is None or self._down is not None:
            return
        try:
            async with asyncio.timeout(5.0):
                await self._http.post("/API/InterruptAll", json={"session_id": slot.session_id}, timeout=5.0)
            self.stats["interrupts"] += 1
        except (httpx.HTTPError, TimeoutError) as exc:
            log.debug("InterruptAll for %s failed: %r", slot.name, exc)

    async def interrupt_all(self) -> None:
        """Interrupt every session this client created (Ctrl-C): only our own work stops."""
        await asyncio.gather(*(self._interrupt(slot) for slot in self.slots.all))


def _upgrade_refused(status: int, location: str) -> Exception:
    """What an answer other than 101 to the WebSocket upgrade means for the generation."""
    if status == 401:
        return SwarmAuthError("the server refused the WebSocket connection (HTTP 401)")
    if 300 <= status < 400:
        return SwarmAPIError(f"the server redirected the WebSocket upgrade (HTTP {status}) to "
                             f"{safe_text(shown_url(location))}; assetbuild does not follow redirects",
                             hint="point server.url (or --server) at the address SwarmUI really serves")
    if status >= 500:
        return _Dropped(f"the server answered the WebSocket upgrade with HTTP {status}", started=False)
    return WebSocketUnavailable(f"WebSocket upgrade answered HTTP {status}")


def _tracking(slot: _Slot, on_progress: Callable[[Progress], None]) -> Callable[[Progress], None]:
    """Pass progress on, noting whether the slot's generation waits for a backend (capacity signal)."""

    def report(progress: Progress) -> None:
        slot.waiting_for_backend = progress.phase == "waiting"
        on_progress(progress)

    return report


def _with_metadata(data: bytes | None, message: messages.ImageMessage) -> GeneratedImage:
    """The image with SwarmUI's metadata: from the WebSocket message, else from the PNG itself (the HTTP
    route returns only the image)."""
    found = image_metadata.parse(message.metadata)
    if found is None and data is not None:
        found = image_metadata.parse(image_metadata.png_text(data))
    seed = found.seed if found is not None and found.seed is not None else message.seed()
    return GeneratedImage(reference=message.image, data=data, seed=seed, metadata=found)


def _expected_format(params: dict[str, Any]) -> str | None:
    wanted = str(params.get("imageformat", "png")).lower()
    return {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "webp": "webp"}.get(wanted)


def _checked(status: int, body: bytes) -> dict[str, Any]:
    """The JSON body of an API response, or the error it carries (whatever the status code)."""
    try:
        data = messages.loads(body)
    except ValueError:
        data = None
    if status == 401 and not (isinstance(data, dict) and data.get("error_id")):
        raise SwarmAuthError("the server refused the request (HTTP 401 Unauthorized)")
    if not isinstance(data, dict):
        text = safe_text(body[:200].decode("utf-8", "replace").strip())
        raise SwarmAPIError(f"unexpected answer (HTTP {status}): {text or '(empty)'}")
    if "error" in data or "error_id" in data:
        raise _api_error(data.get("error"), data.get("error_id"))
    if status != 200:
        raise SwarmAPIError(f"unexpected answer (HTTP {status}): {str(data)[:200]}")
    return data


_INTERMEDIATE_PARAMS = ("outputintermediateimages", "saveintermediateimages")  # (the latter: its old name)


def _wants_intermediates(payload: dict[str, Any]) -> bool:
    return any(str(payload.get(name, "")).lower() == "true" for name in _INTERMEDIATE_PARAMS)


_NORMAL_CLOSES = frozenset({CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY})
_AUTH_ERRORS = {"Invalid or unauthorized.", "invalid or unauthorized"}


def _api_error(message: Any, error_id: Any) -> SwarmError:
    text = str(message) if message else str(error_id)
    if error_id == "invalid_session_id":
        return SessionInvalid(text, "invalid_session_id")
    if text in _AUTH_ERRORS or error_id in ("invalid_login", "invalid_user", "unauthorized"):
        return SwarmAuthError(f"the server refused our credentials: {text}")
    return SwarmAPIError(text, str(error_id) if error_id else None, hint=_hint_for(text))


def _hint_for(text: str) -> str | None:
    if "No backends" in text:
        return "the server has no running backend: check the Backends section of SwarmUI's Server tab"
    if "Invalid model value" in text or "model name is correct" in text:
        return "`assetbuild models` lists the server's models"
    if text.startswith("Invalid value for parameter"):
        return "fix the value in assets.toml"
    if "Timeout! All backends are occupied" in text:
        return "the server's backends stayed busy; retry later or raise its timeouts"
    return None


def _download_error(status: int, body: bytes, reference: str) -> SwarmError:
    try:
        data = messages.loads(body)
        message = data.get("error") or data.get("error_id")
        error_id = data.get("error_id")
    except (ValueError, AttributeError, SwarmBadAnswer):
        message, error_id = body.decode("utf-8", "replace").strip(), None
    if error_id in ("invalid_user", "unauthorized") or status == 401:
        return SwarmAuthError(f"the server refused the download of {reference}: {message}")
    return SwarmAPIError(f"cannot download {reference} (HTTP {status}): {message}", error_id)
