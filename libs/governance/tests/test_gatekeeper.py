"""The gatekeeper against a real Redis: windows, server clock, cost, events, deadlines, failure."""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

import anyio
import pytest
import redis.asyncio as aioredis

from apihub_core import (
    HubUnavailable,
    Provider,
    RateLimitRejected,
    RateLimitWaited,
    UpstreamRateLimited,
)
from apihub_governance import RATE_LIMIT_CODE, Bucket, Gatekeeper, Permit, Window, buckets_for
from apihub_runtime import AccountConfig, AccountRate, RateLimiterSettings, Secret
from apihub_testing import async_wait_until

E = TypeVar("E")


class GatekeeperHarness(Protocol):
    """The conftest's ``gatekeepers`` fixture, as far as these tests use it."""

    redis: aioredis.Redis

    def settings(self, **overrides: Any) -> RateLimiterSettings: ...
    def bucket(self, name: str = "KIS:main", *windows: Window) -> Bucket: ...
    def closed_port(self) -> int: ...
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
    async def script_calls(self) -> int: ...
    def max_in_window(self, grants: list[float], span_ms: float) -> int: ...


pytestmark = pytest.mark.anyio


def _account(provider: Provider, rate: AccountRate) -> AccountConfig:
    return AccountConfig(
        provider, "main", Secret("k"), Secret("s"), "http://broker.test", rate=rate
    )


def test_buckets_for_kis_is_one_account_bucket() -> None:
    (only,) = buckets_for(_account(Provider.KIS, AccountRate(per_second=18)), "FHKST01010100")
    assert only == Bucket("KIS:main", "KIS", "main", (Window(18, 1000),))


def test_buckets_for_kiwoom_adds_one_bucket_per_api_id() -> None:
    rate = AccountRate(per_second=5, per_minute=200, per_api_id_per_second=1)
    account, api = buckets_for(_account(Provider.KIWOOM, rate), "ka10081")
    assert account == Bucket(
        "KIWOOM:main", "KIWOOM", "main", (Window(5, 1000), Window(200, 60_000))
    )
    assert api == Bucket("KIWOOM:main:ka10081", "KIWOOM", "main", (Window(1, 1000),))
    only_api = buckets_for(_account(Provider.KIWOOM, AccountRate(per_api_id_per_second=2)), "x")
    assert [b.name for b in only_api] == ["KIWOOM:main:x"]
    assert buckets_for(_account(Provider.KIS, AccountRate()), "x") == ()


async def test_concurrent_acquirers_never_exceed_the_limit_in_any_window(
    gatekeepers: GatekeeperHarness,
) -> None:
    b = gatekeepers.bucket("KIS:main", Window(3, 200))
    permits: list[Permit] = []

    async def one(i: int) -> None:
        permits.append(await gk.acquire([b], "interactive", timeout_s=20, request_id=f"r{i}"))

    async with gatekeepers.gatekeeper() as gk, anyio.create_task_group() as tg:
        for i in range(15):
            tg.start_soon(one, i)
    margin = permits[0].margin_ms
    assert margin == 10.0
    assert all(p.margin_ms == margin for p in permits)
    grants = [p.granted_at_ms for p in permits]
    assert gatekeepers.max_in_window(grants, 200 + margin) == 3
    assert sum(p.waited_ms >= 150 for p in permits) >= 12, "12 of them waited for a window"


async def test_a_request_charging_two_buckets_counts_in_both(
    gatekeepers: GatekeeperHarness,
) -> None:
    a = gatekeepers.bucket("KIWOOM:main", Window(3, 300))
    b = gatekeepers.bucket("KIWOOM:main:ka10081", Window(2, 300))
    c = gatekeepers.bucket("KIWOOM:main:ka10080", Window(5, 300))
    charged: dict[str, list[float]] = {"a": [], "b": [], "c": []}

    async def one(buckets: list[Bucket]) -> None:
        permit = await gk.acquire(buckets, "collector", timeout_s=20)
        for name, bucket in (("a", a), ("b", b), ("c", c)):
            if bucket in permit.buckets:
                charged[name].append(permit.granted_at_ms)

    async with gatekeepers.gatekeeper() as gk, anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(one, [a, b])
            tg.start_soon(one, [a, c])
    span = 300 + 10.0
    assert len(charged["a"]) == 8
    assert gatekeepers.max_in_window(charged["a"], span) == 3, (
        "both kinds count in the shared bucket"
    )
    assert gatekeepers.max_in_window(charged["b"], span) == 2
    assert gatekeepers.max_in_window(charged["c"], span) <= 3
    assert await gatekeepers.redis.zcard(gatekeepers.key(a, "g")) >= 3


