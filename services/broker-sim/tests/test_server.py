"""Serving: SimServer in the test's loop, run_simulator under a task group, rate limits."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import anyio
import httpx
import pytest

from apihub_broker_sim import SimClock, SimConfig, SimServer, ThreadedSimServer, run_simulator
from apihub_testing import async_wait_until

pytestmark = pytest.mark.anyio


class SimHarness(Protocol):
    """The conftest's ``make_sim`` harness, as far as these tests use it."""

    client: httpx.Client

    def kis_token(self) -> str: ...
    def kis_price(self) -> httpx.Response: ...
    def kis_minutes(self, hour: str) -> httpx.Response: ...
    def kis_daily(self, first: str, last: str) -> httpx.Response: ...
    def kiwoom(self, path: str, api_id: str, body: dict[str, Any]) -> httpx.Response: ...


class Defaults(Protocol):
    """The conftest's ``harness_defaults``, as far as these tests use it."""

    start_time: datetime
    kis_appkey: str
    kis_secret: str


PRICE = (
    "/uapi/domestic-stock/v1/quotations/inquire-price"
    "?FID_COND_MRKT_DIV_CODE=J&FID_INPUT_ISCD=005930"
)


async def _kis_price(client: httpx.AsyncClient, defaults: Defaults) -> httpx.Response:
    appkey, secret = defaults.kis_appkey, defaults.kis_secret
    body = {"grant_type": "client_credentials", "appkey": appkey, "appsecret": secret}
    token = (await client.post("/oauth2/tokenP", json=body)).json()["access_token"]
    headers = {
        "authorization": f"Bearer {token}",
        "appkey": appkey,
        "appsecret": secret,
        "tr_id": "FHKST01010100",
    }
    return await client.get(PRICE, headers=headers)


async def test_sim_server_in_the_current_loop(harness_defaults: Defaults) -> None:
    clock = SimClock(harness_defaults.start_time, frozen=True)
    async with SimServer(SimConfig(), clock=clock) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.clock is clock
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await _kis_price(client, harness_defaults)
            assert response.json()["rt_cd"] == "0"
            assert len(server.state.recorder.calls()) == 2
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(server.url + "/__sim/health")


async def test_run_simulator_under_a_task_group(harness_defaults: Defaults) -> None:
    config = SimConfig(start_time=harness_defaults.start_time, frozen=True)
    async with anyio.create_task_group() as group:
        url = await group.start(run_simulator, config, "127.0.0.1", 0)
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/__sim/health")).json() == {"ok": True}
        group.cancel_scope.cancel()
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(url + "/__sim/health")


async def test_shutdown_with_a_request_in_flight_is_bounded(harness_defaults: Defaults) -> None:
    config = SimConfig(start_time=harness_defaults.start_time, frozen=True)
    slow = {"match": {"path": "/oauth2/tokenP"}, "action": {"kind": "delay", "delay_ms": 10_000}}
    answers: list[int] = []

    async def hang(client: httpx.AsyncClient, url: str) -> None:
        answers.append((await client.post(url + "/oauth2/tokenP", json={})).status_code)

    async with httpx.AsyncClient(timeout=10) as client, anyio.create_task_group() as group:
        # A guard, not a measurement: the held request would keep a shutdown that waits for it
        # busy for 10 s, and uvicorn's grace period is 2 s.
        with anyio.fail_after(8):
            async with SimServer(config) as server:
                fault = server.state.faults.add(slow)
                group.start_soon(hang, client, server.url)
                await async_wait_until(lambda: fault.fired, message="the request reached the sim")
    # uvicorn cancelled the stuck handler after its grace period and answered 500, where the
    # handler itself, had it finished its delay, would have refused the empty token request.
    assert answers == [500]


def test_threaded_server_is_reusable_as_a_context_manager(harness_defaults: Defaults) -> None:
    config = SimConfig(start_time=harness_defaults.start_time, frozen=True)
    with ThreadedSimServer(config) as server:
        assert httpx.get(server.url + "/__sim/health").json() == {"ok": True}
        with pytest.raises(RuntimeError):
            server.start()
    server.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/__sim/health")


def test_kis_rate_limit(make_sim: Callable[..., SimHarness]) -> None:
    frozen_sim = make_sim(kis_rate_limit_per_s=3)
    frozen_sim.kis_token()  # token calls are not rate limited
    answers = [frozen_sim.kis_price() for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 500, 500]
    assert answers[-1].json() == {
        "rt_cd": "1",
        "msg_cd": "EGW00201",
        "msg1": "초당 거래건수를 초과하였습니다.",
    }
    stats = frozen_sim.client.get("/__sim/stats").json()
    assert stats["max_calls_in_any_1s_window"] == 5
    assert stats["errors"] == 2


def test_kiwoom_rate_limit_is_per_api_id(make_sim: Callable[..., SimHarness]) -> None:
    frozen_sim = make_sim(kiwoom_rate_limit_per_s=2, kiwoom_rate_limit_status=200)
    info = {"stk_cd": "005930"}
    codes = [
        frozen_sim.kiwoom("/api/dostk/stkinfo", "ka10001", info).json()["return_code"]
        for _ in range(3)
    ]
    assert codes == [0, 0, 5]
    chart = {"stk_cd": "005930", "base_dt": "20250321", "upd_stkpc_tp": "1"}
    assert frozen_sim.kiwoom("/api/dostk/chart", "ka10081", chart).json()["return_code"] == 0


def test_same_request_same_clock_same_bytes(make_sim: Callable[..., SimHarness]) -> None:
    def digest(frozen_sim: SimHarness) -> list[str]:
        bodies = [
            frozen_sim.kis_price().content,
            frozen_sim.kis_minutes("130000").content,
            frozen_sim.kis_daily("20250101", "20250321").content,
            frozen_sim.kiwoom("/api/dostk/stkinfo", "ka10001", {"stk_cd": "123456"}).content,
        ]
        return [hashlib.sha256(body).hexdigest() for body in bodies]

    first, second = make_sim(), make_sim()
    assert digest(first) == digest(second) == digest(first)
    assert digest(make_sim(seed=1)) != digest(first)


def test_the_listening_socket_is_tcp_so_answers_are_not_delayed_by_nagle() -> None:
    # asyncio turns on TCP_NODELAY for accepted connections only when the listening socket's
    # protocol is TCP; otherwise every keep-alive answer waits ~40 ms for a delayed ACK.
    with ThreadedSimServer() as server:
        assert server._sock is not None
        assert server._sock.proto == socket.IPPROTO_TCP
