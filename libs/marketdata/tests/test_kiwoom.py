"""Kiwoom charts: ka10081 daily, ka10080 minute, ka10079 tick. Prices carry a direction sign
and ``trde_prica`` is in millions of KRW."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, time
from typing import Any

import pytest

from apihub_marketdata import KST, Candle, MarketData, NormaliseError, normalise

Answer = dict[str, Any]
DAILY = {"stk_cd": "005930", "base_dt": "20250321", "upd_stkpc_tp": "1"}
CHART = {"stk_cd": "005930", "tic_scope": "1", "upd_stkpc_tp": "1"}


def encode(data: Answer) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def kiwoom(tr_id: str, params: dict[str, str], body: bytes) -> MarketData:
    return normalise("KIWOOM", tr_id, params, body, lineage="kw-1", source_type="backfill")


def test_daily_bars_drop_the_direction_sign_and_scale_the_value(
    raw: Callable[[str], bytes],
) -> None:
    found = kiwoom("ka10081", DAILY, raw("kiwoom_ka10081")).candles
    assert [c.ts.date() for c in found] == [date(2025, 3, d) for d in (17, 18, 19, 20, 21)]
    fell = found[3]  # 2025-03-20: "cur_prc": "-61700", "low_pric": "-61400"
    assert fell == Candle(
        provider="KIWOOM",
        symbol="005930",
        interval="1d",
        ts=datetime.combine(date(2025, 3, 20), time(0, 0), tzinfo=KST),
        open=63400,
        high=63600,
        low=61400,
        close=61700,
        volume=14260967,
        value=891_855 * 1_000_000,
        source_type="backfill",
        lineage="kw-1",
    )
    assert found[-1].value == 541_037_000_000


@pytest.mark.parametrize("code", ["005930_NX", "005930_AL", "005930_nx", "005930"])
def test_the_symbol_drops_the_exchange_suffix(raw: Callable[[str], bytes], code: str) -> None:
    found = kiwoom("ka10081", {**DAILY, "stk_cd": code}, raw("kiwoom_ka10081")).candles
    assert {c.symbol for c in found} == {"005930"}


def test_the_empty_answer_is_one_sentinel_row(raw: Callable[[str], bytes]) -> None:
    assert kiwoom("ka10081", DAILY, raw("kiwoom_ka10081_sentinel")) == MarketData()


def test_an_unknown_traded_value_stays_unknown(answer: Callable[[str], Answer]) -> None:
    data = answer("kiwoom_ka10081")
    data["stk_dt_pole_chart_qry"][0]["trde_prica"] = ""
    assert kiwoom("ka10081", DAILY, encode(data)).candles[-1].value is None


def test_a_return_code_given_as_a_string_is_understood(answer: Callable[[str], Answer]) -> None:
    data = answer("kiwoom_ka10081")
    data["return_code"] = "0"
    assert len(kiwoom("ka10081", DAILY, encode(data)).candles) == 5
    data["return_code"] = "3"
    data["return_msg"] = "인증에 실패했습니다[8005:Token이 유효하지 않습니다]"
    with pytest.raises(NormaliseError) as caught:
        kiwoom("ka10081", DAILY, encode(data))
    assert caught.value.reason == "broker_error"
    assert "8005" in caught.value.detail


def test_minute_bars_become_1m_candles_without_a_value(raw: Callable[[str], bytes]) -> None:
    found = kiwoom("ka10080", CHART, raw("kiwoom_ka10080")).candles
    assert len(found) == 20
    assert found[0].ts == datetime(2025, 3, 21, 12, 40, tzinfo=KST)
    assert found[-1].ts == datetime(2025, 3, 21, 12, 59, tzinfo=KST)
    assert (found[-1].close, found[-1].volume) == (61800, 85664)
    assert {c.interval for c in found} == {"1m"}
    assert {c.value for c in found} == {None}
    assert all(c.low <= min(c.open, c.close) for c in found)


def test_a_minute_bar_with_seconds_is_a_bad_time(answer: Callable[[str], Answer]) -> None:
    data = answer("kiwoom_ka10080")
    data["stk_min_pole_chart_qry"][4]["cntr_tm"] = "20250321125507"
    with pytest.raises(NormaliseError) as caught:
        kiwoom("ka10080", CHART, encode(data))
    assert caught.value.reason == "bad_time"
    assert caught.value.detail.startswith("stk_min_pole_chart_qry[4]: cntr_tm '20250321125507'")


@pytest.mark.parametrize(
    ("tr_id", "scope"), [("ka10080", "3"), ("ka10080", "60"), ("ka10079", "10")]
)
def test_other_scopes_are_not_kept(raw: Callable[[str], bytes], tr_id: str, scope: str) -> None:
    fixture = "kiwoom_ka10080" if tr_id == "ka10080" else "kiwoom_ka10079"
    assert kiwoom(tr_id, {**CHART, "tic_scope": scope}, raw(fixture)) == MarketData()
    with pytest.raises(NormaliseError, match="broker_error"):
        kiwoom(tr_id, {**CHART, "tic_scope": scope}, raw("kiwoom_error_rate_limited"))


def test_the_scope_is_required(raw: Callable[[str], bytes]) -> None:
    with pytest.raises(NormaliseError) as caught:
        kiwoom("ka10079", {"stk_cd": "005930"}, raw("kiwoom_ka10079"))
    assert (caught.value.reason, caught.value.detail) == (
        "missing_field",
        "the request has no 'tic_scope' parameter",
    )


def test_ticks_drop_the_sign_and_number_one_seconds_prints(raw: Callable[[str], bytes]) -> None:
    found = kiwoom("ka10079", CHART, raw("kiwoom_ka10079")).ticks
    assert len(found) == 20
    second = datetime(2025, 3, 21, 12, 59, 40, tzinfo=KST)
    # newest first in the answer: rows 1, 2, 3 share 12:59:40 and row 3 ("-61600") is the oldest
    assert [(t.seq, t.price, t.volume) for t in found if t.ts == second] == [
        (0, 61600, 30028),
        (1, 61800, 11355),
        (2, 61800, 6150),
    ]
    assert found[-1].ts == datetime(2025, 3, 21, 12, 59, 50, tzinfo=KST)
    assert {t.source_type for t in found} == {"backfill"}


def test_equal_prints_in_one_second_are_two_trades(answer: Callable[[str], Answer]) -> None:
    data = answer("kiwoom_ka10079")
    rows = data["stk_tic_chart_qry"]
    rows.insert(0, dict(rows[0]))
    found = kiwoom("ka10079", CHART, encode(data)).ticks
    last_second = [t for t in found if t.ts == datetime(2025, 3, 21, 12, 59, 50, tzinfo=KST)]
    assert [(t.seq, t.volume) for t in last_second] == [(0, 7049), (1, 7049)]


def test_a_negative_volume_sign_is_a_direction_too(answer: Callable[[str], Answer]) -> None:
    data = answer("kiwoom_ka10079")
    data["stk_tic_chart_qry"][0]["trde_qty"] = "-7049"
    assert kiwoom("ka10079", CHART, encode(data)).ticks[-1].volume == 7049