async def test_permits_are_stamped_with_the_redis_server_clock(
    gatekeepers: GatekeeperHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This machine's wall clock is an hour off: only the server's clock may appear in a permit.
    skew_s = 3600.0
    real_time, real_time_ns = time.time, time.time_ns
    monkeypatch.setattr(time, "time", lambda: real_time() + skew_s)
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + int(skew_s * 1e9))
    b = gatekeepers.bucket()
    async with gatekeepers.gatekeeper() as gk:
        before = await gatekeepers.server_ms()
        permit = await gk.acquire([b], "order", timeout_s=5)
        after = await gatekeepers.server_ms()
    assert before <= permit.granted_at_ms <= after
    stored = await gatekeepers.redis.zrange(gatekeepers.key(b, "g"), 0, -1, withscores=True)
    assert [score for _member, score in stored] == [permit.granted_at_ms]


async def test_cost_above_one_consumes_that_many_permits(gatekeepers: GatekeeperHarness) -> None:
    # A window long enough that a stalled machine cannot let it pass between the first calls.
    b = gatekeepers.bucket("KIS:main", Window(3, 1000))
    async with gatekeepers.gatekeeper() as gk:
        two = await gk.acquire([b], "interactive", timeout_s=10, cost=2, request_id="two")
        await gk.acquire([b], "interactive", timeout_s=10, request_id="one")
        assert await gatekeepers.redis.zcard(gatekeepers.key(b, "g")) == 3
        again = await gk.acquire([b], "interactive", timeout_s=10, cost=2, request_id="again")
        with pytest.raises(ValueError, match="never grantable"):
            await gk.acquire([b], "interactive", timeout_s=10, cost=4)
        with pytest.raises(ValueError, match="at least 1"):
            await gk.acquire([b], "interactive", timeout_s=10, cost=0)
    # Room was left for exactly one: it went at once, and the next two had to wait...
    waited = await gatekeepers.events_of(RateLimitWaited)
    assert [w.request_id for w in waited] == ["again"]
    # ...for both of the first call's permits to leave the window.
    assert again.granted_at_ms - two.granted_at_ms >= 1000 + again.margin_ms - 1e-6


async def test_waits_are_written_as_events_with_their_reason(
    gatekeepers: GatekeeperHarness,
) -> None:
    b = gatekeepers.bucket("KIS:main", Window(1, 200))
    async with gatekeepers.gatekeeper() as gk:
        await gk.acquire([b], "interactive", timeout_s=10, request_id="first")
        second = await gk.acquire([b], "collector", timeout_s=10, request_id="second")
    waited = await gatekeepers.events_of(RateLimitWaited)
    assert [w.request_id for w in waited] == ["second"], "a permit granted at once is no event"
    (event,) = waited
    assert event.reason == "per_second"
    assert event.bucket == "KIS:main"
    assert (event.provider, event.account, event.priority) == ("KIS", "main", "collector")
    assert event.waited_ms == pytest.approx(second.waited_ms)
    assert event.margin_ms == 10.0
    assert event.at_ms == int(second.granted_at_ms)


async def test_a_full_per_minute_window_is_rejected_at_once_with_an_event(
    gatekeepers: GatekeeperHarness,
) -> None:
    b = gatekeepers.bucket("KIS:main", Window(1, 60_000))
    async with gatekeepers.gatekeeper() as gk:
        await gk.acquire([b], "interactive", timeout_s=5)
        with pytest.raises(UpstreamRateLimited) as caught:
            await gk.acquire([b], "backfill", timeout_s=5, request_id="late")
        assert await gatekeepers.redis.zcard(gatekeepers.key(b, "q")) == 0, (
            "the waiter left the queue"
        )
    assert caught.value.code == RATE_LIMIT_CODE
    assert caught.value.request_id == "late"
    assert "per_minute" in str(caught.value)
    (rejected,) = await gatekeepers.events_of(RateLimitRejected)
    assert (rejected.reason, rejected.request_id, rejected.priority) == (
        "deadline",
        "late",
        "backfill",
    )


async def test_a_waiter_whose_deadline_passes_is_rejected(gatekeepers: GatekeeperHarness) -> None:
    b = gatekeepers.bucket("KIS:main", Window(1, 400))
    outcomes: list[str] = []

    async def one(timeout_s: float) -> None:
        try:
            await gk.acquire([b], "interactive", timeout_s=timeout_s)
            outcomes.append("granted")
        except UpstreamRateLimited as exc:
            outcomes.append(exc.code)

    async with gatekeepers.gatekeeper() as gk:
        await gk.acquire([b], "interactive", timeout_s=5)
        async with anyio.create_task_group() as tg:
            tg.start_soon(one, 10.0)
            tg.start_soon(one, 0.05)  # queued behind the first, and its window is 400 ms away
    assert sorted(outcomes) == [RATE_LIMIT_CODE, "granted"]
    assert len(await gatekeepers.events_of(RateLimitRejected)) == 1


