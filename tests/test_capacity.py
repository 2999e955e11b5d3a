"""Generations in flight follow the server's capacity when ``server.concurrency`` is not set (issue 16).

Pure tests of the slot pool and the sizing rule, then the client against the SwarmUI double over real
sockets: with ListBackends, without its permission (status frames only), and backends added mid-run.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import run_cli, write_manifest

from assetbuild.swarm.capacity import MAX_IN_FLIGHT, slots_from_backends, target_in_flight
from assetbuild.swarm.client import SwarmClient
from assetbuild.swarm.slots import SlotPool
from assetbuild.testing import FakeSwarm

pytestmark = pytest.mark.timeout(90)

MODEL = "sd_xl_base_1.0"
PARALLEL: dict[str, Any] = {"latency": 0.3, "steps": 2, "close_delay": 0.01, "model_load_delay": 0.0,
                            "slot_parallel": True}


# ------------------------------------------------------------------------------------------ pure parts


def test_target_keeps_every_slot_busy_plus_a_margin_never_twice_the_slots() -> None:
    for slots in (1, 2, 4, 8, 16, 32, 64, 200):
        target = target_in_flight(slots)
        assert slots < target <= 2 * slots or target == MAX_IN_FLIGHT
    assert target_in_flight(0) == 1


def test_slots_from_backends_counts_usable_backends_only() -> None:
    listing = {
        "0": {"status": "running", "enabled": True, "max_usages": 2},
        "1": {"status": "loading", "enabled": True, "max_usages": 2},
        "2": {"status": "errored", "enabled": True, "max_usages": 2},
        "3": {"status": "running", "enabled": False, "max_usages": 2},
        "4": {"status": "running", "enabled": True, "max_usages": "x"},
    }
    assert slots_from_backends(listing) == 4
    assert slots_from_backends({}) == 0
    assert slots_from_backends(["not", "a", "dict"]) is None
    assert slots_from_backends({"0": "x"}) is None


def test_slot_pool_follows_its_limit_in_arrival_order() -> None:
    async def main() -> None:
        pool = SlotPool(2)
        first, second = await pool.acquire(), await pool.acquire()
        order: list[int] = []

        async def waiter(n: int) -> None:
            slot = await pool.acquire()
            order.append(n)
            await asyncio.sleep(0)
            pool.release(slot)

        tasks = [asyncio.create_task(waiter(n)) for n in range(4)]
        await asyncio.sleep(0.01)
        assert order == [] and pool.waiting == 4
        pool.set_limit(3)  # one more may start now
        await asyncio.sleep(0.01)
        assert order[:1] == [0]
        pool.release(first)
        pool.release(second)
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3]
        assert pool.in_use == 0 and pool.peak_in_use <= 3
        assert len(pool.all) <= 3  # idle slots (and their sessions) are reused

    asyncio.run(main())


def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    async def main() -> None:
        pool = SlotPool(1)
        held = await pool.acquire()
        doomed = asyncio.create_task(pool.acquire())
        patient = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0.01)
        pool.release(held)  # wakes `doomed`...
        doomed.cancel()  # ...which is cancelled before it runs
        slot = await asyncio.wait_for(patient, 2)
        assert pool.in_use == 1
        pool.release(slot)

    asyncio.run(main())


# ---------------------------------------------------------------------------- against the double


def _generate_all(fake: FakeSwarm, count: int, *, during: Any = None, **options: Any) -> SwarmClient:
    async def main() -> SwarmClient:
        client = SwarmClient(fake.url, concurrency=None, backoff=0.01, **options)
        try:
            jobs = [client.generate({"prompt": f"image {n}", "model": MODEL, "width": 64, "height": 64,
                                     "seed": n}, {}, lambda _: None) for n in range(count)]
            if during is not None:
                jobs.append(during(client))
            await asyncio.gather(*jobs)
        finally:
            await client.aclose()
        return client

    return asyncio.run(main())


def test_without_concurrency_every_server_slot_is_used_and_the_queue_stays_short() -> None:
    with FakeSwarm(backends=8, **PARALLEL) as fake:
        client = _generate_all(fake, 48)
        assert fake.generations == 48
        assert fake.peak_live_gens == 16  # all 8 backends x 2 slots generated at once
        assert fake.peak_in_flight <= 2 * 16  # never a flood
        assert client.capacity is not None and client.capacity.server_slots == 16


class _HeldListBackends(httpx.AsyncHTTPTransport):
    """Holds the ListBackends call until a generation reaches the server (or a second has passed): a
    client that submitted before knowing the server's slots shows it in the server's request order."""

    def __init__(self, fake: FakeSwarm) -> None:
        super().__init__()
        self.fake = fake

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/ListBackends"):
            for _ in range(100):
                if self.fake.request_count("GenerateText2ImageWS"):
                    break
                await asyncio.sleep(0.01)
        return await super().handle_async_request(request)


def test_the_server_is_asked_for_its_slots_before_the_first_generation() -> None:
    # The pool is sized before anything is submitted: the first wave already fills every slot, instead
    # of starting at the old default of 4 and growing once a poll comes round.
    with FakeSwarm(backends=8, **PARALLEL) as fake:
        client = _generate_all(fake, 16, transport=_HeldListBackends(fake))
        routes = [r.route for r in fake.requests]
        assert "ListBackends" in routes and "GenerateText2ImageWS" in routes
        assert routes.index("ListBackends") < routes.index("GenerateText2ImageWS")
        assert client.capacity is not None and client.capacity.changes[0] == target_in_flight(16)
        assert fake.peak_live_gens == 16


def test_a_fixed_concurrency_stays_a_hard_cap() -> None:
    with FakeSwarm(backends=8, **PARALLEL) as fake:
        async def main() -> None:
            client = SwarmClient(fake.url, concurrency=3, backoff=0.01)
            try:
                await asyncio.gather(*(client.generate({"prompt": f"i {n}", "model": MODEL, "seed": n}, {},
                                                       lambda _: None) for n in range(9)))
            finally:
                await client.aclose()
            assert client.capacity is None

        asyncio.run(main())
        assert fake.peak_in_flight == 3
        assert fake.request_count("ListBackends") == 0


def test_backends_added_during_the_run_are_used() -> None:
    with FakeSwarm(backends=1, **dict(PARALLEL, latency=0.4)) as fake:
        async def add_backends(client: SwarmClient) -> None:
            while fake.generations < 2:  # the run is under way on one backend
                await asyncio.sleep(0.02)
            assert fake.peak_live_gens == 2
            fake.set_backends(4)

        client = _generate_all(fake, 40, during=add_backends, capacity_poll=0.2)
        assert fake.generations == 40
        assert fake.peak_live_gens > 2  # the new backends got work
        assert client.capacity is not None and client.capacity.server_slots == 8
        assert fake.peak_in_flight <= 16


def test_without_the_backends_list_permission_the_status_frames_size_the_load() -> None:
    with FakeSwarm(backends=6, list_backends_allowed=False, **dict(PARALLEL, latency=0.4)) as fake:
        client = _generate_all(fake, 72)
        assert fake.generations == 72
        assert client.capacity is not None and client.capacity.listing_allowed is False
        assert fake.peak_live_gens > 4  # grew past the starting guess of 4
        assert fake.peak_in_flight <= 2 * 12


def _build_ok(project: Path, fake: FakeSwarm, count: int) -> str:
    """Build ``count`` assets of one manifest without ``concurrency`` on ``fake``; the manifest's text."""
    body = '[server]\nwebsocket = true\n\n[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\n\n'
    body += "".join(f'[assets."img/{n:02d}.png"]\nprompt = "image {n}"\nseed = {n}\n\n' for n in range(count))
    write_manifest(project, body)
    result = run_cli(project, "--server", fake.url)
    assert result.returncode == 0, result.stdout + result.stderr
    return body


