"""The plugin's fixtures, against the real session Redis."""

from __future__ import annotations

import asyncio
import re

import pytest
import redis

from apihub_testing import RedisServer


def test_redis_server_is_real(redis_server: RedisServer) -> None:
    assert redis_server.kind in {"container", "binary", "external"}
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.ping()
        version = str(client.info("server")["redis_version"])
    assert tuple(int(part) for part in version.split(".")[:2]) >= (6, 2)


def test_redis_url_leaves_a_key_behind(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        client.set("leftover", "1")
        client.execute_command("SELECT", 2)
        client.set("leftover-db2", "1")


def test_redis_url_starts_empty(redis_url: str, redis_server: RedisServer) -> None:
    # Runs after the test above: FLUSHALL emptied every database.
    assert redis_url == redis_server.url
    with redis.Redis.from_url(redis_url) as client:
        assert client.info("keyspace") == {}


def test_hub_namespace_is_a_unique_prefix(hub_namespace: str) -> None:
    assert re.fullmatch(r"t[0-9a-f]{8}", hub_namespace)


@pytest.fixture(scope="session")
async def session_scoped_async_value(anyio_backend: str) -> str:
    # Only possible because the plugin's anyio_backend is session-scoped (anyio's
    # own is module-scoped, which would be a ScopeMismatch here).
    return anyio_backend


@pytest.mark.anyio
async def test_anyio_runs_on_asyncio(session_scoped_async_value: str) -> None:
    assert session_scoped_async_value == "asyncio"
    asyncio.get_running_loop()  # raises unless the test runs on asyncio
