"""The generator itself: the KRX grid, exact aggregation, chaining, determinism, caching."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from apihub_broker_sim import KST
from apihub_broker_sim import _market as market_module
from apihub_broker_sim._krx import (
    MarketCalendar,
    SessionHours,
    ceil_to_grid,
    floor_to_grid,
    index_to_price,
    price_limits,
    price_to_index,
    round_to_grid,
    tick_size,
)
from apihub_broker_sim._market import Market, aggregate
from apihub_marketdata import TradingCalendar, krx_calendar

REGULAR_MINUTES = [9 * 3600 + 60 * m for m in range(380)] + [15 * 3600 + 30 * 60]
"""Bar starts of a regular day: 09:00 .. 15:19, then the 15:30 closing print."""


@pytest.mark.parametrize(
    ("price", "tick"),
    [
        (1, 1),
        (1_999, 1),
        (2_000, 5),
        (4_995, 5),
        (5_000, 10),
        (19_990, 10),
        (20_000, 50),
        (49_950, 50),
        (50_000, 100),
        (199_900, 100),
        (200_000, 500),
        (499_500, 500),
        (500_000, 1_000),
        (1_234_000, 1_000),
    ],
)
def test_krx_tick_size_table(price: int, tick: int) -> None:
    assert tick_size(price) == tick


def test_grid_index_round_trips_and_rounding_stays_on_grid() -> None:
    for index in range(1, 6_000, 7):
        price = index_to_price(index)
        assert price_to_index(price) == index
        assert price % tick_size(price) == 0
    assert round_to_grid(71_549.0) == 71_500
    assert round_to_grid(71_551.0) == 71_600
    assert round_to_grid(1_999.6) == 2_000
    assert floor_to_grid(2_003) == 2_000
    assert ceil_to_grid(2_003) == 2_005
    assert price_limits(72_100) == (50_500, 93_700)  # ±30 %: stck_llam / stck_mxpr of a 72,100 base


def test_the_calendar_is_krxs_plus_the_configured_closures() -> None:
    friday, saturday, monday = date(2025, 3, 21), date(2025, 3, 22), date(2025, 3, 24)
    krx = MarketCalendar(krx_calendar())
    regular = krx.hours(friday)
    assert regular == SessionHours(9 * 3600, 15 * 3600 + 30 * 60)
    assert (regular.auction_s, regular.continuous_minutes) == (15 * 3600 + 20 * 60, 380)
    assert not krx.is_trading_day(saturday)
    assert krx.prev_trading_day(monday) == friday
    # KRX closures: New Year's Day, the 12-31 closure, an ad-hoc holiday (2025-01-27).
    for closed in (date(2025, 1, 1), date(2024, 12, 31), date(2025, 1, 27)):
        assert not krx.is_trading_day(closed), closed
    assert krx.prev_trading_day(date(2025, 1, 2)) == date(2024, 12, 30)
    # The year's first session opens at 10:00; the exam day runs 10:00-16:30.
    assert krx.hours(date(2025, 1, 2)) == SessionHours(10 * 3600, 15 * 3600 + 30 * 60)
    assert krx.hours(date(2025, 11, 13)) == SessionHours(10 * 3600, 16 * 3600 + 30 * 60)
    # SimConfig.holidays close more days on top.
    extra = MarketCalendar(krx_calendar(), frozenset({friday}))
    assert not extra.is_trading_day(friday)
    assert extra.prev_trading_day(monday) == date(2025, 3, 20)
    # Any TradingCalendar will do: an empty one is plain weekdays, 09:00-15:30.
    weekdays = MarketCalendar(TradingCalendar([], first=date(2000, 1, 1), last=date(2000, 1, 1)))
    assert weekdays.is_trading_day(date(2025, 1, 1))


def test_ticks_aggregate_exactly_into_minutes_and_the_day() -> None:
    market = Market(seed=7)
    day = date(2025, 3, 20)
    tape = market.tape("005930", day)
    bars = tape.minute_bars
    assert len(bars) == 381  # 09:00 .. 15:19 plus the 15:30 closing print
    assert [bar.start_s for bar in bars] == REGULAR_MINUTES
    # The closing auction: nothing prints from 15:20:00 until the 15:30:00 close.
    assert [s for s in tape.secs if s >= 15 * 3600 + 20 * 60] == [15 * 3600 + 30 * 60]
    assert tape.secs[0] == 9 * 3600
    for bar, end in zip(bars, tape.minute_ends, strict=True):
        first = end - bar.ticks
        prices = tape.prices[first:end]
        volumes = tape.volumes[first:end]
        assert (bar.open, bar.close) == (prices[0], prices[-1])
        assert (bar.high, bar.low) == (max(prices), min(prices))
        assert bar.volume == sum(volumes)
        assert bar.value == sum(p * v for p, v in zip(prices, volumes, strict=True))
        assert all(p % tick_size(p) == 0 for p in prices)
    daily = market.day_bar("005930", day)
    assert daily == aggregate(bars)
    assert daily is not None
    assert daily.close == tape.prices[-1] == market.close("005930", day)
    lower, upper = price_limits(tape.prev_close)
    assert lower <= daily.low <= daily.high <= upper


@pytest.mark.parametrize(
    "day",
    [date(2025, 3, 20), date(2025, 1, 2), date(2025, 11, 13), date(2026, 1, 2)],
)
def test_minute_bars_are_the_calendars_expected_minutes(day: date) -> None:
    # Regular, the year's first session (10:00-15:30), the exam day (10:00-16:30).
    tape = Market(seed=5).tape("005930", day)
    expected = [m.hour * 3600 + m.minute * 60 for m in krx_calendar().expected_minutes(day)]
    assert [bar.start_s for bar in tape.minute_bars] == expected
    hours = krx_calendar().session(day)
    assert hours is not None
    assert tape.secs[0] == hours.open.hour * 3600 + hours.open.minute * 60
    assert tape.secs[-1] == hours.close.hour * 3600 + hours.close.minute * 60


def test_daily_bars_chain_through_previous_close() -> None:
    market = Market(seed=11)
    day = date(2025, 3, 3)
    for _ in range(15):
        previous = market.prev_trading_day(day)
        assert market.tape("000660", day).prev_close == market.close("000660", previous)
        assert market.tape("000660", previous).prices[-1] == market.close("000660", previous)
        day += timedelta(days=1 if day.weekday() < 4 else 3)


def test_partial_day_is_a_prefix_of_the_full_day() -> None:
    market = Market(seed=3)
    tape = market.tape("123456", date(2025, 3, 21))
    cutoff = 11 * 3600 + 15 * 60 + 20
    partial = tape.minute_bars_until(cutoff)
    assert partial[:-1] == tape.minute_bars[: len(partial) - 1]
    assert partial[-1].start_s == 11 * 3600 + 15 * 60
    count = tape.tick_count(cutoff)
    assert partial[-1].close == tape.prices[count - 1]
    assert partial[-1].cum_volume == tape.cum_volume[count - 1]
    assert tape.minute_bars_until(9 * 3600 - 1) == []


def test_same_seed_same_market_other_seed_other_market() -> None:
    day = date(2025, 3, 19)
    a = Market(seed=1).tape("035720", day)
    b = Market(seed=1).tape("035720", day)
    c = Market(seed=2).tape("035720", day)
    assert (a.secs, a.prices, a.volumes) == (b.secs, b.prices, b.volumes)
    assert a.prices != c.prices


def test_session_as_of() -> None:
    market = Market(seed=1)
    friday = date(2025, 3, 21)
    assert market.session(datetime(2025, 3, 21, 10, 0, 5, tzinfo=KST)) == (friday, 36005)
    assert market.session(datetime(2025, 3, 21, 18, 0, tzinfo=KST)) == (friday, 55800)
    before_open = datetime(2025, 3, 21, 8, 59, 59, tzinfo=KST)
    assert market.session(before_open) == (date(2025, 3, 20), 55800)
    assert market.session(datetime(2025, 3, 23, 12, 0, tzinfo=KST)) == (friday, 55800)
    # A 10:00 open: at 09:30 the last session is still the previous one (12-31 is closed).
    first = date(2025, 1, 2)
    assert market.session(datetime(2025, 1, 2, 9, 30, tzinfo=KST)) == (date(2024, 12, 30), 55800)
    assert market.session(datetime(2025, 1, 2, 10, 0, 5, tzinfo=KST)) == (first, 36005)
    # The exam day closes at 16:30.
    exam = date(2025, 11, 13)
    assert market.session(datetime(2025, 11, 13, 16, 0, tzinfo=KST)) == (exam, 57600)
    assert market.session(datetime(2025, 11, 13, 17, 0, tzinfo=KST)) == (exam, 59400)


def test_a_day_is_generated_once_and_closes_need_no_ticks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What keeps answers cheap, counted rather than timed: a tape is built once per day and
    # then served from the cache, a day's prints are bounded, and a close needs no tape at all.
    built: list[date] = []
    build = market_module._build_tape

    def counting_build(model: market_module._Model, code: str, day: date) -> market_module.DayTape:
        built.append(day)
        return build(model, code, day)

    monkeypatch.setattr(market_module, "_build_tape", counting_build)
    market_module._tape.cache_clear()  # earlier tests may have built these days already
    market = Market(seed=99)
    days = [date(2024, 1, 1) + timedelta(days=offset) for offset in range(10)]
    tapes = [market.tape("373220", day) for day in days]
    assert built == days
    assert all(len(tape.prices) <= 380 * 30 + 1 for tape in tapes), "≤ 30 prints a minute"
    assert all(market.tape("373220", day) is tape for day, tape in zip(days, tapes, strict=True))
    assert built == days, "asked again: served from the cache"
    closes = [market.close("373220", date(2023, 1, 2) + timedelta(days=n)) for n in range(200)]
    assert all(close > 0 for close in closes)
    assert built == days, "a close is computed without generating the day's ticks"
