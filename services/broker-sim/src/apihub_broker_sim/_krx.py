"""KRX market rules: the tick-size grid, daily price limits, the session and the calendar.

The grid is the unified KOSPI/KOSDAQ table in force since 2023-01-25. Prices are ``int`` KRW
throughout the simulator, so every helper here works on integers.

Trading days and session hours come from the KRX trading calendar of ``apihub_marketdata``
(``krx_calendar()``: exchange-calendars' ``XKRX`` holidays and ad-hoc closures, the year's first
session opening at 10:00, the college-entrance-exam days' 10:00–16:30, corrected by its override
table), plus the simulator's own extra closures (``SimConfig.holidays``). Every session ends
with KRX's closing single-price auction: orders are collected for the last ten minutes
(:data:`CLOSING_AUCTION_S`) and matched once at the close, so there are no continuous trades
between ``close - 10 min`` and the close, whose print is the auction's.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from apihub_marketdata import TradingCalendar

__all__ = [
    "CLOSING_AUCTION_S",
    "REGULAR_HOURS",
    "SESSION_CLOSE_S",
    "SESSION_OPEN_S",
    "MarketCalendar",
    "SessionHours",
    "ceil_to_grid",
    "floor_to_grid",
    "index_to_price",
    "price_limits",
    "price_to_index",
    "round_to_grid",
    "second_of_day",
    "tick_size",
]

SESSION_OPEN_S = 9 * 3600
"""Seconds after midnight (KST) of a regular session's first print: the 09:00 opening auction."""
SESSION_CLOSE_S = 15 * 3600 + 30 * 60
"""Seconds after midnight (KST) of a regular session's last print: the 15:30 closing auction."""
CLOSING_AUCTION_S = 10 * 60
"""Length of the closing single-price auction, which ends at the close."""


@dataclass(frozen=True, slots=True)
class SessionHours:
    """One trading day's session in seconds after midnight KST: the opening print at
    ``open_s``, continuous trading up to ``auction_s`` (exclusive), the closing print at
    ``close_s``."""

    open_s: int
    close_s: int

    @property
    def auction_s(self) -> int:
        """Start of the closing auction (``close_s`` − 10 min): no prints from here to the close."""
        return self.close_s - CLOSING_AUCTION_S

    @property
    def continuous_minutes(self) -> int:
        """Minutes of continuous trading, each with a minute bar (380 on a regular day)."""
        return (self.auction_s - self.open_s) // 60


REGULAR_HOURS = SessionHours(SESSION_OPEN_S, SESSION_CLOSE_S)
"""09:00–15:30, the regular session (continuous trading 09:00–15:20)."""


def second_of_day(hour: int, minute: int, second: int = 0) -> int:
    """Seconds after midnight."""
    return hour * 3600 + minute * 60 + second


@dataclass(frozen=True)
class MarketCalendar:
    """The days the simulated market trades and their hours: ``calendar`` (a
    :class:`apihub_marketdata.TradingCalendar`, normally ``krx_calendar()``) with the extra
    closures ``holidays``. Hashable, so the market's caches can key on it."""

    calendar: TradingCalendar
    holidays: frozenset[date] = frozenset()

    def hours(self, day: date) -> SessionHours | None:
        """The session of ``day``, ``None`` when the market is closed."""
        return _hours(self, day)

    def is_trading_day(self, day: date) -> bool:
        """Whether the market trades on ``day``."""
        return self.hours(day) is not None

    def prev_trading_day(self, day: date) -> date:
        """The last trading day strictly before ``day``."""
        candidate = day - timedelta(days=1)
        # A calendar with more than a year of consecutive closures is a configuration error.
        for _ in range(400):
            if self.is_trading_day(candidate):
                return candidate
            candidate -= timedelta(days=1)
        raise ValueError(f"no trading day within 400 days before {day}")


@lru_cache(maxsize=16_384)
def _hours(calendar: MarketCalendar, day: date) -> SessionHours | None:
    if day in calendar.holidays:
        return None
    session = calendar.calendar.session(day)
    if session is None:
        return None
    opens, closes = session.open, session.close
    return SessionHours(
        second_of_day(opens.hour, opens.minute, opens.second),
        second_of_day(closes.hour, closes.minute, closes.second),
    )


# (band start, tick size), ascending.
_BANDS: tuple[tuple[int, int], ...] = (
    (0, 1),
    (2_000, 5),
    (5_000, 10),
    (20_000, 50),
    (50_000, 100),
    (200_000, 500),
    (500_000, 1_000),
)


def _band_offsets() -> tuple[int, ...]:
    offsets = [0]
    for (start, step), (next_start, _) in itertools.pairwise(_BANDS):
        offsets.append(offsets[-1] + (next_start - start) // step)
    return tuple(offsets)


_OFFSETS = _band_offsets()


def _band_of_price(price: int) -> int:
    for i in range(len(_BANDS) - 1, -1, -1):
        if price >= _BANDS[i][0]:
            return i
    return 0


def tick_size(price: int) -> int:
    """Return the KRX quote unit (호가단위) for ``price``."""
    return _BANDS[_band_of_price(price)][1]


def price_to_index(price: int) -> int:
    """Map a price on the grid to its position on the grid (1 KRW is index 1)."""
    band = _band_of_price(price)
    start, step = _BANDS[band]
    return _OFFSETS[band] + (price - start) // step


def index_to_price(index: int) -> int:
    """Inverse of :func:`price_to_index`."""
    for band in range(len(_BANDS) - 1, -1, -1):
        if index >= _OFFSETS[band]:
            start, step = _BANDS[band]
            return start + (index - _OFFSETS[band]) * step
    return index


def floor_to_grid(price: int) -> int:
    """Return the highest grid price at or below ``price`` (at least 1)."""
    step = tick_size(price)
    return max(1, price - price % step)


def ceil_to_grid(price: int) -> int:
    """Return the lowest grid price at or above ``price``."""
    floored = floor_to_grid(price)
    return floored if floored >= price else floored + tick_size(floored)


def round_to_grid(value: float) -> int:
    """Round ``value`` to the nearest grid price (at least 1)."""
    low = floor_to_grid(int(value))
    high = ceil_to_grid(low + 1) if low < value else low
    return high if (high - value) < (value - low) else low


def price_limits(base: int) -> tuple[int, int]:
    """Return ``(lower, upper)`` daily limits: ±30 % of the base price, kept on the grid."""
    return ceil_to_grid(base * 7 // 10), floor_to_grid(base * 13 // 10)
