"""A daily bar against the minute bars of its day (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from apihub_marketdata import Candle


class Difference(NamedTuple):
    """One field on which the daily bar and its minute bars disagree."""

    field: str
    expected: str
    found: str


def compare_day(daily: Candle, minutes: Sequence[Candle]) -> list[Difference]:
    """Where ``daily`` differs from what ``minutes`` (one day, oldest first) add up to: open =
    the first minute's open, close = the last's close, high/low = the extremes, volume = the
    sum. ``expected`` is the minutes' figure, ``found`` the daily bar's. Traded value is left
    out: brokers round it differently per TR (Kiwoom's daily value is in millions of KRW)."""
    if not minutes:
        return []
    derived = {
        "open": minutes[0].open,
        "high": max(m.high for m in minutes),
        "low": min(m.low for m in minutes),
        "close": minutes[-1].close,
        "volume": sum(m.volume for m in minutes),
    }
    stated = {
        "open": daily.open,
        "high": daily.high,
        "low": daily.low,
        "close": daily.close,
        "volume": daily.volume,
    }
    return [
        Difference(name, str(derived[name]), str(stated[name]))
        for name in derived
        if derived[name] != stated[name]
    ]
