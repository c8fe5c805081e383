"""Fixtures for cross-service tests: a real Redis, the simulator over HTTP and the services.

Shared helpers are fixtures (never imported from here): ``make_settings`` builds a hub's
settings, ``spawn_dispatcher`` starts a dispatcher process (killed at teardown),
``stored_tokens`` reads back every token the keeper holds (for secret scans).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace

import anyio
import pytest
import redis.asyncio as aioredis

from apihub_core import HubClient, Keys
from apihub_dispatcher import Dispatcher, open_dispatcher
from apihub_runtime import Settings, TokenStore, load_settings, load_token_key
from apihub_token_keeper import TokenKeeper, open_token_keeper

TEST_RATE_ENV = {
    # The simulator has no rate limit unless a test arms one, so the hub's own budget is raised
    # far above the brokers' defaults to keep tests quick; rate-limit tests set their own.
    "APIHUB_KIS_RATE_PER_S": "500",
    "APIHUB_KIWOOM_RATE_PER_S": "500",
    "APIHUB_KIWOOM_RATE_PER_API_ID_PER_S": "500",
}

MakeSettings = Callable[..., Settings]


@pytest.fixture
def make_settings(redis_url: str, hub_namespace: str) -> MakeSettings:
    """``make_settings(sim_url, **dispatcher_tuning)``: demo-credential settings of this test's
    hub, pointing at ``sim_url`` and the test Redis."""

    def make(sim_url: str, **dispatcher: object) -> Settings:
        settings = load_settings(
            env={"REDIS_URL": redis_url, "APIHUB_NAMESPACE": hub_namespace, **TEST_RATE_ENV}
        )
        settings = settings.with_demo_base_url(sim_url)
        tuning = {"reclaim_idle_ms": 400, "reclaim_interval_s": 0.1, "block_ms": 100, **dispatcher}
        return replace(settings, dispatcher=replace(settings.dispatcher, **tuning))  # type: ignore[arg-type]

    return make


@pytest.fixture
def settings(make_settings: MakeSettings, sim_url: str) -> Settings:
    """Settings of this test's hub."""
    return make_settings(sim_url)


@pytest.fixture
def keys(hub_namespace: str) -> Keys:
    """Stream and key names of this test's namespace."""
    return Keys(hub_namespace)


@pytest.fixture
def redis(aredis: aioredis.Redis) -> aioredis.Redis:
    """A plain redis-py client, for looking at streams directly."""
    return aredis


@pytest.fixture
async def token_keeper(settings: Settings) -> AsyncIterator[TokenKeeper]:
    """The token-keeper of this test's namespace; stopped at teardown."""
    async with open_token_keeper(settings) as keeper, anyio.create_task_group() as tg:
        await tg.start(keeper.run)
        yield keeper
        keeper.stop()


@pytest.fixture
async def dispatcher(settings: Settings, token_keeper: TokenKeeper) -> AsyncIterator[Dispatcher]:
    """One dispatcher consuming this test's namespace (with its token-keeper); drained at
    teardown."""
    async with open_dispatcher(settings) as running, anyio.create_task_group() as tg:
        await tg.start(running.run)
        yield running
        running.stop()


@pytest.fixture
async def hub(redis_url: str, hub_namespace: str) -> AsyncIterator[HubClient]:
    """A HubClient of this test's namespace."""
    async with HubClient.from_url(redis_url, namespace=hub_namespace) as client:
        yield client


SpawnDispatcher = Callable[[dict[str, str]], "subprocess.Popen[bytes]"]


@pytest.fixture
def spawn_dispatcher() -> Iterator[SpawnDispatcher]:
    """``spawn_dispatcher(env)``: a dispatcher in its own process (``python -m
    apihub_dispatcher``), so a test can kill it; every one still running is killed at teardown.
    """
    started: list[subprocess.Popen[bytes]] = []

    def spawn(settings_env: dict[str, str]) -> subprocess.Popen[bytes]:
        env = {**os.environ, **TEST_RATE_ENV, **settings_env}
        proc = subprocess.Popen(
            [sys.executable, "-m", "apihub_dispatcher"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        return proc

    yield spawn
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def stored_tokens(redis: aioredis.Redis, settings: Settings) -> Callable[[], Awaitable[list[str]]]:
    """``await stored_tokens()``: every token the keeper holds for this hub, decrypted (for
    secret scans)."""
    store = TokenStore(redis, load_token_key(settings.data_dir))
    keys = Keys(settings.namespace)

    async def read() -> list[str]:
        found = []
        for provider, name in settings.accounts:
            token = await store.get(keys.token(provider.value, name))
            if token is not None:
                found.append(token.value.reveal())
        return found

    return read
