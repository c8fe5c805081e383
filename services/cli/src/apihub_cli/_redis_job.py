"""One short job on the hub's Redis from a command: the pool, and every failure as one line."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from apihub_core import HubError, HubUnavailable, describe_redis_failure, masked_url, redis_client
from apihub_runtime import ExitCode, exit_code_for

from ._failing import fail

T = TypeVar("T")


def redis_job(
    url: str, job: Callable[[aioredis.Redis], Awaitable[T]], *, connections: int = 2
) -> T:
    """Run ``job`` with a Redis pool on ``url`` and return what it returns; a bad URL, an
    unreachable Redis or a hub error ends the command with its exit code and one line."""

    async def run() -> T:
        try:
            redis = redis_client(url, max_connections=connections)
        except ValueError as exc:
            fail(f"{masked_url(url)!r} is not a Redis URL: {exc}", code=ExitCode.USAGE)
        try:
            return await job(redis)
        except RedisError as exc:
            raise HubUnavailable(
                f"Redis at {masked_url(url)}: {describe_redis_failure(exc)}"
            ) from None
        finally:
            await redis.aclose()

    try:
        return anyio.run(run)
    except HubError as exc:
        fail(f"{exc.error_class}: {exc}", code=exit_code_for(exc))
