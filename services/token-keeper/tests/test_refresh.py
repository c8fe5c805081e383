"""Refreshing: once per fence, stale writers lose, proactive refresh, failures and retries,
several accounts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from apihub_core import (
    Provider,
    RequestInvalid,
    TokenFailed,
    TokenInvalidated,
    TokenIssued,
    TokenRefreshed,
    UpstreamTransient,
    encode_entry,
    now_ms,
)
from apihub_runtime import AccessToken, Secret, StoredToken
from apihub_testing import async_wait_until
from apihub_token_keeper import Need

pytestmark = pytest.mark.anyio


async def test_concurrent_reports_of_one_fence_cost_one_refresh(fleet) -> None:
    await fleet.keeper()
    await fleet.keeper()
    account = fleet.account()
    reader = await fleet.source()
    token = await reader.get(account)
    report = TokenInvalidated(
        provider="KIS", account="default", fence=token.fence, code="EGW00121", reported_by="x"
    )

    async with fleet.redis.pipeline(transaction=False) as pipe:
        for _ in range(20):
            pipe.xadd(fleet.keys.tokens, encode_entry(report))
        await pipe.execute()
    await async_wait_until(
        lambda: fleet.events(TokenRefreshed), timeout=20, message="no token.refreshed"
    )
    await fleet.settled()

    assert await fleet.issuances(account) == 2
    refreshed = await fleet.events(TokenRefreshed)
    assert len(refreshed) == 1
    assert refreshed[0].replaces_fence == token.fence
    stored = await fleet.store.get(fleet.keys.token("KIS", "default"))
    assert stored is not None
    assert stored.fence == refreshed[0].fence > token.fence

    # A late report of the old fence: already replaced, ignored.
    await fleet.redis.xadd(fleet.keys.tokens, encode_entry(report))
    await fleet.settled()
    assert await fleet.issuances(account) == 2
    assert len(await fleet.events(TokenRefreshed)) == 1


async def test_a_stale_writer_loses(fleet) -> None:
    keeper = await fleet.keeper()
    account = fleet.account()
    lock = keeper.issuer.lock(account)
    stale = await lock.try_acquire(100)
    assert stale is not None

    async def expired() -> bool:
        return not await fleet.redis.exists(lock.key)

    await async_wait_until(expired, timeout=10, message="the short lease never expired")
    fresh = await lock.try_acquire(30_000)
    assert fresh is not None
    assert fresh.fence > stale.fence
    later = datetime.now(UTC) + timedelta(hours=1)
    newer = AccessToken(Secret("token-of-the-current-holder"), later)
    older = AccessToken(Secret("token-of-the-stale-holder"), later)

    assert await keeper.issuer.commit(account, fresh, newer, None, Need("requested"))
    assert not await keeper.issuer.commit(account, stale, older, None, Need("requested"))

    stored = await fleet.store.get(keeper.issuer.token_key(account))
    assert stored is not None
    assert stored.value.reveal() == "token-of-the-current-holder"
    assert stored.fence == fresh.fence
    issued = await fleet.events(TokenIssued)
    assert [e.fence for e in issued] == [fresh.fence]
    await lock.release(fresh)


async def test_a_token_close_to_expiry_is_refreshed_by_the_scheduler(fleet) -> None:
    keeper = await fleet.keeper(refresh_before_s=300.0, scan_interval_s=0.1)
    account = fleet.account()
    reader = await fleet.source()
    first = await reader.get(account)
    # Make the stored token look 60 s from expiry (written under a proper, newer fence).
    lock = keeper.issuer.lock(account)
    # The keeper may still be releasing the lock of the issuance that served the reader.
    lease = await async_wait_until(lambda: lock.try_acquire(5_000), timeout=10)
    key = keeper.issuer.token_key(account)
    near = StoredToken(first.value, now_ms() + 60_000, now_ms(), lease.fence)
    assert await fleet.store.put(key, near)
    await lock.release(lease)

    await async_wait_until(
        lambda: fleet.events(TokenRefreshed), timeout=20, message="the scheduler did not refresh"
    )
    (refreshed,) = await fleet.events(TokenRefreshed)
    assert refreshed.reason == "expiring"
    assert refreshed.replaces_fence == lease.fence
    stored = await fleet.store.get(key)
    assert stored is not None
    assert stored.fence == refreshed.fence
    assert stored.expires_at_ms - now_ms() > 3600_000
    assert stored.value != first.value
    assert await fleet.issuances(account) == 2
    # The watcher dropped the old token, so the reader picks the new one up at once.
    await async_wait_until(lambda: reader.cached(account) is None, timeout=10)
    assert (await reader.get(account)).fence == refreshed.fence


async def test_egw00133_from_the_broker_is_waited_out(fleet) -> None:
    # Someone outside the hub issued a token within the minute: KIS answers EGW00133.
    await fleet.arm({"match": {"path": "/oauth2/tokenP"}, "count": 1, "action": "egw00133"})
    await fleet.keeper()
    account = fleet.account()
    reader = await fleet.source()

    token = await reader.get(account)

    assert token.fence > 0
    failed = await fleet.events(TokenFailed)
    assert len(failed) == 1
    assert failed[0].error_class == "rate_limited"
    assert failed[0].code == "EGW00133"
    assert failed[0].retry_in_ms is not None
    assert failed[0].retry_in_ms > 0
    assert len(await fleet.events(TokenIssued)) == 1
    calls = await fleet.token_calls()
    assert [c["error_code"] for c in calls] == ["EGW00133", ""]  # asked once more, not hammered
    gap = datetime.fromisoformat(calls[1]["time"]) - datetime.fromisoformat(calls[0]["time"])
    assert (
        gap.total_seconds() >= fleet.settings.token_keeper.kis_issue_window_s
    )  # a whole window later


async def test_a_transient_failure_is_retried_then_given_up(fleet) -> None:
    await fleet.arm({"match": {"path": "/oauth2/token"}, "count": -1, "action": "http_503"})
    await fleet.keeper(max_retries=1, retry_backoff_s=0.05)
    account = fleet.account(Provider.KIWOOM)
    reader = await fleet.source()

    with pytest.raises(UpstreamTransient) as caught:
        await reader.get(account)

    failed = await fleet.events(TokenFailed)
    assert [(e.attempt, e.retry_in_ms is None) for e in failed] == [(1, False), (2, True)]
    assert all(e.error_class == "transient" for e in failed)
    assert "gave up" in str(caught.value)
    assert await fleet.events(TokenIssued) == []


async def test_several_accounts_have_their_own_tokens(fleet) -> None:
    second = fleet.with_account("second")
    await fleet.keeper()
    first = fleet.account()
    reader = await fleet.source()

    a = await reader.get(first)
    b = await reader.get(second)
    assert a.value != b.value
    assert await fleet.issuances(first) == 1
    assert await fleet.issuances(second) == 1

    await reader.invalidate(first, a, code="EGW00123")
    renewed = await reader.get(first)
    assert renewed.fence > a.fence
    again_b = await reader.get(second)
    assert again_b.fence == b.fence
    assert again_b.value == b.value
    assert await fleet.issuances(first) == 2
    assert await fleet.issuances(second) == 1
    stored_b = await fleet.store.get(fleet.keys.token("KIS", "second"))
    assert stored_b is not None
    assert stored_b.fence == b.fence


async def test_a_request_for_an_unknown_account_fails_at_once(fleet) -> None:
    await fleet.keeper()
    reader = await fleet.source()
    ghost = replace(fleet.account(), name="ghost")
    with anyio.fail_after(10), pytest.raises(RequestInvalid, match="ghost"):
        await reader.get(ghost)
