"""The gatekeeper on its own Redis (``REDIS_URL_GATEKEEPER``), and failing closed without it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import anyio
import httpx
import pytest
import redis.asyncio as aioredis

from apihub_broker_sim import KIS_PRICE
from apihub_core import HubClient, HubUnavailable, Keys
from apihub_dispatcher import open_dispatcher
from apihub_embedded import EmbeddedRedis
from apihub_runtime import Settings

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("token_keeper")]


@pytest.fixture
def limiter_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A second real redis-server, for the gatekeeper alone; stopped at teardown."""
    with EmbeddedRedis(tmp_path / "gatekeeper", appendonly=False) as server:
        yield server


async def test_permits_live_on_the_gatekeeper_redis_and_events_on_the_hubs(
    hub: HubClient,
    settings: Settings,
    limiter_redis: EmbeddedRedis,
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    tuned = replace(settings, redis_url_gatekeeper=limiter_redis.url)
    async with open_dispatcher(tuned) as running, anyio.create_task_group() as tg:
        await tg.start(running.run)
        await hub.execute("KIS", "FHKST01010100", KIS_PRICE)
        running.stop()
    async with aioredis.from_url(limiter_redis.url) as limiter:
        limiter_keys = [k.decode() for k in await limiter.keys("*")]
    hub_keys = [k.decode() for k in await redis.keys(f"{keys.rate_limit_prefix}*")]
    assert any(k.startswith(keys.rate_limit_prefix) for k in limiter_keys), limiter_keys
    assert hub_keys == [], "no limiter state on the hub's Redis"


async def test_an_unreachable_gatekeeper_redis_fails_closed(
    hub: HubClient,
    settings: Settings,
    limiter_redis: EmbeddedRedis,
    sim_admin: httpx.AsyncClient,
) -> None:
    tuned = replace(settings, redis_url_gatekeeper=limiter_redis.url)
    async with open_dispatcher(tuned) as running, anyio.create_task_group() as tg:
        await tg.start(running.run)
        await hub.execute("KIS", "FHKST01010100", KIS_PRICE)
        (await sim_admin.delete("/__sim/calls")).raise_for_status()
        limiter_redis.stop()
        with pytest.raises(HubUnavailable, match="rate limiter"):
            await hub.execute("KIS", "FHKST01010100", KIS_PRICE)
        running.stop()
    calls = (await sim_admin.get("/__sim/calls")).json()
    records = calls["calls"] if isinstance(calls, dict) else calls
    assert [c for c in records if c.get("tr_id") == "FHKST01010100"] == [], "no call left"
