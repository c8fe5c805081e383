"""The simulated market on the KRX calendar, over real sockets: closed days, the year's 10:00
opening, the exam day's 10:00-16:30, and the closing auction (no continuous prints in the last
ten minutes, one print at the close, orders placed then filled by it)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Protocol

import httpx

from apihub_broker_sim import KST
from apihub_marketdata import krx_calendar

QUOTES = "/uapi/domestic-stock/v1/quotations"
CCLD = {
    "SLL_BUY_DVSN_CD": "00",
    "INQR_DVSN": "00",
    "PDNO": "",
    "CCLD_DVSN": "00",
    "ORD_GNO_BRNO": "",
    "ODNO": "",
    "INQR_DVSN_3": "00",
    "INQR_DVSN_1": "",
    "CTX_AREA_FK100": "",
    "CTX_AREA_NK100": "",
}


class SimHarness(Protocol):
    """The conftest's simulator harness (``make_sim``), as these tests use it."""

    client: httpx.Client

    def forget_tokens(self) -> None: ...
    def kis_headers(self, tr_id: str) -> dict[str, str]: ...
    def kis_get(self, name: str, tr_id: str, **params: str) -> httpx.Response: ...
    def kis_price(self, code: str = "005930") -> httpx.Response: ...
    def kis_minutes(self, hour: str, code: str = "005930") -> httpx.Response: ...
    def kis_day_minutes(
        self, day: str, hour: str, code: str = "005930", **overrides: str
    ) -> httpx.Response: ...
    def kis_order(
        self, tr_id: str, code: str, quantity: int, price: int = 0, *, market: bool = False
    ) -> httpx.Response: ...
    def kis_trading_get(
        self, name: str, tr_id: str, *, tr_cont: str = "", **params: str
    ) -> httpx.Response: ...


Make = Callable[..., SimHarness]


def _at(sim: SimHarness, when: str) -> None:
    sim.client.post("/__sim/clock", json={"now": when}).raise_for_status()


def _hours(rows: list[dict[str, str]]) -> list[str]:
    return [row["stck_cntg_hour"] for row in rows]


def _phase(sim: SimHarness) -> str:
    answer = sim.kis_get(
        "inquire-asking-price-exp-ccn",
        "FHKST01010200",
        FID_COND_MRKT_DIV_CODE="J",
        FID_INPUT_ISCD="005930",
    ).json()
    return str(answer["output1"]["new_mkop_cls_code"])


def _expected(day: date) -> list[str]:
    """The bar starts (HHMMSS) of ``day`` that the KRX calendar says a full day holds."""
    return [f"{minute:%H%M%S}" for minute in krx_calendar().expected_minutes(day)]


def _orders(sim: SimHarness, day: str) -> list[dict[str, Any]]:
    params = {**CCLD, "INQR_STRT_DT": day, "INQR_END_DT": day}
    answer = sim.kis_trading_get("inquire-daily-ccld", "TTTC0081R", **params).json()
    assert answer["rt_cd"] == "0", answer
    return list(answer["output1"])


def test_no_continuous_prints_in_the_closing_auction(make_sim: Make) -> None:
    sim = make_sim(start_time=datetime(2025, 3, 21, 15, 25, tzinfo=KST))
    # At 15:25 the last print is from before 15:20; the minute chart stops at 15:19.
    rows = sim.kis_minutes("153000").json()["output2"]
    assert _hours(rows)[:2] == ["151900", "151800"]
    assert sim.kis_price().json()["output"]["stck_prpr"] == rows[0]["stck_prpr"]
    assert _phase(sim) == "20"
    # At the close the auction prints once; the session's bars are the calendar's minutes.
    _at(sim, "2025-03-21T15:30:00+09:00")
    closed = sim.kis_day_minutes("20250321", "153000").json()["output2"]
    assert _hours(closed)[:2] == ["153000", "151900"]
    assert sim.kis_price().json()["output"]["stck_prpr"] == closed[0]["stck_prpr"]
    expected = [
        f"{m:%H%M%S}" for m in krx_calendar().expected_minutes(datetime(2025, 3, 21).date())
    ]
    walked: list[str] = []
    hour = "153000"
    while True:
        page = sim.kis_day_minutes("20250321", hour).json()["output2"]
        walked += [h for h in _hours(page) if h not in walked]
        if len(page) < 120:
            break
        hour = page[-1]["stck_cntg_hour"]
    assert walked == expected[::-1]
    assert len(walked) == 381


