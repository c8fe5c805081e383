"""Composition root of the token-keeper: Redis, broker clients, the token store, the keeper."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import redis.asyncio as aioredis

from apihub_brokers import client_for, make_http_client
from apihub_core import ConfigurationError, Provider, redis_client
from apihub_runtime import Settings, TokenStore, load_token_key, serve

from ._keeper import TokenKeeper


@asynccontextmanager
async def open_token_keeper(
    settings: Settings,
    redis: aioredis.Redis | None = None,
    *,
    consumer: str | None = None,
) -> AsyncIterator[TokenKeeper]:
    """A ready-to-run :class:`TokenKeeper` and everything it owns, closed on exit.

    ``redis`` is borrowed when given (and left open), else one is opened on
    ``settings.redis_url``. The token key comes from ``APIHUB_TOKEN_KEY`` or
    ``<data dir>/token.key``: every dispatcher must read the same one.
    """
    own_redis: aioredis.Redis | None = None
    if redis is None:
        if not settings.redis_url:
            raise ConfigurationError(
                "the token-keeper needs REDIS_URL (or run everything with `apihub up`)"
            )
        redis = own_redis = redis_client(
            settings.redis_url, max_connections=settings.token_keeper.redis_max_connections
        )
    http = make_http_client(
        "httpx" if settings.dispatcher.transport == "httpx" else "aiohttp",
        max_connections=8,
        timeout=settings.dispatcher.http_timeout_s,
    )
    try:
        store = TokenStore(redis, load_token_key(settings.data_dir))
        clients = {provider: client_for(provider, http) for provider in Provider}
        yield TokenKeeper(redis, settings, clients, store, consumer=consumer)
    finally:
        with anyio.CancelScope(shield=True):
            await http.aclose()
            if own_redis is not None:
                await own_redis.aclose()


async def run_token_keeper(settings: Settings) -> int:
    """Run one token-keeper until SIGINT/SIGTERM, drain it, and return the exit status."""
    return await serve(open_token_keeper(settings), name="token-keeper")
