"""Fault injection through the admin API, seen by a real HTTP client."""

from __future__ import annotations

from typing import Any, Protocol

import httpx
import pytest

from apihub_broker_sim import ThreadedSimServer


class SimHarness(Protocol):
    """The conftest's ``frozen_sim`` harness, as far as these tests use it."""

    server: ThreadedSimServer
    client: httpx.Client

    def kis_issue(self) -> httpx.Response: ...
    def kis_token(self) -> str: ...
    def kis_headers(self, tr_id: str) -> dict[str, str]: ...
    def kis_price(self) -> httpx.Response: ...
    def kiwoom_issue(self) -> httpx.Response: ...
    def kiwoom(self, path: str, api_id: str, body: dict[str, Any]) -> httpx.Response: ...


def _arm(frozen_sim: SimHarness, spec: dict[str, object]) -> dict[str, object]:
    response = frozen_sim.client.post("/__sim/faults", json=spec)
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.mark.parametrize(
    ("kind", "status", "body"),
    [
        (
            "egw00201",
            500,
            {"rt_cd": "1", "msg_cd": "EGW00201", "msg1": "초당 거래건수를 초과하였습니다."},
        ),
        (
            "egw00121",
            500,
            {"rt_cd": "1", "msg_cd": "EGW00121", "msg1": "유효하지 않은 token 입니다."},
        ),
        (
            "egw00123",
            500,
            {"rt_cd": "1", "msg_cd": "EGW00123", "msg1": "기간이 만료된 token 입니다."},
        ),
    ],
)
def test_kis_presets_fire_once(
    frozen_sim: SimHarness, kind: str, status: int, body: dict[str, str]
) -> None:
    frozen_sim.kis_token()
    _arm(
        frozen_sim,
        {"match": {"provider": "KIS", "tr_id": "FHKST01010100"}, "action": {"kind": kind}},
    )
    hit = frozen_sim.kis_price()
    assert (hit.status_code, hit.json()) == (status, body)
    assert frozen_sim.kis_price().json()["rt_cd"] == "0"
    record = frozen_sim.client.get("/__sim/calls", params={"tr_id": "FHKST01010100"}).json()[0]
    assert (record["fault"], record["error_code"], record["status"]) == (
        kind,
        body["msg_cd"],
        status,
    )


def test_token_throttle_preset_and_custom_error(frozen_sim: SimHarness) -> None:
    _arm(frozen_sim, {"match": {"path": "/oauth2/tokenP"}, "action": "egw00133"})
    assert frozen_sim.kis_issue().json()["error_code"] == "EGW00133"
    assert frozen_sim.kis_issue().status_code == 200
    custom = {"rt_cd": "1", "msg_cd": "40570000", "msg1": "모의투자 장시작전 입니다."}
    _arm(
        frozen_sim,
        {
            "match": {"path": "/uapi/domestic-stock/v1/trading/*", "method": "post"},
            "count": 1,
            "action": {"kind": "error", "status": 200, "body": custom, "headers": {"x-sim": "1"}},
        },
    )
    response = frozen_sim.client.post("/uapi/domestic-stock/v1/trading/order-cash", json={})
    assert response.json() == custom
    assert response.headers["x-sim"] == "1"


def test_kiwoom_presets(frozen_sim: SimHarness) -> None:
    body = {"stk_cd": "005930"}
    _arm(
        frozen_sim,
        {"match": {"provider": "KIWOOM", "api_id": "ka10001"}, "count": 2, "action": "kiwoom_1700"},
    )
    limited = frozen_sim.kiwoom("/api/dostk/stkinfo", "ka10001", body)
    assert limited.status_code == 429
    assert limited.json() == {
        "return_code": 5,
        "return_msg": "허용된 요청 개수를 초과하였습니다"
        "[1700:허용된 요청 개수를 초과하였습니다. API ID=ka10001]",
    }
    assert frozen_sim.kiwoom("/api/dostk/stkinfo", "ka10001", body).status_code == 429
    assert frozen_sim.kiwoom("/api/dostk/stkinfo", "ka10001", body).json()["return_code"] == 0
    _arm(frozen_sim, {"match": {"provider": "KIWOOM"}, "action": {"kind": "kiwoom_8005"}})
    assert "[8005:" in frozen_sim.kiwoom("/api/dostk/stkinfo", "ka10001", body).json()["return_msg"]
    _arm(
        frozen_sim,
        {
            "match": {"provider": "KIWOOM"},
            "action": {"kind": "error", "status": 502, "body": {"x": 1}},
        },
    )
    failed = frozen_sim.kiwoom("/api/dostk/stkinfo", "ka10001", body)
    assert (failed.status_code, failed.json()) == (502, {"x": 1})
    assert failed.headers["content-type"] == "application/json;charset=UTF-8"