async def test_an_unreachable_limiter_redis_fails_closed(gatekeepers: GatekeeperHarness) -> None:
    b = gatekeepers.bucket()
    url = f"redis://127.0.0.1:{gatekeepers.closed_port()}/0"
    failures: list[HubUnavailable] = []

    async def one(i: int) -> None:
        with pytest.raises(HubUnavailable) as caught:
            await gk.acquire([b], "order", timeout_s=5, request_id=f"r{i}")
        failures.append(caught.value)

    async with gatekeepers.gatekeeper(limiter_url=url) as gk:
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(one, i)
        permit = Permit((b,), 0.0, 0.0, 0.0, 0.0)
        await gk.upstream_limited(permit, code="EGW00201")  # logged, not raised
    assert len(failures) == 3
    assert all("limiter Redis unreachable" in str(f) for f in failures)
    assert sorted(f.request_id or "" for f in failures) == ["r0", "r1", "r2"]
    rejected = await gatekeepers.events_of(RateLimitRejected)
    assert sorted(r.request_id for r in rejected) == ["r0", "r1", "r2"]
    assert {r.reason for r in rejected} == {"unavailable"}


async def test_disabled_limiter_grants_without_redis(gatekeepers: GatekeeperHarness) -> None:
    url = f"redis://127.0.0.1:{gatekeepers.closed_port()}/0"
    tuning = gatekeepers.settings(enabled=False)
    async with gatekeepers.gatekeeper(tuning, limiter_url=url) as gk:
        permit = await gk.acquire([gatekeepers.bucket()], "order", timeout_s=1)
    assert permit.waited_ms == 0


async def test_cancelling_a_waiting_acquire_leaves_no_waiter_and_no_permit(
    gatekeepers: GatekeeperHarness,
) -> None:
    b = gatekeepers.bucket("KIS:main", Window(1, 10_000))
    async with gatekeepers.gatekeeper() as gk:
        await gk.acquire([b], "interactive", timeout_s=5)
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: gk.acquire([b], "interactive", timeout_s=20))
            tg.start_soon(lambda: gk.acquire([b], "backfill", timeout_s=20))
            await async_wait_until(lambda: gatekeepers.redis.zcard(gatekeepers.key(b, "q")))
            assert await gatekeepers.redis.hlen(gatekeepers.key(b, "qi")) == 1
            tg.cancel_scope.cancel()
        assert await gatekeepers.redis.zcard(gatekeepers.key(b, "q")) == 0
        assert await gatekeepers.redis.hlen(gatekeepers.key(b, "qi")) == 0
        assert await gatekeepers.redis.zcard(gatekeepers.key(b, "g")) == 1, "no permit was taken"
        # The budget is as it was: freeing the window lets the next caller in on its first ask.
        await gatekeepers.redis.delete(gatekeepers.key(b, "g"))
        asks = await gatekeepers.script_calls()
        await gk.acquire([b], "interactive", timeout_s=1)
        assert await gatekeepers.script_calls() - asks == 1


async def test_a_caller_after_a_cancelled_waiter_reports_no_wait_it_never_had(
    gatekeepers: GatekeeperHarness,
) -> None:
    b = gatekeepers.bucket("KIS:main", Window(1, 10_000))
    async with gatekeepers.gatekeeper() as gk:
        await gk.acquire([b], "interactive", timeout_s=5)
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: gk.acquire([b], "interactive", timeout_s=20, request_id="held"))
            await async_wait_until(lambda: gatekeepers.redis.zcard(gatekeepers.key(b, "q")))
            tg.cancel_scope.cancel()  # it was told to wait (per_minute), then gave up
        await gatekeepers.redis.delete(gatekeepers.key(b, "g"))  # the window is free again
        permit = await gk.acquire([b], "interactive", timeout_s=1, request_id="fresh")
    assert permit is not None
    waits = [e for e in await gatekeepers.events_of(RateLimitWaited) if e.request_id == "fresh"]
    assert waits == [], "granted on its first ask, it waited for nothing"


async def test_a_permit_granted_to_a_cancelled_caller_goes_back(
    gatekeepers: GatekeeperHarness,
) -> None:
    b = gatekeepers.bucket("KIS:main", Window(1, 10_000))
    redis = gatekeepers.redis
    async with gatekeepers.gatekeeper() as gk:
        await gk.acquire([b], "interactive", timeout_s=5)  # loads the script
        await redis.delete(gatekeepers.key(b, "g"))

        async def script_waiting() -> bool:
            clients = await redis.client_list()
            return any(c.get("cmd") == "evalsha" for c in clients)

        # Writes (and so the script) stall on the server; reads, like CLIENT LIST, go on.
        await redis.execute_command("CLIENT", "PAUSE", 800, "WRITE")
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: gk.acquire([b], "order", timeout_s=5))
            await async_wait_until(script_waiting)
            tg.cancel_scope.cancel()  # the caller gives up while its grant is being made
        assert await redis.zcard(gatekeepers.key(b, "g")) == 0, "the unused permit was refunded"
        assert await redis.zcard(gatekeepers.key(b, "q")) == 0
        asks = await gatekeepers.script_calls()
        await gk.acquire([b], "interactive", timeout_s=1)
        assert await gatekeepers.script_calls() - asks == 1, "granted on its first ask"
