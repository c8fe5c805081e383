"""A dispatcher killed mid-request: the request is reclaimed and answered; orders never resent."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
import redis.asyncio as aioredis

from apihub_broker_sim import KIS_ORDER, KIS_PRICE, KIWOOM_DAILY
from apihub_core import HubClient, Keys, OutcomeUnknown, Response
from apihub_dispatcher import open_dispatcher
from apihub_runtime import Settings
from apihub_testing import async_wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("token_keeper")]


@pytest.fixture
def victim(
    redis_url: str,
    sim_url: str,
    hub_namespace: str,
    spawn_dispatcher: Callable[[dict[str, str]], subprocess.Popen[bytes]],
) -> subprocess.Popen[bytes]:
    """A dispatcher in a child process, to be killed with SIGKILL (or stopped at teardown)."""
    return spawn_dispatcher(
        {
            "REDIS_URL": redis_url,
            "APIHUB_NAMESPACE": hub_namespace,
            "APIHUB_KIS_BASE_URL": sim_url,
            "APIHUB_KIWOOM_BASE_URL": sim_url,
        }
    )


async def _arm(sim_admin: httpx.AsyncClient, tr_id: str, *, delay_ms: int, count: int) -> int:
    reply = await sim_admin.post(
        "/__sim/faults",
        json={
            "match": {"tr_id": tr_id},
            "count": count,
            "action": {"kind": "delay", "delay_ms": delay_ms},
        },
    )
    reply.raise_for_status()
    return int(reply.json()["id"])


async def _fired(sim_admin: httpx.AsyncClient, fault_id: int) -> int:
    faults = (await sim_admin.get("/__sim/faults")).json()
    for fault in faults.get("faults", faults) if isinstance(faults, dict) else faults:
        if int(fault["id"]) == fault_id:
            return int(fault["fired"])
    return -1  # a one-shot fault disappears once used up


async def _wait_fired(sim_admin: httpx.AsyncClient, fault_id: int, times: int = 1) -> None:
    # Polls the simulator's own record of the call having arrived; no fixed sleep.
    async def fired() -> bool:
        return await _fired(sim_admin, fault_id) >= times

    await async_wait_until(fired, timeout=20, message="the broker never saw the call")


async def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    await anyio.to_thread.run_sync(proc.wait)


async def test_request_survives_a_dispatcher_killed_mid_call(
    hub: HubClient,
    settings: Settings,
    sim_admin: httpx.AsyncClient,
    redis: aioredis.Redis,
    keys: Keys,
    victim: subprocess.Popen[bytes],
) -> None:
    # The broker holds the first call long enough for the victim to die while waiting on it.
    # Kiwoom, because a second KIS token within a minute is refused (EGW00133) until the
    # token-keeper shares one token between dispatchers.
    fault = await _arm(sim_admin, "ka10081", delay_ms=5_000, count=-1)
    answers: list[Response] = []

    async def call() -> None:
        answers.append(await hub.execute("KIWOOM", "ka10081", KIWOOM_DAILY, timeout=30))

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await _wait_fired(sim_admin, fault)
        pending = await redis.xpending(keys.requests, "dispatcher")
        assert pending["pending"] == 1, "the victim holds the request"
        await _kill(victim)
        (await sim_admin.delete("/__sim/faults")).raise_for_status()
        async with open_dispatcher(settings) as rescuer, anyio.create_task_group() as inner:
            await inner.start(rescuer.run)
            await async_wait_until(lambda: answers, timeout=20)
            rescuer.stop()

    (response,) = answers
    assert response.body["return_code"] == 0
    assert (await redis.xpending(keys.requests, "dispatcher"))["pending"] == 0


async def test_an_order_is_never_sent_twice(
    hub: HubClient,
    settings: Settings,
    sim_admin: httpx.AsyncClient,
    redis: aioredis.Redis,
    keys: Keys,
    victim: subprocess.Popen[bytes],
) -> None:
    # Every order call that reaches the broker fires this fault, so `fired` counts sends.
    fault = await _arm(sim_admin, "TTTC0012U", delay_ms=5_000, count=-1)
    errors: list[BaseException] = []

    async def order() -> None:
        try:
            await hub.execute("KIS", "TTTC0012U", KIS_ORDER, priority="order", timeout=30)
        except OutcomeUnknown as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(order)
        await _wait_fired(sim_admin, fault)
        await _kill(victim)
        async with open_dispatcher(settings) as rescuer, anyio.create_task_group() as inner:
            await inner.start(rescuer.run)
            await async_wait_until(lambda: errors, timeout=20)
            rescuer.stop()

    (error,) = errors
    assert isinstance(error, OutcomeUnknown)
    assert error.request_id
    assert "reconcile" in str(error).lower()
    assert await _fired(sim_admin, fault) == 1, "the order reached the broker exactly once"
    (await sim_admin.delete("/__sim/faults")).raise_for_status()


async def test_graceful_stop_finishes_in_flight_requests(
    hub: HubClient,
    settings: Settings,
    sim_admin: httpx.AsyncClient,
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    fault = await _arm(sim_admin, "FHKST01010100", delay_ms=300, count=-1)
    answers: list[Any] = []
    async with open_dispatcher(settings) as running, anyio.create_task_group() as tg:
        await tg.start(running.run)

        async def call() -> None:
            answers.append(await hub.execute("KIS", "FHKST01010100", KIS_PRICE, timeout=20))

        async with anyio.create_task_group() as calls:
            for _ in range(5):
                calls.start_soon(call)
            await _wait_fired(sim_admin, fault, times=5)
            # Stop while all five are in flight at the broker: they must still be answered.
            running.stop()
    assert len(answers) == 5
    assert (await redis.xpending(keys.requests, "dispatcher"))["pending"] == 0


async def test_sigterm_drains_a_dispatcher_process(
    hub: HubClient,
    sim_admin: httpx.AsyncClient,
    redis: aioredis.Redis,
    keys: Keys,
    victim: subprocess.Popen[bytes],
) -> None:
    # SIGTERM arrives while the broker is still answering: the answer must still be delivered.
    fault = await _arm(sim_admin, "ka10081", delay_ms=500, count=-1)
    answers: list[Response] = []

    async def call() -> None:
        answers.append(await hub.execute("KIWOOM", "ka10081", KIWOOM_DAILY, timeout=30))

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await _wait_fired(sim_admin, fault)
        victim.send_signal(signal.SIGTERM)
        assert await anyio.to_thread.run_sync(victim.wait) == 0
    (response,) = answers
    assert response.body["return_code"] == 0
    assert (await redis.xpending(keys.requests, "dispatcher"))["pending"] == 0
