"""Pacing: the permits of a sub-minute window are spread evenly instead of leaving in bursts."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import anyio
import pytest

from apihub_core import Priority
from apihub_governance import Permit, Window
from apihub_testing import async_wait_until

if TYPE_CHECKING:
    from apihub_governance import Gatekeeper
    from conftest import Harness

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("pacing", [1.0, 0.5])
async def test_consecutive_grants_are_spaced(harness: Harness, pacing: float) -> None:
    tuning = harness.settings(pacing=pacing)
    b = harness.bucket("KIS:main", Window(4, 400))
    permits: list[Permit] = []

    async def one(gk: Gatekeeper) -> None:
        permits.append(await gk.acquire([b], "interactive", timeout_s=20))

    async with harness.gatekeeper(tuning) as gk, anyio.create_task_group() as tg:
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


async def test_without_pacing_a_window_leaves_at_once(harness: Harness) -> None:
    b = harness.bucket("KIS:main", Window(4, 400))
    async with harness.gatekeeper(harness.settings(pacing=0.0)) as gk:
        permits = [await gk.acquire([b], "interactive", timeout_s=5) for _ in range(4)]
    assert all(p.waited_ms < 400 for p in permits)
    assert permits[-1].granted_at_ms - permits[0].granted_at_ms < 400


async def test_the_paced_slot_goes_to_the_best_rank_across_processes(harness: Harness) -> None:
    tuning = harness.settings(pacing=1.0)
    b = harness.bucket("KIS:main", Window(3, 3000))  # one paced slot per ~1 s
    q = harness.key(b, "q")
    granted: list[str] = []

    async def one(gk: Gatekeeper, priority: Priority) -> None:
        await gk.acquire([b], priority, timeout_s=25, request_id=priority)
        granted.append(priority)

    async with (
        harness.gatekeeper(tuning, member="d1") as first,
        harness.gatekeeper(tuning, member="d2") as second,
        harness.gatekeeper(tuning, member="d3") as third,
        anyio.create_task_group() as tg,
    ):
        await first.acquire([b], "order", timeout_s=5)
        for count, (gk, priority) in enumerate(
            ((first, "backfill"), (second, "collector"), (third, "interactive")), 1
        ):
            tg.start_soon(one, gk, priority)

            async def queued(n: int = count) -> bool:
                return int(await harness.redis.zcard(q)) >= n

            await async_wait_until(queued, timeout=10)
    assert granted == ["interactive", "collector", "backfill"]
