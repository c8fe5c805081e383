"""Fixtures for cross-service tests: a real Redis, the simulator over HTTP and a dispatcher."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import anyio
import pytest
import redis.asyncio as aioredis

from apihub_core import HubClient, Keys
from apihub_dispatcher import Dispatcher, open_dispatcher
from apihub_runtime import Settings, TokenStore, load_settings, load_token_key
from apihub_token_keeper import TokenKeeper, open_token_keeper

REPO = Path(__file__).resolve().parents[1]

# Parameters of the TRs the end-to-end tests call.
PRICE = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}
DAILY = {"stk_cd": "005930", "base_dt": "20250321", "upd_stkpc_tp": "1"}
ORDER = {
    "CANO": "50000000",
    "ACNT_PRDT_CD": "01",
    "PDNO": "005930",
    "ORD_DVSN": "00",
    "ORD_QTY": "1",
    "ORD_UNPR": "70000",
}


TEST_RATE_ENV = {
    # The simulator has no rate limit unless a test arms one, so the hub's own budget is raised
    # far above the brokers' defaults to keep tests quick; rate-limit tests set their own.
    "APIHUB_KIS_RATE_PER_S": "500",
    "APIHUB_KIWOOM_RATE_PER_S": "500",
    "APIHUB_KIWOOM_RATE_PER_API_ID_PER_S": "500",
}


def hub_settings(redis_url: str, sim_url: str, namespace: str, **dispatcher: object) -> Settings:
    """Demo-credential settings pointing at the test Redis and simulator."""
    settings = load_settings(
        env={"REDIS_URL": redis_url, "APIHUB_NAMESPACE": namespace, **TEST_RATE_ENV}
    )
    settings = settings.with_demo_base_url(sim_url)
    tuning = {"reclaim_idle_ms": 400, "reclaim_interval_s": 0.1, "block_ms": 100, **dispatcher}
    return replace(settings, dispatcher=replace(settings.dispatcher, **tuning))  # type: ignore[arg-type]


@pytest.fixture
def settings(redis_url: str, sim_url: str, hub_namespace: str) -> Settings:
    """Settings of this test's hub."""
    return hub_settings(redis_url, sim_url, hub_namespace)


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


def dispatcher_process(settings_env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A dispatcher in its own process (``python -m apihub_dispatcher``), so a test can kill it."""
    env = {**os.environ, **TEST_RATE_ENV, **settings_env}
    return subprocess.Popen(
        [sys.executable, "-m", "apihub_dispatcher"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def stored_tokens(redis: aioredis.Redis, settings: Settings) -> list[str]:
    """Every token the token-keeper holds for this hub, decrypted (for secret scans)."""
    store = TokenStore(redis, load_token_key(settings.data_dir))
    keys = Keys(settings.namespace)
    found = []
    for provider, name in settings.accounts:
        token = await store.get(keys.token(provider.value, name))
        if token is not None:
            found.append(token.value.reveal())
    return found
