"""Generation slots: how many generations the client keeps in flight, and the session each one uses.

A slot is one SwarmUI session; a generation holds its slot for its whole life, so that session's status
counters describe exactly that generation and ``InterruptAll`` on it stops exactly that job. The pool
hands out idle slots and creates new ones while fewer than ``limit`` are in use. The limit can change
at any time (:mod:`.capacity` follows the server); lowering it never cancels running work, it only
stops new generations from starting until enough have finished.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any


@dataclass
class Slot:
    """One generation slot and its SwarmUI session (created on first use)."""

    name: str
    session_id: str | None = None
    waiting_for_backend: bool = False  # the last status frame of its generation said so
    # The WebSocket of its last generation, kept open for the next one (``SwarmClient``), and when
    # that generation ended (the event loop's clock).
    socket: Any = None
    socket_since: float = 0.0


class SlotPool:
    """Idle slots are reused (their sessions stay valid); ``limit`` bounds the slots in use at once.

    Waiters are served in arrival order. ``release`` and ``set_limit`` are synchronous, so a slot is
    given back even from a ``finally`` of a cancelled generation.
    """

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._idle: list[Slot] = []
        self._busy: set[str] = set()
        self._waiters: list[asyncio.Future[None]] = []
        self.all: list[Slot] = []  # every slot ever created: Ctrl-C interrupts each one's session
        self.peak_in_use = 0

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_use(self) -> int:
        return len(self._busy)

    @property
    def waiting(self) -> int:
        """Generations waiting on our side for a slot."""
        return sum(1 for future in self._waiters if not future.done())

    def in_use_slots(self) -> list[Slot]:
        return [slot for slot in self.all if slot.name in self._busy]

    def set_limit(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._wake()

    async def acquire(self) -> Slot:
        if len(self._busy) + self._granted() >= self._limit or self._waiters:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(future)
            self._wake()
            try:
                await future
            except BaseException:
                if future.done() and not future.cancelled():
                    self._wake_after_abandon(future)
                else:
                    self._waiters.remove(future)
                raise
            self._waiters.remove(future)
        slot = self._idle.pop() if self._idle else self._new_slot()
        slot.waiting_for_backend = False
        self._busy.add(slot.name)
        self.peak_in_use = max(self.peak_in_use, len(self._busy))
        return slot

    def release(self, slot: Slot) -> None:
        self._busy.discard(slot.name)
        self._idle.append(slot)
        self._wake()

    def spare(self, count: int) -> list[Slot]:
        """The idle slots, after creating new ones up to ``count`` slots in all: their sessions can then be
        opened before the generations that will take them (``SwarmClient.warm_up``)."""
        while len(self.all) < count:
            self._idle.append(self._new_slot())
        return list(self._idle)

    def _granted(self) -> int:
        """Waiters woken but not yet running: their slots are spoken for."""
        return sum(1 for future in self._waiters if future.done())

    def _wake(self) -> None:
        free = self._limit - len(self._busy) - self._granted()
        for future in self._waiters:
            if free <= 0:
                break
            if not future.done():
                future.set_result(None)
                free -= 1

    def _wake_after_abandon(self, future: asyncio.Future[None]) -> None:
        # Woken, then cancelled before it could take its slot: pass the turn on.
        self._waiters.remove(future)
        self._wake()

    def _new_slot(self) -> Slot:
        slot = Slot(f"slot{len(self.all)}")
        self.all.append(slot)
        return slot
