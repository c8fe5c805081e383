"""The KRX calendar: exchange-calendars' XKRX plus the override table, answered from dicts."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest

from apihub_marketdata import KST, CalendarError, Session, TradingCalendar, krx_calendar
from apihub_marketdata._calendar import parse_overrides


def kst(day: date, hh: int, mm: int) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=KST)


NORMAL = date(2025, 3, 21)
FIRST_2026 = date(2026, 1, 2)
CSAT_2026 = date(2026, 11, 19)


def test_a_normal_day_runs_0900_to_1530(krx: TradingCalendar) -> None:
    session = krx.session(NORMAL)
    assert session == Session(NORMAL, kst(NORMAL, 9, 0), kst(NORMAL, 15, 30))
    assert session.open.utcoffset() == KST.utcoffset(None)
    assert session.closing_auction == kst(NORMAL, 15, 20)


def test_a_normal_day_expects_381_minute_bars(krx: TradingCalendar) -> None:
    minutes = krx.expected_minutes(NORMAL)
    assert len(minutes) == 381
    assert minutes[0] == kst(NORMAL, 9, 0)
    assert minutes[-2] == kst(NORMAL, 15, 19)  # the last continuous minute
    assert minutes[-1] == kst(NORMAL, 15, 30)  # the closing auction's print
    assert kst(NORMAL, 15, 20) not in minutes


def test_the_years_first_session_opens_at_1000(krx: TradingCalendar) -> None:
    session = krx.session(FIRST_2026)
    assert session is not None
    assert (session.open, session.close) == (kst(FIRST_2026, 10, 0), kst(FIRST_2026, 15, 30))
    minutes = krx.expected_minutes(FIRST_2026)
    assert len(minutes) == 321
    assert (minutes[0], minutes[-2], minutes[-1]) == (
        kst(FIRST_2026, 10, 0),
        kst(FIRST_2026, 15, 19),
        kst(FIRST_2026, 15, 30),
    )


@pytest.mark.parametrize(
    "day",
    [date(2021, 11, 18), date(2023, 11, 16), date(2024, 11, 14), date(2025, 11, 13), CSAT_2026],
)
def test_csat_days_move_the_session_one_hour_later(krx: TradingCalendar, day: date) -> None:
    session = krx.session(day)
    assert session is not None
    assert (session.open, session.close) == (kst(day, 10, 0), kst(day, 16, 30))
    assert session.closing_auction == kst(day, 16, 20)


def test_a_csat_day_expects_1000_to_1619_and_1630(krx: TradingCalendar) -> None:
    minutes = krx.expected_minutes(CSAT_2026)
    assert len(minutes) == 381
    assert minutes[0] == kst(CSAT_2026, 10, 0)
    assert minutes[-2] == kst(CSAT_2026, 16, 19)
    assert minutes[-1] == kst(CSAT_2026, 16, 30)


@pytest.mark.parametrize(
    ("day", "why"),
    [
        (date(2026, 6, 3), "local elections (the built-in override)"),
        (date(2026, 9, 24), "Chuseok"),
        (date(2026, 9, 25), "Chuseok"),
        (date(2026, 10, 5), "substitute holiday for National Foundation Day"),
        (date(2026, 12, 31), "the year-end closure"),
        (date(2025, 12, 31), "the year-end closure"),
        (date(2025, 6, 3), "presidential election"),
        (date(2026, 3, 21), "a Saturday"),
    ],
)
def test_closed_days(krx: TradingCalendar, day: date, why: str) -> None:
    assert not krx.is_trading_day(day), why
    assert krx.session(day) is None
    assert krx.expected_minutes(day) == []


def test_neighbouring_trading_days_skip_holidays(krx: TradingCalendar) -> None:
    assert krx.next_trading_day(date(2026, 9, 23)) == date(2026, 9, 28)
    assert krx.previous_trading_day(date(2026, 9, 28)) == date(2026, 9, 23)
    assert krx.previous_trading_day(FIRST_2026) == date(2025, 12, 30)
    assert krx.next_trading_day(date(2026, 6, 2)) == date(2026, 6, 4)
    assert krx.previous_trading_day(date(2025, 3, 24)) == NORMAL  # Monday → Friday


def test_sessions_lists_a_span_inclusive(krx: TradingCalendar) -> None:
    days = [s.day for s in krx.sessions(date(2026, 9, 21), date(2026, 9, 30))]
    assert days == [date(2026, 9, d) for d in (21, 22, 23, 28, 29, 30)]
    assert krx.sessions(date(2026, 9, 24), date(2026, 9, 27)) == []


def test_is_open_includes_open_and_close(krx: TradingCalendar) -> None:
    assert krx.is_open(kst(NORMAL, 9, 0))
    assert krx.is_open(kst(NORMAL, 15, 30))
    assert not krx.is_open(kst(NORMAL, 8, 59))
    assert not krx.is_open(kst(NORMAL, 15, 31))
    assert not krx.is_open(kst(date(2026, 9, 25), 11, 0))
    assert krx.is_open(datetime(2025, 3, 21, 0, 0, tzinfo=UTC))  # 09:00 KST
    assert not krx.is_open(kst(FIRST_2026, 9, 30))
    with pytest.raises(ValueError, match="aware"):
        krx.is_open(datetime(2025, 3, 21, 10, 0))


def test_outside_the_built_span_weekdays_trade_regular_hours(krx: TradingCalendar) -> None:
    monday, saturday = date(2035, 3, 5), date(2035, 3, 3)
    assert krx.session(monday) == Session(monday, kst(monday, 9, 0), kst(monday, 15, 30))
    assert not krx.is_trading_day(saturday)
    assert krx.is_trading_day(date(2019, 12, 31))  # a weekday before the span: no holidays known


def test_the_calendar_is_built_once_per_override_path(tmp_path: Path) -> None:
    assert krx_calendar() is krx_calendar()
    path = tmp_path / "overrides.toml"
    path.write_text("")
    assert krx_calendar(path) is krx_calendar(tmp_path / "." / "overrides.toml")
    assert krx_calendar(path) is not krx_calendar()


def test_an_override_file_adds_removes_and_moves_days(tmp_path: Path) -> None:
    path = tmp_path / "krx.toml"
    path.write_text(
        """
