"""The ``apihub`` pytest plugin: a real Redis for the tests (the simulator's fixtures come with
``apihub_broker_sim.pytest_plugin``).

Fixtures:

``redis_server`` (session)
    A real Redis for the whole session: ``APIHUB_TEST_REDIS_URL`` if set, else a
    ``redis:7-alpine`` container when a Docker engine answers, else a ``redis-server``
    child process on a free port. A :class:`~apihub_testing.RedisServer` with ``.url``
    and ``.kind``. Whatever it started is stopped at the end of the session.
``redis_url`` (function)
    ``redis_server.url``, after a ``FLUSHALL`` so every test starts empty.
``aredis`` (function, async)
    An asyncio redis-py client on ``redis_url``, closed after the test.
``hub_namespace`` (function)
    A unique key prefix for the test, ``t`` + 8 hex digits.
``anyio_backend`` (session)
    ``"asyncio"``: ``@pytest.mark.anyio`` tests run on asyncio, and async fixtures
    may be session-scoped.

The session also gets a random ``APIHUB_TOKEN_KEY`` (unless one is set), so the token store of
every service a test starts, in-process or as a child process, shares one key and no test
writes a key file into the working directory.
"""

from __future__ import annotations

import base64
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio as aioredis

from ._redis import RedisServer, running_redis


def pytest_configure(config: pytest.Config) -> None:
    """A session-wide token key in the environment (see the module docstring)."""
    os.environ.setdefault(
        "APIHUB_TOKEN_KEY", base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real Redis for the session (see the module docstring for the order tried)."""
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session Redis's URL, flushed (FLUSHALL) before the test."""
    with redis.Redis.from_url(redis_server.url, socket_timeout=10) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
async def aredis(redis_url: str, anyio_backend: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio redis-py client on the (flushed) session Redis, closed after the test."""
    client = aioredis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def hub_namespace() -> str:
    """A key prefix unique to this test, e.g. ``t1a2b3c4d``."""
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Run ``@pytest.mark.anyio`` tests on asyncio (overrides anyio's module-scoped one)."""
    return "asyncio"
