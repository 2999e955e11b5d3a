"""Bounded retries with exponential backoff and jitter: the one retry loop of the SwarmUI client.

    async for attempt in Backoff(retries=4, base=0.25).attempts():
        ...  # attempt 0 runs at once; attempt n waits about base * 2 ** (n - 1) seconds first

The jitter spreads the retries of many requests that failed together (a server restarting under a full
build) so they do not all come back in the same instant. It is "equal jitter": each wait is drawn from
the upper half of its nominal delay, so a retry never comes much sooner than the plain exponential
schedule would (a dead server is still given its time) and never later. The random source and the sleep
are injectable so tests check the schedule without waiting.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

MAX_DELAY = 30.0  # seconds: no single wait longer than this, whatever the attempt number


@dataclass(frozen=True)
class Backoff:
    """``retries`` further attempts after the first; waits doubling from ``base`` seconds, at most
    ``max_delay``, each shortened by up to ``jitter`` (a fraction of it) at random."""

    retries: int
    base: float
    max_delay: float = MAX_DELAY
    jitter: float = 0.5
    rand: Callable[[], float] = field(default=random.random, repr=False, compare=False)  # in [0, 1)
    sleep: Callable[[float], Awaitable[object]] = field(default=asyncio.sleep, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, not {self.retries}")
        if self.base < 0 or self.max_delay < 0:
            raise ValueError("delays must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, not {self.jitter}")

    @property
    def total(self) -> int:
        """How many attempts in all (the first one and the retries)."""
        return self.retries + 1

    def nominal(self, attempt: int) -> float:
        """The wait before ``attempt`` (0 = the first, which does not wait) without jitter."""
        if attempt <= 0:
            return 0.0
        # min() on the exponent first: a large attempt number must not overflow the float.
        return min(self.max_delay, self.base * 2.0 ** min(attempt - 1, 64))

    def delay(self, attempt: int) -> float:
        """The wait before ``attempt``: within [nominal x (1 - jitter), nominal]."""
        nominal = self.nominal(attempt)
        return nominal * (1 - self.jitter * self.rand()) if nominal else 0.0

    def attempts(self) -> _Attempts:
        """The attempt numbers 0 .. retries, waiting before each one after the first. Stop early by
        leaving the loop (``return``/``break``/an exception); ``continue`` goes on to the next attempt."""
        return _Attempts(self)


class _Attempts:
    """The async iterator behind :meth:`Backoff.attempts` (a class, not an async generator: leaving the
    loop early leaves nothing to finalise)."""

    def __init__(self, policy: Backoff) -> None:
        self._policy = policy
        self._next = 0

    def __aiter__(self) -> _Attempts:
        return self

    async def __anext__(self) -> int:
        attempt = self._next
        if attempt >= self._policy.total:
            raise StopAsyncIteration
        self._next += 1
        if attempt:
            await self._policy.sleep(self._policy.delay(attempt))
        return attempt
