"""Composition root of the dispatcher service: Redis, broker clients, the governed path
(shared tokens, gatekeeper, circuit breaker) and the consumer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Protocol

import anyio
import redis.asyncio as aioredis

from apihub_brokers import client_for, make_http_client
from apihub_core import ConfigurationError, Keys, Provider
from apihub_governance import CircuitBreaker, Gatekeeper
from apihub_runtime import (
    Settings,
    SharedTokenSource,
    TokenStore,
    consumer_name,
    load_token_key,
    stop_on_signal,
)

from ._dispatcher import Dispatcher


@asynccontextmanager
async def open_dispatcher(
    settings: Settings,
    *,
    redis: aioredis.Redis | None = None,
    consumer: str | None = None,
) -> AsyncIterator[Dispatcher]:
    """A ready-to-run :class:`Dispatcher` and everything it owns, closed on exit."""
    async with AsyncExitStack() as stack:
        if redis is None:
            if not settings.redis_url:
                raise ConfigurationError(
                    "the dispatcher needs REDIS_URL (or run everything with `apihub up`)"
                )
            redis = aioredis.from_url(settings.redis_url)
            stack.push_async_callback(_shielded_close, redis)
        limiter_redis = redis
        if settings.redis_url_gatekeeper and settings.redis_url_gatekeeper != settings.redis_url:
            limiter_redis = aioredis.from_url(settings.redis_url_gatekeeper)
            stack.push_async_callback(_shielded_close, limiter_redis)
        tuning = settings.dispatcher
        http = make_http_client(
            "httpx" if tuning.transport == "httpx" else "aiohttp",
            max_connections=tuning.concurrency,
            timeout=tuning.http_timeout_s,
        )
        stack.push_async_callback(_shielded_close, http)
        clients = {provider: client_for(provider, http) for provider in Provider}
        member = consumer or consumer_name("dispatcher")
        keys = Keys(settings.namespace)
        tokens = SharedTokenSource(
            redis,
            keys,
            TokenStore(redis, load_token_key(settings.data_dir)),
            settings.token_keeper,
            member=member,
        )
        gatekeeper = Gatekeeper(limiter_redis, redis, keys, settings.rate_limiter, member=member)
        breaker = CircuitBreaker(redis, keys, settings.breaker, member=member)
        yield Dispatcher(
            redis,
            settings,
            clients,
            tokens,
            gatekeeper,
            breaker,
            consumer=member,
            companions=(gatekeeper, tokens),
        )


class _Closable(Protocol):
    async def aclose(self) -> None: ...


async def _shielded_close(resource: _Closable) -> None:
    with anyio.CancelScope(shield=True):
        await resource.aclose()


async def serve(settings: Settings) -> None:
    """Run one dispatcher until SIGINT/SIGTERM, then drain and return."""
    async with open_dispatcher(settings) as dispatcher, anyio.create_task_group() as tg:
        tg.start_soon(stop_on_signal, dispatcher.stop)
        await dispatcher.run()
        tg.cancel_scope.cancel()
