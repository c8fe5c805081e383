"""Which bars are missing, and how they group into gaps (pure functions)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from apihub_backfill import bar_length
from apihub_marketdata import Interval


def due(
    expected: Sequence[datetime], interval: Interval, now: datetime, grace_s: float
) -> list[datetime]:
    """The bars of ``expected`` that should be in the archive by ``now``: ended at least
    ``grace_s`` ago."""
    cutoff = now - bar_length(interval) - timedelta(seconds=grace_s)
    return [bar for bar in expected if bar <= cutoff]


def gap_ranges(
    expected: Sequence[datetime], missing: Collection[datetime], *, by_day: bool = True
) -> list[list[datetime]]:
    """``missing`` bars grouped into runs that are adjacent in ``expected`` (the calendar's
    order, so 15:19 and 15:30 are neighbours and a weekend does not split daily bars) and, with
    ``by_day`` (minute bars), on one day. Each run becomes one gap."""
    runs: list[list[datetime]] = []
    previous_missing = False
    for bar in expected:
        if bar not in missing:
            previous_missing = False
            continue
        if previous_missing and runs and (not by_day or runs[-1][-1].date() == bar.date()):
            runs[-1].append(bar)
        else:
            runs.append([bar])
        previous_missing = True
    return runs


def gap_id(provider: str, symbol: str, interval: str, first: datetime, detected_ms: int) -> str:
    """A gap's id: its series, its first bar and when it was seen (a range given up on and
    found again later is a new gap)."""
    return f"{provider}:{symbol}:{interval}:{first:%Y%m%d%H%M}:{detected_ms}"
