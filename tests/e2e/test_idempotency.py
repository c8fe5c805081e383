"""An idempotency key submitted twice: one upstream order, the same answer to both callers."""

from __future__ import annotations

import anyio
import httpx
import pytest

from apihub_broker_sim import KIS_ORDER, KIS_PRICE
from apihub_core import HubClient, RequestInvalid, Response
from apihub_dispatcher import Dispatcher

pytestmark = pytest.mark.anyio


async def _orders(sim_admin: httpx.AsyncClient) -> list[dict[str, object]]:
    reply = await sim_admin.get("/__sim/orders")
    reply.raise_for_status()
    orders: list[dict[str, object]] = reply.json()
    return orders


async def test_duplicate_orders_reach_the_broker_once_and_share_the_answer(
    hub: HubClient, dispatcher: Dispatcher, sim_admin: httpx.AsyncClient
) -> None:
    # The order is slow at the broker, so the duplicate arrives while the first is in flight.
    fault = {
        "match": {"tr_id": "TTTC0012U"},
        "count": -1,
        "action": {"kind": "delay", "delay_ms": 300},
    }
    (await sim_admin.post("/__sim/faults", json=fault)).raise_for_status()
    answers: list[Response] = []

    async def order() -> None:
        answers.append(
            await hub.execute(
                "KIS", "TTTC0012U", KIS_ORDER, idempotency_key="buy-005930-1", timeout=20
            )
        )

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(order)

    assert len(await _orders(sim_admin)) == 1, "one upstream order for one idempotency key"
    owners = [a for a in answers if a.replay_of is None]
    replays = [a for a in answers if a.replay_of is not None]
    assert len(owners) == 1
    assert len(replays) == 2
    (owner,) = owners
    for replay in replays:
        assert replay.replay_of == owner.request_id
        assert replay.request_id != owner.request_id
        assert replay.body == owner.body
        assert replay.status == owner.status
    assert owner.body["output"]["ODNO"], "the broker's order number reaches every caller"

    # Long after the first answer, the key still answers from the record, without a call.
    later = await hub.execute("KIS", "TTTC0012U", KIS_ORDER, idempotency_key="buy-005930-1")
    assert later.replay_of == owner.request_id
    assert later.body == owner.body
    assert len(await _orders(sim_admin)) == 1


async def test_a_key_reused_for_a_different_order_is_refused(
    hub: HubClient, dispatcher: Dispatcher, sim_admin: httpx.AsyncClient
) -> None:
    await hub.execute("KIS", "TTTC0012U", KIS_ORDER, idempotency_key="k-1")
    with pytest.raises(RequestInvalid, match="different TR or parameters") as caught:
        await hub.execute("KIS", "TTTC0012U", {**KIS_ORDER, "ORD_QTY": "2"}, idempotency_key="k-1")
    assert "APIHUB-IDEMPOTENCY-MISMATCH" in str(caught.value)
    assert len(await _orders(sim_admin)) == 1


async def test_keys_are_scoped_and_work_for_queries_too(
    hub: HubClient, dispatcher: Dispatcher, sim_admin: httpx.AsyncClient
) -> None:
    first = await hub.execute("KIS", "FHKST01010100", KIS_PRICE, idempotency_key="q-1")
    second = await hub.execute("KIS", "FHKST01010100", KIS_PRICE, idempotency_key="q-1")
    assert second.replay_of == first.request_id
    calls = (await sim_admin.get("/__sim/calls", params={"tr_id": "FHKST01010100"})).json()
    assert len(calls["calls"] if isinstance(calls, dict) else calls) == 1
    # A different key is a different request.
    third = await hub.execute("KIS", "FHKST01010100", KIS_PRICE, idempotency_key="q-2")
    assert third.replay_of is None
