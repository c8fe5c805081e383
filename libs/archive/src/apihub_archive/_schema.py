"""The archive's DuckDB schema (version 1), in one place.

Times of market data (``ts``) are DuckDB ``TIMESTAMP`` values holding the **naive KST wall
time** (``2026-12-02 09:00:00`` is the 09:00 bar in Seoul): Korea has no daylight saving, so the
wall time is unambiguous, and SQL such as ``ts::DATE`` or ``hour(ts)`` gives the Korean trading
day and hour without a time-zone setting. A bar's ``ts`` is its start (a daily bar: 00:00 of its
day). Prices and volumes are ``BIGINT`` (whole KRW, shares); ``value`` (traded KRW) is ``NULL``
when no answer said it.

The schema only grows: columns are appended (with defaults) and tables added, and
``schema_version`` says which version wrote the file, so users' SQL keeps working.
"""

from __future__ import annotations

from typing import Final

SCHEMA_VERSION: Final = 1

CANDLE_KEY: Final = ("provider", "symbol", "interval", "ts")
CANDLE_VALUES: Final = ("open", "high", "low", "close", "volume", "value")
CANDLE_COLUMNS: Final = (
    *CANDLE_KEY,
    *CANDLE_VALUES,
    "source_type",
    "lineage",
    "revision",
    "source_entry",
)
REVISION_COLUMNS: Final = (
    *CANDLE_COLUMNS,
    "superseded_by_revision",
    "superseded_by_lineage",
    "superseded_by_entry",
)
TICK_COLUMNS: Final = (
    "provider",
    "symbol",
    "ts",
    "seq",
    "price",
    "volume",
    "source_type",
    "lineage",
    "source_entry",
)
SNAPSHOT_COLUMNS: Final = (
    "provider",
    "symbol",
    "ts",
    "price",
    "open",
    "high",
    "low",
    "cum_volume",
    "cum_value",
    "change",
    "source_type",
    "lineage",
    "source_entry",
)

DDL: Final = (
    """
    CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS candles (
        provider VARCHAR NOT NULL,
        symbol VARCHAR NOT NULL,
        interval VARCHAR NOT NULL,
        ts TIMESTAMP NOT NULL,
        open BIGINT NOT NULL,
        high BIGINT NOT NULL,
        low BIGINT NOT NULL,
        close BIGINT NOT NULL,
        volume BIGINT NOT NULL,
        value BIGINT,
        source_type VARCHAR NOT NULL,
        lineage VARCHAR NOT NULL,
        revision INTEGER NOT NULL,
        source_entry VARCHAR NOT NULL,
        PRIMARY KEY (provider, symbol, interval, ts)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS candle_revisions (
        provider VARCHAR NOT NULL,
        symbol VARCHAR NOT NULL,
        interval VARCHAR NOT NULL,
        ts TIMESTAMP NOT NULL,
        open BIGINT NOT NULL,
        high BIGINT NOT NULL,
        low BIGINT NOT NULL,
        close BIGINT NOT NULL,
        volume BIGINT NOT NULL,
        value BIGINT,
        source_type VARCHAR NOT NULL,
        lineage VARCHAR NOT NULL,
        revision INTEGER NOT NULL,
        source_entry VARCHAR NOT NULL,
        superseded_by_revision INTEGER NOT NULL,
        superseded_by_lineage VARCHAR NOT NULL,
        superseded_by_entry VARCHAR NOT NULL,
        PRIMARY KEY (provider, symbol, interval, ts, revision)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS ticks (
        provider VARCHAR NOT NULL,
        symbol VARCHAR NOT NULL,
        ts TIMESTAMP NOT NULL,
        seq INTEGER NOT NULL,
        price BIGINT NOT NULL,
        volume BIGINT NOT NULL,
        source_type VARCHAR NOT NULL,
        lineage VARCHAR NOT NULL,
        source_entry VARCHAR NOT NULL,
        PRIMARY KEY (provider, symbol, ts, seq)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS snapshots (
        provider VARCHAR NOT NULL,
        symbol VARCHAR NOT NULL,
        ts TIMESTAMP NOT NULL,
        price BIGINT NOT NULL,
        open BIGINT NOT NULL,
        high BIGINT NOT NULL,
        low BIGINT NOT NULL,
        cum_volume BIGINT NOT NULL,
        cum_value BIGINT,
        change BIGINT NOT NULL,
        source_type VARCHAR NOT NULL,
        lineage VARCHAR NOT NULL,
        source_entry VARCHAR NOT NULL,
        PRIMARY KEY (provider, symbol, ts)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS quarantine (
        source_entry VARCHAR PRIMARY KEY,
        request_id VARCHAR NOT NULL,
        provider VARCHAR NOT NULL,
        tr_id VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,
        detail VARCHAR NOT NULL,
        body BLOB NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS archive_sources (
        entry VARCHAR PRIMARY KEY,
        request_id VARCHAR NOT NULL,
        outcome VARCHAR NOT NULL,
        candles INTEGER NOT NULL,
        ticks INTEGER NOT NULL,
        snapshots INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS archive_files (
        path VARCHAR PRIMARY KEY,
        kind VARCHAR NOT NULL,
        day DATE NOT NULL,
        part INTEGER NOT NULL,
        bytes BIGINT NOT NULL,
        lines BIGINT NOT NULL
    )
    """,
)
"""Every table, created if missing (a new archive, or an older one gaining a table)."""

TABLES: Final = (
    "candles",
    "candle_revisions",
    "ticks",
    "snapshots",
    "quarantine",
    "archive_sources",
    "archive_files",
    "schema_version",
)
"""Every table of the archive, in the order ``apihub archive stats`` lists them."""

EXPORT_TABLES: Final = ("candles", "candle_revisions", "ticks", "snapshots", "quarantine")
"""What ``export_parquet`` writes unless told otherwise: the market data and the quarantine."""

ORDER_BY: Final = {
    "candles": "provider, symbol, interval, ts",
    "candle_revisions": "provider, symbol, interval, ts, revision",
    "ticks": "provider, symbol, ts, seq",
    "snapshots": "provider, symbol, ts",
    "quarantine": "source_entry",
    "archive_sources": "entry",
    "archive_files": "path",
    "schema_version": "version",
}
"""The primary-key order each table is exported in (so an export is reproducible)."""
