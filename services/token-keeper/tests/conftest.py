"""Fixtures of the token-keeper tests: a simulator with a short issuance window, and a
:class:`TokenFleet` that runs keeper replicas and dispatcher-side token readers against the
test's Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import redis.asyncio as aioredis
from anyio.abc import TaskGroup

from apihub_broker_sim import SimConfig, ThreadedSimServer, appkey_fingerprint
from apihub_core import Keys, Provider, TokenEvent, decode_token_event
from apihub_runtime import (
    AccountConfig,
    Settings,
    SharedTokenSource,
    TokenStore,
    load_settings,
    load_token_key,
)
from apihub_testing import async_wait_until
from apihub_token_keeper import TokenKeeper, open_token_keeper

WINDOW_S = 2.0
"""The issuance window of the fast simulator and of the keepers using it (KIS has 60 s)."""


@pytest.fixture(scope="session")
def fast_sim() -> Iterator[ThreadedSimServer]:
    """A simulator whose KIS issuance window is ``WINDOW_S`` and which mints a new token on
    every issuance (no 6 h reuse), so refreshes are visible as new values."""
    config = SimConfig(token_issue_window_s=WINDOW_S, kis_reissue_same_within_s=0)
    with ThreadedSimServer(config) as server:
        yield server


@pytest.fixture
def fast_sim_url(fast_sim: ThreadedSimServer) -> str:
    """The fast simulator's URL, after a reset."""
    url = str(fast_sim.url).rstrip("/")
    httpx.post(f"{url}/__sim/reset", timeout=10.0).raise_for_status()
    return url


def fleet_settings(
    redis_url: str, sim_url: str, namespace: str, data_dir: Path, **tuning: Any
) -> Settings:
    """Demo-account settings on the test Redis and ``sim_url``, with fast keeper tuning."""
    settings = load_settings(env={"REDIS_URL": redis_url, "APIHUB_NAMESPACE": namespace})
    settings = replace(settings.with_demo_base_url(sim_url), data_dir=data_dir)
    fast = {"block_ms": 100, "scan_interval_s": 0.2, "token_wait_s": 20.0, **tuning}
    return replace(settings, token_keeper=replace(settings.token_keeper, **fast))


