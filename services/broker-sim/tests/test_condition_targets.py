"""Conditions aimed at symbols, tr ids and windows of simulated time, and the refused-quotation
answer, seen over real sockets. Windows are crossed by moving the frozen simulated clock, never
by waiting."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import httpx
import pytest

from apihub_broker_sim import SimConfig, ThreadedSimServer, create_app

PRICE = "FHKST01010100"
CCNL = "FHKST01010300"
DAILY = "FHKST01010400"
BASIC = {"FID_COND_MRKT_DIV_CODE": "J"}
THREE = ["005930", "000660_NX", "A035720"]  # spelled three ways; one tape each


class SimHarness(Protocol):
    """The conftest's simulator harness (``frozen_sim``, ``make_sim``), as these tests use it."""

    server: ThreadedSimServer
    client: httpx.Client

    def forget_tokens(self) -> None: ...
    def kis_token(self) -> str: ...
    def kis_get(self, name: str, tr_id: str, **params: str) -> httpx.Response: ...
    def kis_price(self, code: str = "005930") -> httpx.Response: ...
    def kis_order(
        self, tr_id: str, code: str, quantity: int, price: int = 0, *, market: bool = False
    ) -> httpx.Response: ...
    def kiwoom(self, path: str, api_id: str, body: dict[str, Any]) -> httpx.Response: ...


def _add(sim: SimHarness, spec: dict[str, Any]) -> dict[str, Any]:
    response = sim.client.post("/__sim/conditions", json=spec)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _advance(sim: SimHarness, seconds: float) -> None:
    sim.client.post("/__sim/clock", json={"advance_s": seconds}).raise_for_status()


def _view(sim: SimHarness) -> dict[str, Any]:
    return dict(sim.client.get("/__sim/conditions").json())


def _kiwoom_price(sim: SimHarness, code: str) -> httpx.Response:
    return sim.kiwoom("/api/dostk/stkinfo", "ka10001", {"stk_cd": code})


def _refused(response: httpx.Response) -> bool:
    body = response.json()
    if "rt_cd" in body:
        return (response.status_code, body["rt_cd"], body["msg_cd"], body["msg1"]) == (
            200,
            "1",
            "MCA05918",
            "종목코드 오류입니다.",
        )
    return (response.status_code, body["return_code"]) == (200, 2) and body[
        "return_msg"
    ].startswith("입력 값 오류입니다[1902:종목 정보가 없습니다")


def test_an_outage_of_three_symbols_for_ten_simulated_minutes(frozen_sim: SimHarness) -> None:
    outage = _add(
        frozen_sim, {"outage": {"symbols": THREE, "for_s": 600, "action": "quote_refused"}}
    )
    assert (outage["symbols"], outage["tr_ids"]) == (["000660", "005930", "035720"], None)
    assert (outage["from"], outage["until"]) == (
        "2025-03-21T13:00:30+09:00",
        "2025-03-21T13:10:30+09:00",
    )
    assert (outage["active"], outage["kind"], outage["duration_s"]) == (True, "quote_refused", None)
    for code in ("005930", "000660", "035720", "Q005930"):
        assert _refused(frozen_sim.kis_price(code)), code
    for code in ("005930_NX", "000660_AL", "035720"):
        assert _refused(_kiwoom_price(frozen_sim, code)), code
    assert frozen_sim.kis_price("005380").json()["rt_cd"] == "0", "another symbol is quoted"
    assert _kiwoom_price(frozen_sim, "005380").json()["return_code"] == 0
    # Only quotations are refused: an order for the symbol goes through.
    assert frozen_sim.kis_order("TTTC0012U", "005930", 1, market=True).json()["rt_cd"] == "0"
    calls = frozen_sim.client.get("/__sim/calls").json()
    refused = [c for c in calls if c["fault"] == "quote_refused"]
    assert [(c["symbol"], c["fault_source"], c["error_code"]) for c in refused] == [
        ("005930", "outage", "MCA05918"),
        ("000660", "outage", "MCA05918"),
        ("035720", "outage", "MCA05918"),
        ("005930", "outage", "MCA05918"),
        ("005930", "outage", "1902"),
        ("000660", "outage", "1902"),
        ("035720", "outage", "1902"),
    ]
    # Simulated time, not real time: one second short of ten minutes it still holds...
    _advance(frozen_sim, 599)
    assert _refused(frozen_sim.kis_price("005930"))
    (live,) = _view(frozen_sim)["outage"]
    assert (live["fired"], live["active"]) == (8, True)
    # ... and at the end of the window it is gone, from the calls and from the view.
    _advance(frozen_sim, 1)
    assert frozen_sim.kis_price("005930").json()["rt_cd"] == "0"
    assert _view(frozen_sim)["outage"] == []
    # Moving the clock back does not bring an ended condition back.
    _advance(frozen_sim, -300)
    assert frozen_sim.kis_price("005930").json()["rt_cd"] == "0"


