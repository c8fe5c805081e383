"""The call log behind ``GET /__sim/calls`` and ``GET /__sim/stats``.

Secrets never enter it: appkeys are reduced to a fingerprint and tokens are not stored.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["CallContext", "Recorder", "appkey_fingerprint"]


def appkey_fingerprint(appkey: str) -> str:
    """A stable, non-reversible label for an appkey, as shown by the admin API."""
    if not appkey:
        return ""
    return "ak_" + hashlib.blake2b(appkey.encode(), digest_size=6).hexdigest()


@dataclass
class CallContext:
    """What one broker request was, filled in as it is handled.

    ``appkey`` holds the raw key only so faults and rate limits can match on it; the
    recorder keeps just its fingerprint. ``symbol`` is the six-digit code the call names
    (KIS ``FID_INPUT_ISCD`` or ``PDNO``, Kiwoom ``stk_cd``; prefixes and suffixes dropped, ""
    when it names none) and ``quotation`` whether the call is a market-data query.
    ``fault_source`` says what injected ``fault`` (``"fault"``, ``"error_rate"`` or
    ``"outage"``); ``rate_limited`` marks a rejection by the simulator's own rate limiter, as
    opposed to an injected ``EGW00201``/``1700``.
    """

    provider: str
    method: str
    path: str
    tr_id: str = ""
    appkey: str = ""
    symbol: str = ""
    quotation: bool = False
    status: int = 0
    error_code: str = ""
    fault: str = ""
    fault_source: str = ""
    latency_ms: float = 0.0
    rate_limited: bool = False


@dataclass(frozen=True)
class CallRecord:
    """One recorded call; ``mono`` is its arrival (after any injected latency)."""

    seq: int
    time: str
    mono: float
    provider: str
    method: str
    path: str
    tr_id: str
    appkey: str
    symbol: str
    status: int
    error_code: str
    fault: str
    fault_source: str
    rate_limited: bool
    latency_ms: float
    duration_ms: float

    def to_json(self) -> dict[str, Any]:
        """The JSON form served by the admin API."""
        return {
            "seq": self.seq,
            "time": self.time,
            "provider": self.provider,
            "method": self.method,
            "path": self.path,
            "tr_id": self.tr_id,
            "appkey": self.appkey,
            "symbol": self.symbol,
            "status": self.status,
            "error_code": self.error_code,
            "fault": self.fault,
            "fault_source": self.fault_source,
            "rate_limited": self.rate_limited,
            "latency_ms": self.latency_ms,
            "duration_ms": self.duration_ms,
        }


@dataclass
class _TokenCounts:
    issued: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)


class Recorder:
    """Thread-safe call log plus token issuance counters."""

    def __init__(self) -> None:
        """Start empty."""
        self._lock = threading.Lock()
        self._calls: list[CallRecord] = []
        self._tokens: defaultdict[str, _TokenCounts] = defaultdict(_TokenCounts)

    def record(self, ctx: CallContext, sim_time: datetime, arrived: float) -> None:
        """Append the finished call ``ctx``.

        ``arrived`` is the ``time.monotonic()`` at which the call reached the "broker", i.e.
        after the injected one-way latency (``ctx.latency_ms``); ``duration_ms`` runs from
        there, so it is the time spent at the broker, not the client's round trip.
        """
        now = time.monotonic()
        with self._lock:
            self._calls.append(
                CallRecord(
                    seq=len(self._calls) + 1,
                    time=sim_time.isoformat(),
                    mono=arrived,
                    provider=ctx.provider,
                    method=ctx.method,
                    path=ctx.path,
                    tr_id=ctx.tr_id,
                    appkey=appkey_fingerprint(ctx.appkey),
                    symbol=ctx.symbol,
                    status=ctx.status,
                    error_code=ctx.error_code,
                    fault=ctx.fault,
                    fault_source=ctx.fault_source,
                    rate_limited=ctx.rate_limited,
                    latency_ms=ctx.latency_ms,
                    duration_ms=round((now - arrived) * 1000.0, 3),
                )
            )

    def token_issued(self, provider: str, appkey: str) -> None:
        """Count a successful token answer (KIS sends the user a KakaoTalk note for each)."""
        with self._lock:
            self._tokens[provider].issued[appkey_fingerprint(appkey)] += 1

    def token_rejected(self, provider: str, appkey: str) -> None:
        """Count a throttled token request."""
        with self._lock:
            self._tokens[provider].rejected[appkey_fingerprint(appkey)] += 1

    def calls(self) -> list[CallRecord]:
        """A snapshot of the log, oldest first."""
        with self._lock:
            return list(self._calls)

    def clear(self) -> None:
        """Forget every call and counter."""
        with self._lock:
            self._calls.clear()
            self._tokens.clear()

    def stats(self) -> dict[str, Any]:
        """Aggregates for assertions: token counts, the busiest one-second window, rejections.

        Windows use the host's monotonic clock, not the simulated one, because rate limits
        are about real request pacing, and they count calls at their *arrival* (after the
        injected latency), which is what the broker's limiter sees. Every arrival counts,
        rejected or not. Token endpoints (``/oauth2/...``) are left out of the window counts
        since they are throttled separately. Per-key maps are keyed ``provider:fingerprint``
        and, for Kiwoom, also ``provider:fingerprint:api-id`` (its limits are per api-id).
        """
        calls = self.calls()
        with self._lock:
            issued = {p: dict(c.issued) for p, c in self._tokens.items() if c.issued}
            rejected = {p: dict(c.rejected) for p, c in self._tokens.items() if c.rejected}
        data_calls = [c for c in calls if not c.path.startswith("/oauth2/")]
        by_key: defaultdict[str, list[float]] = defaultdict(list)
        for call in data_calls:
            for key in _keys(call):
                by_key[key].append(call.mono)
        limited = [c for c in calls if c.rate_limited]
        outage = [c for c in calls if c.fault_source == "outage"]
        return {
            "total_calls": len(calls),
            "calls_by_provider": dict(Counter(c.provider for c in calls)),
            "errors": len([c for c in calls if c.error_code]),
            "token_issuances": issued,
            "token_rejections": rejected,
            "max_calls_in_any_1s_window": _max_in_window([c.mono for c in data_calls]),
            "max_calls_in_any_1s_window_by_key": {
                key: _max_in_window(stamps) for key, stamps in sorted(by_key.items())
            },
            "rate_limit_rejections": len(limited),
            "rate_limit_rejections_by_key": _count_by_key(limited),
            "outage_calls": len(outage),
            "outage_calls_by_key": _count_by_key(outage),
            "faults_by_source": dict(Counter(c.fault_source for c in calls if c.fault_source)),
        }


def _keys(call: CallRecord) -> list[str]:
    keys = [f"{call.provider}:{call.appkey}"]
    if call.provider == "KIWOOM":
        keys.append(f"{call.provider}:{call.appkey}:{call.tr_id}")
    return keys


def _count_by_key(calls: list[CallRecord]) -> dict[str, int]:
    counts = Counter(key for call in calls for key in _keys(call))
    return dict(sorted(counts.items()))


def _max_in_window(stamps: list[float], width: float = 1.0) -> int:
    ordered = sorted(stamps)
    best = 0
    first = 0
    for last, stamp in enumerate(ordered):
        while stamp - ordered[first] >= width:
            first += 1
        best = max(best, last - first + 1)
    return best
