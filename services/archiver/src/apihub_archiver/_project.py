"""From a response-stream entry to what the archive stores: the projection, a pure function of
the entry (so a replay projects every entry exactly as the live archiver did)."""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

import msgspec

from apihub_archive import Item, Observation, Rejection
from apihub_core import (
    DATA_FIELD,
    TYPE_FIELD,
    EntryDecodeError,
    ResponseReceived,
    decode_outcome,
)
from apihub_marketdata import MarketData, NormaliseError, carries_market_data, normalise

log = logging.getLogger("apihub.archiver")

_TYPE: Final = TYPE_FIELD.encode()
_DATA: Final = DATA_FIELD.encode()
_SUCCESS: Final = b"response.received"
_INT64: Final = (-(2**63), 2**63 - 1)


class _Head(msgspec.Struct):
    provider: str = ""
    tr_id: str = ""


_head = msgspec.json.Decoder(_Head)


def wanted(fields: Mapping[bytes, bytes]) -> bool:
    """Whether an entry is the archiver's business: a ``response.received`` of a TR that
    carries market data, or one claiming to be and not decodable (to be quarantined). Reads the
    ``type`` field and the event's provider and TR only, never the body."""
    if fields.get(_TYPE) != _SUCCESS:
        return False
    data = fields.get(_DATA)
    if data is None:
        return True
    try:
        head = _head.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return True
    return carries_market_data(head.provider, head.tr_id)


def received_at(event: ResponseReceived) -> datetime | None:
    """When the broker answered: its ``date`` header, else the hub's ``received_at_ms``."""
    header = event.headers.get("date") or event.headers.get("Date")
    if header:
        try:
            parsed = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    if event.received_at_ms:
        return datetime.fromtimestamp(event.received_at_ms / 1000, UTC)
    return None


def project(entry_id: str, fields: Mapping[bytes, bytes]) -> Item | None:
    """The archive item of one response-stream entry: an :class:`~apihub_archive.Observation`,
    a :class:`~apihub_archive.Rejection` (quarantined with a reason), or ``None`` when the entry
    is not the archiver's business (see :func:`wanted`).

    ``source_type`` is ``backfill`` for answers to ``backfill``-priority requests, ``rest``
    otherwise; the lineage of every value is the request id.
    """
    if not wanted(fields):
        return None
    raw = fields.get(_DATA, b"")
    try:
        event = decode_outcome(fields)
    except EntryDecodeError as exc:
        head = _safe_head(raw)
        return Rejection(
            entry_id, exc.reason, exc.detail, provider=head.provider, tr_id=head.tr_id, body=raw
        )
    if not isinstance(event, ResponseReceived):
        # The type field said success, the event says otherwise: not an answer to store.
        return None
    body = bytes(event.body)
    context = {
        "request_id": event.request_id,
        "provider": event.provider,
        "tr_id": event.tr_id,
    }
    try:
        data = normalise(
            event.provider,
            event.tr_id,
            event.params,
            body,
            lineage=event.request_id,
            source_type="backfill" if event.priority == "backfill" else "rest",
            received_at=received_at(event),
        )
    except NormaliseError as exc:
        return Rejection(entry_id, exc.reason, exc.detail, body=body, **context)
    except Exception as exc:  # a normaliser bug must not wedge the archive: keep the answer aside
        log.exception("normalising %s (%s %s) failed", entry_id, event.provider, event.tr_id)
        return Rejection(
            entry_id, "normaliser_failed", f"{type(exc).__name__}: {exc}", body=body, **context
        )
    problem = _out_of_range(data)
    if problem:
        return Rejection(entry_id, "out_of_range", problem, body=body, **context)
    return Observation(entry_id, data, **context)


def quarantine_poison(entry_id: str, fields: Mapping[bytes, bytes], deliveries: int) -> Rejection:
    """An entry whose batches kept failing, set aside so it cannot hold the archive up."""
    raw = fields.get(_DATA, b"")
    head = _safe_head(raw)
    return Rejection(
        entry_id,
        "too_many_deliveries",
        f"delivered {deliveries} times without being stored; the batches holding it failed",
        provider=head.provider,
        tr_id=head.tr_id,
        body=raw,
    )


def _safe_head(raw: bytes) -> _Head:
    try:
        return _head.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _Head()


def _out_of_range(data: MarketData) -> str:
    """A number DuckDB's BIGINT cannot hold (the normaliser parses whatever digits it gets)."""
    low, high = _INT64
    for candle in data.candles:
        for number in (candle.open, candle.high, candle.low, candle.close, candle.volume):
            if not low <= number <= high:
                return f"candle at {candle.ts.isoformat()}: {number} does not fit 64 bits"
        if candle.value is not None and not low <= candle.value <= high:
            return f"candle at {candle.ts.isoformat()}: value {candle.value} does not fit 64 bits"
    for tick in data.ticks:
        if not (low <= tick.price <= high and low <= tick.volume <= high):
            return f"tick at {tick.ts.isoformat()}: a number does not fit 64 bits"
    for snap in data.snapshots:
        numbers = [snap.price, snap.open, snap.high, snap.low, snap.cum_volume, snap.change]
        if snap.cum_value is not None:
            numbers.append(snap.cum_value)
        if not all(low <= number <= high for number in numbers):
            return f"snapshot at {snap.ts.isoformat()}: a number does not fit 64 bits"
    return ""
