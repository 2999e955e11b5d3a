"""The SwarmUI client's one retry helper (issue 13.4): exponential backoff with jitter, bounded attempts.

The schedule is checked with an injected random source and a recording sleep, so nothing waits.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from assetbuild.swarm.retry import MAX_DELAY, Backoff


def run_attempts(policy: Backoff, stop_after: int | None = None) -> list[int]:
    """The attempt numbers ``policy`` yields (leaving the loop after ``stop_after`` of them)."""

    async def main() -> list[int]:
        seen: list[int] = []
        async for attempt in policy.attempts():
            seen.append(attempt)
            if stop_after is not None and len(seen) == stop_after:
                break
        return seen

    return asyncio.run(main())


def recording(**options: object) -> tuple[Backoff, list[float]]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    return Backoff(sleep=sleep, **options), waits  # type: ignore[arg-type]


@pytest.mark.parametrize("retries", [0, 1, 4])
def test_one_attempt_plus_the_retries_and_no_wait_before_the_first(retries: int) -> None:
    policy, waits = recording(retries=retries, base=0.25)
    assert run_attempts(policy) == list(range(retries + 1))
    assert policy.total == retries + 1
    assert len(waits) == retries  # a wait before each retry, none before the first attempt or after the last


def test_without_jitter_the_waits_double_from_the_base() -> None:
    policy, waits = recording(retries=4, base=0.25, jitter=0.0)
    run_attempts(policy)
    assert waits == [0.25, 0.5, 1.0, 2.0]  # the schedule the client used before the helper existed


def test_jitter_stays_within_its_share_of_each_wait() -> None:
    for draw in (0.0, 0.3, 0.999999):
        policy, waits = recording(retries=4, base=0.25, jitter=0.5, rand=lambda value=draw: value)
        run_attempts(policy)
        for attempt, wait in enumerate(waits, start=1):
            nominal = 0.25 * 2 ** (attempt - 1)
            assert nominal * 0.5 <= wait <= nominal
            assert wait == pytest.approx(nominal * (1 - 0.5 * draw))


def test_jitter_spreads_the_waits_of_requests_that_failed_together() -> None:
    draws = itertools.cycle([0.0, 0.5, 0.9])
    policy = Backoff(retries=3, base=1.0, rand=lambda: next(draws))
    assert len({policy.delay(1) for _ in range(3)}) == 3


def test_waits_are_bounded_by_the_maximum_even_for_large_attempt_numbers() -> None:
    policy = Backoff(retries=10_000, base=0.25, jitter=0.0)
    assert policy.delay(10) == MAX_DELAY
    assert policy.delay(5_000) == MAX_DELAY  # no OverflowError from 2 ** 4999
    assert Backoff(retries=3, base=1.0, max_delay=1.5, jitter=0.0).delay(3) == 1.5
    assert policy.delay(0) == 0.0


def test_leaving_the_loop_early_stops_the_attempts() -> None:
    policy, waits = recording(retries=4, base=0.25)
    assert run_attempts(policy, stop_after=2) == [0, 1]
    assert len(waits) == 1


def test_each_loop_starts_a_fresh_series() -> None:
    policy, _waits = recording(retries=2, base=0.0)
    assert run_attempts(policy) == run_attempts(policy) == [0, 1, 2]


@pytest.mark.parametrize("options", [{"retries": -1, "base": 0.1}, {"retries": 1, "base": -0.1},
                                     {"retries": 1, "base": 0.1, "jitter": 1.5}])
def test_nonsense_settings_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**options)  # type: ignore[arg-type]
