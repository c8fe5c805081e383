"""Scalp polls and the observer pipeline every snapshot goes through.

A scalp symbol's current price is asked every ``scalp_interval_s``; each answer becomes at most
one event on the collector stream:

1. **validation** — :func:`apihub_marketdata.normalise` turns the answer into a
   :class:`~apihub_marketdata.Snapshot` (required fields, types, a quote that can be true);
   its :class:`~apihub_marketdata.NormaliseError` reason becomes the quarantine reason;
2. **guard** — rules against what the collector saw before (:func:`guard`); a breach is a
   ``snapshot.quarantined`` with a reason, never a silent drop;
3. **enrichment** — ``volume_delta`` and ``price_change`` against the previous recorded
   snapshot of the symbol the same day (:func:`enrich`);
4. **archive** — ``snapshot.recorded``, which the archiver stores in its ``snapshots`` table.

Only KIS is polled for now: ``FHKST01010100``. ``apihub_marketdata`` does not normalise
Kiwoom's current price (``ka10001``) yet, so Kiwoom scalp entries are left out, said once.

Everything here is pure: the service passes in the answer, the previous snapshot and the time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import msgspec

from apihub_core import Provider, SnapshotQuarantined, SnapshotRecorded
from apihub_marketdata import KST, NormaliseError, Snapshot, normalise

SCALP_TRS: Final = {Provider.KIS: "FHKST01010100"}
"""The current-price TR polled per provider (the providers scalp mode supports)."""

LIMIT_PERCENT: Final = 30
"""KRX's daily price limit: ±30 % of the previous close (the exact limit is that rounded to
the tick size, inside these bounds)."""

GUARD_REASONS: Final = frozenset(
    {"symbol_mismatch", "bad_price", "outside_price_limits", "stale", "volume_decreased"}
)
"""Every reason :func:`guard` gives (validation adds ``no_snapshot`` and the
``NormaliseError`` reasons)."""


def scalp_params(provider: Provider, symbol: str) -> dict[str, str]:
    """The parameters of a current-price request for ``symbol``."""
    if provider is Provider.KIS:
        return {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": symbol}
    return {"stk_cd": symbol}


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why an answer did not become a recorded snapshot: a stable ``reason`` word and a
    one-line ``detail``."""

    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Quote:
    """What the answer itself says beyond the snapshot, for the guard: the code it is about
    and the day's price limits (``None`` where it does not say)."""

    symbol: str | None = None
    upper: int | None = None
    lower: int | None = None


def _number(raw: object) -> int | None:
    try:
        value = int(str(raw))
    except ValueError:
        return None
    return value if value > 0 else None


def quote_of(provider: Provider, body: Any) -> Quote:
    """The guard's facts of a current-price answer: KIS ``output.stck_shrn_iscd``,
    ``stck_mxpr``/``stck_llam`` (upper/lower limit)."""
    if provider is not Provider.KIS or not isinstance(body, Mapping):
        return Quote()
    out = body.get("output")
    if not isinstance(out, Mapping):
        return Quote()
    code = out.get("stck_shrn_iscd")
    return Quote(
        symbol=str(code).strip() or None if code is not None else None,
        upper=_number(out.get("stck_mxpr")),
        lower=_number(out.get("stck_llam")),
    )


def validate(
    provider: Provider,
    tr_id: str,
    params: dict[str, str],
    body: bytes,
    *,
    lineage: str,
    received_at: datetime,
) -> Snapshot | Rejected:
    """Validation: the answer's snapshot, or why there is none."""
    try:
        data = normalise(
            provider.value, tr_id, params, body, lineage=lineage, received_at=received_at
        )
    except NormaliseError as exc:
        return Rejected(exc.reason, exc.detail)
    if not data.snapshots:
        return Rejected("no_snapshot", "the answer holds no current price")
    return data.snapshots[-1]


def _same_day(snapshot: Snapshot, previous: Snapshot | None) -> Snapshot | None:
    if previous is None or previous.ts.astimezone(KST).date() != snapshot.ts.astimezone(KST).date():
        return None
    return previous


