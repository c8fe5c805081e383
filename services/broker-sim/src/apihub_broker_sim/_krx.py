"""KRX market rules: the tick-size grid, daily price limits, the session and the calendar.

The grid is the unified KOSPI/KOSDAQ table in force since 2023-01-25. Prices are ``int`` KRW
throughout the simulator, so every helper here works on integers.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection
from datetime import date, timedelta

__all__ = [
    "SESSION_CLOSE_S",
    "SESSION_OPEN_S",
    "ceil_to_grid",
    "floor_to_grid",
    "index_to_price",
    "is_trading_day",
    "prev_trading_day",
    "price_limits",
    "price_to_index",
    "round_to_grid",
    "tick_size",
]

SESSION_OPEN_S = 9 * 3600
"""Seconds after midnight (KST) of the first print: the 09:00:00 opening auction."""
SESSION_CLOSE_S = 15 * 3600 + 30 * 60
"""Seconds after midnight (KST) of the last print: the 15:30:00 closing auction."""

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


def is_trading_day(day: date, holidays: Collection[date] = ()) -> bool:
    """Weekdays are trading days unless listed in ``holidays`` (the calendar hook)."""
    return day.weekday() < 5 and day not in holidays


def prev_trading_day(
    day: date, holidays: Collection[date] = (), *, rule: Callable[[date], bool] | None = None
) -> date:
    """Return the last trading day strictly before ``day``."""
    check = rule or (lambda d: is_trading_day(d, holidays))
    candidate = day - timedelta(days=1)
    # A calendar with more than a year of consecutive holidays is a configuration error.
    for _ in range(400):
        if check(candidate):
            return candidate
        candidate -= timedelta(days=1)
    raise ValueError(f"no trading day within 400 days before {day}")