# a special Saturday session, a surprise closure, a late open, a holiday reopened
[[day]]
date = 2026-12-05
open = "09:00"
close = "12:00"

[[day]]
date = 2026-12-04
closed = true
note = "surprise"

[[day]]
date = 2026-12-07
open = 10:00:00

[[day]]
date = "2026-09-25"
"""
    )
    krx = krx_calendar(path)
    saturday = date(2026, 12, 5)
    assert krx.session(saturday) == Session(saturday, kst(saturday, 9, 0), kst(saturday, 12, 0))
    assert len(krx.expected_minutes(saturday)) == 171  # 09:00..11:49 and 12:00
    assert not krx.is_trading_day(date(2026, 12, 4))
    late = krx.session(date(2026, 12, 7))
    assert late is not None
    assert (late.open.time(), late.close.time()) == (time(10, 0), time(15, 30))
    assert krx.is_trading_day(date(2026, 9, 25))
    assert krx.previous_trading_day(date(2026, 12, 7)) == saturday
    # the built-in corrections still apply underneath a user file
    assert not krx.is_trading_day(date(2026, 6, 3))
    csat = krx.session(CSAT_2026)
    assert csat is not None
    assert csat.open == kst(CSAT_2026, 10, 0)


def test_the_built_in_overrides_are_the_csat_days_and_one_closure() -> None:
    built_in = krx_calendar()
    for year, month, day in ((2021, 11, 18), (2022, 11, 17), (2024, 11, 14)):
        session = built_in.session(date(year, month, day))
        assert session is not None
        assert session.open.time() == time(10, 0)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[[day]\ndate = 2026-06-03", "not valid TOML"),
        ("days = []", "unknown top-level key 'days'"),
        ("day = 3", "array of tables"),
        ("day = [1]", "must be a table"),
        ("[[day]]\nclosed = true", "'date' is missing"),
        ("[[day]]\ndate = 2026-06-03T00:00:00\nclosed = true", "'date' must be a date"),
        ('[[day]]\ndate = "tomorrow"\nclosed = true', "'date' must be a date"),
        ('[[day]]\ndate = 2026-06-03\nclosed = "yes"', "'closed' must be true or false"),
        ('[[day]]\ndate = 2026-06-03\nclosed = true\nopen = "09:00"', "a closed day has no"),
        ('[[day]]\ndate = 2026-06-03\nopen = "16:00"', "'open' 16:00 is not before 'close'"),
        ('[[day]]\ndate = 2026-06-03\nopen = "25:00"', "'open' must be a KST time"),
        ('[[day]]\ndate = 2026-06-03\nclose = "1530"', "'close' must be a KST time"),
        ("[[day]]\ndate = 2026-06-03\nopen = 1000", "'open' must be a KST time"),
        ("[[day]]\ndate = 2026-06-03\nhalf_day = true", "unknown key 'half_day'"),
        ("[[day]]\ndate = 2026-06-03\n[[day]]\ndate = 2026-06-03", "2026-06-03 given twice"),
    ],
)
def test_a_bad_override_file_names_the_file_and_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(CalendarError) as caught:
        krx_calendar(path)
    message = str(caught.value)
    assert message.startswith(str(path.resolve()))
    assert problem in message
    assert "\n" not in message


def test_an_unreadable_override_file_is_a_calendar_error(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match="cannot read"):
        krx_calendar(tmp_path / "missing.toml")


def test_an_entry_is_numbered_in_the_error() -> None:
    text = '[[day]]\ndate = 2026-06-03\nclosed = true\n[[day]]\ndate = 2026-06-04\nopen = "x"'
    with pytest.raises(CalendarError, match=r"src: \[\[day\]\] #2 \(2026-06-04\): 'open'"):
        parse_overrides(text, "src")


def test_a_calendar_built_directly_answers_from_its_sessions() -> None:
    day = date(2030, 1, 2)
    special = Session(day, kst(day, 11, 0), kst(day, 13, 0))
    calendar = TradingCalendar(
        [special], first=date(2030, 1, 1), last=date(2030, 1, 31), overrides={}
    )
    assert calendar.session(day) is special
    assert not calendar.is_trading_day(date(2030, 1, 3))  # inside the span, no session: closed
    assert calendar.is_trading_day(date(2030, 2, 1))  # outside: a weekday
    assert calendar.expected_minutes(day)[-2:] == [kst(day, 12, 49), kst(day, 13, 0)]


def test_a_calendar_without_trading_days_says_so() -> None:
    closed = TradingCalendar([], first=date(2000, 1, 1), last=date(2100, 1, 1))
    with pytest.raises(CalendarError, match="no trading day within 400 days of 2050-01-01"):
        closed.next_trading_day(date(2050, 1, 1))
