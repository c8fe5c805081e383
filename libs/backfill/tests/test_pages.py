"""Pages on the grid: the same range always gives the same pages, sized to each TR."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from apihub_backfill import (
    PAGE_ROWS,
    BackfillError,
    JobSpec,
    eta_seconds,
    pages_for,
    plan_pages,
    symbols_of,
)
from apihub_marketdata import KST, krx_calendar

CAL = krx_calendar()
TODAY = date(2026, 12, 2)  # a Wednesday
YESTERDAY = date(2026, 12, 1)


def test_kis_today_is_cut_into_pages_of_29_bars_ending_at_their_last_bar() -> None:
    pages = plan_pages("KIS", "005930", "1m", TODAY, TODAY, calendar=CAL, today=TODAY)
    assert {p.tr_id for p in pages} == {"FHKST03010200"}
    assert [len(p.bars) for p in pages] == [29] * 13 + [4]  # 381 bars: 09:00..15:19 and 15:30
    first, last = pages[0], pages[-1]
    assert first.params["FID_INPUT_HOUR_1"] == "092800"
    assert first.params["FID_ETC_CLS_CODE"] == ""
    assert last.params["FID_INPUT_HOUR_1"] == "153000"
    assert first.chunk == "FHKST03010200:202612020900-202612020928"


@pytest.mark.parametrize("day", [TODAY, YESTERDAY])
def test_every_kis_minute_page_also_returns_the_row_before_its_first_bar(day: date) -> None:
    # A bar's traded value is the difference of its row's cumulative value and the row before
    # it: a page whose answer (30 or 120 rows ending at its last bar) held only its own bars
    # would leave its first bar without a value.
    minutes = CAL.expected_minutes(day)
    for page in plan_pages("KIS", "005930", "1m", day, day, calendar=CAL, today=TODAY):
        rows = PAGE_ROWS[page.tr_id]
        end = minutes.index(page.last)
        returned = minutes[max(0, end - rows + 1) : end + 1]
        assert page.first == minutes[0] or minutes[minutes.index(page.first) - 1] in returned
        assert set(page.bars) <= set(returned)


def test_kis_past_days_use_the_daily_minute_tr_in_pages_of_119_bars() -> None:
    pages = plan_pages("KIS", "005930", "1m", YESTERDAY, YESTERDAY, calendar=CAL, today=TODAY)
    # Cut back from the close, so no page overlaps the next: the morning's first is the short one.
    assert [(p.tr_id, len(p.bars)) for p in pages] == [("FHKST03010230", 24)] + [
        ("FHKST03010230", 119)
    ] * 3
    assert [p.params["FID_INPUT_HOUR_1"] for p in pages] == ["092300", "112200", "132100", "153000"]
    assert pages[0].params["FID_INPUT_DATE_1"] == "20261201"
    assert pages[0].params["FID_FAKE_TICK_INCU_YN"] == ""


def test_planning_twice_names_the_same_pages() -> None:
    one = plan_pages("KIS", "000660", "1m", YESTERDAY, TODAY, calendar=CAL, today=TODAY)
    two = plan_pages("KIS", "000660", "1m", YESTERDAY, TODAY, calendar=CAL, today=TODAY)
    assert [p.chunk for p in one] == [p.chunk for p in two]
    assert len({p.chunk for p in one}) == len(one)


def test_holidays_and_the_future_have_no_pages() -> None:
    assert (
        plan_pages(
            "KIS", "005930", "1m", date(2026, 12, 5), date(2026, 12, 6), calendar=CAL, today=TODAY
        )
        == []
    )
    assert (
        plan_pages(
            "KIS", "005930", "1m", date(2026, 12, 3), date(2026, 12, 4), calendar=CAL, today=TODAY
        )
        == []
    )


def test_daily_pages_leave_today_out_and_hold_a_hundred_days() -> None:
    pages = plan_pages("KIS", "005930", "1d", date(2026, 1, 1), TODAY, calendar=CAL, today=TODAY)
    assert all(p.tr_id == "FHKST03010100" for p in pages)
    assert [len(p.bars) for p in pages][:2] == [100, 100]
    assert pages[-1].last < datetime(2026, 12, 2, tzinfo=KST)
    assert pages[0].params["FID_INPUT_DATE_1"] == pages[0].first.strftime("%Y%m%d")
    kiwoom = plan_pages(
        "KIWOOM", "005930", "1d", date(2026, 1, 1), TODAY, calendar=CAL, today=TODAY
    )
    assert len(kiwoom) == 1
    assert kiwoom[0].params["base_dt"] == "20261201"


def test_kiwoom_minutes_are_one_page_per_day() -> None:
    pages = plan_pages("KIWOOM", "005930", "1m", YESTERDAY, TODAY, calendar=CAL, today=TODAY)
    assert [(p.tr_id, p.params["base_dt"], len(p.bars)) for p in pages] == [
        ("ka10080", "20261201", 381),
        ("ka10080", "20261202", 381),
    ]


def test_pages_for_picks_the_pages_that_cover_the_bars() -> None:
    pages = plan_pages("KIS", "005930", "1m", TODAY, TODAY, calendar=CAL, today=TODAY)
    bars = [datetime(2026, 12, 2, 9, 28, tzinfo=KST), datetime(2026, 12, 2, 9, 29, tzinfo=KST)]
    assert [p.chunk for p in pages_for(pages, bars)] == [
        "FHKST03010200:202612020900-202612020928",
        "FHKST03010200:202612020929-202612020957",
    ]


def test_a_job_is_named_by_what_it_fetches() -> None:
    one = JobSpec(provider="kis", symbols=("005930", "000660"), first=TODAY, last=TODAY)
    two = JobSpec(provider="KIS", symbols=("000660", "005930"), first=TODAY, last=TODAY)
    other = JobSpec(provider="KIS", symbols=("005930",), first=TODAY, last=TODAY)
    assert one.job_id == two.job_id != other.job_id
    with pytest.raises(BackfillError, match="after"):
        JobSpec(provider="KIS", symbols=("005930",), first=TODAY, last=YESTERDAY)
    with pytest.raises(BackfillError, match="unknown provider"):
        JobSpec(provider="NOPE", symbols=("005930",), first=TODAY, last=TODAY)
    with pytest.raises(BackfillError, match="symbol"):
        JobSpec(provider="KIS", symbols=(), first=TODAY, last=TODAY)


def test_eta_and_symbols() -> None:
    assert eta_seconds(36, 18.0) == 2.0
    assert eta_seconds(0, 18.0) == 0.0
    assert eta_seconds(5, 0.0) == float("inf")
    assert symbols_of(["005930,000660", "005930 035720"]) == ("005930", "000660", "035720")
