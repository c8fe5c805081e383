"""The sentinel's composition root: Redis, a hub client for its requests, the calendar."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from apihub_core import ConfigurationError, HubClient, redis_client
from apihub_marketdata import krx_calendar
from apihub_runtime import Settings, serve

from ._sentinel import Sentinel


@asynccontextmanager
async def open_sentinel(settings: Settings) -> AsyncIterator[Sentinel]:
    """A sentinel on ``settings.redis_url`` with the KRX calendar (and its override file)."""
    if not settings.redis_url:
        raise ConfigurationError(
            "the sentinel needs REDIS_URL (or run everything with `apihub up`)"
        )
    calendar = krx_calendar(settings.market.calendar_override)
    redis = redis_client(settings.redis_url, max_connections=48)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(redis.aclose)
        hub = await stack.enter_async_context(
            HubClient.from_url(settings.redis_url, namespace=settings.namespace, max_connections=8)
        )
        # The daily-against-minutes check reads the archive when it is on this machine.
        root = settings.archive.root(settings.data_dir)
        yield Sentinel(redis, hub, settings, calendar=calendar, archive_root=root)


async def run_sentinel(settings: Settings) -> int:
    """Run one sentinel replica until SIGINT/SIGTERM, drain it, and return the exit status."""
    return await serve(open_sentinel(settings), name="sentinel")
