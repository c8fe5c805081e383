"""The per-process limiter (the baseline the gatekeeper is measured against)."""

from __future__ import annotations

import anyio
import pytest

from apihub_core import UpstreamRateLimited
from apihub_governance import RATE_LIMIT_CODE, Bucket, LocalLimiter, Permit, Window
from apihub_runtime import RateLimiterSettings

pytestmark = pytest.mark.anyio

BUCKET = Bucket("KIS:main", "KIS", "main", (Window(3, 200),))


def _max_in_window(grants: list[float], span_ms: float) -> int:
    ordered = sorted(grants)
    return max(sum(1 for other in ordered if at - span_ms < other <= at) for at in ordered)


async def _burst(limiter: LocalLimiter, bucket: Bucket, count: int, grants: list[float]) -> None:
    async def one() -> None:
        permit = await limiter.acquire([bucket], "interactive", timeout_s=10)
        grants.append(permit.granted_at_ms)  # this machine's clock: one process, one clock

    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(one)


async def test_one_process_keeps_its_own_window() -> None:
    limiter = LocalLimiter()
    permits: list[Permit] = []

    async def one() -> None:
        permits.append(await limiter.acquire([BUCKET], "interactive", timeout_s=10, cost=1))

    async with anyio.create_task_group() as tg:
        await tg.start(limiter.run)
        for _ in range(9):
            tg.start_soon(one)
        limiter.stop()
    assert len(permits) == 9
    assert _max_in_window([p.granted_at_ms for p in permits], 200 - 1) == 3
    assert sum(p.waited_ms >= 150 for p in permits) >= 6, "two full windows had to pass"


async def test_two_processes_together_exceed_the_quota() -> None:
    # The point of the gatekeeper: two client-side limiters each allow the full budget. A
    # minute-long window, so that only the limiters decide what fits in it, not this machine's
    # speed.
    minute = Bucket("KIS:main", "KIS", "main", (Window(3, 60_000),))
    first, second = LocalLimiter(RateLimiterSettings()), LocalLimiter()
    grants: list[float] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_burst, first, minute, 3, grants)
        tg.start_soon(_burst, second, minute, 3, grants)
    assert len(grants) == 6
    assert _max_in_window(grants, 60_000) == 6
    for limiter in (first, second):
        with pytest.raises(UpstreamRateLimited):  # each one's own budget is spent
            await limiter.acquire([minute], "interactive", timeout_s=0.05)


async def test_no_room_within_the_timeout_is_rejected() -> None:
    limiter = LocalLimiter()
    minute = Bucket("KIS:main", "KIS", "main", (Window(1, 60_000),))
    await limiter.acquire([minute], "order", timeout_s=1)
    with pytest.raises(UpstreamRateLimited) as caught:
        await limiter.acquire([minute], "order", timeout_s=0.05, request_id="r")
    assert caught.value.code == RATE_LIMIT_CODE
    assert caught.value.request_id == "r"
    assert (await limiter.acquire([], "order", timeout_s=0.05)).buckets == ()
    permit = await limiter.acquire([BUCKET], "order", timeout_s=0.05)
    limiter.observe(permit, anyio.current_time())
    await limiter.upstream_limited(permit, code="EGW00201")
    # It adapts to nothing: no penalty holds back the next call while the window has room.
    await limiter.acquire([BUCKET], "order", timeout_s=0.05)
