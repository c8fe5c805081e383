"""Batched grants: a lane head asks for the permits of the waiters behind it in one script call,
when the budget is large enough that they are due at once; a tight budget is never burst."""

from __future__ import annotations

import itertools
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import anyio
import pytest
import redis.asyncio as aioredis

from apihub_core import UpstreamRateLimited
from apihub_governance import Bucket, Gatekeeper, Permit, Window
from apihub_runtime import RateLimiterSettings

pytestmark = pytest.mark.anyio


class GatekeeperHarness(Protocol):
    """The conftest's ``gatekeepers`` fixture, as far as these tests use it."""

    redis: aioredis.Redis

    def settings(self, **overrides: Any) -> RateLimiterSettings: ...
    def bucket(self, name: str = "KIS:main", *windows: Window) -> Bucket: ...
    def gatekeeper(
        self, tuning: RateLimiterSettings | None = None, *, member: str = "d1"
    ) -> AbstractAsyncContextManager[Gatekeeper]: ...
    def key(self, b: Bucket, suffix: str) -> str: ...
    async def script_calls(self) -> int: ...


async def _burst(gatekeeper: Gatekeeper, bucket: Bucket, n: int) -> list[Permit]:
    permits: list[Permit] = []

    async def one() -> None:
        permits.append(await gatekeeper.acquire([bucket], "interactive", timeout_s=20))

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
    return permits


@pytest.mark.parametrize("pacing", [0.0, 1.0])
async def test_a_large_budget_grants_a_lanes_waiters_together(
    gatekeepers: GatekeeperHarness, pacing: float
) -> None:
    bucket = gatekeepers.bucket("KIS:big", Window(1_000_000, 1_000))
    async with gatekeepers.gatekeeper(gatekeepers.settings(pacing=pacing)) as gatekeeper:
        before = await gatekeepers.script_calls()
        permits = await _burst(gatekeeper, bucket, 40)
        calls = await gatekeepers.script_calls() - before
    assert len(permits) == 40
    assert calls < 20, f"{calls} script calls for 40 permits"
    assert await gatekeepers.redis.zcard(gatekeepers.key(bucket, "g")) == 40, "one grant each"


async def test_a_tight_budget_is_never_granted_in_a_burst(gatekeepers: GatekeeperHarness) -> None:
    # 5 a second with pacing: one grant every 200 ms; a batch may not bring the next forward.
    bucket = gatekeepers.bucket("KIS:tight", Window(5, 1_000))
    tuning = gatekeepers.settings(pacing=1.0, initial_margin_ms=1.0, min_margin_ms=1.0)
    async with gatekeepers.gatekeeper(tuning) as gatekeeper:
        permits = await _burst(gatekeeper, bucket, 4)
    granted = sorted(permit.granted_at_ms for permit in permits)
    gaps = [later - earlier for earlier, later in itertools.pairwise(granted)]
    assert min(gaps) >= 190, f"grants closer than the pacing interval: {gaps}"


async def test_a_batch_respects_the_window_it_fills(gatekeepers: GatekeeperHarness) -> None:
    bucket = gatekeepers.bucket("KIS:small", Window(3, 60_000))
    async with gatekeepers.gatekeeper() as gatekeeper:
        got: list[Permit] = []
        refused: list[UpstreamRateLimited] = []

        async def one() -> None:
            try:
                got.append(await gatekeeper.acquire([bucket], "interactive", timeout_s=0.8))
            except UpstreamRateLimited as exc:
                refused.append(exc)

        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(one)
    assert len(got) == 3, "never more than the window allows, however many ask at once"
    assert len(refused) == 3
    assert await gatekeepers.redis.zcard(gatekeepers.key(bucket, "g")) == 3


async def test_a_batch_member_cancelled_meanwhile_gives_its_permit_back(
    gatekeepers: GatekeeperHarness,
) -> None:
    bucket = gatekeepers.bucket("KIS:big", Window(1_000_000, 1_000))
    async with gatekeepers.gatekeeper() as gatekeeper:
        leaving = anyio.CancelScope()
        permits: list[Permit] = []

        async def stays() -> None:
            permits.append(await gatekeeper.acquire([bucket], "interactive", timeout_s=20))

        async def leaves() -> None:
            with leaving:
                await gatekeeper.acquire([bucket], "interactive", timeout_s=20)
                pytest.fail("the cancelled waiter got to use its permit")

        async with anyio.create_task_group() as tg:
            tg.start_soon(stays)
            tg.start_soon(leaves)
            tg.start_soon(stays)
            await anyio.wait_all_tasks_blocked()
            leaving.cancel()
    assert len(permits) == 2
    grants = await gatekeepers.redis.zcard(gatekeepers.key(bucket, "g"))
    assert grants == 2, "the unused permit went back to the budget"
