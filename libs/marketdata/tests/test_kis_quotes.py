"""KIS daily bars (FHKST03010100, FHKST01010400), recent trades (FHKST01010300) and the current
price (FHKST01010100)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any

import pytest

from apihub_marketdata import KST, Candle, MarketData, NormaliseError, Snapshot, Tick, normalise

Answer = dict[str, Any]
BASE = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}
DAILY = {**BASE, "FID_PERIOD_DIV_CODE": "D", "FID_ORG_ADJ_PRC": "0"}
RECEIVED = datetime(2025, 3, 21, 13, 0, 5, tzinfo=KST)


def encode(data: Answer) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=KST)


def kis(tr_id: str, params: dict[str, str], body: bytes, **kwargs: Any) -> MarketData:
    return normalise("KIS", tr_id, params, body, lineage="req-9", **kwargs)


# -- FHKST03010100 period bars ---------------------------------------------------------------


def test_period_bars_d_become_daily_candles_with_the_days_value(
    raw: Callable[[str], bytes],
) -> None:
    found = kis("FHKST03010100", DAILY, raw("kis_FHKST03010100")).candles
    assert len(found) == 15
    assert found[0].ts == midnight(date(2025, 3, 3))
    assert found[-1] == Candle(
        provider="KIS",
        symbol="005930",
        interval="1d",
        ts=midnight(date(2025, 3, 21)),
        open=62000,
        high=62100,
        low=61600,
        close=61800,
        volume=8747378,
        value=541037060200,
        lineage="req-9",
    )
    assert found[-2].value == 891854918500


@pytest.mark.parametrize("period", ["W", "M", "Y"])
def test_weekly_monthly_yearly_bars_are_not_kept(raw: Callable[[str], bytes], period: str) -> None:
    params = {**DAILY, "FID_PERIOD_DIV_CODE": period}
    assert kis("FHKST03010100", params, raw("kis_FHKST03010100")) == MarketData()
    with pytest.raises(NormaliseError, match="broker_error"):
        kis("FHKST03010100", params, raw("kis_error_rate_limited"))


def test_the_period_parameter_is_read_case_insensitively(raw: Callable[[str], bytes]) -> None:
    params = {"fid_cond_mrkt_div_code": "J", "fid_input_iscd": "005930", "fid_period_div_code": "d"}
    assert len(kis("FHKST03010100", params, raw("kis_FHKST03010100")).candles) == 15


def test_the_period_parameter_is_required(raw: Callable[[str], bytes]) -> None:
    with pytest.raises(NormaliseError) as caught:
        kis("FHKST03010100", BASE, raw("kis_FHKST03010100"))
    assert caught.value.reason == "missing_field"
    assert "FID_PERIOD_DIV_CODE" in caught.value.detail


def test_an_empty_period_answer_is_one_padding_row(raw: Callable[[str], bytes]) -> None:
    assert kis("FHKST03010100", DAILY, raw("kis_FHKST03010100_empty")) == MarketData()


def test_a_repeated_day_is_kept_once(answer: Callable[[str], Answer]) -> None:
    data = answer("kis_FHKST03010100")
    data["output2"].append(dict(data["output2"][-1]))  # the paging boundary, seen twice
    assert len(kis("FHKST03010100", DAILY, encode(data)).candles) == 15


# -- FHKST01010400 daily prices --------------------------------------------------------------


def test_daily_prices_become_candles_without_a_value(raw: Callable[[str], bytes]) -> None:
    found = kis("FHKST01010400", DAILY, raw("kis_FHKST01010400")).candles
    assert len(found) == 10
    assert [c.interval for c in found] == ["1d"] * 10
    assert found[-1].ts == midnight(date(2025, 3, 21))
    assert (found[-1].open, found[-1].high, found[-1].low, found[-1].close) == (
        62000,
        62100,
        61600,
        61800,
    )
    assert found[-1].volume == 8747378
    assert {c.value for c in found} == {None}


def test_daily_prices_other_than_d_are_not_kept(raw: Callable[[str], bytes]) -> None:
    params = {**DAILY, "FID_PERIOD_DIV_CODE": "W"}
    assert kis("FHKST01010400", params, raw("kis_FHKST01010400")) == MarketData()


# -- FHKST01010300 recent trades -------------------------------------------------------------


def test_recent_trades_become_ticks_dated_by_received_at(raw: Callable[[str], bytes]) -> None:
    found = kis("FHKST01010300", BASE, raw("kis_FHKST01010300"), received_at=RECEIVED).ticks
    assert len(found) == 12
    assert found[0].ts == datetime(2025, 3, 21, 12, 58, 9, tzinfo=KST)
    assert found[-1] == Tick(
        provider="KIS",
        symbol="005930",
        ts=datetime(2025, 3, 21, 12, 59, 50, tzinfo=KST),
        price=61800,
        volume=7049,
        seq=0,
        lineage="req-9",
    )


def test_trades_sharing_a_second_are_numbered_oldest_first(raw: Callable[[str], bytes]) -> None:
    found = kis("FHKST01010300", BASE, raw("kis_FHKST01010300"), received_at=RECEIVED).ticks
    second = datetime(2025, 3, 21, 12, 59, 40, tzinfo=KST)
    same = [(t.seq, t.volume) for t in found if t.ts == second]
    assert same == [(0, 11355), (1, 6150)]  # the answer lists 6150 first: it is the newer


def test_received_at_in_any_timezone_gives_the_kst_day(raw: Callable[[str], bytes]) -> None:
    utc = datetime(2025, 3, 21, 4, 0, 5, tzinfo=UTC)
    found = kis("FHKST01010300", BASE, raw("kis_FHKST01010300"), received_at=utc).ticks
    assert found[-1].ts == datetime(2025, 3, 21, 12, 59, 50, tzinfo=KST)


@pytest.mark.parametrize(
    "received",
    [
        datetime(2025, 3, 24, 8, 30, tzinfo=KST),  # Monday before the open
        datetime(2025, 3, 22, 16, 0, tzinfo=KST),  # Saturday afternoon
        datetime(2025, 3, 23, 9, 0, tzinfo=KST),  # Sunday morning
    ],
)
def test_trades_seen_before_the_open_or_on_a_holiday_are_the_last_sessions(
    raw: Callable[[str], bytes], received: datetime
) -> None:
    found = kis("FHKST01010300", BASE, raw("kis_FHKST01010300"), received_at=received).ticks
    assert {t.ts.date() for t in found} == {date(2025, 3, 21)}


def test_a_trade_a_few_seconds_after_received_at_is_still_today(
    raw: Callable[[str], bytes],
) -> None:
    received = datetime(2025, 3, 21, 12, 59, 20, tzinfo=KST)  # clocks a little apart
    found = kis("FHKST01010300", BASE, raw("kis_FHKST01010300"), received_at=received).ticks
    assert found[-1].ts == datetime(2025, 3, 21, 12, 59, 50, tzinfo=KST)


def test_recent_trades_need_received_at(raw: Callable[[str], bytes]) -> None:
    with pytest.raises(NormaliseError) as caught:
        kis("FHKST01010300", BASE, raw("kis_FHKST01010300"))
    assert caught.value.reason == "missing_time"


def test_a_naive_received_at_is_a_callers_bug(raw: Callable[[str], bytes]) -> None:
    with pytest.raises(ValueError, match="aware"):
        kis(
            "FHKST01010300",
            BASE,
            raw("kis_FHKST01010300"),
            received_at=datetime(2025, 3, 21, 13, 0),
        )


# -- FHKST01010100 current price -------------------------------------------------------------


def test_the_current_price_is_a_snapshot_at_received_at(raw: Callable[[str], bytes]) -> None:
    utc = datetime(2025, 3, 21, 4, 0, 5, tzinfo=UTC)
    found = kis("FHKST01010100", BASE, raw("kis_FHKST01010100"), received_at=utc)
    assert found == MarketData(
        snapshots=(
            Snapshot(
                provider="KIS",
                symbol="005930",
                ts=RECEIVED,
                price=61800,
                open=62000,
                high=62100,
                low=61600,
                cum_volume=8747378,
                cum_value=541037060200,
                change=100,
                lineage="req-9",
            ),
        )
    )
    assert found.snapshots[0].ts.tzinfo == KST


def test_a_falling_price_keeps_the_sign_of_its_change(answer: Callable[[str], Answer]) -> None:
    data = answer("kis_FHKST01010100")
    data["output"].update(prdy_vrss="-600", prdy_vrss_sign="5", stck_prpr="61700")
    snap = kis("FHKST01010100", BASE, encode(data), received_at=RECEIVED).snapshots[0]
    assert (snap.price, snap.change) == (61700, -600)


def test_before_the_first_trade_open_high_low_are_zero(answer: Callable[[str], Answer]) -> None:
    data = answer("kis_FHKST01010100")
    data["output"].update(
        stck_oprc="0", stck_hgpr="0", stck_lwpr="0", acml_vol="0", acml_tr_pbmn=""
    )
    snap = kis("FHKST01010100", BASE, encode(data), received_at=RECEIVED).snapshots[0]
    assert (snap.open, snap.high, snap.low, snap.cum_volume, snap.cum_value) == (0, 0, 0, 0, None)


@pytest.mark.parametrize(
    "fields",
    [{"stck_lwpr": "61900"}, {"stck_oprc": "62200"}, {"stck_prpr": "-61800"}, {"acml_vol": "-1"}],
)
def test_an_impossible_quote_is_inconsistent(
    answer: Callable[[str], Answer], fields: dict[str, str]
) -> None:
    data = answer("kis_FHKST01010100")
    data["output"].update(fields)
    with pytest.raises(NormaliseError) as caught:
        kis("FHKST01010100", BASE, encode(data), received_at=RECEIVED)
    assert caught.value.reason == "inconsistent_bar"


def test_the_current_price_needs_received_at(raw: Callable[[str], bytes]) -> None:
    with pytest.raises(NormaliseError) as caught:
        kis("FHKST01010100", BASE, raw("kis_FHKST01010100"))
    assert caught.value.reason == "missing_time"
    assert str(caught.value).startswith("KIS FHKST01010100: missing_time: ")


def test_a_broker_error_wins_over_a_missing_time(raw: Callable[[str], bytes]) -> None:
    with pytest.raises(NormaliseError) as caught:
        kis("FHKST01010100", BASE, raw("kis_error_rate_limited"))
    assert caught.value.reason == "broker_error"
    assert caught.value.detail == "rt_cd '1' EGW00201: 초당 거래건수를 초과하였습니다."
