"""Composition root of the dispatcher service: Redis, broker clients, tokens, the consumer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import redis.asyncio as aioredis

from apihub_brokers import client_for, make_http_client
from apihub_core import ConfigurationError, Provider, Settings
from apihub_core._lifecycle import stop_on_signal

from ._dispatcher import Dispatcher
from ._tokens import LocalTokenCache


@asynccontextmanager
async def open_dispatcher(
    settings: Settings,
    *,
    redis: aioredis.Redis | None = None,
    consumer: str | None = None,
) -> AsyncIterator[Dispatcher]:
    """A ready-to-run :class:`Dispatcher` and everything it owns, closed on exit."""
    own_redis: aioredis.Redis | None = None
    if redis is None:
        if not settings.redis_url:
            raise ConfigurationError(
                "the dispatcher needs REDIS_URL (or run everything with `apihub up`)"
            )
        redis = own_redis = aioredis.from_url(settings.redis_url)
    tuning = settings.dispatcher
    http = make_http_client(
        "httpx" if tuning.transport == "httpx" else "aiohttp",
        max_connections=tuning.concurrency,
        timeout=tuning.http_timeout_s,
    )
    clients = {provider: client_for(provider, http) for provider in Provider}
    try:
        yield Dispatcher(redis, settings, clients, LocalTokenCache(clients), consumer=consumer)
    finally:
        with anyio.CancelScope(shield=True):
            await http.aclose()
            if own_redis is not None:
                await own_redis.aclose()


async def serve(settings: Settings) -> None:
    """Run one dispatcher until SIGINT/SIGTERM, then drain and return."""
    async with open_dispatcher(settings) as dispatcher, anyio.create_task_group() as tg:
        tg.start_soon(stop_on_signal, dispatcher.stop)
        await dispatcher.run()
        tg.cancel_scope.cancel()
