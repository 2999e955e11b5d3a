"""The SwarmUI generator: a synchronous face (for doit's worker threads) on the async client.

One event loop runs in a background thread for the whole run; every task submits its generation to
it, so all tasks share one client, its sessions and its connection pool. This is the one place where
sync meets async.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ..errors import AssetError, AuthError, GenerationError, ImageError, ServerError, ServerUnreachable, UsageError
from ..manifest import ServerSettings
from ..servermodels import with_model_suggestion
from ..swarm.client import SwarmClient, parse_server_url
from ..swarm.credentials import Credentials
from ..swarm.errors import (
    SessionInvalid,
    SwarmAPIError,
    SwarmAuthError,
    SwarmBadAnswer,
    SwarmBadImage,
    SwarmError,
    SwarmUnreachable,
    WebSocketUnavailable,
)
from ..userconfig import credentials_from_environment
from .base import GenerationRequest, GenerationResult, ProgressCallback, UsedModelHash

T = TypeVar("T")


class SwarmUIGenerator:
    kind = "swarmui"

    def __init__(self, server: ServerSettings, credentials: Credentials | None = None,
                 **client_options: Any) -> None:
        try:  # a bad URL (``localhost:7801``, no scheme) is bad usage: stop before any work, exit 2
            parse_server_url(server.url)
        except SwarmError as exc:
            raise UsageError(exc.message, hint=exc.hint) from None
        self.server = server
        self.credentials = credentials if credentials is not None else credentials_from_environment()
        self._client_options = client_options
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: SwarmClient | None = None
        self._futures: set[concurrent.futures.Future[Any]] = set()
        self._closed = False
        self._interrupted = False

    # The loop and client start on the first generation: creating a generator contacts nothing.
    def _ensure_started(self) -> tuple[asyncio.AbstractEventLoop, SwarmClient]:
        with self._lock:
            if self._closed:
                raise GenerationError("(run)", "the SwarmUI client was closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="assetbuild-swarmui", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                self._client = self._submit_now(self._make_client())
            assert self._loop is not None and self._client is not None
            return self._loop, self._client

    async def _make_client(self) -> SwarmClient:
        return SwarmClient(self.server.url, self.credentials, concurrency=self.server.concurrency,
                           timeout=self.server.timeout, websocket=self.server.websocket,
                           save_images=self.server.save_images, **self._client_options)

    def _submit_now(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def generate(self, request: GenerationRequest, progress: ProgressCallback) -> GenerationResult:
        return self.result(request, self.submit(request, progress))

    def submit(self, request: GenerationRequest, progress: ProgressCallback) -> concurrent.futures.Future[Any]:
        """Start generating ``request`` and return at once; ``result`` waits for the image."""
        _loop, client = self._ensure_started()
        future = self._track(client.generate(dict(request.params), dict(request.images), progress,
                                             label=request.asset))
        if future is None:
            raise GenerationError(request.asset, "interrupted")
        return future

    def result(self, request: GenerationRequest, future: concurrent.futures.Future[Any]) -> GenerationResult:
        """The image ``submit`` started for ``request``. Raises ``GenerationError`` (or a subclass)."""
        loop, client = self._ensure_started()
        try:
            image = future.result()
        except concurrent.futures.CancelledError:
            raise GenerationError(request.asset, "interrupted") from None
        except SwarmError as exc:
            error = as_asset_error(request.asset, exc, self.credentials)
            raise with_model_suggestion(error, request.params.get("model"), client, loop) from None
        assert image.data is not None  # generate() downloads unless told not to
        seed = image.seed if image.seed is not None else _requested_seed(request)
        used = image.metadata
        models = tuple(UsedModelHash(m.param, m.name, m.hash) for m in used.models) if used else ()
        return GenerationResult(image.data, seed=seed, model=request.params.get("model"), models=models,
                                unused=used.unused if used else ())

    def prepare(self, generations: int) -> None:
        """A run is about to make ``generations`` images: learn the server's capacity and open the first
        ones' sessions in the background while the run sets itself up (``SwarmClient.warm_up``)."""
        _loop, client = self._ensure_started()
        self._track(client.warm_up(generations))

    def wait_sent(self, count: int, timeout: float) -> None:
        """Block until ``count`` generations (as many as can run at once) have sent their request, at most
        ``timeout`` seconds (``SwarmClient.until_sent``)."""
        loop, client = self._ensure_started()
        future = asyncio.run_coroutine_threadsafe(client.until_sent(count), loop)
        try:
            future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()

    def _track(self, work: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any] | None:
        """``work`` started on the loop and tracked until it ends: interrupt() cancels it, close() awaits it.
        None (``work`` not started) once the run was interrupted. The check and the registration are atomic:
        interrupt() cannot miss a future."""
        loop, _client = self._ensure_started()
        with self._lock:
            if self._interrupted:
                work.close()
                return None
            future = asyncio.run_coroutine_threadsafe(work, loop)
            self._futures.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._futures.discard(future)

    def run_on_client(self, work: Callable[[SwarmClient], Coroutine[Any, Any, T]]) -> T:
        """``await work(client)`` on this generator's loop and client (the run's checks against the server
        share its connection and control session). Raises what ``work`` raises."""
        loop, client = self._ensure_started()
        return asyncio.run_coroutine_threadsafe(work(client), loop).result()

    def interrupt(self) -> None:
        """Ctrl-C: InterruptAll on our sessions (only our work stops), then cancel what is in flight."""
        with self._lock:
            self._interrupted = True  # the run is stopping: no new generation may start
            loop, client, futures = self._loop, self._client, list(self._futures)
        if loop is None or client is None:
            return
        with contextlib.suppress(Exception):  # best effort: we are stopping anyway
            asyncio.run_coroutine_threadsafe(client.interrupt_all(), loop).result(timeout=5)
        for future in futures:
            future.cancel()

    def close(self) -> None:
        with self._lock:
            if self._closed:  # idempotent: a second close must not touch the closed loop
                return
            loop, client, thread = self._loop, self._client, self._thread
            self._closed = True
        if loop is None:
            return
        if client is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(_drain_and_close(client), loop).result(timeout=CLOSE_SECONDS)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=5)
        loop.close()

    @property
    def client(self) -> SwarmClient | None:
        return self._client


