"""KIS minute bars (FHKST03010200 today, FHKST03010230 past days): 1m candles whose traded value
is the difference of the cumulative ``acml_tr_pbmn`` between neighbouring bars."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, time
from typing import Any

import pytest

from apihub_marketdata import (
    KST,
    Candle,
    NormaliseError,
    Session,
    TradingCalendar,
    normalise,
)

Answer = dict[str, Any]
PARAMS = {
    "FID_COND_MRKT_DIV_CODE": "J",
    "FID_INPUT_ISCD": "005930",
    "FID_INPUT_HOUR_1": "130000",
    "FID_PW_DATA_INCU_YN": "Y",
    "FID_ETC_CLS_CODE": "",
}


def encode(data: Answer) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def at(day: date, hh: int, mm: int) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=KST)


def candles(body: bytes, tr_id: str = "FHKST03010200", **kwargs: Any) -> tuple[Candle, ...]:
    result = normalise("KIS", tr_id, PARAMS, body, lineage="req-1", **kwargs)
    assert not result.ticks
    assert not result.snapshots
    return result.candles


def row(day: str, hhmm: str, cum: str, price: int = 61800, volume: int = 100) -> dict[str, str]:
    return {
        "stck_bsop_date": day,
        "stck_cntg_hour": f"{hhmm}00",
        "stck_prpr": str(price),
        "stck_oprc": str(price),
        "stck_hgpr": str(price),
        "stck_lwpr": str(price),
        "cntg_vol": str(volume),
        "acml_tr_pbmn": cum,
    }


def kis(*rows: dict[str, str]) -> bytes:
    """An answer holding ``rows`` (give them newest first, as KIS does)."""
    return encode({"output1": {}, "output2": list(rows), "rt_cd": "0", "msg_cd": "MCA00000"})


NORMAL = date(2025, 3, 21)


def test_a_normal_answer_becomes_30_candles_oldest_first(raw: Callable[[str], bytes]) -> None:
    found = candles(raw("kis_FHKST03010200"))
    assert len(found) == 30
    assert [c.ts for c in found] == [at(NORMAL, 12, 30 + i) for i in range(30)]
    newest = found[-1]
    assert newest == Candle(
        provider="KIS",
        symbol="005930",
        interval="1m",
        ts=at(NORMAL, 12, 59),
        open=61800,
        high=61800,
        low=61800,
        close=61800,
        volume=85664,
        value=541037060200 - 535743025000,
        source_type="rest",
        lineage="req-1",
        revision=1,
    )
    assert newest.value == newest.volume * newest.close  # the fixture's bars trade at one price


def test_the_oldest_bar_without_its_predecessor_has_no_value(raw: Callable[[str], bytes]) -> None:
    found = candles(raw("kis_FHKST03010200"))
    assert found[0].ts == at(NORMAL, 12, 30)
    assert found[0].value is None
    assert all(c.value is not None for c in found[1:])


def test_the_sessions_first_bar_is_its_own_cumulative(raw: Callable[[str], bytes]) -> None:
    found = candles(raw("kis_FHKST03010200_open"), source_type="backfill")
    assert found[0].ts == at(NORMAL, 9, 0)
    assert found[0].value == 13638261500
    assert found[1].value == 19174985500 - 13638261500
    assert found[-1].ts == at(NORMAL, 9, 15)
    assert found[-1].value == 73827546500 - 72615570500
    assert {c.source_type for c in found} == {"backfill"}


def test_on_a_late_opening_day_the_first_bar_is_1000() -> None:
    late = date(2026, 1, 2)  # the year's first session opens at 10:00
    found = candles(kis(row("20260102", "1001", "900"), row("20260102", "1000", "500")))
    assert [(c.ts, c.value) for c in found] == [(at(late, 10, 0), 500), (at(late, 10, 1), 400)]


def test_a_1000_bar_on_a_normal_day_is_not_the_first() -> None:
    found = candles(kis(row("20250321", "1001", "900"), row("20250321", "1000", "500")))
    assert [c.value for c in found] == [None, 400]


def test_a_csat_day_opens_at_1000() -> None:
    found = candles(kis(row("20261119", "1000", "777")))
    assert found[0].value == 777


def test_a_given_calendar_decides_the_open() -> None:
    day = date(2030, 1, 2)
    calendar = TradingCalendar([Session(day, at(day, 9, 5), at(day, 15, 30))], first=day, last=day)
    found = candles(
        kis(row("20300102", "0906", "30"), row("20300102", "0905", "10")), calendar=calendar
    )
    assert [c.value for c in found] == [10, 20]


def test_a_bar_of_another_day_is_never_the_predecessor() -> None:
    body = kis(
        row("20250321", "0901", "3000"),
        row("20250321", "0900", "1000"),
        row("20250320", "1530", "90000"),
        row("20250320", "1519", "80000"),
    )
    found = candles(body, "FHKST03010230")
    assert [(c.ts, c.value) for c in found] == [
        (at(date(2025, 3, 20), 15, 19), None),
        (at(date(2025, 3, 20), 15, 30), 10000),  # the closing auction after 15:19
        (at(NORMAL, 9, 0), 1000),
        (at(NORMAL, 9, 1), 2000),
    ]


def test_a_past_day_answer_keeps_the_closing_auction(raw: Callable[[str], bytes]) -> None:
    found = candles(raw("kis_FHKST03010230"), "FHKST03010230")
    day = date(2025, 3, 20)
    assert len(found) == 31
    assert found[0].ts == at(day, 14, 50)
    assert found[-2].ts == at(day, 15, 19)
    assert found[-1].ts == at(day, 15, 30)
    assert found[-1].volume == 1032114
    assert found[-1].value == found[-1].volume * found[-1].close
    assert all(c.value == c.volume * c.close for c in found[1:])


def test_an_unknown_cumulative_leaves_both_its_bars_unvalued() -> None:
    body = kis(
        row("20250321", "1002", "900"), row("20250321", "1001", ""), row("20250321", "1000", "1")
    )
    assert [c.value for c in candles(body)] == [None, None, None]


def test_a_shrinking_cumulative_is_inconsistent() -> None:
    body = kis(row("20250321", "1001", "400"), row("20250321", "1000", "500"))
    with pytest.raises(NormaliseError) as caught:
        candles(body)
    assert caught.value.reason == "inconsistent_bar"
    assert "output2[0]" in caught.value.detail
    assert "output2[1]" in caught.value.detail


def test_a_repeated_identical_row_is_kept_once(answer: Callable[[str], Answer]) -> None:
    data = answer("kis_FHKST03010200")
    data["output2"].insert(5, dict(data["output2"][5]))
    found = candles(encode(data))
    assert len(found) == 30
    assert len({c.ts for c in found}) == 30


def test_two_different_bars_at_one_time_are_inconsistent(answer: Callable[[str], Answer]) -> None:
    data = answer("kis_FHKST03010200")
    twin = dict(data["output2"][5], cntg_vol="1")
    data["output2"].insert(9, twin)
    with pytest.raises(NormaliseError) as caught:
        candles(encode(data))
    assert caught.value.reason == "inconsistent_bar"
    assert caught.value.detail.startswith("output2[5] and output2[9]: two different bars at ")
    assert "2025-03-21T12:54:00+09:00" in caught.value.detail


def test_pages_overlap_by_their_boundary_row(answer: Callable[[str], Answer]) -> None:
    """Paging sets FID_INPUT_HOUR_1 to the oldest time received, so the boundary bar comes
    back on the next page: the same bar, and only the older page knows its value."""
    data = answer("kis_FHKST03010200")
    rows = data["output2"]
    newer = candles(encode(dict(data, output2=rows[:16])))  # 12:59 … 12:44
    older = candles(encode(dict(data, output2=rows[15:])))  # 12:44 … 12:30
    boundary_new, boundary_old = newer[0], older[-1]
    assert boundary_new.ts == boundary_old.ts == at(NORMAL, 12, 44)
    assert (boundary_new.open, boundary_new.close, boundary_new.volume) == (
        boundary_old.open,
        boundary_old.close,
        boundary_old.volume,
    )
    assert boundary_new.value is None
    assert boundary_old.value == int(rows[15]["acml_tr_pbmn"]) - int(rows[16]["acml_tr_pbmn"])
    assert len({c.ts for c in newer + older}) == 30


def test_a_bar_time_off_the_minute_is_a_bad_time() -> None:
    with pytest.raises(NormaliseError) as caught:
        candles(kis(row("20250321", "1000", "1") | {"stck_cntg_hour": "100030"}))
    assert caught.value.reason == "bad_time"
    assert "stck_cntg_hour '100030'" in caught.value.detail


def test_answers_of_both_trs_read_the_same(raw: Callable[[str], bytes]) -> None:
    body = raw("kis_FHKST03010200")
    assert candles(body) == candles(body, "FHKST03010230")


def test_a_negative_volume_is_inconsistent() -> None:
    with pytest.raises(NormaliseError) as caught:
        candles(kis(row("20250321", "1000", "1", volume=-5)))
    assert caught.value.reason == "inconsistent_bar"
    assert "negative volume" in caught.value.detail


def test_the_parse_caches_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from apihub_marketdata import _parse

    monkeypatch.setattr(_parse, "_CACHE_LIMIT", 1)
    body = kis(row("20300104", "1001", "9"), row("20300103", "1000", "5"))  # days not seen yet
    assert [c.ts.date() for c in candles(body)] == [date(2030, 1, 3), date(2030, 1, 4)]
    assert len(_parse._DAYS) == 1
    assert len(_parse._MINUTES) == 1