def test_a_build_without_concurrency_fills_the_server(project: Path) -> None:
    with FakeSwarm(backends=4, **PARALLEL) as fake:
        _build_ok(project, fake, 24)
        assert fake.generations == 24
        assert fake.peak_live_gens == 8
        assert fake.peak_in_flight <= 16


# ------------------------------------------------------------------------- warm-up before a run's generations


def test_warm_up_opens_the_first_generations_sessions_and_no_more() -> None:
    # The capacity is learnt and each slot the first wave takes has its session before that wave starts:
    # no generation then waits for a GetNewSession round trip of its own.
    with FakeSwarm(backends=8, **PARALLEL) as fake:
        async def main() -> SwarmClient:
            client = SwarmClient(fake.url, concurrency=None, backoff=0.01)
            try:
                await client.warm_up(5)  # fewer generations than the server's 16 slots (limit 20)
                assert client.capacity is not None and client.capacity.server_slots == 16
                assert [slot.session_id is not None for slot in client.slots.all] == [True] * 5
                sessions_before = fake.request_count("GetNewSession")
                await asyncio.gather(*(client.generate({"prompt": f"image {n}", "model": MODEL, "seed": n,
                                                        "width": 64, "height": 64}, {}, lambda _: None)
                                       for n in range(5)))
                assert fake.request_count("GetNewSession") == sessions_before  # every slot had its session
                return client
            finally:
                await client.aclose()

        client = asyncio.run(main())
        assert fake.generations == 5
        assert len(client.slots.all) == 5


