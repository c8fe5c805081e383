"""Several gatekeepers, one budget: shared windows, crashed members, shared margin, penalties."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

import anyio
import pytest
import redis.asyncio as aioredis

from apihub_core import RateLimitWaited, UpstreamRateLimitHit
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
    async def server_ms(self) -> float: ...
    def max_in_window(self, grants: list[float], span_ms: float) -> int: ...


pytestmark = pytest.mark.anyio


def _jitter(gk: Gatekeeper, b: Bucket, delays_ms: list[float]) -> None:
    """Feed ``observe`` with calls that took ``delays_ms`` from request to answer."""
    now = anyio.current_time()  # recent calls: the margin looks back a few seconds only
    for delay in delays_ms:
        sent = now - delay / 1000
        gk.observe(Permit((b,), 0.0, 0.0, 0.0, requested_at=sent), now)


async def test_two_members_share_one_budget(gatekeepers: GatekeeperHarness) -> None:
    b = gatekeepers.bucket("KIS:main", Window(3, 200))
    grants: dict[str, list[float]] = {"d1": [], "d2": []}

    async def one(gk: Gatekeeper) -> None:
        permit = await gk.acquire([b], "interactive", timeout_s=20)
        grants[gk.member].append(permit.granted_at_ms)

    async with (
        gatekeepers.gatekeeper(member="d1") as first,
        gatekeepers.gatekeeper(member="d2") as second,
        anyio.create_task_group() as tg,
    ):
        for _ in range(8):
            tg.start_soon(one, first)
            tg.start_soon(one, second)
    both = grants["d1"] + grants["d2"]
    assert len(both) == 16
    assert gatekeepers.max_in_window(both, 200 + 10.0) == 3, "one budget, not one each"
    assert gatekeepers.max_in_window(grants["d1"], 200 + 10.0) <= 3


async def test_a_crashed_members_place_in_the_queue_expires(gatekeepers: GatekeeperHarness) -> None:
    b = gatekeepers.bucket("KIS:main", Window(1, 10_000))
    q, qi = gatekeepers.key(b, "q"), gatekeepers.key(b, "qi")
    async with gatekeepers.gatekeeper(member="crashed") as doomed:
        await doomed.acquire([b], "interactive", timeout_s=5)
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: doomed.acquire([b], "order", timeout_s=20))
            await async_wait_until(lambda: gatekeepers.redis.zcard(q))
            entries = await gatekeepers.redis.zrange(q, 0, -1, withscores=True)
            infos = await gatekeepers.redis.hgetall(qi)
            captured_at = await gatekeepers.server_ms()
            tg.cancel_scope.cancel()
    ((waiter, rank),) = entries
    expires, cost = infos[waiter].decode().split()
    lifetime = float(expires) - captured_at
    assert 0 < lifetime <= 2_000, "a place lives at most 2 s without a heartbeat"
    # What a process that died mid-wait leaves behind: its lane's place, never renewed again.
    # Its lifetime runs from now, so however long the teardown above took cannot use it up.
    expires_at = await gatekeepers.server_ms() + lifetime
    await gatekeepers.redis.zadd(q, {waiter: rank})
    await gatekeepers.redis.hset(qi, mapping={**infos, waiter: f"{expires_at} {cost}"})
    await gatekeepers.redis.delete(gatekeepers.key(b, "g"))  # the budget is free again

    async with gatekeepers.gatekeeper(member="survivor") as survivor:
        permit = await survivor.acquire([b], "backfill", timeout_s=20, request_id="after")
    assert permit.granted_at_ms >= expires_at, "the dead member's place held until it expired"
    assert await gatekeepers.redis.zcard(q) == 0
    assert await gatekeepers.redis.hlen(qi) == 0
    (waited,) = await gatekeepers.events_of(RateLimitWaited)
    assert waited.reason == "priority"


async def test_the_margin_follows_observed_jitter(gatekeepers: GatekeeperHarness) -> None:
    tuning = gatekeepers.settings(initial_margin_ms=40.0, min_margin_ms=5.0, max_margin_ms=300.0)
    b = gatekeepers.bucket()
    async with gatekeepers.gatekeeper(tuning) as gk:
        assert gk.margin_ms(b) == 40.0
        _jitter(gk, b, [100.0 + i for i in range(19)])
        assert gk.margin_ms(b) == 40.0, "too few samples: the initial margin"
        _jitter(gk, b, [100.0])
        assert gk.margin_ms(b) == pytest.approx(18.0)
        _jitter(gk, b, [100.0] * 60)
        assert gk.margin_ms(b) == 5.0, "a steady delay needs only the floor"
        _jitter(gk, b, [900.0])
        assert gk.margin_ms(b) == 300.0, "capped"
        permit = await gk.acquire([b], "interactive", timeout_s=5)
    assert permit.margin_ms == 300.0


async def test_the_margin_is_shared_across_members(gatekeepers: GatekeeperHarness) -> None:
    b = gatekeepers.bucket("KIS:main", Window(2, 200))
    async with (
        gatekeepers.gatekeeper(member="d1") as jittery,
        gatekeepers.gatekeeper(member="d2") as calm,
    ):
        _jitter(jittery, b, [50.0 + 5 * i for i in range(30)])  # spread 145 ms
        assert jittery.margin_ms(b) == pytest.approx(145.0)
        assert calm.margin_ms(b) == 10.0
        alone = await calm.acquire([b], "interactive", timeout_s=5)
        await jittery.acquire([b], "interactive", timeout_s=5)  # reports its margin
        shared = await calm.acquire([b], "interactive", timeout_s=5)
        reports = await gatekeepers.redis.hgetall(gatekeepers.key(b, "m"))
    assert alone.margin_ms == 10.0
    assert shared.margin_ms == pytest.approx(145.0)
    assert shared.granted_at_ms - alone.granted_at_ms >= 200 + shared.margin_ms - 1e-6
    assert sorted(reports) == [b"d1", b"d2"]


async def test_an_upstream_rate_error_adds_a_penalty_that_decays(
    gatekeepers: GatekeeperHarness,
) -> None:
    tuning = gatekeepers.settings(penalty_ms=200.0, penalty_decay_s=2.0)
    b = gatekeepers.bucket("KIS:main", Window(1000, 1000))
    async with gatekeepers.gatekeeper(tuning) as gk:
        first = await gk.acquire([b], "interactive", timeout_s=5)
        assert first.margin_ms == 10.0
        await gk.upstream_limited(first, code="EGW00201", request_id="r1")
        penalised = await gk.acquire([b], "interactive", timeout_s=5)
        assert 10.0 < penalised.margin_ms <= 210.0

        async def recovered() -> bool:
            permit = await gk.acquire([b], "interactive", timeout_s=5)
            return permit.margin_ms == 10.0

        await async_wait_until(recovered, timeout=10, interval=0.05)
        await gk.upstream_limited(first, code="EGW00201")
        await gk.upstream_limited(first, code="EGW00201")
    hits = await gatekeepers.events_of(UpstreamRateLimitHit)
    assert [(h.bucket, h.code, h.request_id) for h in hits[:1]] == [("KIS:main", "EGW00201", "r1")]
    assert hits[0].penalty_ms == 200.0
    assert hits[1].penalty_ms == 200.0, "fully decayed before"
    assert 200.0 < hits[2].penalty_ms <= 400.0, "a second miss adds to what is left"


async def test_a_penalty_makes_callers_back_off(gatekeepers: GatekeeperHarness) -> None:
    tuning = gatekeepers.settings(penalty_ms=1000.0, penalty_decay_s=20.0, max_margin_ms=2000.0)
    b = gatekeepers.bucket("KIS:main", Window(1, 200))
    async with gatekeepers.gatekeeper(tuning) as gk:
        first = await gk.acquire([b], "interactive", timeout_s=5)

        async def window_passed() -> bool:
            return await gatekeepers.server_ms() > first.granted_at_ms + 200 + 10 + 5

        await async_wait_until(window_passed)
        await gk.upstream_limited(first, code="1700")
        second = await gk.acquire([b], "interactive", timeout_s=5, request_id="second")
    (waited,) = await gatekeepers.events_of(RateLimitWaited)
    assert waited.reason == "backoff"
    assert second.granted_at_ms - first.granted_at_ms >= 200 + 10 + 900