def test_a_window_in_the_future_waits_for_the_simulated_clock(frozen_sim: SimHarness) -> None:
    # Naive datetimes are KST; the harness is frozen at 13:00:30.
    waiting = _add(
        frozen_sim,
        {"outage": {"from": "2025-03-21T13:05:00", "until": "2025-03-21T04:10:00+00:00"}},
    )
    assert (waiting["from"], waiting["until"], waiting["active"]) == (
        "2025-03-21T13:05:00+09:00",
        "2025-03-21T13:10:00+09:00",
        False,
    )
    assert frozen_sim.kis_price().status_code == 200
    _advance(frozen_sim, 269.5)  # 13:04:59.5
    assert frozen_sim.kis_price().status_code == 200
    _advance(frozen_sim, 0.5)  # 13:05:00, from is inclusive
    assert frozen_sim.kis_price().status_code == 503
    assert _view(frozen_sim)["outage"][0]["active"] is True
    _advance(frozen_sim, 300)  # 13:10:00, until is exclusive
    assert frozen_sim.kis_price().status_code == 200
    assert _view(frozen_sim)["outage"] == []
    # A window given as from + for_s.
    _add(frozen_sim, {"outage": {"from": "2025-03-21T13:20:00", "for_s": 60}})
    (later,) = _view(frozen_sim)["outage"]
    assert (later["from"], later["until"]) == (
        "2025-03-21T13:20:00+09:00",
        "2025-03-21T13:21:00+09:00",
    )


def test_tr_ids_and_match_combine(frozen_sim: SimHarness) -> None:
    rate = _add(
        frozen_sim,
        {
            "error_rate": {
                "p": 1,
                "action": "egw00201",
                "tr_ids": [PRICE, CCNL],
                "symbols": ["005930"],
                "match": {"provider": "KIS"},
            }
        },
    )
    assert rate["tr_ids"] == [PRICE, CCNL]
    code = {**BASIC, "FID_INPUT_ISCD": "005930"}
    assert frozen_sim.kis_get("inquire-price", PRICE, **code).json()["msg_cd"] == "EGW00201"
    assert frozen_sim.kis_get("inquire-ccnl", CCNL, **code).json()["msg_cd"] == "EGW00201"
    daily = {**code, "FID_PERIOD_DIV_CODE": "D", "FID_ORG_ADJ_PRC": "0"}
    assert frozen_sim.kis_get("inquire-daily-price", DAILY, **daily).json()["rt_cd"] == "0"
    other = {**BASIC, "FID_INPUT_ISCD": "000660"}
    assert frozen_sim.kis_get("inquire-price", PRICE, **other).json()["rt_cd"] == "0"
    (seen,) = _view(frozen_sim)["error_rate"]
    assert (seen["matched"], seen["fired"]) == (2, 2), "calls it does not target draw nothing"


def _targeted_run(sim: SimHarness, codes: list[str]) -> list[bool]:
    _add(sim, {"error_rate": {"p": 0.5, "symbols": ["005930"], "action": "egw00201"}})
    sim.kis_token()
    failed = []
    for code in codes:
        response = sim.kis_price(code)
        if code == "005930":
            failed.append(response.status_code == 500)
        else:
            assert response.status_code == 200
    return failed


