"""FHKST03010230 (주식일별분봉조회, a past day's minute bars) over a real socket: shape, agreement
with FHKST03010200 and the daily chart, the window and its paging (the official backtester's and
the hub's), days without bars, validation, and the settings that change it."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Protocol

import httpx
import pytest

from apihub_broker_sim import KST, ThreadedSimServer
from apihub_brokers import KisClient, lookup_tr
from apihub_core import Provider
from apihub_runtime import AccountConfig, Secret

ROW_KEYS = [
    "stck_bsop_date",
    "stck_cntg_hour",
    "stck_prpr",
    "stck_oprc",
    "stck_hgpr",
    "stck_lwpr",
    "cntg_vol",
    "acml_tr_pbmn",
]
# A regular KRX session: a bar for every minute of continuous trading (09:00..15:19), none in
# the closing auction, and the 15:30 closing print.
SESSION_MINUTES = [f"{m // 60:02d}{m % 60:02d}00" for m in range(9 * 60, 15 * 60 + 20)] + ["153000"]


class SimHarness(Protocol):
    """The conftest's simulator harness (``frozen_sim``, ``make_sim``), as these tests use it."""

    ABSENT: str
    server: ThreadedSimServer
    client: httpx.Client

    def kis_day_minutes(
        self, day: str, hour: str, code: str = "005930", **overrides: str
    ) -> httpx.Response: ...
    def kis_minutes(self, hour: str, code: str = "005930") -> httpx.Response: ...
    def kis_headers(self, tr_id: str) -> dict[str, str]: ...
    def forget_tokens(self) -> None: ...
    def kis_daily(self, first: str, last: str, period: str = "D") -> httpx.Response: ...


class Defaults(Protocol):
    """The conftest's ``harness_defaults``, as far as these tests use it."""

    start_time: datetime
    kis_appkey: str
    kis_secret: str


def _rows(response: httpx.Response) -> list[dict[str, str]]:
    body = response.json()
    assert (response.status_code, body["rt_cd"], body["msg_cd"]) == (200, "0", "MCA00000")
    return list(body["output2"])


def _hours(rows: list[dict[str, str]]) -> list[str]:
    return [row["stck_cntg_hour"] for row in rows]


def test_a_past_day_answers_120_bars_newest_first_ending_at_the_hour(
    frozen_sim: SimHarness,
) -> None:
    response = frozen_sim.kis_day_minutes("20250320", "153000")
    assert response.headers["tr_id"] == "FHKST03010230"
    rows = _rows(response)
    assert len(rows) == 120
    assert all(list(row) == ROW_KEYS for row in rows)
    assert {row["stck_bsop_date"] for row in rows} == {"20250320"}
    assert _hours(rows) == SESSION_MINUTES[::-1][:120]
    # An hour between bars ends at the bar that starts at or before it; one on a bar includes it.
    assert _hours(_rows(frozen_sim.kis_day_minutes("20250320", "100030")))[:2] == [
        "100000",
        "095900",
    ]
    assert _hours(_rows(frozen_sim.kis_day_minutes("20250320", "100000")))[0] == "100000"
    # output1 is the symbol now, as in the day's chart.
    today = frozen_sim.kis_minutes("130000").json()
    assert response.json()["output1"] == today["output1"]


def test_bars_are_the_days_tape(frozen_sim: SimHarness) -> None:
    rows = _rows(frozen_sim.kis_day_minutes("20250320", "153000"))
    for newer, older in itertools.pairwise(rows):
        value = int(newer["acml_tr_pbmn"]) - int(older["acml_tr_pbmn"])
        volume = int(newer["cntg_vol"])
        # Σ price x volume of the bar, every print between its low and its high.
        assert int(newer["stck_lwpr"]) * volume <= value <= int(newer["stck_hgpr"]) * volume
        assert int(newer["stck_lwpr"]) <= int(newer["stck_prpr"]) <= int(newer["stck_hgpr"])
    (day,) = [
        row
        for row in frozen_sim.kis_daily("20250320", "20250320").json()["output2"]
        if row["stck_bsop_date"] == "20250320"
    ]
    closing = rows[0]
    assert closing["stck_prpr"] == day["stck_clpr"], "the closing print is the day's close"
    assert closing["acml_tr_pbmn"] == day["acml_tr_pbmn"], "cumulative to the day's total"


