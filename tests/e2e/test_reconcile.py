"""Orders whose answer was lost are found again in the broker's own inquiries, never resent:
the reconciler follows every ``outcome_unknown`` order up, ``apihub orders reconcile`` does it
on demand, and the verdict (found / not_found / ambiguous) lands on ``<ns>:orders``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any, cast

import anyio
import httpx
import pytest
import redis.asyncio as aioredis

from apihub_broker_sim import KIS_ORDER, KIS_PRICE
from apihub_core import HubClient, Keys, OrderReconciled, OutcomeUnknown, decode_any
from apihub_dispatcher import Dispatcher
from apihub_reconciler import Reconciler, open_reconciler
from apihub_runtime import ExitCode, Settings
from apihub_testing import async_wait_until

pytestmark = pytest.mark.anyio

KIWOOM_ORDER = {
    "dmst_stex_tp": "KRX",
    "stk_cd": "005930",
    "ord_qty": "7",
    "ord_uv": "50100",  # well below the market: it rests, so ka10075 shows it
    "trde_tp": "0",
}


@pytest.fixture
async def reconciler(settings: Settings, dispatcher: Dispatcher) -> AsyncIterator[Reconciler]:
    """A running reconciler that re-checks a not_found twice, quickly."""
    async with (
        open_reconciler(settings, recheck_after_s=(0.2, 0.4)) as running,
        anyio.create_task_group() as tg,
    ):
        await tg.start(running.run)
        yield running
        running.stop()


async def _arm(sim_admin: httpx.AsyncClient, tr_id: str, kind: str) -> None:
    fault = {"match": {"tr_id": tr_id}, "count": 1, "action": {"kind": kind}}
    (await sim_admin.post("/__sim/faults", json=fault)).raise_for_status()


async def _lost_order(hub: HubClient, provider: str, tr_id: str, params: dict[str, str]) -> str:
    with pytest.raises(OutcomeUnknown) as caught:
        await hub.execute(provider, tr_id, params, priority="order", timeout=20)
    request_id = caught.value.request_id
    assert request_id
    return request_id


async def _verdicts(redis: aioredis.Redis, keys: Keys, request_id: str) -> list[OrderReconciled]:
    found: list[OrderReconciled] = []
    for _, fields in await redis.xrange(keys.orders):
        event = decode_any(cast(dict[bytes, bytes], fields))
        if isinstance(event, OrderReconciled) and event.request_id == request_id:
            found.append(event)
    return found


async def _verdict(redis: aioredis.Redis, keys: Keys, request_id: str) -> OrderReconciled:
    async def final() -> bool:
        events = await _verdicts(redis, keys, request_id)
        return bool(events) and (events[-1].status != "not_found" or events[-1].checks == 3)

    await async_wait_until(final, timeout=20)
    return (await _verdicts(redis, keys, request_id))[-1]


async def _calls(sim_admin: httpx.AsyncClient, tr_id: str) -> list[Any]:
    calls = (await sim_admin.get("/__sim/calls", params={"tr_id": tr_id})).json()
    return list(calls["calls"] if isinstance(calls, dict) else calls)


async def test_a_kis_order_whose_answer_was_dropped_is_found_with_its_number(
    hub: HubClient,
    reconciler: Reconciler,
    sim_admin: httpx.AsyncClient,
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    await _arm(sim_admin, "TTTC0012U", "drop_answer")
    request_id = await _lost_order(hub, "KIS", "TTTC0012U", dict(KIS_ORDER))
    verdict = await _verdict(redis, keys, request_id)
    (booked,) = (await sim_admin.get("/__sim/orders")).json()
    assert (verdict.status, verdict.order_no) == ("found", booked["order_no"])
    assert (verdict.trigger, verdict.inquiries) == ("auto", ["TTTC0081R"])
    assert verdict.candidates[0]["symbol"] == "005930"
    assert len(await _calls(sim_admin, "TTTC0012U")) == 1, "the order was never sent again"


async def test_an_order_that_never_reached_the_broker_is_not_found_after_the_rechecks(
    hub: HubClient,
    reconciler: Reconciler,
    sim_admin: httpx.AsyncClient,
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    await _arm(sim_admin, "TTTC0012U", "reset")  # dropped before the broker booked anything
    request_id = await _lost_order(hub, "KIS", "TTTC0012U", dict(KIS_ORDER))
    verdict = await _verdict(redis, keys, request_id)
    assert (verdict.status, verdict.checks) == ("not_found", 3)
    assert "late" in verdict.detail
    assert [e.status for e in await _verdicts(redis, keys, request_id)] == ["not_found"] * 3
    assert (await sim_admin.get("/__sim/orders")).json() == []


async def test_two_identical_orders_in_the_window_are_ambiguous_with_both_candidates(
    hub: HubClient,
    reconciler: Reconciler,
    sim_admin: httpx.AsyncClient,
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    first = await hub.execute("KIS", "TTTC0012U", dict(KIS_ORDER), priority="order")
    await _arm(sim_admin, "TTTC0012U", "drop_answer")
    request_id = await _lost_order(hub, "KIS", "TTTC0012U", dict(KIS_ORDER))
    verdict = await _verdict(redis, keys, request_id)
    assert verdict.status == "ambiguous"
    numbers = {c["order_no"] for c in verdict.candidates}
    assert first.body["output"]["ODNO"] in numbers
    assert len(numbers) == 2
    assert verdict.order_no == ""


async def test_a_kiwoom_order_whose_answer_was_dropped_is_found_in_the_open_orders(
    hub: HubClient,
    reconciler: Reconciler,
    sim_admin: httpx.AsyncClient,
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    await _arm(sim_admin, "kt10000", "drop_answer")
    request_id = await _lost_order(hub, "KIWOOM", "kt10000", KIWOOM_ORDER)
    verdict = await _verdict(redis, keys, request_id)
    assert verdict.status == "found", verdict.detail
    assert verdict.inquiries == ["ka10075", "ka10076"]
    booked = (await sim_admin.get("/__sim/orders")).json()
    assert [o["order_no"] for o in booked] == [verdict.order_no]


def _cli(*args: str, settings: Settings, redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APIHUB_")}
    env.update(
        REDIS_URL=redis_url,
        APIHUB_NAMESPACE=settings.namespace,
        APIHUB_DATA_DIR=str(settings.data_dir),
    )
    return subprocess.run(
        [sys.executable, "-m", "apihub_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_apihub_orders_reconcile_asks_on_demand(
    hub: HubClient,
    dispatcher: Dispatcher,
    sim_admin: httpx.AsyncClient,
    redis: aioredis.Redis,
    keys: Keys,
    settings: Settings,
    redis_url: str,
) -> None:
    # No reconciler running: the operator asks.
    await _arm(sim_admin, "TTTC0012U", "drop_answer")
    request_id = await _lost_order(hub, "KIS", "TTTC0012U", dict(KIS_ORDER))
    result = await anyio.to_thread.run_sync(
        lambda: _cli("orders", "reconcile", request_id, settings=settings, redis_url=redis_url)
    )
    assert result.returncode == ExitCode.OK, result.stderr
    printed = json.loads(result.stdout)
    assert (printed["type"], printed["status"], printed["trigger"]) == (
        "order.reconciled",
        "found",
        "manual",
    )
    (stored,) = await _verdicts(redis, keys, request_id)
    assert stored.order_no == printed["order_no"]

    unknown = await anyio.to_thread.run_sync(
        lambda: _cli("orders", "reconcile", "no-such-id", settings=settings, redis_url=redis_url)
    )
    assert unknown.returncode == ExitCode.INVALID
    assert "no request 'no-such-id' on this hub" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    query = await hub.execute("KIS", "FHKST01010100", KIS_PRICE)
    not_an_order = await anyio.to_thread.run_sync(
        lambda: _cli(
            "orders", "reconcile", query.request_id, settings=settings, redis_url=redis_url
        )
    )
    assert not_an_order.returncode == ExitCode.INVALID
    assert "is not an order" in not_an_order.stderr
