"""Fixtures of the collector tests: a simulator of their own whose clock they set, the market
clock published to match, and a hub (token-keeper and dispatcher in-process) on the test's
Redis namespace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

import anyio
import httpx
import pytest
import redis.asyncio as aioredis

from apihub_broker_sim import SimConfig, ThreadedSimServer
from apihub_collector import Collector, open_collector
from apihub_core import Keys
from apihub_dispatcher import Dispatcher, open_dispatcher
from apihub_marketdata import KST, TradingCalendar, krx_calendar
from apihub_runtime import MarketClock, Settings, load_settings
from apihub_token_keeper import open_token_keeper

IN_SESSION = datetime(2025, 3, 21, 10, 30, tzinfo=KST)
"""A Friday morning, inside the KRX session (the tests' ``IN_SESSION`` too)."""

TEST_RATE_ENV = {
    # The hub's own budget far above the brokers' defaults: the simulator has no limit here.
    "APIHUB_KIS_RATE_PER_S": "500",
    "APIHUB_KIWOOM_RATE_PER_S": "500",
    "APIHUB_KIWOOM_RATE_PER_API_ID_PER_S": "500",
}

StartCollector = Callable[..., AbstractAsyncContextManager[Collector]]


@pytest.fixture(scope="session")
def calendar() -> TradingCalendar:
    """The KRX calendar (built once per process)."""
    return krx_calendar()


@pytest.fixture(scope="session")
def market_sim() -> Iterator[ThreadedSimServer]:
    """A simulator of the collector tests alone, so setting its clock disturbs no other test."""
    with ThreadedSimServer(SimConfig(start_time=IN_SESSION, frozen=True)) as server:
        yield server


@pytest.fixture
def market_sim_url(market_sim: ThreadedSimServer) -> str:
    """The simulator's URL after a reset, its clock frozen at :data:`IN_SESSION`."""
    url = str(market_sim.url).rstrip("/")
    httpx.post(f"{url}/__sim/reset", timeout=10.0).raise_for_status()
    market_sim.clock.set(IN_SESSION, frozen=True)
    return url


@pytest.fixture
async def sim_admin_api(market_sim_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator's admin API."""
    async with httpx.AsyncClient(base_url=market_sim_url, timeout=10.0) as client:
        yield client


@pytest.fixture
def keys(hub_namespace: str) -> Keys:
    """Stream and key names of this test's namespace."""
    return Keys(hub_namespace)


@pytest.fixture
def settings(redis_url: str, hub_namespace: str, market_sim_url: str) -> Settings:
    """Demo-account settings of this test's hub on the collector simulator."""
    loaded = load_settings(
        env={"REDIS_URL": redis_url, "APIHUB_NAMESPACE": hub_namespace, **TEST_RATE_ENV}
    )
    loaded = loaded.with_demo_base_url(market_sim_url)
    tuning = {"reclaim_idle_ms": 400, "reclaim_interval_s": 0.1, "block_ms": 100}
    return replace(loaded, dispatcher=replace(loaded.dispatcher, **tuning))  # type: ignore[arg-type]


SetClock = Callable[[datetime], Awaitable[None]]


@pytest.fixture
async def market_clock(
    aredis: aioredis.Redis, keys: Keys, market_sim: ThreadedSimServer, market_sim_url: str
) -> SetClock:
    """``await market_clock(when)``: stand the simulator's clock at ``when`` (frozen) and
    publish it as the market clock, as ``apihub up`` keeps them together. Starts at
    :data:`IN_SESSION`."""

    async def publish(when: datetime) -> None:
        market_sim.clock.set(when, frozen=True)
        await MarketClock.anchored(when, frozen=True).publish(aredis, keys)

    await publish(IN_SESSION)
    return publish


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[Dispatcher]:
    """A token-keeper and a dispatcher serving this test's namespace."""
    async with (
        open_token_keeper(settings) as keeper,
        open_dispatcher(settings) as dispatcher,
        anyio.create_task_group() as tg,
    ):
        await tg.start(keeper.run)
        await tg.start(dispatcher.run)
        yield dispatcher
        dispatcher.stop()
        keeper.stop()


@pytest.fixture
def start_collector(
    settings: Settings, calendar: TradingCalendar, market_clock: SetClock
) -> StartCollector:
    """``async with start_collector(watch=..., **collector_tuning) as collector``: a running
    collector of this test's hub (re-reading the clock every 0.05 s), stopped on exit."""

    @asynccontextmanager
    async def start(**options: Any) -> AsyncIterator[Collector]:
        timings = {
            key: options.pop(key)
            for key in ("drain_grace_s", "recheck_s", "idle_recheck_s")
            if key in options
        }
        timings.setdefault("recheck_s", 0.05)
        timings.setdefault("idle_recheck_s", 0.05)
        tuned = replace(settings, collector=replace(settings.collector, **options))
        async with (
            open_collector(tuned, calendar=calendar, **timings) as collector,
            anyio.create_task_group() as tg,
        ):
            await tg.start(collector.run)
            yield collector
            collector.stop()

    return start