class TokenFleet:
    """Keepers and token readers of one test; everything started is stopped at teardown."""

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        tg: TaskGroup,
        resources: AsyncExitStack,
        sim_url: str,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = Keys(settings.namespace)
        self.store = TokenStore(redis, load_token_key(settings.data_dir))
        self.sim_url = sim_url
        self._tg = tg
        self._resources = resources
        self._stops: list[Any] = []
        self.stopped: dict[int, anyio.Event] = {}

    def account(self, provider: Provider = Provider.KIS, name: str = "default") -> AccountConfig:
        """A configured account."""
        return self.settings.accounts[(provider, name)]

    def with_account(self, name: str, provider: Provider = Provider.KIS) -> AccountConfig:
        """Add a second account of ``provider`` with its own (fake) app key."""
        base = self.account(provider)
        suffix = name.upper().ljust(8, "X")[:8]
        account = replace(
            base,
            name=name,
            app_key=type(base.app_key)(base.app_key.reveal()[:-8] + suffix),
            app_secret=type(base.app_secret)(base.app_secret.reveal()[:-8] + suffix),
        )
        accounts = {**self.settings.accounts, (provider, name): account}
        self.settings = replace(self.settings, accounts=accounts)
        return account

    async def keeper(self, **tuning: Any) -> TokenKeeper:
        """Start a keeper replica (own Redis connection and HTTP client)."""
        settings = self.settings
        if tuning:
            settings = replace(settings, token_keeper=replace(settings.token_keeper, **tuning))
        keeper = await self._resources.enter_async_context(open_token_keeper(settings))
        done = anyio.Event()
        self.stopped[id(keeper)] = done

        async def run(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            try:
                await keeper.run(task_status=task_status)
            finally:
                done.set()

        await self._tg.start(run)
        self._stops.append(keeper.stop)
        return keeper

    async def source(
        self, member: str = "dispatcher-1", *, watch: bool = True
    ) -> SharedTokenSource:
        """A dispatcher's token reader with its own Redis client (and its watcher running)."""
        client = aioredis.from_url(self.settings.redis_url or "")
        self._resources.push_async_callback(client.aclose)
        source = SharedTokenSource(
            client,
            self.keys,
            TokenStore(client, load_token_key(self.settings.data_dir)),
            self.settings.token_keeper,
            member=member,
        )
        if watch:
            await self._tg.start(source.run)
            self._stops.append(source.stop)
        return source

    def stop_all(self) -> None:
        """Begin stopping everything started."""
        for stop in self._stops:
            stop()

    async def events(self, *kinds: type[Any]) -> list[TokenEvent]:
        """Every event on the token stream (of the given types), oldest first."""
        entries = await self.redis.xrange(self.keys.tokens)
        decoded = [decode_token_event(fields) for _id, fields in entries]
        return [e for e in decoded if not kinds or isinstance(e, kinds)]

    async def settled(self) -> None:
        """Wait until every keeper has read and acknowledged every entry of the token stream."""

        async def done() -> bool:
            last = await self.redis.xrevrange(self.keys.tokens, count=1)
            groups = await self.redis.xinfo_groups(self.keys.tokens)
            return bool(last) and all(
                g["pending"] == 0 and g["last-delivered-id"] == last[0][0] for g in groups
            )

        await async_wait_until(done, timeout=30, interval=0.05, message="keepers never settled")

    async def sim(self, path: str) -> Any:
        """GET an admin path of the simulator."""
        async with httpx.AsyncClient(base_url=self.sim_url, timeout=10.0) as http:
            reply = await http.get(path)
            reply.raise_for_status()
            return reply.json()

    async def arm(self, fault: dict[str, Any]) -> None:
        """Arm a simulator fault."""
        async with httpx.AsyncClient(base_url=self.sim_url, timeout=10.0) as http:
            (await http.post("/__sim/faults", json=fault)).raise_for_status()

    async def issuances(self, account: AccountConfig) -> int:
        """Token issuances the simulator answered for ``account``'s app key."""
        stats = await self.sim("/__sim/stats")
        by_key = stats["token_issuances"].get(account.provider.value, {})
        return int(by_key.get(appkey_fingerprint(account.app_key.reveal()), 0))

    async def rejections(self) -> dict[str, Any]:
        """Token issuances the simulator refused (``EGW00133``), per provider and app key."""
        return dict((await self.sim("/__sim/stats"))["token_rejections"])

    async def token_calls(self, provider: Provider = Provider.KIS) -> list[dict[str, Any]]:
        """The simulator's log of token-endpoint calls of ``provider``."""
        calls = await self.sim(f"/__sim/calls?provider={provider.value}")
        return [c for c in calls if c["path"].startswith("/oauth2/token")]


@asynccontextmanager
async def running_fleet(
    settings: Settings, redis: aioredis.Redis, sim_url: str
) -> AsyncIterator[TokenFleet]:
    """A :class:`TokenFleet`; on exit stops every keeper and reader (bounded), then closes
    clients."""
    async with AsyncExitStack() as resources, anyio.create_task_group() as tg:
        fleet = TokenFleet(settings, redis, tg, resources, sim_url)
        try:
            yield fleet
        finally:
            fleet.stop_all()
            with anyio.fail_after(20):
                for done in fleet.stopped.values():
                    await done.wait()


@pytest.fixture
def fast_settings(
    redis_url: str, fast_sim_url: str, hub_namespace: str, tmp_path: Path
) -> Settings:
    """Settings on the fast simulator: issuance windows of ``WINDOW_S`` (KIS) and 1 s.

    Not named ``settings``: that fixture of ``tests/conftest.py`` means the session
    simulator's settings, and a fixture name means one thing across the tree."""
    return fleet_settings(
        redis_url, fast_sim_url, hub_namespace, tmp_path, kis_issue_window_s=WINDOW_S
    )


@pytest.fixture
async def fleet(
    fast_settings: Settings, aredis: aioredis.Redis, fast_sim_url: str
) -> AsyncIterator[TokenFleet]:
    """A token fleet (keepers and readers) on the fast simulator."""
    async with running_fleet(fast_settings, aredis, fast_sim_url) as running:
        yield running


@pytest.fixture
async def kis_fleet(
    redis_url: str, sim_url: str, hub_namespace: str, tmp_path: Path, aredis: aioredis.Redis
) -> AsyncIterator[TokenFleet]:
    """A token fleet on the session simulator, with KIS's real rules (60 s window, 6 h same token)
    and the keeper's default windows."""
    settings = fleet_settings(redis_url, sim_url, hub_namespace, tmp_path)
    async with running_fleet(settings, aredis, sim_url) as running:
        yield running
