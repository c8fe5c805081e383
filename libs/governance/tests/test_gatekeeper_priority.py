"""Priorities under saturation: higher classes first, aging for the lowest, one poller per lane."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar, cast

import anyio
import pytest
import redis.asyncio as aioredis

from apihub_core import Priority, RateLimitWaited
from apihub_governance import Bucket, Gatekeeper, Window
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

SATURATED = Window(1, 10_000)
"""A window that stays full until the test frees it (by deleting the grants), so which waiter
is served next depends only on the ranks, never on timing."""


async def _release_one_at_a_time(
    gatekeepers: GatekeeperHarness, b: Bucket, granted: list[str], expected: int
) -> None:
    for served in range(1, expected + 1):
        await gatekeepers.redis.delete(gatekeepers.key(b, "g"))
        await async_wait_until(lambda n=served: len(granted) >= n, timeout=10)


async def test_higher_classes_are_served_first_within_a_process(
    gatekeepers: GatekeeperHarness,
) -> None:
    b = gatekeepers.bucket("KIS:main", SATURATED)
    granted: list[str] = []

    async def one(gk: Gatekeeper, priority: Priority) -> None:
        await gk.acquire([b], priority, timeout_s=25, request_id=priority)
        granted.append(priority)

    async with gatekeepers.gatekeeper() as gk:
        await gk.acquire([b], "order", timeout_s=5)
        async with anyio.create_task_group() as tg:
            tg.start_soon(one, gk, "backfill")
            # The lane's head registers its rank; a better head re-registers a lower one.
            q = gatekeepers.key(b, "q")
            await async_wait_until(lambda: gatekeepers.redis.zcard(q))
            (_, backfill_rank), *_ = await gatekeepers.redis.zrange(q, 0, 0, withscores=True)
            for priority in ("collector", "interactive", "order"):
                tg.start_soon(one, gk, priority)

            async def order_is_head() -> bool:
                (_, rank), *_ = await gatekeepers.redis.zrange(q, 0, 0, withscores=True)
                return cast(float, rank) < backfill_rank - 2500

            await async_wait_until(order_is_head)
            await _release_one_at_a_time(gatekeepers, b, granted, 4)
    assert granted == ["order", "interactive", "collector", "backfill"]
    waited = {w.request_id: w.reason for w in await gatekeepers.events_of(RateLimitWaited)}
    assert waited["backfill"] in {"priority", "per_second"}


async def test_priorities_hold_across_processes(gatekeepers: GatekeeperHarness) -> None:
    b = gatekeepers.bucket("KIS:main", SATURATED)
    granted: list[str] = []
    q = gatekeepers.key(b, "q")

    async def one(gk: Gatekeeper, priority: Priority) -> None:
        await gk.acquire([b], priority, timeout_s=25, request_id=priority)
        granted.append(priority)

    async with (
        gatekeepers.gatekeeper(member="d1") as first,
        gatekeepers.gatekeeper(member="d2") as second,
        gatekeepers.gatekeeper(member="d3") as third,
    ):
        await first.acquire([b], "order", timeout_s=5)
        async with anyio.create_task_group() as tg:
            for count, (gk, priority) in enumerate(
                ((first, "backfill"), (second, "collector"), (third, "interactive")), 1
            ):
                tg.start_soon(one, gk, priority)
                # Each process's lane has its place in the shared queue before the next arrives.
                await async_wait_until(lambda n=count: _has(gatekeepers, q, n), timeout=10)
            await _release_one_at_a_time(gatekeepers, b, granted, 3)
        members = await gatekeepers.redis.zrange(q, 0, -1)
    assert granted == ["interactive", "collector", "backfill"]
    assert members == [], "every served lane left the shared queue"
    waited = {w.request_id: w.reason for w in await gatekeepers.events_of(RateLimitWaited)}
    # Its last answer before the grant: a full window, or room taken by a better rank.
    assert waited["backfill"] in {"priority", "per_second"}


async def _has(gatekeepers: GatekeeperHarness, key: str, count: int) -> bool:
    return int(await gatekeepers.redis.zcard(key)) >= count


async def test_a_waiting_backfill_ages_past_a_stream_of_fresher_requests(
    gatekeepers: GatekeeperHarness,
) -> None:
    offsets = {"order": 0.0, "interactive": 100.0, "collector": 200.0, "backfill": 1000.0}
    tuning = gatekeepers.settings(priority_offsets_ms=offsets)
    b = gatekeepers.bucket("KIS:main", Window(2, 100))
    enqueued: dict[str, float] = {}
    granted: list[str] = []
    backfill_served = anyio.Event()

    async def one(gk: Gatekeeper, priority: Priority, name: str) -> None:
        enqueued[name] = anyio.current_time()
        await gk.acquire([b], priority, timeout_s=25, request_id=name)
        granted.append(name)
        if priority == "backfill":
            backfill_served.set()

    async with gatekeepers.gatekeeper(tuning) as gk, anyio.create_task_group() as tg:
        # Interactive requests arrive at about twice the budget (20/s) for as long as it takes:
        # the sleep is the arrival rate under test, bounded by the 400 arrivals (10 s).
        for i in range(400):
            if backfill_served.is_set():
                break
            tg.start_soon(one, gk, "interactive", f"i{i}")
            if i == 10:
                tg.start_soon(one, gk, "backfill", "backfill")
            await anyio.sleep(0.025)
        stream_still_running = backfill_served.is_set()
        tg.cancel_scope.cancel()  # the backlog of interactive requests has nothing more to show
    assert stream_still_running, "served while fresher, higher-class requests kept arriving"
    served_before = granted[: granted.index("backfill")]
    backfill_at = enqueued["backfill"]
    # A request that arrived more than (1000 - 100) ms after the backfill ranks after it.
    overtaken = [n for n in served_before if enqueued[n] > backfill_at + 0.900]
    assert overtaken == []
    # ...while those that arrived shortly after it went first: priority, not plain FIFO.
    assert any(enqueued[n] > backfill_at for n in served_before)


async def test_only_the_local_head_talks_to_redis(gatekeepers: GatekeeperHarness) -> None:
    b = gatekeepers.bucket("KIS:main", Window(4, 100))
    script_calls = gatekeepers.script_calls
    async with gatekeepers.gatekeeper() as gk:
        await gk.acquire([b], "interactive", timeout_s=5)  # loads the script
        before = await script_calls()
        async with anyio.create_task_group() as tg:
            for _ in range(64):
                tg.start_soon(lambda: gk.acquire([b], "interactive", timeout_s=25))
        calls = await script_calls() - before
    # At most one call per grant plus about one "wait" answer per window; 64 pollers would make
    # thousands. A head that wakes late (a busy machine) finds several slots due and takes them
    # in one batch, so fewer calls than grants is fine -- but never fewer than one per window's
    # worth of permits, which a script that ignored the limit would undercut.
    assert 64 // 4 <= calls <= 2 * 64