def test_http_503_until_cleared(frozen_sim: SimHarness) -> None:
    frozen_sim.kis_token()
    fault = _arm(
        frozen_sim,
        {
            "match": {"appkey": frozen_sim.kis_headers("x")["appkey"]},
            "count": -1,
            "action": "http_503",
        },
    )
    assert fault["match"] == {"appkey": "***"}
    for _ in range(3):
        response = frozen_sim.kis_price()
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("text/html")
    listed = frozen_sim.client.get("/__sim/faults").json()
    assert listed[0]["fired"] == 3
    assert listed[0]["remaining"] == -1
    assert frozen_sim.client.delete("/__sim/faults").json() == {"cleared": True}
    assert frozen_sim.kis_price().status_code == 200


def test_delete_one_fault(frozen_sim: SimHarness) -> None:
    fault = _arm(frozen_sim, {"match": {"provider": "KIS"}, "count": -1, "action": "http_503"})
    assert frozen_sim.client.delete(f"/__sim/faults/{fault['id']}").json() == {
        "removed": fault["id"]
    }
    assert frozen_sim.client.delete(f"/__sim/faults/{fault['id']}").status_code == 404
    assert frozen_sim.client.delete("/__sim/faults/abc").status_code == 400


def test_delay_then_normal_answer(frozen_sim: SimHarness) -> None:
    frozen_sim.kis_token()
    _arm(
        frozen_sim,
        {"match": {"tr_id": "FHKST01010100"}, "action": {"kind": "delay", "delay_ms": 300}},
    )
    assert frozen_sim.kis_price().json()["rt_cd"] == "0"
    (held,) = frozen_sim.client.get("/__sim/calls", params={"tr_id": "FHKST01010100"}).json()
    assert (held["fault"], held["status"]) == ("delay", 200)
    # The time the simulator held the call: at least the injected delay (never an upper bound).
    assert held["duration_ms"] >= 300
    with httpx.Client(base_url=frozen_sim.server.url, timeout=0.1) as impatient:
        _arm(frozen_sim, {"match": {"path": "/__nothing"}, "action": "delay"})
        _arm(
            frozen_sim,
            {"match": {"tr_id": "FHKST01010100"}, "action": {"kind": "delay", "delay_ms": 500}},
        )
        with pytest.raises(httpx.ReadTimeout):
            impatient.get(
                "/uapi/domestic-stock/v1/quotations/inquire-price",
                params={"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"},
                headers=frozen_sim.kis_headers("FHKST01010100"),
            )


def test_reset_is_a_transport_error(frozen_sim: SimHarness) -> None:
    frozen_sim.kis_token()
    _arm(frozen_sim, {"match": {"provider": "KIS", "tr_id": "FHKST01010100"}, "action": "reset"})
    with pytest.raises(httpx.TransportError):
        frozen_sim.kis_price()
    assert frozen_sim.kis_price().status_code == 200
    _arm(frozen_sim, {"match": {"provider": "KIWOOM"}, "action": "reset"})
    with pytest.raises(httpx.TransportError):
        frozen_sim.kiwoom_issue()
    record = frozen_sim.client.get("/__sim/calls", params={"tr_id": "FHKST01010100"}).json()[0]
    assert (record["status"], record["error_code"]) == (0, "reset")


@pytest.mark.parametrize(
    "spec",
    [
        [],
        {"match": []},
        {"match": {"nope": "x"}},
        {"match": {"provider": 1}},
        {"count": 0, "action": "reset"},
        {"count": True, "action": "reset"},
        {"action": 5},
        {"action": {"kind": "boom"}},
        {"action": {"kind": "error"}},
        {"action": {"kind": "error", "status": 999}},
        {"action": {"kind": "reset", "headers": {"a": 1}}},
        {"action": {"kind": "delay", "delay_ms": -1}},
    ],
)
def test_malformed_fault_specs_are_rejected(frozen_sim: SimHarness, spec: object) -> None:
    response = frozen_sim.client.post("/__sim/faults", json=spec)
    assert response.status_code == 400
    assert "error" in response.json()
