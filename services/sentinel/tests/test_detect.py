"""Which bars are due and how missing ones group into gaps."""

from __future__ import annotations

from datetime import date, datetime

from apihub_marketdata import KST, krx_calendar
from apihub_sentinel._detect import due, gap_id, gap_ranges

DAY = date(2026, 12, 2)
MINUTES = krx_calendar().expected_minutes(DAY)


def at(hour: int, minute: int) -> datetime:
    return datetime(2026, 12, 2, hour, minute, tzinfo=KST)


def test_a_bar_is_due_once_it_ended_and_the_grace_passed() -> None:
    now = datetime(2026, 12, 2, 9, 10, 30, tzinfo=KST)
    assert due(MINUTES, "1m", now, 60)[-1] == at(9, 8)
    assert due(MINUTES, "1m", now, 0)[-1] == at(9, 9)
    assert due(MINUTES, "1m", at(9, 0), 0) == []


def test_adjacent_misses_merge_and_the_closing_auction_is_adjacent() -> None:
    missing = {at(9, 1), at(9, 2), at(9, 5), at(15, 19), at(15, 30)}
    assert gap_ranges(MINUTES, missing) == [
        [at(9, 1), at(9, 2)],
        [at(9, 5)],
        [at(15, 19), at(15, 30)],  # nothing trades between 15:20 and 15:30
    ]
    assert gap_ranges(MINUTES, set()) == []


def test_a_run_of_minutes_never_spans_two_days_but_daily_bars_do() -> None:
    days = [at(15, 30), datetime(2026, 12, 3, 9, 0, tzinfo=KST)]
    assert gap_ranges(days, set(days)) == [[days[0]], [days[1]]]
    daily = [datetime(2026, 12, d, tzinfo=KST) for d in (1, 2, 3, 4)]
    assert gap_ranges(daily, {daily[0], daily[1], daily[3]}, by_day=False) == [
        daily[:2],
        [daily[3]],
    ]


def test_gap_ids_name_the_series_and_the_first_bar() -> None:
    assert gap_id("KIS", "005930", "1m", at(9, 1), 17) == "KIS:005930:1m:202612020901:17"
