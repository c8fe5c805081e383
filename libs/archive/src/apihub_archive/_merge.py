"""The candle side of a batch, merged inside DuckDB: the correction rule as window functions.

Python hands DuckDB the batch's observations as one Arrow table (``seq`` is the stream order:
entry order, then the order inside the answer) and DuckDB does the rest in parallel, off the
GIL: it reads the stored version of every bar touched, applies the rule (see ``_store``), and
yields the new versions, the superseded ones, the JSONL lines (formatted in SQL, in ``seq``
order) and the coverage of the batch. For one bar, in ``seq`` order, starting from the stored
version (``seq`` −1):

- ``eff_value`` is the last ``value`` that is not ``NULL`` so far (a value an observation does
  not know is the current version's);
- an observation *changes* the bar when any of open, high, low, close, volume, ``eff_value``
  differs from the observation before it (whose values are the current version's: it either
  was that version or repeated it), or when there is nothing before it;
- ``revision`` is the stored revision (0 without one) plus the changes so far.
"""

# The SQL below is built from this module's own constants only (table names), never from input.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import date
from typing import Any, Final

import duckdb
import pyarrow as pa

from apihub_marketdata import KST, Candle

_OBS: Final = "_archive_obs"
_VER: Final = "_archive_versions"

_OBS_SCHEMA: Final = pa.schema(
    [
        ("seq", pa.int64()),
        ("entry", pa.string()),
        ("fresh", pa.bool_()),
        ("provider", pa.string()),
        ("symbol", pa.string()),
        ("interval", pa.string()),
        ("ts", pa.timestamp("us")),
        ("open", pa.int64()),
        ("high", pa.int64()),
        ("low", pa.int64()),
        ("close", pa.int64()),
        ("volume", pa.int64()),
        ("value", pa.int64()),
        ("source_type", pa.string()),
        ("lineage", pa.string()),
    ]
)

_KEY: Final = "provider, symbol, interval, ts"

# ``ts`` arrives as UTC (Arrow's reading of aware datetimes); + 9 h is the KST wall time.
_VERSIONS_SQL: Final = f"""
CREATE OR REPLACE TEMP TABLE {_VER} AS
WITH obs AS (
    SELECT seq, entry, provider, symbol, interval, ts + INTERVAL 9 HOUR AS ts,
           open, high, low, close, volume, value, source_type, lineage
    FROM {_OBS} WHERE fresh
),
keys AS (SELECT DISTINCT {_KEY} FROM obs),
stored AS (
    SELECT c.provider, c.symbol, c.interval, c.ts, -1::BIGINT AS seq, c.source_entry AS entry,
           c.open, c.high, c.low, c.close, c.volume, c.value, c.source_type, c.lineage,
           c.revision AS base, true AS is_stored
    FROM candles c JOIN keys k
      ON c.provider = k.provider AND c.symbol = k.symbol AND c.interval = k.interval
     AND c.ts = k.ts
),
rows AS (
    SELECT * FROM stored
    UNION ALL BY NAME
    SELECT *, NULL::INTEGER AS base, false AS is_stored FROM obs
),
marked AS (
    SELECT *,
        NOT is_stored AND (
            lag(seq) OVER w IS NULL
            OR lag(close) OVER w IS DISTINCT FROM close
            OR lag(volume) OVER w IS DISTINCT FROM volume
            OR lag(high) OVER w IS DISTINCT FROM high
            OR lag(low) OVER w IS DISTINCT FROM low
            OR lag(open) OVER w IS DISTINCT FROM open
            OR last_value(value IGNORE NULLS) OVER before IS DISTINCT FROM eff_value
        ) AS changed
    FROM (
        SELECT *,
            last_value(value IGNORE NULLS) OVER upto AS eff_value,
            coalesce(first_value(base) OVER upto, 0) AS base_revision,
            first_value(is_stored) OVER upto AS existed
        FROM rows
        WINDOW upto AS (
            PARTITION BY {_KEY} ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        )
    )
    WINDOW w AS (PARTITION BY {_KEY} ORDER BY seq),
           before AS (
               PARTITION BY {_KEY} ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
           )
),
versions AS (
    SELECT *,
        base_revision + sum(changed::INTEGER) OVER upto AS revision,
        sum(changed::INTEGER) OVER whole > 0 AS touched,
        first_value(CASE WHEN changed THEN lineage END IGNORE NULLS) OVER after AS next_lineage,
        first_value(CASE WHEN changed THEN entry END IGNORE NULLS) OVER after AS next_entry
    FROM marked
    WINDOW upto AS (
               PARTITION BY {_KEY} ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
           ),
           whole AS (
               PARTITION BY {_KEY} ORDER BY seq
               ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
           ),
           after AS (
               PARTITION BY {_KEY} ORDER BY seq ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING
           )
)
SELECT *,
    CASE WHEN next_entry IS NULL THEN NULL ELSE revision + 1 END AS next_revision
FROM versions
WHERE touched AND (changed OR is_stored)
"""

