"""When the collector polls: session hours on the real KRX calendar, the pauses outside them,
clock jumps, cycle admission and the swing window, all as pure functions of a fixed clock."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from apihub_collector._schedule import (
    MAX_IDLE_S,
    Closed,
    InSession,
    admission,
    closed_pause,
    market_state,
    minute_of,
    next_open,
    window_start,
)
from apihub_marketdata import KST, Session, TradingCalendar
from apihub_runtime import MarketClock


def at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), tzinfo=KST)


FRIDAY = date(2025, 3, 21)
MONDAY = date(2025, 3, 24)
CHUSEOK = date(2025, 10, 6)  # a holiday on a Monday
FIRST_SESSION = date(2026, 1, 2)  # the year's first session opens at 10:00
CSAT = date(2025, 11, 13)  # college entrance exam: 10:00–16:30


def session(calendar: TradingCalendar, day: date) -> Session:
    found = calendar.session(day)
    assert found is not None
    return found


# -- inside and outside the session -----------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        (at(FRIDAY, 8, 59, 59), False),
        (at(FRIDAY, 9, 0), True),  # the open is inside
        (at(FRIDAY, 12, 0), True),
        (at(FRIDAY, 15, 30), True),  # and the close
        (at(FRIDAY, 15, 30, 1), False),
        (at(date(2025, 3, 22), 11, 0), False),  # Saturday
    ],
)
def test_a_regular_day(calendar: TradingCalendar, when: datetime, inside: bool) -> None:
    assert isinstance(market_state(calendar, when), InSession) is inside


def test_the_state_says_why_it_is_closed_and_when_it_opens(calendar: TradingCalendar) -> None:
    assert market_state(calendar, at(FRIDAY, 8, 0)) == Closed(at(FRIDAY, 9, 0), "before_open")
    assert market_state(calendar, at(FRIDAY, 16, 0)) == Closed(at(MONDAY, 9, 0), "after_close")
    weekend = market_state(calendar, at(date(2025, 3, 23), 10, 0))
    assert weekend == Closed(at(MONDAY, 9, 0), "closed_day")


def test_the_years_first_session_opens_at_ten(calendar: TradingCalendar) -> None:
    assert isinstance(market_state(calendar, at(FIRST_SESSION, 9, 30)), Closed)
    assert isinstance(market_state(calendar, at(FIRST_SESSION, 10, 0)), InSession)
    assert isinstance(market_state(calendar, at(FIRST_SESSION, 15, 30)), InSession)
    assert isinstance(market_state(calendar, at(FIRST_SESSION, 15, 31)), Closed)
    # New Year's Day is closed; the next open is the late one.
    assert next_open(calendar, at(date(2026, 1, 1), 12, 0)) == at(FIRST_SESSION, 10, 0)


def test_a_holiday_is_closed_all_day(calendar: TradingCalendar) -> None:
    state = market_state(calendar, at(CHUSEOK, 10, 0))
    assert isinstance(state, Closed)
    assert state.why == "closed_day"
    assert state.next_open is not None
    assert state.next_open.date() > CHUSEOK
    assert calendar.is_trading_day(state.next_open.date())


def test_a_csat_day_runs_ten_to_half_past_four(calendar: TradingCalendar) -> None:
    assert isinstance(market_state(calendar, at(CSAT, 9, 30)), Closed)
    assert isinstance(market_state(calendar, at(CSAT, 10, 0)), InSession)
    assert isinstance(market_state(calendar, at(CSAT, 16, 0)), InSession)  # past 15:30
    assert isinstance(market_state(calendar, at(CSAT, 16, 30, 1)), Closed)
    assert next_open(calendar, at(CSAT, 8, 0)) == at(CSAT, 10, 0)


def test_a_clock_that_jumps_is_judged_where_it_lands(calendar: TradingCalendar) -> None:
    """The collector reads the market clock at every step; each reading stands alone."""
    readings = [at(FRIDAY, 10, 0), at(FRIDAY, 20, 0), at(CHUSEOK, 11, 0), at(FRIDAY, 9, 5)]
    states = [type(market_state(calendar, when)) for when in readings]
    assert states == [InSession, Closed, Closed, InSession]


def test_no_session_within_the_lookahead() -> None:
    empty = TradingCalendar([], first=date(2025, 1, 1), last=date(2025, 12, 31))
    state = market_state(empty, at(date(2025, 6, 2), 10, 0))
    assert state == Closed(None, "closed_day")


# -- pauses outside the session -----------------------------------------------------------------


def test_the_closed_pause_is_bounded_and_follows_the_clock_rate() -> None:
    now = at(FRIDAY, 8, 59, 50)
    wall = MarketClock.wall()
    assert closed_pause(wall, now, at(FRIDAY, 9, 0)) == pytest.approx(10.0)
    assert closed_pause(wall, now, at(MONDAY, 9, 0)) == MAX_IDLE_S
    assert closed_pause(wall, now, None, cap=2.0) == 2.0
    assert closed_pause(wall, at(FRIDAY, 9, 0, 1), at(FRIDAY, 9, 0)) == 0.0
    fast = MarketClock.anchored(now, rate=10.0)
    assert closed_pause(fast, now, at(FRIDAY, 9, 0)) == pytest.approx(1.0)
    frozen = MarketClock.anchored(now, frozen=True)
    assert closed_pause(frozen, now, at(FRIDAY, 9, 0)) == pytest.approx(10.0)


# -- admission of a cycle -----------------------------------------------------------------------


def test_a_cycle_runs_only_after_the_previous_one_and_below_the_budget() -> None:
    assert admission(running=False, in_flight=0, max_in_flight=4) is None
    assert admission(running=False, in_flight=3, max_in_flight=4) is None
    assert admission(running=True, in_flight=0, max_in_flight=4) == "overrun"
    assert admission(running=False, in_flight=4, max_in_flight=4) == "budget_saturated"
    assert admission(running=True, in_flight=9, max_in_flight=4) == "overrun"


# -- the swing window ---------------------------------------------------------------------------


def test_the_window_overlaps_the_last_poll(calendar: TradingCalendar) -> None:
    day = session(calendar, FRIDAY)
    now = at(FRIDAY, 10, 30, 12)
    last = at(FRIDAY, 10, 27, 40)
    # The bar forming at the last poll (10:27) and the four before it are read again.
    assert window_start(now, last, day, 5) == at(FRIDAY, 10, 23)
    assert window_start(now, last, day, 1) == at(FRIDAY, 10, 27)
    assert window_start(now, last, day, 0) == at(FRIDAY, 10, 27)


def test_the_window_never_reaches_before_the_open(calendar: TradingCalendar) -> None:
    day = session(calendar, FRIDAY)
    assert window_start(at(FRIDAY, 9, 10), at(FRIDAY, 9, 1), day, 5) == at(FRIDAY, 9, 0)


@pytest.mark.parametrize(
    "last",
    [
        None,  # never polled
        at(date(2025, 3, 20), 15, 0),  # yesterday
        at(FRIDAY, 11, 0),  # after now: the clock went back
        at(FRIDAY, 8, 50),  # before the open
    ],
)
def test_nothing_to_continue(calendar: TradingCalendar, last: datetime | None) -> None:
    assert window_start(at(FRIDAY, 10, 30), last, session(calendar, FRIDAY), 5) is None


def test_minute_of() -> None:
    assert minute_of(at(FRIDAY, 10, 30, 59) + timedelta(microseconds=5)) == at(FRIDAY, 10, 30)
