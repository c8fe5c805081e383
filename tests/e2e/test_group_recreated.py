"""The dispatcher group vanishes (``XGROUP DESTROY``, a failover to a replica without it): it is
recreated after the last delivered entry, so no request is handled twice, orders above all."""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio
import httpx
import pytest
import redis.asyncio as aioredis

from apihub_broker_sim import KIS_ORDER, KIS_PRICE
from apihub_core import HubClient, Keys, Response, decode_outcome
from apihub_dispatcher import Dispatcher
from apihub_testing import async_wait_until

pytestmark = pytest.mark.anyio


async def _calls(sim_admin: httpx.AsyncClient, tr_id: str) -> list[dict[str, Any]]:
    reply = await sim_admin.get("/__sim/calls", params={"tr_id": tr_id})
    reply.raise_for_status()
    body = reply.json()
    return list(body["calls"] if isinstance(body, dict) else body)


async def _outcomes_by_request(redis: aioredis.Redis, keys: Keys) -> Counter[str]:
    entries = await redis.xrange(keys.responses)
    return Counter(decode_outcome(fields).request_id for _id, fields in entries)


async def test_no_request_is_handled_twice_after_the_group_is_recreated(
    hub: HubClient,
    dispatcher: Dispatcher,
    redis: aioredis.Redis,
    keys: Keys,
    sim_admin: httpx.AsyncClient,
) -> None:
    answers: list[Response] = []

    async def burst(n: int) -> None:
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tr_id, params = (
                    ("TTTC0012U", KIS_ORDER) if i % 3 == 0 else ("FHKST01010100", KIS_PRICE)
                )

                async def one(tr_id: str = tr_id, params: Any = params) -> None:
                    answers.append(await hub.execute("KIS", tr_id, params, timeout=30))

                tg.start_soon(one)

    await burst(30)
    await redis.xgroup_destroy(keys.requests, "dispatcher")
    await burst(30)

    assert len(answers) == 60
    assert all(response.status == 200 for response in answers)
    outcomes = await _outcomes_by_request(redis, keys)
    assert set(outcomes) == {response.request_id for response in answers}
    assert set(outcomes.values()) == {1}, "a request was answered twice"
    assert len(await _calls(sim_admin, "TTTC0012U")) == 20, "every order reached the broker once"
    assert len(await _calls(sim_admin, "FHKST01010100")) == 40


async def test_orders_at_the_broker_when_the_group_vanishes_are_not_sent_again(
    hub: HubClient,
    dispatcher: Dispatcher,
    redis: aioredis.Redis,
    keys: Keys,
    sim_admin: httpx.AsyncClient,
) -> None:
    # The orders are still at the broker (held 1.5 s) when the group is destroyed and recreated:
    # their entries were delivered but not yet acknowledged.
    fault = await sim_admin.post(
        "/__sim/faults",
        json={
            "match": {"tr_id": "TTTC0012U"},
            "count": -1,
            "action": {"kind": "delay", "delay_ms": 1_500},
        },
    )
    fault.raise_for_status()
    answers: list[Response] = []

    async def order() -> None:
        answers.append(await hub.execute("KIS", "TTTC0012U", KIS_ORDER, timeout=30))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(order)

        async def all_at_the_broker() -> bool:
            return len(await _calls(sim_admin, "TTTC0012U")) == 5

        await async_wait_until(all_at_the_broker, timeout=20)
        await redis.xgroup_destroy(keys.requests, "dispatcher")
        # A fresh request makes the dispatcher read again, find the group gone and recreate it.
        tg.start_soon(order)

    assert len(answers) == 6
    assert all(response.status == 200 for response in answers)
    assert len(await _calls(sim_admin, "TTTC0012U")) == 6, "no order was sent twice"
    outcomes = await _outcomes_by_request(redis, keys)
    assert set(outcomes.values()) == {1}
    (await sim_admin.delete("/__sim/faults")).raise_for_status()