def test_an_order_in_the_closing_auction_fills_at_the_close(make_sim: Make) -> None:
    sim = make_sim(start_time=datetime(2025, 3, 21, 15, 25, tzinfo=KST))
    placed = sim.kis_order("TTTC0012U", "005930", 3, market=True).json()
    assert placed["rt_cd"] == "0", placed
    (order,) = _orders(sim, "20250321")
    assert order["tot_ccld_qty"] == "0", "no continuous trade to meet during the auction"
    _at(sim, "2025-03-21T15:30:00+09:00")
    close = int(sim.kis_price().json()["output"]["stck_prpr"])
    (filled,) = _orders(sim, "20250321")
    assert (filled["tot_ccld_qty"], int(filled["avg_prvs"])) == ("3", close)
    # The same order in continuous trading fills on arrival at the last print.
    early = make_sim(start_time=datetime(2025, 3, 21, 15, 19, 30, tzinfo=KST))
    last = int(early.kis_price().json()["output"]["stck_prpr"])
    early.kis_order("TTTC0012U", "005930", 3, market=True).raise_for_status()
    (now,) = _orders(early, "20250321")
    assert (now["tot_ccld_qty"], int(now["avg_prvs"])) == ("3", last)


def test_the_years_first_session_opens_at_ten(make_sim: Make) -> None:
    sim = make_sim(start_time=datetime(2025, 1, 2, 9, 30, tzinfo=KST))
    # Before 10:00 the market still shows the last session: 2024-12-30 (12-31 is closed).
    rows = sim.kis_minutes("153000").json()["output2"]
    assert {row["stck_bsop_date"] for row in rows} == {"20241230"}
    assert _phase(sim) == "10"
    assert sim.kis_day_minutes("20250102", "153000").json()["output2"] == []
    _at(sim, "2025-01-02T10:00:05+09:00")
    assert _hours(sim.kis_minutes("153000").json()["output2"]) == ["100000"]
    assert _phase(sim) == "20"
    _at(sim, "2025-01-03T12:00:00+09:00")
    sim.forget_tokens()
    day = sim.kis_day_minutes("20250102", "110000").json()["output2"]
    assert _hours(day)[-1] == "100000", "the day's first bar is 10:00"
    assert len(day) == 61


def test_the_exam_day_runs_an_hour_late(make_sim: Make) -> None:
    sim = make_sim(start_time=datetime(2025, 11, 13, 16, 25, tzinfo=KST))
    assert _hours(sim.kis_minutes("170000").json()["output2"])[0] == "161900"
    assert _phase(sim) == "20"
    _at(sim, "2025-11-13T16:45:00+09:00")
    assert _hours(sim.kis_minutes("170000").json()["output2"])[0] == "163000"
    assert _phase(sim) == "30"
    # The day's bars are the calendar's minutes, 10:00 .. 16:19 and 16:30.
    expected = [
        f"{m:%H%M%S}" for m in krx_calendar().expected_minutes(datetime(2025, 11, 13).date())
    ]
    assert (
        _hours(sim.kis_day_minutes("20251113", "163000").json()["output2"])
        == (expected[::-1][:120])
    )


def test_closed_days_follow_krx(make_sim: Make) -> None:
    sim = make_sim(start_time=datetime(2025, 1, 27, 11, 0, tzinfo=KST))  # an ad-hoc holiday
    rows = sim.kis_minutes("153000").json()["output2"]
    assert {row["stck_bsop_date"] for row in rows} == {"20250124"}
    assert _phase(sim) == "30"
    holiday = sim.client.get(
        f"{QUOTES}/chk-holiday",
        params={"BASS_DT": "20241231", "CTX_AREA_FK": "", "CTX_AREA_NK": ""},
        headers=sim.kis_headers("CTCA0903R"),
    ).json()["output"]
    opens = {row["bass_dt"]: row["opnd_yn"] for row in holiday}
    assert [opens[day] for day in ("20241231", "20250101", "20250102", "20250127")] == [
        "N",
        "N",
        "Y",
        "N",
    ]
