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

The windows' sort is most of a merge's cost, and most bars do not need it. A bar observed once
in the batch has a known answer: without a stored version it is new (revision 1, its own
values); with one, the single comparison with that version decides (a join). Only bars observed
more than once go through the windows, and a batch of new bars only (a quick probe says so)
skips the joins too. New versions are added with a plain ``INSERT`` (their keys are known to be
absent: no replace), and the JSONL lines come back as one Arrow string column whose buffer
already holds each day's lines back to back, so no line becomes a Python object.
"""

# The SQL below is built from this module's own constants only (table names), never from input.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import date, datetime
from operator import attrgetter
from typing import Any, Final

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

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
_BATCH_FIELDS: Final = ("seq", "entry", "fresh")
_CANDLE_FIELDS: Final = tuple(name for name in _OBS_SCHEMA.names if name not in _BATCH_FIELDS)

_KEY: Final = "provider, symbol, interval, ts"
_ARROW_ROWS: Final = 1_000_000
"""Rows per Arrow batch of the lines (fewer, longer slices per day)."""
_ON: Final = " AND ".join(f"{{a}}.{name} = {{b}}.{name}" for name in _KEY.split(", "))

# ``ts`` arrives as UTC (Arrow's reading of aware datetimes); + 9 h is the KST wall time.
#
# Three kinds of bar, by what the batch holds of it: observed once and not stored (*new*: its
# observation is revision 1), observed once and stored (*paired*: the observation against the
# stored version, one join), observed more than once (the windows, in ``seq`` order). The first
# two give what the windows would for such a bar. ``{multi}`` is 1, or 0 to send every bar
# through the windows (the reference the tests compare the other two with).
_VERSIONS_SQL: Final = f"""
CREATE OR REPLACE TEMP TABLE {_VER} AS
WITH obs AS (
    SELECT seq, entry, provider, symbol, interval, ts + INTERVAL 9 HOUR AS ts,
           open, high, low, close, volume, value, source_type, lineage
    FROM {_OBS} WHERE fresh
),
stored AS (
    SELECT c.provider, c.symbol, c.interval, c.ts, c.source_entry AS entry,
           c.open, c.high, c.low, c.close, c.volume, c.value, c.source_type, c.lineage,
           c.revision AS base
    FROM candles c SEMI JOIN obs k ON {_ON.format(a="c", b="k")}
),
multi AS (
    SELECT {_KEY} FROM obs GROUP BY ALL HAVING count(*) > {{multi}}
),
single AS (
    SELECT o.*, s.base, s.entry AS s_entry, s.open AS s_open, s.high AS s_high,
           s.low AS s_low, s.close AS s_close, s.volume AS s_volume, s.value AS s_value,
           s.source_type AS s_source_type, s.lineage AS s_lineage,
           coalesce(o.value, s.value) AS eff_value
    FROM (SELECT * FROM obs o ANTI JOIN multi m ON {_ON.format(a="o", b="m")}) o
    LEFT JOIN stored s ON {_ON.format(a="o", b="s")}
),
paired AS (
    SELECT * FROM single
    WHERE base IS NOT NULL AND (
        s_close IS DISTINCT FROM close OR s_volume IS DISTINCT FROM volume
        OR s_high IS DISTINCT FROM high OR s_low IS DISTINCT FROM low
        OR s_open IS DISTINCT FROM open OR s_value IS DISTINCT FROM eff_value
    )
),
rows AS (
    SELECT s.*, -1::BIGINT AS seq, true AS is_stored
    FROM stored s SEMI JOIN multi m ON {_ON.format(a="s", b="m")}
    UNION ALL BY NAME
    SELECT o.*, NULL::INTEGER AS base, false AS is_stored
    FROM obs o SEMI JOIN multi m ON {_ON.format(a="o", b="m")}
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
        (base_revision + sum(changed::INTEGER) OVER upto)::INTEGER AS revision,
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
SELECT seq, entry, {_KEY}, open, high, low, close, volume, eff_value, source_type, lineage,
    revision, changed, is_stored, existed, false AS fast,
    CASE WHEN next_entry IS NULL THEN NULL ELSE revision + 1 END AS next_revision,
    next_lineage, next_entry
FROM versions
WHERE touched AND (changed OR is_stored)
UNION ALL
SELECT seq, entry, {_KEY}, open, high, low, close, volume, value, source_type, lineage,
    1, true, false, false, true, NULL, NULL, NULL
FROM single WHERE base IS NULL
UNION ALL
SELECT seq, entry, {_KEY}, open, high, low, close, volume, eff_value, source_type, lineage,
    base + 1, true, false, true, false, NULL, NULL, NULL
FROM paired
UNION ALL
SELECT -1, s_entry, {_KEY}, s_open, s_high, s_low, s_close, s_volume, s_value, s_source_type,
    s_lineage, base, false, true, true, false, base + 1, lineage, entry
FROM paired
"""

# Whether the batch has any bar that is stored or observed more than once: without one, every
# bar is new and the versions are the observations themselves (no join, no window).
_PROBE_SQL: Final = f"""
WITH obs AS (
    SELECT provider, symbol, interval, ts + INTERVAL 9 HOUR AS ts FROM {_OBS} WHERE fresh
)
SELECT EXISTS (SELECT 1 FROM candles c SEMI JOIN obs k ON {_ON.format(a="c", b="k")})
    OR EXISTS (SELECT {_KEY} FROM obs GROUP BY ALL HAVING count(*) > 1)
"""

_NEW_SQL: Final = f"""
CREATE OR REPLACE TEMP TABLE {_VER} AS
SELECT seq, entry, provider, symbol, interval, ts + INTERVAL 9 HOUR AS ts,
    open, high, low, close, volume, value AS eff_value, source_type, lineage,
    1::INTEGER AS revision, true AS changed, false AS is_stored, false AS existed, true AS fast,
    NULL::INTEGER AS next_revision, NULL::VARCHAR AS next_lineage, NULL::VARCHAR AS next_entry
FROM {_OBS} WHERE fresh
"""

# Ordered by day, then stream order: each day's lines are then one run of the column, in the
# order the day's files receive them (where a line lands depends on its day only). One
# ``concat`` rather than a chain of ``||``: no intermediate string per operand (40 % faster).
_LINES_SQL: Final = f"""
SELECT ts::DATE AS day,
    concat(
        '{{"provider":', to_json(provider), ',"symbol":', to_json(symbol),
        ',"interval":', to_json(interval),
        ',"ts":"', strftime(ts, '%Y-%m-%dT%H:%M:%S'),
        CASE WHEN microsecond(ts) % 1000000 = 0 THEN ''
             ELSE '.' || lpad((microsecond(ts) % 1000000)::VARCHAR, 6, '0') END,
        '+09:00","open":', open, ',"high":', high, ',"low":', low,
        ',"close":', close, ',"volume":', volume,
        ',"value":', coalesce(eff_value::VARCHAR, 'null'),
        ',"source_type":', to_json(source_type), ',"lineage":', to_json(lineage),
        ',"revision":', revision, ',"source_entry":', to_json(entry), '}}', chr(10)
    ) AS line
FROM {_VER} WHERE changed ORDER BY day, seq
"""

_STORE_COLUMNS: Final = """
    (provider, symbol, interval, ts, open, high, low, close, volume, value, source_type,
     lineage, revision, source_entry)
SELECT provider, symbol, interval, ts, open, high, low, close, volume, eff_value, source_type,
       lineage, revision, entry
"""

# A bar no stored version exists for gets a plain INSERT: the primary key is still checked,
# but without the delete-and-insert of a replace.
_STORE_NEW_SQL: Final = f"""
INSERT INTO candles {_STORE_COLUMNS}
FROM {_VER} WHERE changed AND next_revision IS NULL AND NOT existed
"""

_STORE_REVISED_SQL: Final = f"""
INSERT OR REPLACE INTO candles {_STORE_COLUMNS}
FROM {_VER} WHERE changed AND next_revision IS NULL AND existed
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

# A fast row is a key of its own (new, observed once), so only the others need DISTINCT (in
# subqueries, so that only their rows are hashed).
_TOTALS_SQL: Final = f"""
SELECT
    count(*) FILTER (WHERE fast)
        + (SELECT count(DISTINCT ({_KEY})) FROM {_VER} WHERE NOT fast AND NOT existed),
    (SELECT count(DISTINCT ({_KEY})) FROM {_VER} WHERE existed),
    count(*) FILTER (WHERE changed),
    count(*) FILTER (WHERE next_revision IS NOT NULL)
FROM {_VER}
"""

_COVERAGE_SQL: Final = f"""
WITH obs AS (
    SELECT seq, entry, provider, symbol, interval, source_type, lineage,
           ts + INTERVAL 9 HOUR AS ts
    FROM {_OBS}
),
effects AS (
    SELECT provider, symbol, interval, source_type,
           count(*) FILTER (WHERE created) AS inserted,
           count(*) FILTER (WHERE revised AND NOT created) AS revised
    FROM (
        SELECT provider, symbol, interval, source_type, ts,
               bool_or(revision = 1) AS created, bool_or(revision > 1) AS revised
        FROM {_VER} WHERE changed AND NOT fast
        GROUP BY ALL
        UNION ALL
        -- A fast row is the only change of its bar: created, never revised.
        SELECT provider, symbol, interval, source_type, ts, true, false
        FROM {_VER} WHERE fast
    )
    GROUP BY ALL
),
lineages AS (
    SELECT provider, symbol, interval, source_type, list(lineage ORDER BY first_seq) AS lineage
    FROM (
        SELECT provider, symbol, interval, source_type, lineage, min(seq) AS first_seq
        FROM obs GROUP BY ALL
    )
    GROUP BY ALL
),
groups AS (
    SELECT provider, symbol, interval, source_type,
           list_sort(list_distinct(list(epoch_us(ts)))) AS bars,
           arg_max(entry, seq) AS last_entry
    FROM obs GROUP BY ALL
)
SELECT g.provider, g.symbol, g.interval, g.source_type, g.bars,
    coalesce(e.inserted, 0), coalesce(e.revised, 0), l.lineage, g.last_entry
FROM groups g
LEFT JOIN effects e USING (provider, symbol, interval, source_type)
LEFT JOIN lineages l USING (provider, symbol, interval, source_type)
ORDER BY g.provider, g.symbol, g.interval, g.source_type
"""


def observations_table(batch: Sequence[tuple[str, bool, Sequence[Candle]]]) -> pa.Table:
    """The Arrow table of a batch's candles: per entry (in stream order) its id, whether it is
    fresh (not applied before) and its candles."""
    entries: list[str] = []
    fresh: list[bool] = []
    candles: list[Candle] = []
    for entry_id, is_fresh, bars in batch:
        count = len(bars)
        entries += [entry_id] * count
        fresh += [is_fresh] * count
        candles += bars
    # Column by column, each a C-level pass over the candles (one Python loop per row would
    # cost more than the whole merge in DuckDB).
    columns: dict[str, Sequence[Any]] = {
        name: list(map(attrgetter(name), candles)) for name in _CANDLE_FIELDS
    }
    moments = columns.pop("ts")
    if None in map(attrgetter("tzinfo"), moments):
        moments = [m if m.tzinfo is not None else m.replace(tzinfo=KST) for m in moments]
    columns.update(seq=range(len(candles)), entry=entries, fresh=fresh)
    arrays = {name: pa.array(columns[name], type=_OBS_SCHEMA.field(name).type) for name in columns}
    arrays["ts"] = _timestamps(moments)
    return pa.table([arrays[name] for name in _OBS_SCHEMA.names], schema=_OBS_SCHEMA)


def _timestamps(moments: Sequence[datetime]) -> pa.Array:
    """``moments`` as an Arrow timestamp column. The symbols of a batch share their bar starts,
    so each distinct one is converted once (Arrow's conversion asks every aware datetime for
    its offset, three times the cost of a dictionary lookup)."""
    number: dict[datetime, int] = {}
    index = [number.setdefault(moment, len(number)) for moment in moments]
    distinct = pa.array(list(number), type=_OBS_SCHEMA.field("ts").type)
    return distinct.take(pa.array(index, type=pa.int32()))


def _arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """A query's rows as an Arrow table (``fetch_arrow_table`` before DuckDB 1.4)."""
    relation: Any = con.sql(sql)
    if hasattr(relation, "to_arrow_table"):
        return relation.to_arrow_table(_ARROW_ROWS)
    return relation.fetch_arrow_table(_ARROW_ROWS)


class CandleMerge:
    """One batch's candles in DuckDB: :meth:`run` before the transaction (the versions and the
    JSONL lines), :meth:`store` inside it, :meth:`coverage` and the totals after :meth:`run`.

    ``fast=False`` sends every bar through the windows (the reference the fast path is tested
    against).
    """

    def __init__(
        self, con: duckdb.DuckDBPyConnection, table: pa.Table, fresh: int, *, fast: bool = True
    ) -> None:
        self._con = con
        self._table = table
        self._fresh = fresh
        self._fast = fast
        self.inserted = self.revised = self.unchanged = 0
        self._superseded = 0
        self.lines: list[tuple[date, memoryview, int]] = []
        """Per day (ascending): its new lines back to back, and how many."""
        self.coverage_rows: list[tuple[Any, ...]] = []

    def run(self) -> None:
        """Merge (see the module docstring) and read the new versions' JSONL lines and the
        batch's coverage."""
        con = self._con
        con.register(_OBS, self._table)
        if not self._fast:
            con.execute(_VERSIONS_SQL.format(multi=0))
        else:
            found = con.execute(_PROBE_SQL).fetchone()
            con.execute(_VERSIONS_SQL.format(multi=1) if found and found[0] else _NEW_SQL)
        self.lines = _day_runs(_arrow(con, _LINES_SQL))
        totals = con.execute(_TOTALS_SQL).fetchone()
        inserted, revised, changed, superseded = totals if totals else (0, 0, 0, 0)
        self.inserted, self.revised = int(inserted), int(revised)
        self.unchanged = self._fresh - int(changed)
        self._superseded = int(superseded or 0)
        self.coverage_rows = con.execute(_COVERAGE_SQL).fetchall()

    def store(self) -> None:
        """Write the new versions and the superseded ones (inside the batch's transaction)."""
        if self.inserted:
            self._con.execute(_STORE_NEW_SQL)
        if self.revised:
            self._con.execute(_STORE_REVISED_SQL)
        if self._superseded:
            self._con.execute(_SUPERSEDED_SQL)

    def close(self) -> None:
        """Drop the batch's temporary table and view (after a failure too)."""
        with contextlib.suppress(duckdb.Error):
            self._con.execute(f"DROP TABLE IF EXISTS {_VER}")
        with contextlib.suppress(duckdb.Error):
            self._con.unregister(_OBS)


def _day_runs(table: pa.Table) -> list[tuple[date, memoryview, int]]:
    """The ``(day, line)`` rows, ordered by day, as one slice of the line buffer per day."""
    runs: list[tuple[date, memoryview, int]] = []
    for batch in table.to_batches():
        if not batch.num_rows:
            continue
        days, lines = batch.column(0), batch.column(1)
        encoded = pc.run_end_encode(days)
        ends = encoded.run_ends.to_pylist()
        _validity, offsets, data = lines.buffers()
        width = pa.int64() if pa.types.is_large_string(lines.type) else pa.int32()
        starts = pa.Array.from_buffers(width, len(lines) + 1, [None, offsets], offset=lines.offset)
        bounds = pc.take(starts, pa.array([0, *ends])).to_pylist()
        view = memoryview(data)
        start = 0
        for n, (end, day) in enumerate(zip(ends, encoded.values.to_pylist(), strict=True)):
            runs.append((day, view[bounds[n] : bounds[n + 1]], end - start))
            start = end
    # A day may straddle two record batches: its runs stay in order, one after the other.
    return runs