@pytest.mark.parametrize("hour", ["130000", "120000", "090500", "153000"])
def test_today_agrees_with_the_days_minute_chart(frozen_sim: SimHarness, hour: str) -> None:
    # Frozen at 13:00:30 on 2025-03-21: 153000 is a future hour, i.e. "now" for both.
    daily = _rows(frozen_sim.kis_day_minutes("20250321", hour))
    chart = frozen_sim.kis_minutes(hour).json()["output2"]
    assert daily[: len(chart)] == chart
    assert len(chart) == min(30, len(daily))
    assert daily[0]["stck_cntg_hour"] == min(hour[:4] + "00", "130000")


def test_the_official_backtesters_walk_covers_the_day_once(frozen_sim: SimHarness) -> None:
    # The KIS backtester (open-trading-api, backtester/) starts at 153000, asks again with the
    # smallest stck_cntg_hour it received, drops the repeated boundary row and stops on a short
    # page or at 09:00.
    seen: dict[str, dict[str, str]] = {}
    hour, calls = "153000", 0
    while calls < 10:
        calls += 1
        rows = _rows(frozen_sim.kis_day_minutes("20250320", hour))
        assert rows[0]["stck_cntg_hour"] == hour or hour == "153000"
        for row in rows:
            assert seen.setdefault(row["stck_cntg_hour"], row) == row, "a repeat is the same bar"
        hour = min(_hours(rows))
        if len(rows) < 120 or hour <= "090000":
            break
    assert sorted(seen) == SESSION_MINUTES
    assert calls == 4  # 120, 119, 119 and 23 new rows: each later page repeats its boundary


@pytest.mark.anyio
async def test_the_hubs_next_key_walks_a_past_day_back_to_the_open(
    frozen_sim: SimHarness, harness_defaults: Defaults
) -> None:
    spec = lookup_tr(Provider.KIS, "FHKST03010230")
    assert spec is not None
    account = AccountConfig(
        provider=Provider.KIS,
        name="sim",
        app_key=Secret(harness_defaults.kis_appkey),
        app_secret=Secret(harness_defaults.kis_secret),
        base_url=str(frozen_sim.server.url),
        virtual=False,
        account_no="50000000-01",
    )
    # Only what the catalog requires: the hub sends the optional parameters blank.
    params = {
        "FID_COND_MRKT_DIV_CODE": "J",
        "FID_INPUT_ISCD": "005930",
        "FID_INPUT_HOUR_1": "153000",
        "FID_INPUT_DATE_1": "20250320",
    }
    pages: list[list[str]] = []
    async with httpx.AsyncClient() as http, KisClient(http) as kis:
        token = await kis.issue_token(account)
        next_key = ""
        for _ in range(10):
            reply = await kis.call(spec, params, account=account, token=token, next_key=next_key)
            pages.append(_hours(_rows_of(reply.body)))
            if not reply.has_more:
                break
            assert reply.next_key < pages[-1][-1], "the next page ends before this one's oldest"
            next_key = reply.next_key
    minutes = [minute for page in pages for minute in page]
    assert minutes == SESSION_MINUTES[::-1], "every minute once, newest first"
    assert [len(page) for page in pages] == [120, 120, 120, 21]


def _rows_of(body: bytes) -> list[dict[str, str]]:
    doc: dict[str, Any] = json.loads(body)
    assert doc["rt_cd"] == "0"
    return list(doc["output2"])


def test_days_without_bars_answer_no_rows(
    make_sim: Callable[..., SimHarness], harness_defaults: Defaults
) -> None:
    frozen_sim = make_sim(holidays=frozenset({date(2025, 3, 19)}))
    for day in ("20250322", "20250323", "20250319", "20250324", "20991231"):
        # a Saturday, a Sunday, a configured holiday, the next trading day, the far future
        assert _rows(frozen_sim.kis_day_minutes(day, "153000")) == [], day
    # About a year is kept: 365 days back from the simulated today, not a day more.
    assert len(_rows(frozen_sim.kis_day_minutes("20240321", "153000"))) == 120
    assert _rows(frozen_sim.kis_day_minutes("20240320", "153000")) == []
    # Today before the open has no bars yet.
    early = make_sim(start_time=harness_defaults.start_time.replace(hour=8, minute=59))
    assert _rows(early.kis_day_minutes("20250321", "153000")) == []
    assert len(_rows(early.kis_day_minutes("20250320", "153000"))) == 120


