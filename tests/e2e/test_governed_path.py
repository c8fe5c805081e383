"""The governed path end to end: rate misses re-queued, the shared breaker, revoked tokens
replaced once and the affected requests retried transparently."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import anyio
import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from apihub_broker_sim import KIS_ORDER, KIS_PRICE, KIWOOM_DAILY
from apihub_core import (
    BreakerStateChanged,
    CircuitOpen,
    HubClient,
    HubError,
    HubUnavailable,
    Keys,
    OutcomeUnknown,
    Priority,
    Provider,
    TokenInvalidated,
    TokenRefreshed,
    UpstreamRateLimitHit,
    UpstreamRejected,
    decode_any,
)
from apihub_dispatcher import Dispatcher, open_dispatcher
from apihub_runtime import AccountRate, Settings
from apihub_testing import async_wait_until
from apihub_token_keeper import open_token_keeper

pytestmark = pytest.mark.anyio


async def _events(redis: aioredis.Redis, stream: str) -> list[Any]:
    return [decode_any(fields) for _, fields in await redis.xrange(stream)]


async def _fault(sim_admin: httpx.AsyncClient, tr_id: str, action: object, count: int = 1) -> None:
    fault = {"match": {"tr_id": tr_id}, "count": count, "action": action}
    (await sim_admin.post("/__sim/faults", json=fault)).raise_for_status()


# -- rate limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "tr_id", "params", "kind", "code"),
    [
        ("KIS", "FHKST01010100", KIS_PRICE, "egw00201", "EGW00201"),
        ("KIWOOM", "ka10081", KIWOOM_DAILY, "kiwoom_1700", "1700"),
    ],
)
async def test_an_upstream_rate_error_is_a_limiter_miss_and_the_request_is_requeued(
    hub: HubClient,
    dispatcher: Dispatcher,
    sim_admin: httpx.AsyncClient,
    redis: aioredis.Redis,
    keys: Keys,
    provider: str,
    tr_id: str,
    params: dict[str, str],
    kind: str,
    code: str,
) -> None:
    await _fault(sim_admin, tr_id, kind)
    response = await hub.execute(provider, tr_id, params)
    assert response.status == 200
    assert response.attempts == 2, "the rejected call and the one that succeeded"
    hits: list[UpstreamRateLimitHit] = []

    async def hit_recorded() -> bool:
        # Rate-limit events are flushed in batches, off the request's path.
        events = await _events(redis, keys.rate_limits)
        hits[:] = [e for e in events if isinstance(e, UpstreamRateLimitHit)]
        return bool(hits)

    await async_wait_until(hit_recorded, timeout=10)
    # One miss, recorded against every budget the call was charged to (Kiwoom: the account's
    # and the api-id's).
    assert {hit.code for hit in hits} == {code}
    assert {hit.provider for hit in hits} == {provider}
    assert {hit.request_id for hit in hits} == {response.request_id}
    assert len(hits) == len({hit.bucket for hit in hits})
    assert all(hit.penalty_ms > 0 for hit in hits)


async def test_an_order_refused_for_rate_is_requeued_because_it_was_not_executed(
    hub: HubClient, dispatcher: Dispatcher, sim_admin: httpx.AsyncClient
) -> None:
    await _fault(sim_admin, "TTTC0012U", "egw00201")
    response = await hub.execute("KIS", "TTTC0012U", KIS_ORDER)
    assert response.body["rt_cd"] == "0"
    orders = (await sim_admin.get("/__sim/orders")).json()
    assert len(orders) == 1


async def test_kiwoom_batch_size_1634_is_permanent_and_not_retried(
    hub: HubClient, dispatcher: Dispatcher, sim_admin: httpx.AsyncClient
) -> None:
    body = {
        "return_code": 5,
        "return_msg": "허용된 요청 개수를 초과하였습니다[1634:허용된 요청 개수를 초과하였습니다]",
    }
    await _fault(sim_admin, "ka10081", {"kind": "error", "status": 200, "body": body}, count=-1)
    with pytest.raises(UpstreamRejected) as caught:
        await hub.execute("KIWOOM", "ka10081", KIWOOM_DAILY)
    assert caught.value.code == "1634"
    calls = (await sim_admin.get("/__sim/calls", params={"tr_id": "ka10081"})).json()
    assert len(calls["calls"] if isinstance(calls, dict) else calls) == 1


async def test_under_saturation_higher_priorities_are_served_first(
    hub: HubClient,
    settings: Settings,
    token_keeper: object,
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    account = settings.account(Provider.KIS)
    slow = replace(account, rate=AccountRate(per_second=2))
    tuned = replace(settings, accounts={**settings.accounts, (Provider.KIS, "default"): slow})
    done: list[tuple[str, int]] = []

    async def call(priority: Priority) -> None:
        await hub.execute("KIS", "FHKST01010100", KIS_PRICE, priority=priority, timeout=30)
        done.append((priority, len(done)))

    async with open_dispatcher(tuned) as running, anyio.create_task_group() as tg:
        await tg.start(running.run)
        async with anyio.create_task_group() as calls:
            for _ in range(6):
                calls.start_soon(call, "backfill")

            async def backfill_waiting() -> bool:
                pending = await redis.xpending(keys.requests, "dispatcher")
                return int(pending["pending"]) >= 6

            await async_wait_until(backfill_waiting, timeout=10)
            for _ in range(2):
                calls.start_soon(call, "interactive")
        running.stop()

    order = [priority for priority, _ in done]
    assert len(order) == 8
    # Two backfills fit the first window; the interactive calls, though last to arrive,
    # take the next permits ahead of the four backfills still waiting.
    assert order.index("interactive") < 4
    assert max(i for i, p in enumerate(order) if p == "interactive") < 5


# -- the circuit breaker -----------------------------------------------------------------------


@pytest.fixture
async def quick_breaker(settings: Settings, token_keeper: object) -> AsyncIterator[Dispatcher]:
    """A dispatcher whose breaker half-opens after 1 s."""
    tuned = replace(settings, breaker=replace(settings.breaker, open_s=1.0))
    async with open_dispatcher(tuned) as running, anyio.create_task_group() as tg:
        await tg.start(running.run)
        yield running
        running.stop()


async def test_an_outage_opens_the_breaker_then_one_probe_closes_it(
    hub: HubClient,
    quick_breaker: Dispatcher,
    sim_admin: httpx.AsyncClient,
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    await hub.execute("KIS", "FHKST01010100", KIS_PRICE)  # a token, before the outage
    outage = await sim_admin.post(
        "/__sim/conditions",
        json={"outage": {"action": "http_503", "match": {"provider": "KIS"}}},
    )
    outage.raise_for_status()
    # Short deadlines: callers give up instead of waiting out the open breaker.
    failures: list[BaseException] = []
    for _ in range(6):
        try:
            await hub.execute("KIS", "FHKST01010100", KIS_PRICE, timeout=0.5)
        except HubError as exc:  # every one must fail with a hub error (counted below)
            failures.append(exc)
    assert len(failures) == 6
    assert isinstance(failures[-1], CircuitOpen), "the breaker answers without calling"
    assert "APIHUB-CIRCUIT-OPEN" in str(failures[-1])
    stats = (await sim_admin.get("/__sim/stats")).json()
    assert stats["outage_calls"] <= 5, "no calls once the breaker opened"

    (await sim_admin.delete(f"/__sim/conditions/{outage.json()['id']}")).raise_for_status()
    # Within its deadline a caller waits for the half-open probe, which succeeds.
    response = await hub.execute("KIS", "FHKST01010100", KIS_PRICE, timeout=10)
    assert response.status == 200

    changes = [
        (e.from_state, e.to_state)
        for e in await _events(redis, keys.breakers)
        if isinstance(e, BreakerStateChanged)
    ]
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


async def test_a_transport_failure_of_an_order_is_outcome_unknown_and_not_retried(
    hub: HubClient, dispatcher: Dispatcher, sim_admin: httpx.AsyncClient
) -> None:
    await hub.execute("KIS", "FHKST01010100", KIS_PRICE)
    await _fault(sim_admin, "TTTC0012U", "reset")
    with pytest.raises(OutcomeUnknown):
        await hub.execute("KIS", "TTTC0012U", KIS_ORDER)
    calls = (await sim_admin.get("/__sim/calls", params={"tr_id": "TTTC0012U"})).json()
    assert len(calls["calls"] if isinstance(calls, dict) else calls) == 1


# -- tokens ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "tr_id", "params"),
    [("KIS", "FHKST01010100", KIS_PRICE), ("KIWOOM", "ka10081", KIWOOM_DAILY)],
)
async def test_a_revoked_token_is_replaced_once_and_requests_retried_transparently(
    hub: HubClient,
    settings: Settings,
    sim_admin: httpx.AsyncClient,
    redis: aioredis.Redis,
    keys: Keys,
    provider: str,
    tr_id: str,
    params: dict[str, str],
) -> None:
    # The keeper's fleet-wide issuance window is real time (60 s for KIS); the simulator's
    # EGW00133 window is simulated time, moved past below. Shorten the keeper's so the test
    # does not wait a real minute.
    tuned = replace(settings, token_keeper=replace(settings.token_keeper, kis_issue_window_s=0.5))
    async with (
        open_token_keeper(tuned) as keeper,
        open_dispatcher(tuned) as running,
        anyio.create_task_group() as tg,
    ):
        await tg.start(keeper.run)
        await tg.start(running.run)
        await hub.execute(provider, tr_id, params)
        (await sim_admin.post("/__sim/clock", json={"advance_s": 61})).raise_for_status()
        revoke = {"provider": provider}
        (await sim_admin.post("/__sim/tokens/revoke", json=revoke)).raise_for_status()

        async with anyio.create_task_group() as calls:
            for _ in range(5):
                calls.start_soon(hub.execute, provider, tr_id, params)
        running.stop()
        keeper.stop()

    events = await _events(redis, keys.tokens)
    reported = [e for e in events if isinstance(e, TokenInvalidated)]
    refreshed = [e for e in events if isinstance(e, TokenRefreshed)]
    assert reported, "the dispatcher reported the rejected token"
    assert {e.fence for e in reported} == {reported[0].fence}, "all reports name one fence"
    (refresh,) = refreshed
    assert refresh.replaces_fence == reported[0].fence
    assert refresh.fence > reported[0].fence
    stats = (await sim_admin.get("/__sim/stats")).json()
    assert sum(stats["token_issuances"][provider].values()) == 2, "first token + one replacement"


async def test_two_dispatchers_share_one_kiwoom_token(
    hub: HubClient,
    settings: Settings,
    dispatcher: Dispatcher,
    sim_admin: httpx.AsyncClient,
) -> None:
    async with open_dispatcher(settings) as second, anyio.create_task_group() as tg:
        await tg.start(second.run)
        async with anyio.create_task_group() as calls:
            for _ in range(20):
                calls.start_soon(hub.execute, "KIWOOM", "ka10081", KIWOOM_DAILY)
        second.stop()
    stats = (await sim_admin.get("/__sim/stats")).json()
    assert sum(stats["token_issuances"]["KIWOOM"].values()) == 1, "a new token kills the old"
    calls = (await sim_admin.get("/__sim/calls", params={"tr_id": "ka10081"})).json()
    records = calls["calls"] if isinstance(calls, dict) else calls
    assert len(records) == 20, "no call was rejected and retried"


async def test_no_token_keeper_is_a_clear_error(hub: HubClient, settings: Settings) -> None:
    tuned = replace(settings, token_keeper=replace(settings.token_keeper, token_wait_s=0.5))
    async with open_dispatcher(tuned) as lonely, anyio.create_task_group() as tg:
        await tg.start(lonely.run)
        with pytest.raises(HubUnavailable, match="token-keeper") as caught:
            await hub.execute("KIS", "FHKST01010100", KIS_PRICE)
        lonely.stop()
    assert type(caught.value) is HubUnavailable


async def test_every_stream_event_decodes(
    hub: HubClient, dispatcher: Dispatcher, redis: aioredis.Redis, keys: Keys
) -> None:
    await hub.execute("KIS", "FHKST01010100", KIS_PRICE)
    for stream in (keys.tokens, keys.responses):
        entries = await redis.xrange(stream)
        # The call asked for a token and was answered: both streams have entries to check.
        assert entries, f"nothing on {stream}"
        for _, fields in entries:
            event = decode_any(fields)
            assert msgspec.json.decode(fields[b"data"])["type"] == fields[b"type"].decode()
            assert event.schema == 1


async def test_a_tr_configured_non_idempotent_is_treated_like_an_order(
    hub: HubClient,
    settings: Settings,
    token_keeper: object,
    sim_admin: httpx.AsyncClient,
) -> None:
    # A query a shop decided must never run twice (say, it has a side effect on its side):
    # a transport failure is then outcome_unknown, not retried.
    tuned = replace(
        settings,
        dispatcher=replace(settings.dispatcher, non_idempotent_trs=("FHKST01010100",)),
    )
    async with open_dispatcher(tuned) as running, anyio.create_task_group() as tg:
        await tg.start(running.run)
        await hub.execute("KIS", "FHKST01010100", KIS_PRICE)
        await _fault(sim_admin, "FHKST01010100", "reset")
        with pytest.raises(OutcomeUnknown):
            await hub.execute("KIS", "FHKST01010100", KIS_PRICE)
        running.stop()
    calls = (await sim_admin.get("/__sim/calls", params={"tr_id": "FHKST01010100"})).json()
    assert len(calls["calls"] if isinstance(calls, dict) else calls) == 2, "sent once each"
