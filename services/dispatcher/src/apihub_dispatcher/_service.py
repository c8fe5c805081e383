"""Composition root of the dispatcher service: Redis, broker clients, the governed path
(shared tokens, gatekeeper, circuit breaker) and the consumer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Protocol

import anyio
import redis.asyncio as aioredis

from apihub_brokers import client_for, make_transport
from apihub_core import ConfigurationError, Keys, Provider, redis_client
from apihub_governance import CircuitBreaker, Gatekeeper
from apihub_runtime import (
    Settings,
    SharedTokenSource,
    TokenStore,
    consumer_name,
    load_token_key,
    serve,
)

from ._dispatcher import Dispatcher


@asynccontextmanager
async def open_dispatcher(
    settings: Settings,
    *,
    redis: aioredis.Redis | None = None,
    consumer: str | None = None,
) -> AsyncIterator[Dispatcher]:
    """A ready-to-run :class:`Dispatcher` and everything it owns, closed on exit.

    ``redis`` is borrowed when given (and left open); otherwise a pool sized from the
    dispatcher's concurrency is opened on ``settings.redis_url`` (and one on the gatekeeper's
    Redis when that is another server).
    """
    async with AsyncExitStack() as stack:
        tuning = settings.dispatcher
        if redis is None:
            if not settings.redis_url:
                raise ConfigurationError(
                    "the dispatcher needs REDIS_URL (or run everything with `apihub up`)"
                )
            redis = redis_client(
                settings.redis_url,
                max_connections=tuning.pool_size(),
                enough=tuning.pool_is_enough(),
            )
            stack.push_async_callback(_shielded_close, redis)
        limiter_redis = redis
        if settings.redis_url_gatekeeper and settings.redis_url_gatekeeper != settings.redis_url:
            limiter_redis = redis_client(
                settings.redis_url_gatekeeper,
                max_connections=tuning.pool_size(),
                enough=tuning.pool_is_enough(),
            )
            stack.push_async_callback(_shielded_close, limiter_redis)
        http = make_transport(
            "httpx" if tuning.transport == "httpx" else "aiohttp",
            max_connections=tuning.concurrency,
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
            companions=(gatekeeper, tokens, breaker),
        )


class _Closable(Protocol):
    async def aclose(self) -> None: ...


async def _shielded_close(resource: _Closable) -> None:
    with anyio.CancelScope(shield=True):
        await resource.aclose()


async def run_dispatcher(settings: Settings) -> int:
    """Run one dispatcher until SIGINT/SIGTERM, drain it, and return the exit status."""
    return await serve(open_dispatcher(settings), name="dispatcher")
