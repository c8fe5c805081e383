"""The collector's composition root: settings → Redis, a hub client, the calendar → the
collector, and running it until a stop signal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio

from apihub_core import ConfigurationError, HubClient, redis_client
from apihub_marketdata import CalendarError, TradingCalendar, krx_calendar
from apihub_runtime import Settings, serve

from ._collector import DRAIN_GRACE_S, Collector
from ._schedule import MAX_IDLE_S, MAX_PAUSE_S
from ._watch import targets


async def _calendar(settings: Settings) -> TradingCalendar:
    try:
        # Built once per process from exchange-calendars (seconds): off the event loop, so a
        # signal during start-up is handled at once.
        return await anyio.to_thread.run_sync(krx_calendar, settings.market.calendar_override)
    except CalendarError as exc:
        raise ConfigurationError(str(exc)) from None


@asynccontextmanager
async def open_collector(
    settings: Settings,
    *,
    name: str = "collector",
    calendar: TradingCalendar | None = None,
    drain_grace_s: float = DRAIN_GRACE_S,
    recheck_s: float = MAX_PAUSE_S,
    idle_recheck_s: float = MAX_IDLE_S,
) -> AsyncIterator[Collector]:
    """The collector ``name`` of ``settings``' hub, with its Redis pool and hub client, closed
    on exit. ``calendar`` defaults to the KRX calendar (``[market] calendar_override``), built
    only when there is something to collect; the timings are :class:`Collector`'s."""
    if not settings.redis_url:
        raise ConfigurationError(
            "the collector needs REDIS_URL (or run everything with `apihub up`)"
        )
    polled, _ = targets(settings.watchlist)
    chosen = calendar
    if chosen is None and settings.collector.enabled and polled:
        chosen = await _calendar(settings)
    in_flight = max(1, settings.collector.max_in_flight)
    async with AsyncExitStack() as stack:
        redis = redis_client(settings.redis_url, max_connections=16)
        stack.push_async_callback(redis.aclose)
        hub = await stack.enter_async_context(
            HubClient.from_url(
                settings.redis_url, namespace=settings.namespace, max_connections=in_flight + 4
            )
        )
        yield Collector(
            redis,
            hub,
            settings,
            chosen,
            name=name,
            drain_grace_s=drain_grace_s,
            recheck_s=recheck_s,
            idle_recheck_s=idle_recheck_s,
        )


async def run_collector(settings: Settings) -> int:
    """Run the collector until SIGINT/SIGTERM, drain it, and return the exit status."""
    return await serve(open_collector(settings), name="collector")
