"""Redis clients whose pools absorb bursts: a caller waits for a free connection instead of
failing, and a full pool is never mistaken for an unreachable Redis.

redis-py's default pool raises ``MaxConnectionsError`` as soon as its 100 connections are in use,
so 200 concurrent calls through one client meant 100 failures with Redis perfectly healthy. A
:class:`~redis.asyncio.BlockingConnectionPool` makes the 101st caller wait for the first
connection to come back; the wait is bounded by the caller's own deadline (its cancel scope) and,
as a backstop, by ``pool_wait_s``.
"""

from __future__ import annotations

from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError

DEFAULT_MAX_CONNECTIONS: Final = 64
"""Pool size of a client that does not know the concurrency it serves."""

DEFAULT_POOL_WAIT_S: Final = 30.0
"""How long a command waits for a free connection at most (callers' deadlines come first)."""

_POOL_EXHAUSTED: Final = ("No connection available", "Too many connections")


def redis_client(
    url: str,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    pool_wait_s: float | None = DEFAULT_POOL_WAIT_S,
    enough: bool = False,
    **options: Any,
) -> aioredis.Redis:
    """An asyncio Redis client on ``url`` with a pool of ``max_connections``.

    Size the pool from the concurrency it serves (each task holds at most one connection at a
    time, a blocking read holds one for its whole block). The pool is a blocking one: when all
    connections are busy, a command waits for one. ``enough=True`` says the caller has sized it
    so that can never happen (more connections than it can ever use at once), and buys the
    cheaper plain pool, which would fail instead of waiting. Closing the client closes the pool.
    """
    if max_connections < 1:
        raise ValueError(f"max_connections must be at least 1, got {max_connections}")
    if enough:
        return aioredis.Redis.from_pool(
            aioredis.ConnectionPool.from_url(url, max_connections=max_connections, **options)
        )
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=pool_wait_s, **options
    )
    return aioredis.Redis.from_pool(pool)


def pool_exhausted(exc: BaseException) -> bool:
    """Whether ``exc`` says the *client's* pool had no free connection (Redis itself may be
    fine), rather than that Redis could not be reached."""
    if isinstance(exc, MaxConnectionsError):
        return True
    return isinstance(exc, RedisConnectionError) and any(
        text in str(exc) for text in _POOL_EXHAUSTED
    )


def describe_redis_failure(exc: BaseException) -> str:
    """A short, accurate reason for a failed Redis command, for an error message."""
    if pool_exhausted(exc):
        return f"no free connection in this client's pool ({exc}); Redis itself may be fine"
    return f"Redis unreachable ({type(exc).__name__})"
