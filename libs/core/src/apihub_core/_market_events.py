"""Market-data events v1: what the archiver, the sentinel, the collector and backfill jobs tell
each other (and anyone watching) through streams.

Times of bars are aware KST datetimes (RFC 3339 on the wire, e.g. ``2026-12-02T09:00:00+09:00``);
``*_ms`` fields are Unix milliseconds of the hub's clock, like every other event. Bar ranges are
inclusive: ``first``/``last`` are the starts of the first and last bar concerned.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from ._events import Event

GapInterval = Literal["1m", "1d"]


# -- the archive stream (``Keys.archive``) ------------------------------------------------------


class ArchiveWritten(Event, frozen=True, kw_only=True, tag="archive.written"):
    """The archiver stored bars of one (provider, symbol, interval): ``count`` bars between
    ``first`` and ``last``, of which ``inserted`` were new and ``revised`` replaced a stored
    version with different values. ``bars`` lists every bar start written, so a follower can
    update its coverage without opening the database."""

    provider: str
    symbol: str
    interval: GapInterval
    first: datetime
    last: datetime
    count: int
    inserted: int = 0
    revised: int = 0
    bars: list[datetime] = msgspec.field(default_factory=list)
    source_type: str = "rest"
    lineage: list[str] = msgspec.field(default_factory=list)
    source_entry: str = ""
    written_at_ms: int = 0


class ArchiveQuarantined(Event, frozen=True, kw_only=True, tag="archive.quarantined"):
    """An answer (or a part of one) that could not be normalised: kept aside with a reason,
    never dropped silently. ``reason`` is a stable word (``malformed_json``, ``missing_field``,
    ``bad_number``, ``bad_time``, ``inconsistent_bar`` …)."""

    source_entry: str
    request_id: str = ""
    provider: str = ""
    tr_id: str = ""
    reason: str
    detail: str = ""
    quarantined_at_ms: int = 0


# -- the gap stream (``Keys.gaps``) ---------------------------------------------------------------


class _GapEvent(Event, frozen=True, kw_only=True):
    gap_id: str
    provider: str
    symbol: str
    interval: GapInterval
    first: datetime
    last: datetime


class GapDetected(_GapEvent, frozen=True, kw_only=True, tag="gap.detected"):
    """Bars the calendar says must exist are missing from the archive past the grace period;
    ``missing`` of them between ``first`` and ``last``."""

    missing: int
    detected_at_ms: int = 0


class GapBackfillRequested(_GapEvent, frozen=True, kw_only=True, tag="gap.backfill_requested"):
    """Backfill requests for the gap were appended to the request stream (``request_ids``,
    one per page of the TR); ``attempt`` counts the tries."""

    request_ids: list[str]
    attempt: int = 1
    requested_at_ms: int = 0


class GapBackfillFailed(_GapEvent, frozen=True, kw_only=True, tag="gap.backfill_failed"):
    """A backfill request for the gap failed; it is asked again at ``retry_at_ms`` unless
    ``gave_up``."""

    request_id: str
    code: str = ""
    message: str = ""
    attempt: int = 1
    retry_at_ms: int = 0
    gave_up: bool = False
    failed_at_ms: int = 0


class GapHealed(_GapEvent, frozen=True, kw_only=True, tag="gap.healed"):
    """Every missing bar of the gap is in the archive now. ``heal_ms`` is the time from
    detection to heal on the hub's clock."""

    detected_at_ms: int
    healed_at_ms: int
    heal_ms: int


class GapConfirmedEmpty(_GapEvent, frozen=True, kw_only=True, tag="gap.confirmed_empty"):
    """The broker itself has no bar for ``bars`` of the gap (no trade in that minute, a halt):
    they are expected no longer and never asked for again."""

    bars: list[datetime] = msgspec.field(default_factory=list)
    confirmed_at_ms: int = 0


class MarketInconsistency(Event, frozen=True, kw_only=True, tag="market.inconsistent"):
    """Two views of the same market disagree, e.g. a daily bar against the sum of its minute
    bars. ``field`` names what differs, ``expected``/``found`` the two values."""

    provider: str
    symbol: str
    day: str
    field: str
    expected: str
    found: str
    detail: str = ""
    seen_at_ms: int = 0


# -- the collector stream (``Keys.collector``) ---------------------------------------------------


class CollectorCycleSkipped(Event, frozen=True, kw_only=True, tag="collector.cycle_skipped"):
    """A collector cycle was not run: the request budget was saturated (``budget_saturated``)
    or the previous cycle was still in flight (``overrun``). Skipping, not queueing, keeps a
    collector from piling up requests behind the limiter."""

    collector: str
    mode: Literal["swing", "scalp"]
    reason: str
    symbols: int = 0
    skipped_at_ms: int = 0


class SnapshotRecorded(Event, frozen=True, kw_only=True, tag="snapshot.recorded"):
    """A current-price snapshot that passed the collector's observer pipeline (validation,
    guard, enrichment): the archiver stores it in ``snapshots``. ``ts`` is the broker's time of
    the quote; ``volume_delta``/``price_change`` are against the collector's previous snapshot
    of the symbol (0 for the first)."""

    collector: str
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
    volume_delta: int = 0
    price_change: int = 0
    lineage: str = ""
    recorded_at_ms: int = 0


class SnapshotQuarantined(Event, frozen=True, kw_only=True, tag="snapshot.quarantined"):
    """A collector snapshot failed validation or the guard; kept aside with a reason."""

    collector: str
    provider: str
    symbol: str
    request_id: str = ""
    reason: str
    detail: str = ""
    quarantined_at_ms: int = 0


ArchiveEvent = ArchiveWritten | ArchiveQuarantined
"""Every event of the archive stream."""

GapEvent = (
    GapDetected
    | GapBackfillRequested
    | GapBackfillFailed
    | GapHealed
    | GapConfirmedEmpty
    | MarketInconsistency
)
"""Every event of the gap stream."""

CollectorEvent = CollectorCycleSkipped | SnapshotRecorded | SnapshotQuarantined
"""Every event of the collector stream."""

MarketEvent = ArchiveEvent | GapEvent | CollectorEvent
"""Every market-data event."""
