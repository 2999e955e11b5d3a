"""Follow the server's capacity: how many generations to keep in flight when the user set no limit.

SwarmUI spreads requests over its backends; each ComfyUI backend serves ``max_usages`` (default 2)
requests at once. To keep a cluster busy without flooding its queue, the client keeps the server's
slots filled plus a small margin of requests waiting on the server, so a backend that finishes finds
the next request already there (no round trip of idle GPU). Two sources, best first:

1. ``ListBackends`` (needs SwarmUI's ``view_backends_list`` permission): the sum of ``max_usages`` over
   enabled backends that are running or loading. Polled while generations run, so backends added or
   removed during a run are followed.
2. Without that permission: the status frames of our own generations. Each generation has its own
   session, whose counters say whether it is waiting for a backend. While none of ours waits and more
   work is queued on our side, the server has room: grow. When several wait, shrink to what runs plus
   the margin.

Never more than twice the server's slots are in flight, and never more than :data:`MAX_IN_FLIGHT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .slots import SlotPool

log = logging.getLogger("assetbuild.swarm")

START_LIMIT = 4  # before the server has said anything (and the old fixed default)
MAX_IN_FLIGHT = 256
POLL_SECONDS = 2.0  # ListBackends while generations run
ADAPT_SECONDS = 0.5  # status-frame adaptation without ListBackends


def target_in_flight(server_slots: int) -> int:
    """Requests to keep in flight for ``server_slots``: all slots busy plus a few waiting (<= 2x)."""
    if server_slots <= 0:
        return 1  # no backend now: one request finds out what the server says (an error, or a wait)
    margin = max(1, server_slots // 4)
    return min(2 * server_slots, server_slots + margin, MAX_IN_FLIGHT)


def slots_from_backends(listing: Any) -> int | None:
    """Total ``max_usages`` of usable backends in a ``ListBackends`` answer; None if it is not one."""
    if not isinstance(listing, dict):
        return None
    total = 0
    for backend in listing.values():
        if not isinstance(backend, dict):
            return None
        usages = backend.get("max_usages")
        if not isinstance(usages, int) or isinstance(usages, bool) or usages < 0:
            continue
        if backend.get("enabled") is False or backend.get("status") not in ("running", "loading", "idle"):
            continue
        total += usages
    return total


class CapacityFollower:
    """Keeps ``pool.limit`` at :func:`target_in_flight` of the server's slots, capped by ``cap``."""

    def __init__(self, pool: SlotPool, list_backends: Callable[[], Awaitable[Any]], *,
                 cap: int | None = None, poll_seconds: float = POLL_SECONDS,
                 adapt_seconds: float = ADAPT_SECONDS) -> None:
        self.pool = pool
        self._list_backends = list_backends
        self.cap = cap if cap is not None else MAX_IN_FLIGHT
        self.poll_seconds = poll_seconds
        self.adapt_seconds = adapt_seconds
        self.server_slots: int | None = None  # from ListBackends; None while unknown or not permitted
        self.listing_allowed = True
        self._first_probe: asyncio.Task[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self.changes: list[int] = []  # every limit set, for tests and the verbose log

    async def started(self) -> None:
        """Probe once before the first generation starts, then follow in the background."""
        if self._first_probe is None:
            self._first_probe = asyncio.create_task(self._probe())
        await asyncio.shield(self._first_probe)
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._follow())

    async def aclose(self) -> None:
        for task in (self._loop_task, self._first_probe):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _probe(self) -> None:
        if not self.listing_allowed:
            return
        try:
            listing = await self._list_backends()
        except PermissionError:
            self.listing_allowed = False
            log.debug("ListBackends is not permitted; following the status of our own generations")
            return
        except Exception as exc:  # noqa: BLE001 - a failed probe keeps the last limit
            log.debug("ListBackends failed (%s); keeping %d in flight", exc, self.pool.limit)
            return
        slots = slots_from_backends(listing)
        if slots is None:
            self.listing_allowed = False
            return
        if slots != self.server_slots:
            log.debug("the server has %d generation slots", slots)
        self.server_slots = slots
        self._set(target_in_flight(slots))

    async def _follow(self) -> None:
        elapsed = 0.0
        while True:
            await asyncio.sleep(self.adapt_seconds)
            elapsed += self.adapt_seconds
            if self.listing_allowed:
                if elapsed >= self.poll_seconds and (self.pool.in_use or self.pool.waiting):
                    elapsed = 0.0
                    await self._probe()
            else:
                self._adapt_from_status()

    def _adapt_from_status(self) -> None:
        """Grow while none of our generations waits for a backend and more work waits on our side."""
        busy = self.pool.in_use_slots()
        waiting_on_server = sum(1 for slot in busy if slot.waiting_for_backend)
        limit = self.pool.limit
        running = len(busy) - waiting_on_server
        margin = max(1, running // 4)
        if waiting_on_server == 0 and self.pool.waiting and len(busy) >= limit:
            self._set(limit + max(1, limit // 4))
        elif waiting_on_server > margin + 1:
            self._set(running + margin)

    def _set(self, limit: int) -> None:
        limit = max(1, min(limit, self.cap))
        if limit != self.pool.limit:
            self.pool.set_limit(limit)
            self.changes.append(limit)
