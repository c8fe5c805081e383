"""Two dispatchers, one app key, a broker that counts arrivals: the fleet stays within the quota.

The simulator here enforces KIS's sliding one-second window (EGW00201 beyond it) after a jittered
one-way delay, like the quota benchmark, at test scale. The margin is set well above the jitter
so the outcome does not depend on how busy the test machine is: this checks that the budget is
shared (two processes, one window), not how close to the limit the gatekeeper gets (that is the
benchmark's job).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import anyio
import httpx
import pytest
import redis.asyncio as aioredis

from apihub_broker_sim import KIS_PRICE, SimConfig, ThreadedSimServer
from apihub_core import HubClient, Provider
from apihub_dispatcher import open_dispatcher
from apihub_runtime import AccountRate, Settings
from apihub_token_keeper import open_token_keeper

pytestmark = pytest.mark.anyio

LIMIT = 5


@pytest.fixture(scope="module")
def strict_sim_server() -> Iterator[ThreadedSimServer]:
    """A simulator with a 5/s window per app key and 0–20 ms of one-way jitter."""
    config = SimConfig(
        kis_rate_limit_per_s=LIMIT,
        conditions=({"latency": {"base_ms": 2, "jitter_ms": 20}},),
    )
    with ThreadedSimServer(config) as server:
        yield server


@pytest.fixture
def strict_sim(strict_sim_server: ThreadedSimServer) -> str:
    """The strict simulator's URL, after a reset (its calls, tokens and rate windows cleared)."""
    url = str(strict_sim_server.url).rstrip("/")
    httpx.post(f"{url}/__sim/reset", timeout=10.0).raise_for_status()
    return url


async def test_two_dispatchers_share_one_budget_and_the_broker_never_says_too_fast(
    strict_sim: str,
    make_settings: Callable[..., Settings],
    redis_url: str,
    hub_namespace: str,
    aredis: aioredis.Redis,
) -> None:
    settings = make_settings(strict_sim)
    kis = replace(settings.account(Provider.KIS), rate=AccountRate(per_second=LIMIT))
    settings = replace(
        settings,
        accounts={**settings.accounts, (Provider.KIS, "default"): kis},
        rate_limiter=replace(settings.rate_limiter, initial_margin_ms=150, min_margin_ms=150),
        # One entry per read, so both dispatchers (both blocked in XREADGROUP) get work.
        dispatcher=replace(settings.dispatcher, read_count=1),
    )
    answered = 0
    async with (
        open_token_keeper(settings) as keeper,
        open_dispatcher(settings, consumer="d1") as first,
        open_dispatcher(settings, consumer="d2") as second,
        HubClient.from_url(redis_url, namespace=hub_namespace) as hub,
        anyio.create_task_group() as tg,
    ):
        await tg.start(keeper.run)
        await tg.start(first.run)
        await tg.start(second.run)

        async def call() -> None:
            nonlocal answered
            await hub.execute("KIS", "FHKST01010100", KIS_PRICE, timeout=60)
            answered += 1

        async with anyio.create_task_group() as calls:
            for _ in range(4 * LIMIT):
                calls.start_soon(call)
        first.stop()
        second.stop()
        keeper.stop()

    stats = (await _get(strict_sim, "/__sim/stats")).json()
    assert answered == 4 * LIMIT
    assert stats["rate_limit_rejections"] == 0, "no EGW00201: the fleet kept one budget"
    assert stats["max_calls_in_any_1s_window"] <= LIMIT
    assert first.consumer.handled > 0, "both dispatchers took requests"
    assert second.consumer.handled > 0, "both dispatchers took requests"
    assert first.consumer.handled + second.consumer.handled == 4 * LIMIT


async def _get(base: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        return await client.get(path)