def test_validation(frozen_sim: SimHarness) -> None:
    absent = frozen_sim.ABSENT

    def error(**overrides: str) -> str:
        body = frozen_sim.kis_day_minutes("20250320", "153000", **overrides).json()
        assert (body["rt_cd"], body["msg_cd"]) == ("2", "OPSQ2001"), body
        return str(body["msg1"])

    assert error(FID_INPUT_DATE_1=absent) == "ERROR : INPUT_FIELD_NAME FID_INPUT_DATE_1"
    assert error(FID_INPUT_DATE_1="") == "ERROR : INPUT_FIELD_NAME FID_INPUT_DATE_1"
    assert error(FID_INPUT_HOUR_1=absent) == "ERROR : INPUT_FIELD_NAME FID_INPUT_HOUR_1"
    assert error(FID_FAKE_TICK_INCU_YN=absent) == "ERROR : INPUT_FIELD_NAME FID_FAKE_TICK_INCU_YN"
    assert error(FID_INPUT_DATE_1="2025-03-20") == "ERROR INVALID FID_INPUT_DATE_1"
    assert error(FID_INPUT_HOUR_1="25:00") == "ERROR INVALID FID_INPUT_HOUR_1"
    assert error(FID_FAKE_TICK_INCU_YN="Y") == "ERROR INVALID FID_FAKE_TICK_INCU_YN"
    assert error(FID_PW_DATA_INCU_YN="X") == "ERROR INVALID FID_PW_DATA_INCU_YN"
    assert error(FID_INPUT_ISCD="ABC") == "ERROR INVALID FID_INPUT_ISCD"
    # FID_PW_DATA_INCU_YN defaults to N: absent or blank is fine and changes nothing.
    answered = _rows(frozen_sim.kis_day_minutes("20250320", "110000"))
    assert len(answered) == 120
    for value in (absent, "", "N", "n"):
        again = frozen_sim.kis_day_minutes("20250320", "110000", FID_PW_DATA_INCU_YN=value)
        assert _rows(again) == answered, value
    # Lower-case names work, as on every KIS GET.
    lower = frozen_sim.client.get(
        "/uapi/domestic-stock/v1/quotations/inquire-time-dailychartprice",
        params={
            "fid_cond_mrkt_div_code": "J",
            "fid_input_iscd": "005930",
            "fid_input_hour_1": "110000",
            "fid_input_date_1": "20250320",
            "fid_fake_tick_incu_yn": "",
        },
        headers=frozen_sim.kis_headers("FHKST03010230"),
    )
    assert _rows(lower) == answered


def test_page_size_and_crossing_into_earlier_days_are_settings(
    make_sim: Callable[..., SimHarness],
) -> None:
    small = make_sim(kis_page_rows_daily_minute=50)
    assert _hours(_rows(small.kis_day_minutes("20250320", "153000"))) == SESSION_MINUTES[::-1][:50]
    crossing = make_sim(kis_daily_minute_crosses_days=True)
    rows = _rows(crossing.kis_day_minutes("20250320", "092900"))
    assert len(rows) == 120
    assert [row["stck_bsop_date"] for row in rows] == ["20250320"] * 30 + ["20250319"] * 90
    assert _hours(rows) == SESSION_MINUTES[:30][::-1] + SESSION_MINUTES[::-1][:90]
    # Off by default: the same call stops at the day's first bar.
    plain = make_sim()
    assert len(_rows(plain.kis_day_minutes("20250320", "092900"))) == 30


def test_a_symbol_suffix_or_etn_prefix_reads_the_same_tape(frozen_sim: SimHarness) -> None:
    plain = _rows(frozen_sim.kis_day_minutes("20250320", "120000", code="069500"))
    assert _rows(frozen_sim.kis_day_minutes("20250320", "120000", code="Q069500")) == plain


def test_the_window_follows_the_simulated_clock(frozen_sim: SimHarness) -> None:
    before = _rows(frozen_sim.kis_day_minutes("20250321", "153000"))
    assert before[0]["stck_cntg_hour"] == "130000"
    saturday = datetime(2025, 3, 22, 16, 0, tzinfo=KST)
    frozen_sim.client.post("/__sim/clock", json={"now": saturday.isoformat()}).raise_for_status()
    frozen_sim.forget_tokens()  # a day later the token has expired
    # The session of 2025-03-21 is complete now, and its finished bars did not change; the
    # 13:00 bar, 30 seconds old before, is whole now.
    assert (
        _hours(_rows(frozen_sim.kis_day_minutes("20250321", "153000")))
        == (SESSION_MINUTES[::-1][:120])
    )
    after = _rows(frozen_sim.kis_day_minutes("20250321", "130000"))
    assert after[1:] == before[1:]
    assert int(after[0]["cntg_vol"]) > int(before[0]["cntg_vol"])
