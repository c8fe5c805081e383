"""The normalised market-data vocabulary: what every broker answer becomes before it is stored.

Prices are integer KRW (KRX prices are always whole won), times are aware datetimes in KST.
These structs are values, not events: the archiver stores them, the sentinel and the collector
reason about them, and they travel inside events only as plain fields.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Final, Literal

import msgspec

KST: Final = timezone(timedelta(hours=9), "KST")
"""Korea Standard Time. Korea has no daylight saving, so a fixed offset is exact."""

Interval = Literal["1m", "1d"]
"""Bar length: one minute or one trading day."""

INTERVALS: Final[tuple[Interval, ...]] = ("1m", "1d")

SourceType = Literal["rest", "backfill", "ws"]
"""How a value reached the hub: a REST answer to a live caller (collector, strategy), a REST
answer to a backfill request, or the realtime WebSocket feed."""

SOURCE_TYPES: Final[tuple[SourceType, ...]] = ("rest", "backfill", "ws")


class Candle(msgspec.Struct, frozen=True, kw_only=True):
    """One OHLCV bar of one symbol.

    ``ts`` is the bar's start as an aware KST datetime (a daily bar starts at 00:00 KST of its
    day). ``value`` is the traded value in KRW inside the bar, ``None`` when the broker's answer
    does not say (a value only some answers carry is never invented). ``lineage`` is the request
    id (or event id) the bar came from; ``revision`` counts the versions of this bar the
    archive has kept (the normalisers always say 1; the archiver numbers them).
    """

    provider: str
    symbol: str
    interval: Interval
    ts: datetime
    open: int
    high: int
    low: int
    close: int
    volume: int
    value: int | None = None
    source_type: SourceType = "rest"
    lineage: str = ""
    revision: int = 1


class Tick(msgspec.Struct, frozen=True, kw_only=True):
    """One trade print. ``seq`` orders trades that share a second (0 for the first of that
    second in the answer), so ``(provider, symbol, ts, seq)`` identifies a print."""

    provider: str
    symbol: str
    ts: datetime
    price: int
    volume: int
    seq: int = 0
    source_type: SourceType = "rest"
    lineage: str = ""


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A current-price quote: the state of one symbol's day at ``ts`` (the broker's time).

    ``cum_volume``/``cum_value`` are the day's totals so far; ``change`` is against the
    previous close (signed). ``value`` fields are KRW.
    """

    provider: str
    symbol: str
    ts: datetime
    price: int
    open: int
    high: int
    low: int
    cum_volume: int
    cum_value: int | None = None
    change: int = 0
    source_type: SourceType = "rest"
    lineage: str = ""


class MarketData(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one broker answer held, normalised. Each tuple is oldest first."""

    candles: tuple[Candle, ...] = ()
    ticks: tuple[Tick, ...] = ()
    snapshots: tuple[Snapshot, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.candles or self.ticks or self.snapshots)
