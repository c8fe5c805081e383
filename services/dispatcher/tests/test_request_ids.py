"""The request-id ledger against a real Redis: claims made together share one script call."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
import redis.asyncio as aioredis

from apihub_core import Keys, RequestSubmitted
from apihub_dispatcher._request_ids import RequestIdClaim, RequestIdLedger

pytestmark = pytest.mark.anyio


def _request(request_id: str, symbol: str = "005930") -> RequestSubmitted:
    return RequestSubmitted(
        request_id=request_id,
        provider="KIS",
        tr_id="FHKST01010100",
        params={"FID_INPUT_ISCD": symbol},
    )


async def test_concurrent_claims_share_script_calls_and_each_gets_its_own_answer(
    aredis: aioredis.Redis, hub_namespace: str
) -> None:
    ledger = RequestIdLedger(aredis, Keys(hub_namespace))
    claims: dict[int, RequestIdClaim] = {}

    async def claim(i: int) -> None:
        # Every fifth request repeats the id of the one before it, with other content.
        request = _request(f"r{i - i % 5 // 4}", symbol=str(i)) if i % 5 == 4 else _request(f"r{i}")
        claims[i] = await ledger.claim(request, f"{i + 1}-0")

    async with anyio.create_task_group() as tg:
        for i in range(100):
            tg.start_soon(claim, i)
    assert len(claims) == 100
    assert ledger.calls < 100, "claims made while one was on its way went out together"
    for i, got in claims.items():
        if i % 5 == 4:
            assert got.entry == f"{i}-0", "a repeat learns who was first"
            assert not got.matches
        else:
            assert got.owned_by(f"{i + 1}-0")
            assert got.matches
            assert got.answer is None
            assert got.answered_at_ms is None


async def test_a_cancelled_claimer_never_strands_the_claims_behind_it(
    aredis: aioredis.Redis, hub_namespace: str
) -> None:
    ledger = RequestIdLedger(aredis, Keys(hub_namespace))
    done: list[str] = []

    async def claim(request_id: str) -> None:
        await ledger.claim(_request(request_id), "1-0")
        done.append(request_id)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(claim, "first")  # goes out at once
            with anyio.CancelScope() as doomed:
                await anyio.lowlevel.checkpoint()
                tg.start_soon(claim, "behind")
                doomed.cancel()
            async with anyio.create_task_group() as inner:
                inner.start_soon(claim, "cancelled")
                await anyio.wait_all_tasks_blocked()
                inner.cancel_scope.cancel()
            tg.start_soon(claim, "last")
    assert sorted(done) == ["behind", "first", "last"]