_LINES_SQL: Final = f"""
SELECT ts::DATE AS day,
    '{{"provider":' || to_json(provider) || ',"symbol":' || to_json(symbol)
    || ',"interval":' || to_json(interval)
    || ',"ts":"' || strftime(ts, '%Y-%m-%dT%H:%M:%S')
    || CASE WHEN microsecond(ts) % 1000000 = 0 THEN ''
            ELSE '.' || lpad((microsecond(ts) % 1000000)::VARCHAR, 6, '0') END
    || '+09:00","open":' || open || ',"high":' || high || ',"low":' || low
    || ',"close":' || close || ',"volume":' || volume
    || ',"value":' || coalesce(eff_value::VARCHAR, 'null')
    || ',"source_type":' || to_json(source_type) || ',"lineage":' || to_json(lineage)
    || ',"revision":' || revision || ',"source_entry":' || to_json(entry) || '}}' AS line
FROM {_VER} WHERE changed ORDER BY seq
"""

_STORE_SQL: Final = f"""
INSERT OR REPLACE INTO candles
    (provider, symbol, interval, ts, open, high, low, close, volume, value, source_type,
     lineage, revision, source_entry)
SELECT provider, symbol, interval, ts, open, high, low, close, volume, eff_value, source_type,
       lineage, revision, entry
FROM {_VER} WHERE changed AND next_revision IS NULL
"""

_SUPERSEDED_SQL: Final = f"""
INSERT INTO candle_revisions
    (provider, symbol, interval, ts, open, high, low, close, volume, value, source_type,
     lineage, revision, source_entry, superseded_by_revision, superseded_by_lineage,
     superseded_by_entry)
SELECT provider, symbol, interval, ts, open, high, low, close, volume, eff_value, source_type,
       lineage, revision, entry, next_revision, next_lineage, next_entry
FROM {_VER} WHERE next_revision IS NOT NULL
"""

_TOTALS_SQL: Final = f"""
SELECT
    count(DISTINCT ({_KEY})) FILTER (WHERE NOT existed),
    count(DISTINCT ({_KEY})) FILTER (WHERE existed),
    count(*) FILTER (WHERE changed)
FROM {_VER}
"""

