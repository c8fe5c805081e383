"""Pacing: the permits of a sub-minute window are spread evenly instead of leaving in bursts."""

from __future__ import annotations

import itertools
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

import anyio
import pytest
import redis.asyncio as aioredis

from apihub_core import Priority, RateLimitWaited
from apihub_governance import Bucket, Gatekeeper, Permit, Window
from apihub_runtime import RateLimiterSettings
from apihub_testing import async_wait_until

E = TypeVar("E")


class GatekeeperHarness(Protocol):
    """The conftest's ``gatekeepers`` fixture, as far as these tests use it."""

    redis: aioredis.Redis

    def settings(self, **overrides: Any) -> RateLimiterSettings: ...
    def bucket(self, name: str = "KIS:main", *windows: Window) -> Bucket: ...
    def gatekeeper(
        self,
        tuning: RateLimiterSettings | None = None,
        *,
        member: str = "d1",
        limiter_url: str | None = None,
    ) -> AbstractAsyncContextManager[Gatekeeper]: ...
    async def events_of(self, kind: type[E]) -> list[E]: ...
    def key(self, b: Bucket, suffix: str) -> str: ...
    async def script_calls(self) -> int: ...


pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("pacing", [1.0, 0.5])
async def test_consecutive_grants_are_spaced(gatekeepers: GatekeeperHarness, pacing: float) -> None:
    tuning = gatekeepers.settings(pacing=pacing)
    b = gatekeepers.bucket("KIS:main", Window(4, 400))
    permits: list[Permit] = []

    async def one(gk: Gatekeeper) -> None:
        permits.append(await gk.acquire([b], "interactive", timeout_s=20))

    async with gatekeepers.gatekeeper(tuning) as gk, anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(one, gk)
    grants = sorted(p.granted_at_ms for p in permits)
    spacing = pacing * (400 + 10.0) / 4  # the margin is the initial 10 ms
    # On a schedule: the k-th grant no earlier than k intervals after the first, and a grant
    # that came a little late lets the next one catch up by at most half an interval.
    for k, granted in enumerate(grants):
        assert granted - grants[0] >= k * spacing - 0.01, grants
    gaps = [later - earlier for earlier, later in itertools.pairwise(grants)]
    assert min(gaps) >= spacing / 2 - 0.01, gaps
    # The window rule still holds on top: never more than 4 in any 410 ms.
    for i, start in enumerate(grants):
        assert sum(1 for g in grants[i:] if g - start < 410) <= 4


async def test_without_pacing_a_window_leaves_at_once(gatekeepers: GatekeeperHarness) -> None:
    b = gatekeepers.bucket("KIS:main", Window(4, 400))
    async with gatekeepers.gatekeeper(gatekeepers.settings(pacing=0.0)) as gk:
        await gk.acquire(
            [gatekeepers.bucket("KIS:other")], "order", timeout_s=5
        )  # loads the script
        asks = await gatekeepers.script_calls()
        for i in range(4):
            await gk.acquire([b], "interactive", timeout_s=5, request_id=f"r{i}")
        assert await gatekeepers.script_calls() - asks == 4, "each granted on its first ask"
    assert await gatekeepers.events_of(RateLimitWaited) == [], "nobody waited"


async def test_the_paced_slot_goes_to_the_best_rank_across_processes(
    gatekeepers: GatekeeperHarness,
) -> None:
    tuning = gatekeepers.settings(pacing=1.0)
    b = gatekeepers.bucket("KIS:main", Window(3, 3000))  # one paced slot per ~1 s
    q = gatekeepers.key(b, "q")
    granted: list[str] = []

    async def one(gk: Gatekeeper, priority: Priority) -> None:
        await gk.acquire([b], priority, timeout_s=25, request_id=priority)
        granted.append(priority)

    async with (
        gatekeepers.gatekeeper(tuning, member="d1") as first,
        gatekeepers.gatekeeper(tuning, member="d2") as second,
        gatekeepers.gatekeeper(tuning, member="d3") as third,
        anyio.create_task_group() as tg,
    ):
        await first.acquire([b], "order", timeout_s=5)
        for count, (gk, priority) in enumerate(
            ((first, "backfill"), (second, "collector"), (third, "interactive")), 1
        ):
            tg.start_soon(one, gk, priority)

            async def queued(n: int = count) -> bool:
                return int(await gatekeepers.redis.zcard(q)) >= n

            await async_wait_until(queued, timeout=10)
    assert granted == ["interactive", "collector", "backfill"]