def guard(
    snapshot: Snapshot, previous: Snapshot | None, *, symbol: str, quote: Quote | None = None
) -> Rejected | None:
    """The guard: ``None`` when ``snapshot`` may be recorded, else the rule it breaks.

    - ``symbol_mismatch``: the answer (``quote.symbol``, else the snapshot) is about another
      symbol than the one asked for;
    - ``bad_price``: a price not above zero;
    - ``outside_price_limits``: the price lies outside the day's limits — the answer's own
      (``quote.upper``/``quote.lower``) when it gives them, else ±30 % of the previous close
      (``price - change``); or the change implies a previous close not above zero;
    - ``stale``: older than the previous snapshot of the day;
    - ``volume_decreased``: the day's cumulative volume fell.
    """
    quote = quote or Quote()
    answered = quote.symbol or snapshot.symbol
    if answered != symbol:
        return Rejected("symbol_mismatch", f"asked for {symbol}, the answer is about {answered}")
    if snapshot.price <= 0:
        return Rejected("bad_price", f"price {snapshot.price}")
    if quote.upper is not None and quote.lower is not None:
        if not quote.lower <= snapshot.price <= quote.upper:
            return Rejected(
                "outside_price_limits",
                f"price {snapshot.price} is outside the day's limits {quote.lower}–{quote.upper}",
            )
        return _against(snapshot, previous)
    close = snapshot.price - snapshot.change
    if close <= 0:
        return Rejected(
            "outside_price_limits",
            f"change {snapshot.change} on price {snapshot.price} implies a previous close "
            f"of {close}",
        )
    if not (
        100 * snapshot.price <= (100 + LIMIT_PERCENT) * close
        and 100 * snapshot.price >= (100 - LIMIT_PERCENT) * close
    ):
        return Rejected(
            "outside_price_limits",
            f"price {snapshot.price} is outside ±{LIMIT_PERCENT} % of the previous close {close}",
        )
    return _against(snapshot, previous)


def _against(snapshot: Snapshot, previous: Snapshot | None) -> Rejected | None:
    before = _same_day(snapshot, previous)
    if before is None:
        return None
    if snapshot.ts < before.ts:
        return Rejected(
            "stale", f"at {snapshot.ts.isoformat()}, before the previous {before.ts.isoformat()}"
        )
    if snapshot.cum_volume < before.cum_volume:
        return Rejected(
            "volume_decreased",
            f"cumulative volume {snapshot.cum_volume} after {before.cum_volume}",
        )
    return None


def enrich(
    snapshot: Snapshot, previous: Snapshot | None, *, collector: str, recorded_at_ms: int
) -> SnapshotRecorded:
    """Enrichment: the ``snapshot.recorded`` event, with ``volume_delta`` and ``price_change``
    against the previous snapshot of the same day (0 for the day's first)."""
    before = _same_day(snapshot, previous)
    return SnapshotRecorded(
        collector=collector,
        provider=snapshot.provider,
        symbol=snapshot.symbol,
        ts=snapshot.ts,
        price=snapshot.price,
        open=snapshot.open,
        high=snapshot.high,
        low=snapshot.low,
        cum_volume=snapshot.cum_volume,
        cum_value=snapshot.cum_value,
        change=snapshot.change,
        volume_delta=0 if before is None else snapshot.cum_volume - before.cum_volume,
        price_change=0 if before is None else snapshot.price - before.price,
        lineage=snapshot.lineage,
        recorded_at_ms=recorded_at_ms,
    )


def observe(
    provider: Provider,
    tr_id: str,
    params: dict[str, str],
    body: bytes,
    *,
    symbol: str,
    previous: Snapshot | None,
    collector: str,
    lineage: str,
    received_at: datetime,
    now_ms: int,
) -> tuple[SnapshotRecorded, Snapshot] | SnapshotQuarantined:
    """The whole pipeline for one answer: the event to append (and, when recorded, the
    snapshot that becomes the symbol's previous one)."""
    checked = validate(provider, tr_id, params, body, lineage=lineage, received_at=received_at)
    if isinstance(checked, Snapshot):
        try:
            quote = quote_of(provider, msgspec.json.decode(body))
        except msgspec.DecodeError:  # normalise read it, so this does not happen
            quote = Quote()
        verdict = guard(checked, previous, symbol=symbol, quote=quote)
        if verdict is None:
            event = enrich(checked, previous, collector=collector, recorded_at_ms=now_ms)
            return event, checked
    else:
        verdict = checked
    return SnapshotQuarantined(
        collector=collector,
        provider=provider.value,
        symbol=symbol,
        request_id=lineage,
        reason=verdict.reason,
        detail=verdict.detail,
        quarantined_at_ms=now_ms,
    )