_COVERAGE_SQL: Final = f"""
WITH obs AS (
    SELECT seq, entry, provider, symbol, interval, source_type, lineage,
           ts + INTERVAL 9 HOUR AS ts
    FROM {_OBS}
),
effects AS (
    SELECT provider, symbol, interval, source_type, ts,
           bool_or(revision = 1) AS created, bool_or(revision > 1) AS revised
    FROM {_VER} WHERE changed
    GROUP BY ALL
),
lineages AS (
    SELECT provider, symbol, interval, source_type, lineage, min(seq) AS first_seq
    FROM obs GROUP BY ALL
),
groups AS (
    SELECT provider, symbol, interval, source_type,
           list_sort(list_distinct(list(epoch_us(ts)))) AS bars,
           arg_max(entry, seq) AS last_entry
    FROM obs GROUP BY ALL
)
SELECT g.provider, g.symbol, g.interval, g.source_type, g.bars,
    (SELECT count(*) FROM effects e
      WHERE (e.provider, e.symbol, e.interval, e.source_type)
          = (g.provider, g.symbol, g.interval, g.source_type) AND e.created),
    (SELECT count(*) FROM effects e
      WHERE (e.provider, e.symbol, e.interval, e.source_type)
          = (g.provider, g.symbol, g.interval, g.source_type) AND e.revised AND NOT e.created),
    (SELECT list(l.lineage ORDER BY l.first_seq) FROM lineages l
      WHERE (l.provider, l.symbol, l.interval, l.source_type)
          = (g.provider, g.symbol, g.interval, g.source_type)),
    g.last_entry
FROM groups g
ORDER BY g.provider, g.symbol, g.interval, g.source_type
"""


def observations_table(batch: Sequence[tuple[str, bool, Sequence[Candle]]]) -> pa.Table:
    """The Arrow table of a batch's candles: per entry (in stream order) its id, whether it is
    fresh (not applied before) and its candles."""
    columns: list[list[Any]] = [[] for _ in range(15)]
    (seq, entry, fresh, provider, symbol, interval, ts, open_, high, low, close, volume,
     value, source_type, lineage) = columns  # fmt: skip
    number = 0
    for entry_id, is_fresh, candles in batch:
        count = len(candles)
        seq.extend(range(number, number + count))
        number += count
        entry.extend([entry_id] * count)
        fresh.extend([is_fresh] * count)
        for c in candles:
            provider.append(c.provider)
            symbol.append(c.symbol)
            interval.append(c.interval)
            moment = c.ts
            ts.append(moment if moment.tzinfo is not None else moment.replace(tzinfo=KST))
            open_.append(c.open)
            high.append(c.high)
            low.append(c.low)
            close.append(c.close)
            volume.append(c.volume)
            value.append(c.value)
            source_type.append(c.source_type)
            lineage.append(c.lineage)
    return pa.table(
        [pa.array(data, type=field.type) for data, field in zip(columns, _OBS_SCHEMA, strict=True)],
        schema=_OBS_SCHEMA,
    )


class CandleMerge:
    """One batch's candles in DuckDB: :meth:`run` before the transaction (the versions and the
    JSONL lines), :meth:`store` inside it, :meth:`coverage` and the totals after :meth:`run`."""

    def __init__(self, con: duckdb.DuckDBPyConnection, table: pa.Table, fresh: int) -> None:
        self._con = con
        self._table = table
        self._fresh = fresh
        self.inserted = self.revised = self.unchanged = 0
        self.lines: list[tuple[date, bytes]] = []
        self.coverage_rows: list[tuple[Any, ...]] = []

    def run(self) -> None:
        """Merge (see the module docstring) and read the new versions' JSONL lines and the
        batch's coverage."""
        con = self._con
        con.register(_OBS, self._table)
        con.execute(_VERSIONS_SQL)
        self.lines = [
            (day, line.encode() + b"\n") for day, line in con.execute(_LINES_SQL).fetchall()
        ]
        totals = con.execute(_TOTALS_SQL).fetchone()
        inserted, revised, changed = totals if totals else (0, 0, 0)
        self.inserted, self.revised = int(inserted), int(revised)
        self.unchanged = self._fresh - int(changed)
        self.coverage_rows = con.execute(_COVERAGE_SQL).fetchall()

    def store(self) -> None:
        """Write the new versions and the superseded ones (inside the batch's transaction)."""
        self._con.execute(_STORE_SQL)
        self._con.execute(_SUPERSEDED_SQL)

    def close(self) -> None:
        """Drop the batch's temporary table and view (after a failure too)."""
        with contextlib.suppress(duckdb.Error):
            self._con.execute(f"DROP TABLE IF EXISTS {_VER}")
        with contextlib.suppress(duckdb.Error):
            self._con.unregister(_OBS)