def test_targeted_error_rates_stay_deterministic(make_sim: Callable[..., SimHarness]) -> None:
    mixed = ["005930", "000660", "005930", "035720", "000660"] * 12
    first = _targeted_run(make_sim(conditions_seed=8), mixed)
    assert _targeted_run(make_sim(conditions_seed=8), mixed) == first
    # Calls to other symbols take no draws: the targeted ones fail exactly as without them.
    alone = ["005930"] * mixed.count("005930")
    assert _targeted_run(make_sim(conditions_seed=8), alone) == first
    assert 0 < sum(first) < len(first)


def test_latency_can_target_symbols(frozen_sim: SimHarness) -> None:
    _add(frozen_sim, {"latency": {"base_ms": 3, "symbols": ["000660"]}})
    frozen_sim.kis_token()
    for code in ("005930", "000660", "005930"):
        assert frozen_sim.kis_price(code).status_code == 200
    calls = frozen_sim.client.get("/__sim/calls", params={"tr_id": PRICE}).json()
    assert [(c["symbol"], c["latency_ms"]) for c in calls] == [
        ("005930", 0.0),
        ("000660", 3.0),
        ("005930", 0.0),
    ]


def test_configured_windows_restart_at_reset(make_sim: Callable[..., SimHarness]) -> None:
    spec = {"outage": {"for_s": 60, "symbols": ["005930"], "action": "quote_refused"}}
    sim = make_sim(conditions=(spec,))
    assert _refused(sim.kis_price("005930"))
    _advance(sim, 60)
    assert sim.kis_price("005930").json()["rt_cd"] == "0"
    assert _view(sim)["outage"] == []
    sim.client.post("/__sim/reset").raise_for_status()
    sim.forget_tokens()
    (again,) = _view(sim)["outage"]
    assert again["from"] == "2025-03-21T13:01:30+09:00", "the window starts at the reset"
    assert _refused(sim.kis_price("005930"))


def test_a_refused_quote_fault_skips_other_calls(frozen_sim: SimHarness) -> None:
    armed = frozen_sim.client.post("/__sim/faults", json={"action": "quote_refused"}).json()
    frozen_sim.kis_token()
    assert frozen_sim.kis_order("TTTC0012U", "005930", 1, market=True).json()["rt_cd"] == "0"
    assert frozen_sim.client.get("/__sim/faults").json()[0]["remaining"] == 1, "not consumed"
    assert _refused(frozen_sim.kis_price())
    assert frozen_sim.client.get("/__sim/faults").json() == []
    assert armed["kind"] == "quote_refused"


@pytest.mark.parametrize(
    "spec",
    [
        {"outage": {"symbols": []}},
        {"outage": {"symbols": "005930"}},
        {"outage": {"symbols": [5930]}},
        {"outage": {"symbols": [" "]}},
        {"latency": {"tr_ids": []}},
        {"error_rate": {"p": 1, "tr_ids": [PRICE, 3]}},
        {"outage": {"from": "soon"}},
        {"outage": {"until": 20250321}},
        {"outage": {"from": "2025-03-21T13:10:00", "until": "2025-03-21T13:05:00"}},
        {"outage": {"until": "2025-03-21T13:10:00", "for_s": 60}},
        {"outage": {"for_s": -1}},
        {"outage": {"for_s": "600"}},
        {"outage": {"for_s": 1e300}},
        {"outage": {"duration_s": 30, "for_s": 60}},
        {"outage": {"duration_s": 30, "until": "2025-03-21T13:10:00"}},
        {"outage": {"symbol": ["005930"]}},
    ],
)
def test_malformed_targets_are_rejected(frozen_sim: SimHarness, spec: object) -> None:
    response = frozen_sim.client.post("/__sim/conditions", json=spec)
    assert response.status_code == 400, spec
    assert "error" in response.json()


@pytest.mark.parametrize(
    "spec",
    [
        {"latency": {"base_ms": math.inf}},
        {"outage": {"for_s": math.inf}},
        {"outage": {"for_s": 1e300}},
        {"error_rate": {"p": 1, "symbols": ("005930",)}},
    ],
)
def test_configured_targets_are_checked_at_start(spec: dict[str, Any]) -> None:
    # Python-only values (JSON cannot carry them): infinities, a tuple for a list.
    with pytest.raises(ValueError, match=next(iter(spec))):
        create_app(SimConfig(conditions=(spec,)))
