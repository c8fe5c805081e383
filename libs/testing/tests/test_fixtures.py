"""The plugin's fixtures, against the real session Redis (and in inner pytest sessions that
share it through ``APIHUB_TEST_REDIS_URL``, so no second redis-server starts)."""

from __future__ import annotations

import asyncio
import re
import textwrap

import pytest
import redis

from apihub_testing import RedisServer

pytest_plugins = ["pytester"]

INNER_CONFTEST = 'pytest_plugins = ["apihub_testing.plugin"]\n'

INNER_REDIS_TESTS = """
import redis


def test_leaves_keys_behind(redis_url):
    with redis.Redis.from_url(redis_url) as client:
        client.set("leftover", "1")
        client.execute_command("SELECT", 2)
        client.set("leftover-db2", "1")


def test_sees_the_leftovers(redis_server):
    with redis.Redis.from_url(redis_server.url) as client:
        assert set(client.info("keyspace")) == {"db0", "db2"}, "the keys outlive their test"


def test_starts_empty(redis_url, redis_server):
    assert redis_server.kind == "external"
    assert redis_url == redis_server.url
    with redis.Redis.from_url(redis_url) as client:
        assert client.info("keyspace") == {}
"""

INNER_NAMESPACE_TESTS = """
from pathlib import Path

import pytest


@pytest.mark.parametrize("n", range(3))
def test_records_its_namespace(hub_namespace, n):
    (Path({out!r}) / f"namespace-{{n}}").write_text(hub_namespace)
"""


@pytest.fixture
def inner_pytester(
    pytester: pytest.Pytester, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    """A pytester directory whose sessions load the plugin and use this session's Redis."""
    monkeypatch.setenv("APIHUB_TEST_REDIS_URL", redis_server.url)
    pytester.makeconftest(INNER_CONFTEST)
    return pytester


def _run(inner_pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return inner_pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-W", "error", *args, timeout=20
    )


def test_redis_server_is_real(redis_server: RedisServer) -> None:
    assert redis_server.kind in {"container", "binary", "external"}
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.ping()
        version = str(client.info("server")["redis_version"])
    assert tuple(int(part) for part in version.split(".")[:2]) >= (6, 2)


def test_redis_url_starts_empty_after_a_test_that_left_keys(
    inner_pytester: pytest.Pytester, redis_server: RedisServer
) -> None:
    inner_pytester.makepyfile(test_inner=textwrap.dedent(INNER_REDIS_TESTS))
    # Node ids run in the order given; only the last test asks for redis_url again.
    result = _run(
        inner_pytester,
        "test_inner.py::test_leaves_keys_behind",
        "test_inner.py::test_sees_the_leftovers",
        "test_inner.py::test_starts_empty",
    )
    result.assert_outcomes(passed=3)
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.info("keyspace") == {}


def test_hub_namespace_is_a_unique_prefix(inner_pytester: pytest.Pytester) -> None:
    out = inner_pytester.mkdir("namespaces")
    inner_pytester.makepyfile(
        test_inner=textwrap.dedent(INNER_NAMESPACE_TESTS.format(out=str(out)))
    )
    _run(inner_pytester).assert_outcomes(passed=3)
    namespaces = [(out / f"namespace-{n}").read_text() for n in range(3)]
    assert all(re.fullmatch(r"t[0-9a-f]{8}", namespace) for namespace in namespaces), namespaces
    assert len(set(namespaces)) == 3, namespaces


@pytest.fixture(scope="session")
async def session_scoped_async_value(anyio_backend: str) -> str:
    # Only possible because the plugin's anyio_backend is session-scoped (anyio's
    # own is module-scoped, which would be a ScopeMismatch here).
    return anyio_backend


@pytest.mark.anyio
async def test_anyio_runs_on_asyncio(session_scoped_async_value: str) -> None:
    assert session_scoped_async_value == "asyncio"
    asyncio.get_running_loop()  # raises unless the test runs on asyncio
