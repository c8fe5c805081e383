"""Settings of the market-data services: ``[market]``, ``[archive]``, ``[collector]``,
``[sentinel]`` and ``[backfill]`` in ``apihub.toml``. Every key is listed in
``docs/configuration.md``; all have defaults, so none of these sections is required.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from apihub_core import ConfigurationError, Provider

from ._config_checks import table, unknown_keys

CollectorMode = Literal["swing", "scalp"]


@dataclass(frozen=True, slots=True)
class MarketSettings:
    """``[market]``: the trading calendar.

    ``calendar_override`` names a TOML file of days the installed calendar does not know yet
    (``[[day]] date = 2026-06-03  closed = true`` or ``open``/``close`` times).
    """

    calendar_override: Path | None = None


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    """``[archive]``: where and how the archiver stores market data.

    ``dir`` defaults to ``<data dir>/archive``; the DuckDB database is ``<dir>/<database>`` and
    the JSONL archive ``<dir>/jsonl/``. A JSONL file holds one day and at most
    ``jsonl_max_bytes``; files of days before ``compress_after_days`` days ago are gzipped.
    ``batch_max``/``batch_wait_ms`` bound one write batch; ``lock_wait_s`` is how long a reader
    (``apihub archive query``) or the archiver waits for the database's single writer slot.
    """

    dir: Path | None = None
    database: str = "market.duckdb"
    jsonl_max_bytes: int = 64 * 1024 * 1024
    compress_after_days: int = 1
    batch_max: int = 5_000
    batch_wait_ms: int = 200
    lock_wait_s: float = 30.0
    enabled: bool = True

    def root(self, data_dir: Path) -> Path:
        """The archive directory for a hub whose data directory is ``data_dir``."""
        return self.dir if self.dir is not None else data_dir / "archive"


@dataclass(frozen=True, slots=True)
class WatchEntry:
    """One ``[[collector.watch]]`` table: symbols of one provider (and account) in one mode."""

    provider: Provider
    symbols: tuple[str, ...]
    mode: CollectorMode = "swing"
    account: str | None = None


@dataclass(frozen=True, slots=True)
class CollectorSettings:
    """``[collector]``: the watchlist and the polling cadence.

    ``swing_interval_s`` is the pause between polls of every swing symbol's latest minute
    bars; each poll re-reads ``swing_overlap_bars`` bars before the newest one it has, so a
    bar still forming at one poll is read again complete at the next. ``scalp_interval_s`` is
    the cadence of scalp symbols' current price. A cycle is skipped (and recorded) when the
    previous one is still running or more than ``max_in_flight`` requests are outstanding.
    Without a watchlist, :data:`DEMO_WATCHLIST` is watched on the simulator's demo account
    (``Settings.watchlist``).
    """

    watch: tuple[WatchEntry, ...] = ()
    swing_interval_s: float = 150.0
    swing_overlap_bars: int = 5
    scalp_interval_s: float = 1.0
    request_timeout_s: float = 20.0
    max_in_flight: int = 64
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class SentinelSettings:
    """``[sentinel]``: when a missing bar becomes a gap and how it is healed.

    A minute bar is missing once ``grace_s`` have passed since it ended without it reaching the
    archive; the sentinel looks back ``lookback_days`` trading days. A backfill that fails is
    asked again after ``retry_backoff_s[attempt]`` (the last value repeats) up to
    ``max_attempts``; bars the broker answered without ``confirm_empty_after`` times in a row
    become ``confirmed_empty``. ``chunk_ttl_s`` bounds the claim on a page in flight.
    """

    grace_s: float = 180.0
    scan_interval_s: float = 15.0
    lookback_days: int = 5
    retry_backoff_s: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0)
    max_attempts: int = 8
    confirm_empty_after: int = 2
    chunk_ttl_s: float = 300.0
    check_daily: bool = True
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class BackfillSettings:
    """``[backfill]``: how a backfill job submits its chunks.

    At most ``max_in_flight`` chunk requests are outstanding per job; each waits up to
    ``request_timeout_s`` (a backfill request queues behind every other class).
    """

    max_in_flight: int = 32
    request_timeout_s: float = 300.0
    chunk_ttl_s: float = 600.0


DEMO_WATCHLIST: tuple[WatchEntry, ...] = (
    WatchEntry(Provider.KIS, ("005930", "000660", "035720", "035420", "005380"), "swing"),
    WatchEntry(Provider.KIS, ("005930",), "scalp"),
)
"""What the collector watches (and the sentinel keeps complete) when no watchlist is
configured and the KIS default account is the simulator's demo account."""

_WATCH_KEYS = frozenset({"provider", "symbols", "mode", "account"})


def watch_entries(raw: object, where: str) -> tuple[WatchEntry, ...]:
    """Parse ``[[collector.watch]]`` tables, refusing what would be silently ignored."""
    if not isinstance(raw, list):
        raise ConfigurationError(f"{where} must be an array of tables ([[collector.watch]])")
    entries: list[WatchEntry] = []
    for number, item in enumerate(raw, start=1):
        here = f"{where} #{number}"
        spec = table(item, here)
        unknown_keys(spec, _WATCH_KEYS, here)
        try:
            provider = Provider.parse(str(spec.get("provider", "")))
        except ValueError as exc:
            raise ConfigurationError(f"{here}: {exc}") from None
        symbols = spec.get("symbols")
        if (
            not isinstance(symbols, list)
            or not symbols
            or not all(isinstance(s, str) and s.strip() for s in symbols)
        ):
            raise ConfigurationError(f"{here}: symbols must be a non-empty list of codes")
        mode = spec.get("mode", "swing")
        if mode not in ("swing", "scalp"):
            raise ConfigurationError(f"{here}: mode must be 'swing' or 'scalp', not {mode!r}")
        account = spec.get("account")
        if account is not None and not isinstance(account, str):
            raise ConfigurationError(f"{here}: account must be a string")
        entries.append(
            WatchEntry(
                provider=provider,
                symbols=tuple(s.strip() for s in symbols),
                mode=mode,
                account=account,
            )
        )
    return tuple(entries)


def collector_settings(doc: Mapping[str, Any], source: str) -> CollectorSettings:
    """``[collector]`` with its ``[[collector.watch]]`` tables."""
    spec = dict(doc.get("collector", {}))
    watch = watch_entries(spec.pop("watch", []), f"{source}: [[collector.watch]]")
    unknown_keys(spec, set(CollectorSettings.__dataclass_fields__) - {"watch"}, "[collector]")
    try:
        tuning = msgspec.convert(spec, type=CollectorSettings)
    except msgspec.ValidationError as exc:
        raise ConfigurationError(f"bad [collector] settings: {exc}") from None
    return CollectorSettings(
        watch=watch,
        swing_interval_s=tuning.swing_interval_s,
        swing_overlap_bars=tuning.swing_overlap_bars,
        scalp_interval_s=tuning.scalp_interval_s,
        request_timeout_s=tuning.request_timeout_s,
        max_in_flight=tuning.max_in_flight,
        enabled=tuning.enabled,
    )


__all__ = [
    "DEMO_WATCHLIST",
    "ArchiveSettings",
    "BackfillSettings",
    "CollectorMode",
    "CollectorSettings",
    "MarketSettings",
    "SentinelSettings",
    "WatchEntry",
    "collector_settings",
    "watch_entries",
]