def test_warm_up_is_bounded_by_the_limit_and_survives_a_refused_session() -> None:
    with FakeSwarm(backends=1, **PARALLEL) as fake:
        async def main() -> SwarmClient:
            client = SwarmClient(fake.url, concurrency=3, backoff=0.01, retries=0)
            try:
                fake.fail_next(1, status=400, route="GetNewSession")
                await client.warm_up(50)  # a fixed concurrency of 3 bounds it; one session is refused
                opened = [slot for slot in client.slots.all if slot.session_id is not None]
                assert len(client.slots.all) == 3 and len(opened) == 2
                image = await client.generate({"prompt": "after", "model": MODEL, "seed": 1, "width": 64,
                                               "height": 64}, {}, lambda _: None)
                assert image.data is not None and image.data.startswith(b"\x89PNG")
                return client
            finally:
                await client.aclose()

        asyncio.run(main())
        assert fake.request_count("ListBackends") == 0  # a fixed concurrency never asks for the capacity


def test_a_build_opens_sessions_only_for_the_assets_it_generates(project: Path) -> None:
    with FakeSwarm(backends=8, **PARALLEL) as fake:
        body = _build_ok(project, fake, 3)
        assert fake.generations == 3
        # one control session (the server check, capacity) and one per generation's slot: not the 20 slots
        # the server could take
        assert fake.request_count("GetNewSession") == 4
        write_manifest(project, body.replace('prompt = "image 0"', 'prompt = "image 0 again"\nmodel = "no_such_model"'))
        fake.reset_records()
        refused = run_cli(project, "--server", fake.url)
        assert refused.returncode == 2, refused.stdout + refused.stderr  # the server check stops the run
        # The check's own sessions (it asks again, with a new one, before calling a model unknown); no
        # capacity probe and no slot session: nothing is prepared for generations that will not run.
        routes = [r.route for r in fake.requests]
        assert routes.count("GetNewSession") == 2 and "ListBackends" not in routes, routes
        assert fake.generations == 0


def test_until_sent_returns_once_as_many_requests_as_the_slots_allow_are_out() -> None:
    with FakeSwarm(backends=1, **dict(PARALLEL, latency=1.0)) as fake:
        async def main() -> None:
            client = SwarmClient(fake.url, concurrency=3, backoff=0.01)
            try:
                jobs = [asyncio.ensure_future(client.generate({"prompt": f"i {n}", "model": MODEL, "seed": n},
                                                              {}, lambda _: None)) for n in range(5)]
                await asyncio.wait_for(client.until_sent(5), 30)  # 3 at once: it cannot wait for 5
                assert client.sent == 3
                assert not any(job.done() for job in jobs)  # long before any image
                while fake.request_count("GenerateText2ImageWS") < 3:  # on their way to the server
                    await asyncio.sleep(0.01)
                await asyncio.gather(*jobs)
                assert client.sent == 5
            finally:
                await client.aclose()

        asyncio.run(main())
        assert fake.generations == 5
