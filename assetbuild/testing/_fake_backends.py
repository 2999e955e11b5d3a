"""Simulated backends for the SwarmUI test double: N backends x 2 slots, FIFO hand-out, model loads."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from assetbuild.testing._fake_state import FakeSwarmConfig

NO_BACKENDS = "No backends available!"
LOADING_TIMEOUT = "Timeout! All backends are occupied with other tasks."
_FEATURES = ["comfyui", "sdxl", "variation_seed", "refiners", "controlnet", "freeu", "seamless"]


class GenError(Exception):
    """A generation failure reported to the client as ``{"error": ...}``."""


class Backend:
    """One simulated ComfyUI backend: 2 slots, one "GPU" that runs one image at a time."""

    def __init__(self, backend_id: int, max_usages: int = 2) -> None:
        self.id = backend_id
        self.max_usages = max_usages
        self.usages = 0
        self.model: str | None = None
        self.gpu = asyncio.Lock()
        self.load_done: asyncio.Future[None] | None = None

    def finish_load(self) -> None:
        if self.load_done is not None and not self.load_done.done():
            self.load_done.set_result(None)


@dataclass
class Slot:
    backend: Backend
    needs_load: bool


@dataclass(eq=False)
class _Waiter:
    model: str | None
    future: asyncio.Future[Slot]
    enqueued: float


class Scheduler:
    """FIFO hand-out of backend slots, preferring a backend that already has the model loaded."""

    def __init__(self, config: FakeSwarmConfig) -> None:
        self.config = config
        self.backends = [Backend(i) for i in range(config.backends)]
        self._next_id = config.backends
        self.queue: list[_Waiter] = []
        self._changed: asyncio.Future[None] | None = None
        self._changed_at = time.monotonic()
        self._loading_since = time.monotonic()

    @property
    def loading(self) -> bool:
        return self.config.loading

    def rebuild(self) -> None:
        """Fresh backends (and asyncio primitives) for a new event loop."""
        self.backends = [Backend(i) for i in range(self.config.backends)]
        self._next_id = self.config.backends
        self.queue.clear()
        self._changed = None

    def set_backends(self, count: int) -> None:
        count = max(0, int(count))
        while len(self.backends) < count:
            self.backends.append(Backend(self._next_id))
            self._next_id += 1
        del self.backends[count:]  # jobs on removed backends finish; their slots vanish with them
        self.config.backends = count
        self._changed_at = time.monotonic()
        self._signal()

    def set_loading(self, loading: bool) -> None:
        self.config.loading = bool(loading)
        if loading:
            self._loading_since = time.monotonic()
        self._signal()

    def unload_models(self) -> None:
        for backend in self.backends:
            backend.model = None

    def max_degrees(self) -> int:
        """Per-request cap: max(1, min(role limit, 2 x sum of running backends' MaxUsages))."""
        running = 0 if self.loading else sum(b.max_usages for b in self.backends)
        return max(1, min(self.config.max_t2i_simultaneous, running * 2))

    def backend_status(self) -> dict[str, Any]:
        if not self.backends:
            return {"status": "empty", "class": "error",
                    "message": "No backends present. You must configure backends in the Backends section "
                               "of the Server tab before you can continue.", "any_loading": False}
        if self.loading:
            return {"status": "loading", "class": "soft", "message": "Backends are still loading on the server...",
                    "any_loading": True}
        return {"status": "running", "class": "", "message": "", "any_loading": False}

    def features(self) -> list[str]:
        return [] if not self.backends or self.loading else list(_FEATURES)

    async def acquire(self, model: str | None) -> Slot:
        """Wait for a slot; raise :class:`GenError` for "no backends" / loading timeouts."""
        waiter = _Waiter(model, asyncio.get_running_loop().create_future(), time.monotonic())
        self.queue.append(waiter)
        self.dispatch()
        try:
            while not waiter.future.done():
                error, timeout = self._wait_state(waiter)
                if error:
                    raise GenError(error)
                wake: set[asyncio.Future[Any]] = {waiter.future, self._changed_future()}
                await asyncio.wait(wake, timeout=timeout,
                                   return_when=asyncio.FIRST_COMPLETED)
            return waiter.future.result()
        except BaseException:
            self._abandon(waiter)
            raise

    def release(self, slot: Slot) -> None:
        slot.backend.usages -= 1
        self.dispatch()

    def dispatch(self) -> None:
        """Hand free slots to waiters in arrival order."""
        if self.loading:
            return
        for waiter in list(self.queue):
            if waiter.future.done():
                self.queue.remove(waiter)
                continue
            slot = self._pick(waiter.model)
            if slot is None:
                if not any(b.usages < b.max_usages for b in self.backends):
                    break
                continue  # needs a model swap but no backend is idle; later waiters may still fit
            self.queue.remove(waiter)
            waiter.future.set_result(slot)

    def _pick(self, model: str | None) -> Slot | None:
        free = sorted((b for b in self.backends if b.usages < b.max_usages), key=lambda b: b.usages)
        if not free:
            return None
        needs_load = False
        chosen = free[0] if model is None else next((b for b in free if b.model == model), None)
        if chosen is None:
            # Loading a model needs an idle backend; prefer one that never loaded anything.
            idle = sorted((b for b in free if b.usages == 0), key=lambda b: b.model is not None)
            if not idle:
                return None
            chosen, needs_load = idle[0], True
            chosen.model = model
            chosen.load_done = asyncio.get_running_loop().create_future()
        chosen.usages += 1
        return Slot(chosen, needs_load)

    def _wait_state(self, waiter: _Waiter) -> tuple[str | None, float | None]:
        now = time.monotonic()
        if not self.backends:
            deadline = max(waiter.enqueued, self._changed_at) + self.config.no_backend_delay
            message = NO_BACKENDS
        elif self.loading and self.config.loading_timeout is not None:
            deadline = max(waiter.enqueued, self._loading_since) + self.config.loading_timeout
            message = LOADING_TIMEOUT
        else:
            return None, None
        return (message, None) if now >= deadline else (None, deadline - now)

    def _abandon(self, waiter: _Waiter) -> None:
        if waiter in self.queue:
            self.queue.remove(waiter)
        if waiter.future.done() and not waiter.future.cancelled():
            self.release(waiter.future.result())
        else:
            waiter.future.cancel()

    def _changed_future(self) -> asyncio.Future[None]:
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    def _signal(self) -> None:
        """Wake every waiter to re-check its deadline, then hand out slots."""
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        self._changed = None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # not started yet: nothing can be waiting
        self.dispatch()