DRAIN_SECONDS = 5.0  # how long a closing run waits for generations still on their way out
CLOSE_SECONDS = 10.0  # ... and for the client's whole close, that wait included


async def _drain_and_close(client: SwarmClient) -> None:
    """Close ``client`` once no generation is still running on the loop.

    A generation cancelled by ``interrupt()`` reports at once to its caller, but its task still sends
    InterruptAll on the way out; closing the HTTP client under it would fail that call and print "Task
    exception was never retrieved". Wait for such stragglers (bounded), cancel what is left, then close.
    """
    if client.capacity is not None:  # its polling loop never ends by itself
        await client.capacity.aclose()
    # (Not the sockets being closed: SwarmUI answers a close only after its 2 s pause; aclose ends them.)
    skipped = {asyncio.current_task(), *client.closing_sockets()}
    pending = [task for task in asyncio.all_tasks() if task not in skipped]
    if pending:
        _done, left = await asyncio.wait(pending, timeout=DRAIN_SECONDS)
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
    await client.aclose()


def _requested_seed(request: GenerationRequest) -> int | None:
    seed = request.params.get("seed")
    return int(seed) if isinstance(seed, int) and seed >= 0 else None


# The one place where the SwarmUI client's errors become assetbuild's: the first row whose client error
# type matches wins, so subclasses come before their bases (tests/test_swarm_client.py checks that every
# error type of swarm.errors has its own row).
ERROR_MAP: tuple[tuple[type[SwarmError], type[AssetError]], ...] = (
    (SwarmAuthError, AuthError),  # credentials refused: exit 1 with what to set
    (SwarmUnreachable, ServerUnreachable),  # refused connections, timeouts, 5xx after retries
    (SwarmBadImage, ImageError),  # not an image, too big, the wrong size
    (SwarmBadAnswer, ServerError),  # malformed server data
    (SessionInvalid, ServerError),  # the server kept rejecting new sessions
    (SwarmAPIError, ServerError),  # the server's own {"error": ...}
    (WebSocketUnavailable, GenerationError),  # only if the HTTP fallback failed too
    (SwarmError, GenerationError),
)


def as_asset_error(asset: str, exc: SwarmError, credentials: Credentials) -> AssetError:
    """The client's error, attributed to ``asset``, with secrets removed from the text."""
    message = credentials.redact(exc.message)
    kind = next(target for source, target in ERROR_MAP if isinstance(exc, source))
    hint = exc.hint
    if kind is AuthError:
        hint = credentials.refused_hint(exc.hint)
    elif kind is ImageError:
        hint = exc.hint or "check the server's image format settings"
    return kind(asset, message, hint=hint)
