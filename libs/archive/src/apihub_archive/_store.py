"""The archive's one writer: normalised market data into DuckDB and the JSONL archive.

A batch is a list of items, each the projection of one stream entry: an
:class:`Observation` (what a broker answer held) or a :class:`Rejection` (an answer that could
not be normalised). :meth:`ArchiveStore.write` applies it as one transaction:

1. entries already applied (``archive_sources``) change nothing — they are only reported again,
   so a redelivered entry's ``archive.written`` can be re-sent;
2. the others are applied **in stream order** (entry id) under the correction rule:

   - a bar seen again with the same values is a no-op: no revision, no JSONL line;
   - a value the new observation does not know (``value`` is ``None``) is taken from the stored
     bar before comparing;
   - a bar with different values becomes revision *n + 1*: the stored version moves to
     ``candle_revisions`` (with what superseded it) and the new version is appended to the JSONL
     archive. The later observation in stream order wins: a bar still forming at one poll is
     read again complete at the next, and a backfill replaces a live-built bar.

   Ticks and snapshots follow the same rule without a revisions table (their history is in the
   JSONL archive: one line per stored version);
3. the JSONL lines are appended and flushed, then DuckDB commits the rows, the entries and the
   new size of every JSONL file (``archive_files``) together. A crash between the two leaves a
   JSONL tail that the next writer cuts off (``_jsonl``).

Applying the same entries in the same order to an empty archive gives the same rows and the same
JSONL bytes, however the entries are cut into batches.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import duckdb
import msgspec
import pyarrow as pa

from apihub_marketdata import MarketData

from ._access import WriterLock, first_line, is_busy, poll_pause, readers_waiting
from ._errors import ArchiveBusy, ArchiveCorrupt, ArchiveError, ArchiveWriteError
from ._jsonl import Chunk, FileRecord, JsonlFiles
from ._merge import CandleMerge, observations_table
from ._schema import (
    DDL,
    SCHEMA_VERSION,
    SNAPSHOT_COLUMNS,
    TICK_COLUMNS,
)
from ._times import day_of, from_wall_us, wall_us

log = logging.getLogger("apihub.archive")

DEFAULT_DATABASE: Final = "market.duckdb"
DEFAULT_JSONL_MAX_BYTES: Final = 64 * 1024 * 1024
DEFAULT_COMPRESS_AFTER_DAYS: Final = 1
DEFAULT_LOCK_WAIT_S: Final = 30.0

_WRITER_CONFIG: Final[dict[str, str | bool | int | float | list[str]]] = {
    "checkpoint_threshold": "128MiB"
}
"""DuckDB checkpoints (folds its WAL into the file) when the WAL reaches this size, and when the
writer closes the database. Each checkpoint has a cost of its own (index and metadata written
again, ~0.1-0.2 s): at DuckDB's default of 16 MiB a stream of large batches checkpoints every
other batch, which took a tenth of the ingest time. Committed batches are durable in the WAL
either way (a killed writer's WAL is replayed on the next open)."""

CrashPoint = Callable[[str], None]
"""Called with each durability stage of a write (``"jsonl_appended"``, ``"committed"``)."""


# -- what a batch holds ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observation:
    """The market data one stream entry (a broker answer) held, ready to store.

    ``entry`` is the stream entry id (``"1733100000000-0"``): it orders observations and makes
    a redelivery a no-op.
    """

    entry: str
    data: MarketData
    request_id: str = ""
    provider: str = ""
    tr_id: str = ""


@dataclass(frozen=True, slots=True)
class Rejection:
    """An answer that could not be normalised: quarantined with its ``reason`` (a stable word),
    a one-line ``detail`` and the raw ``body``, never dropped."""

    entry: str
    reason: str
    detail: str = ""
    request_id: str = ""
    provider: str = ""
    tr_id: str = ""
    body: bytes = b""


Item = Observation | Rejection
"""One entry of a batch."""


@dataclass(frozen=True, slots=True)
class Coverage:
    """The bars of one (provider, symbol, interval, source type) a batch wrote or confirmed.

    ``bars`` are the bar starts (aware KST, ascending); ``inserted`` of them were new and
    ``revised`` replaced a stored version with different values (the rest were confirmed
    unchanged, or came from an entry applied before). ``lineage`` lists the request ids,
    ``last_entry`` the newest stream entry involved.
    """

    provider: str
    symbol: str
    interval: str
    source_type: str
    bars: tuple[datetime, ...]
    inserted: int
    revised: int
    lineage: tuple[str, ...]
    last_entry: str

    @property
    def count(self) -> int:
        """How many bars."""
        return len(self.bars)

    @property
    def first(self) -> datetime:
        """The first bar's start."""
        return self.bars[0]

    @property
    def last(self) -> datetime:
        """The last bar's start."""
        return self.bars[-1]


@dataclass(frozen=True, slots=True)
class WriteReport:
    """What one :meth:`ArchiveStore.write` did.

    ``quarantined`` lists every rejection of the batch (again for an entry applied before, so
    its event can be re-sent); ``already_applied`` counts entries that changed nothing because
    an earlier write had applied them.
    """

    entries: int = 0
    already_applied: int = 0
    coverage: tuple[Coverage, ...] = ()
    quarantined: tuple[Rejection, ...] = ()
    candles_inserted: int = 0
    candles_revised: int = 0
    candles_unchanged: int = 0
    ticks_written: int = 0
    snapshots_written: int = 0
    lines: int = 0
    seconds: float = 0.0


def entry_order(entry: str) -> tuple[int, int]:
    """The sort key of a stream entry id (``ms-seq``; ids compare as number pairs)."""
    ms, _, seq = entry.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return (0, 0)


# -- JSONL lines (fixed field order: the archive's line format) ------------------------------------


class _TickLine(msgspec.Struct):
    provider: str
    symbol: str
    ts: datetime
    seq: int
    price: int
    volume: int
    source_type: str
    lineage: str
    source_entry: str


class _SnapshotLine(msgspec.Struct):
    provider: str
    symbol: str
    ts: datetime
    price: int
    open: int
    high: int
    low: int
    cum_volume: int
    cum_value: int | None
    change: int
    source_type: str
    lineage: str
    source_entry: str


_encode = msgspec.json.Encoder().encode
_NL: Final = b"\n"


# -- arrow tables ----------------------------------------------------------------------------------

_STR = pa.string()
_I64 = pa.int64()
_I32 = pa.int32()
_TS = pa.timestamp("us")

_TICK_TYPES: Final = (_STR, _STR, _TS, _I32, _I64, _I64, _STR, _STR, _STR)
_SNAPSHOT_TYPES: Final = (_STR, _STR, _TS, *([_I64] * 7), _STR, _STR, _STR)


def _table(
    columns: Sequence[str], types: Sequence[pa.DataType], rows: Sequence[Sequence[Any]]
) -> pa.Table:
    data = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    return pa.table(
        {
            name: pa.array(values, type=kind)
            for name, kind, values in zip(columns, types, data, strict=True)
        }
    )


def _insert(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: Sequence[str],
    types: Sequence[pa.DataType],
    rows: Sequence[Sequence[Any]],
    *,
    replace: bool,
) -> None:
    if not rows:
        return
    view = f"_batch_{table}"
    con.register(view, _table(columns, types, rows))
    try:
        names = ", ".join(columns)
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        con.execute(f"{verb} INTO {table} ({names}) SELECT {names} FROM {view}")  # noqa: S608
    finally:
        _unregister(con, view)


def _lookup(
    con: duckdb.DuckDBPyConnection,
    table: str,
    key_columns: Sequence[str],
    key_types: Sequence[pa.DataType],
    keys: Iterable[tuple[Any, ...]],
    values: str,
) -> list[tuple[Any, ...]]:
    """Rows of ``table`` whose key is among ``keys``: the key (``ts`` as wall microseconds)
    followed by the ``values`` columns."""
    wanted = list(keys)
    if not wanted:
        return []
    view = f"_keys_{table}"
    con.register(view, _table(key_columns, key_types, wanted))
    try:
        on = " AND ".join(f"t.{name} = k.{name}" for name in key_columns)
        shown = ", ".join(
            f"epoch_us(t.{name})" if name == "ts" else f"t.{name}" for name in key_columns
        )
        sql = f"SELECT {shown}, {values} FROM {view} k JOIN {table} t ON {on}"  # noqa: S608
        return con.execute(sql).fetchall()
    finally:
        _unregister(con, view)


_APPLIED_SQL: Final = (
    "SELECT entry FROM archive_sources WHERE entry IN (SELECT unnest(?::VARCHAR[]))"
)


def _unregister(con: duckdb.DuckDBPyConnection, view: str) -> None:
    # After a failed statement the transaction is aborted and even this fails; the error that
    # matters is the statement's, and the connection is given up anyway.
    with contextlib.suppress(duckdb.Error):
        con.unregister(view)


# -- the store -------------------------------------------------------------------------------------


class ArchiveStore:
    """The writer of one archive directory (``root``): DuckDB file plus JSONL archive.

    Use it as a context manager (``with ArchiveStore(root) as store: store.write(items)``): it
    takes the archive's writer lock (:class:`ArchiveBusy` if another writer has it), and
    :meth:`write` opens the database when needed, waiting up to ``lock_wait_s`` for readers.
    The archiver drives the pieces itself (:meth:`claim`, :meth:`try_connect`,
    :meth:`disconnect`, :meth:`readers_waiting`) to hold the database only while it writes.

    Blocking; call it from one thread at a time (the archiver runs it in a worker thread).
    """

    def __init__(
        self,
        root: Path,
        *,
        database: str = DEFAULT_DATABASE,
        jsonl_max_bytes: int = DEFAULT_JSONL_MAX_BYTES,
        compress_after_days: int = DEFAULT_COMPRESS_AFTER_DAYS,
        lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
        fsync: bool = True,
        crash_point: CrashPoint | None = None,
    ) -> None:
        self.root = Path(root)
        self.database = self.root / database
        self.lock_wait_s = lock_wait_s
        self._lock = WriterLock(self.root)
        self._files = JsonlFiles(
            self.root,
            max_bytes=jsonl_max_bytes,
            compress_after_days=compress_after_days,
            fsync=fsync,
        )
        self._crash_point = crash_point
        self._con: duckdb.DuckDBPyConnection | None = None
        self._recovered = False
        self.connects = 0
        """How often the database was opened (the cost of giving it up to readers)."""

    # -- the writer lock ---------------------------------------------------------------------------

    def claim(self) -> bool:
        """Take the archive's writer lock if it is free; whether this store holds it."""
        try:
            return self._lock.try_acquire()
        except OSError as exc:
            raise ArchiveError(f"cannot lock {self._lock.path}: {exc}", path=self.root) from exc

    def __enter__(self) -> ArchiveStore:
        if not self.claim():
            raise ArchiveBusy(
                f"another archiver writes {self.root} (it holds {self._lock.path})", path=self.root
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Settle, close the database and give the writer lock up."""
        try:
            if self._lock.held and self._recovered:
                self.settle()
        finally:
            self.disconnect()
            self._lock.release()

    def settle(self) -> int:
        """Gzip every JSONL file of a cold day still stored plain (the writer does it for files
        left alone by recent batches; this does the rest, when the writer goes idle or closes);
        how many files. After it the archive's files are exactly a replay's."""
        if not self._recovered:
            return 0
        return self._files.compress_cold()

    # -- the database ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether this store has the database open now."""
        return self._con is not None

    def readers_waiting(self) -> bool:
        """Whether a reader asked for the database (the writer should close it soon)."""
        return readers_waiting(self.root)

    def try_connect(self) -> bool:
        """Open the database read-write unless it is open already; ``False`` when readers hold
        it. The first open creates the schema and repairs the JSONL archive."""
        if self._con is not None:
            return True
        if not self._lock.held:
            raise ArchiveError(
                "write the archive through a claimed store (claim() or `with`)", path=self.root
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            con = duckdb.connect(str(self.database), config=_WRITER_CONFIG)
        except duckdb.Error as exc:
            if is_busy(exc):
                return False
            raise ArchiveError(
                f"cannot open {self.database}: {first_line(exc)}", path=self.root
            ) from None
        except OSError as exc:
            raise ArchiveError(f"cannot open {self.database}: {exc}", path=self.root) from exc
        try:
            if not self._recovered:
                self._prepare(con)
                self._recovered = True
        except BaseException:
            con.close()
            raise
        self._con = con
        self.connects += 1
        return True

    def connect(self, wait_s: float | None = None) -> None:
        """Open the database, waiting up to ``wait_s`` (default ``lock_wait_s``) for readers to
        close it; :class:`ArchiveBusy` after that."""
        deadline = time.monotonic() + (self.lock_wait_s if wait_s is None else wait_s)
        attempt = 0
        while not self.try_connect():
            if time.monotonic() >= deadline:
                raise ArchiveBusy(
                    f"readers held {self.database} for more than {self.lock_wait_s:g} s",
                    path=self.root,
                )
            time.sleep(poll_pause(attempt))
            attempt += 1

    def disconnect(self) -> None:
        """Close the database (readers may open it now); the writer lock stays."""
        con, self._con = self._con, None
        if con is not None:
            try:
                con.close()
            except duckdb.Error as exc:
                log.warning("closing %s: %s", self.database, first_line(exc))

    def _prepare(self, con: duckdb.DuckDBPyConnection) -> None:
        """Create or check the schema, load the committed JSONL files, repair the disk."""
        try:
            for statement in DDL:
                con.execute(statement)
            found = con.execute("SELECT max(version) FROM schema_version").fetchone()
            version = found[0] if found else None
            if version is None:
                con.execute("INSERT INTO schema_version VALUES (?)", [SCHEMA_VERSION])
            elif version > SCHEMA_VERSION:
                raise ArchiveCorrupt(
                    f"{self.database} has schema v{version}, newer than this apihub's "
                    f"v{SCHEMA_VERSION}: upgrade apihub",
                    path=self.root,
                )
            rows = con.execute(
                "SELECT path, kind, day, part, bytes, lines FROM archive_files"
            ).fetchall()
        except duckdb.Error as exc:
            raise ArchiveError(
                f"cannot prepare {self.database}: {first_line(exc)}", path=self.root
            ) from None
        self._files.load(FileRecord(*row) for row in rows)
        # pyarrow imports pandas (when installed) at its first conversion of a Python list,
        # about a second: paid here, when the archive opens, rather than by the first batch.
        pa.array([], type=_I64)
        repaired = self._files.recover()
        if repaired:
            log.info(
                "archive %s: repaired %d JSONL files after an interrupted write",
                self.root,
                repaired,
            )

    # -- writing -----------------------------------------------------------------------------------

    def write(self, items: Iterable[Item]) -> WriteReport:
        """Apply one batch (see the module docstring) and return what it did.

        Raises :class:`ArchiveWriteError` when DuckDB or the disk fails (nothing of the batch is
        kept; the database is closed and repaired on the next open) and :class:`ArchiveBusy`
        when readers hold the database past ``lock_wait_s``.
        """
        started = time.perf_counter()
        unique: dict[str, Item] = {}
        for item in items:
            unique.setdefault(item.entry, item)
        ordered = sorted(unique.values(), key=lambda item: entry_order(item.entry))
        if not ordered:
            return WriteReport()
        self.connect()
        con = self._con
        assert con is not None  # noqa: S101 - connect() opened it
        try:
            return self._write(con, ordered, started)
        except BaseException as exc:
            # Whatever stopped it (DuckDB, the disk, a crash drill): roll back by closing, and
            # cut the JSONL tail back to the committed sizes when the database opens again.
            self._abandon()
            if isinstance(exc, duckdb.Error | OSError):
                message = first_line(exc) if isinstance(exc, duckdb.Error) else str(exc)
                raise ArchiveWriteError(
                    f"writing a batch to {self.root} failed: {message}", path=self.root
                ) from None
            raise

    def _abandon(self) -> None:
        """After a failed write: drop the connection (rolling back) and repair on reopen."""
        self._recovered = False
        self.disconnect()

    def _write(
        self, con: duckdb.DuckDBPyConnection, ordered: list[Item], started: float
    ) -> WriteReport:
        # One statement, the ids as a list parameter (no view to register and drop): each
        # statement costs a GIL hand-over, which another busy thread makes dear.
        found = con.execute(_APPLIED_SQL, [[item.entry for item in ordered]]).fetchall()
        applied = {row[0] for row in found}
        fresh = [item for item in ordered if item.entry not in applied]
        observations = [item for item in fresh if isinstance(item, Observation)]
        lines: list[Chunk] = []
        candles = _Candles(con, ordered, applied)
        try:
            return self._apply(con, ordered, fresh, observations, candles, lines, started)
        finally:
            candles.close()

    def _apply(
        self,
        con: duckdb.DuckDBPyConnection,
        ordered: list[Item],
        fresh: list[Item],
        observations: list[Observation],
        candles: _Candles,
        lines: list[Chunk],
        started: float,
    ) -> WriteReport:
        candles.apply(lines)
        ticks = _apply_ticks(con, observations, lines)
        snapshots = _apply_snapshots(con, observations, lines)
        rejections = [item for item in ordered if isinstance(item, Rejection)]
        fresh_rejections = [item for item in fresh if isinstance(item, Rejection)]

        pending = self._files.plan(lines)
        self._files.append(pending)
        self._stage("jsonl_appended")
        con.execute("BEGIN TRANSACTION")
        try:
            candles.store()
            _insert(con, "ticks", TICK_COLUMNS, _TICK_TYPES, ticks, replace=True)
            _insert(con, "snapshots", SNAPSHOT_COLUMNS, _SNAPSHOT_TYPES, snapshots, replace=True)
            _insert(
                con,
                "quarantine",
                ("source_entry", "request_id", "provider", "tr_id", "reason", "detail", "body"),
                (_STR, _STR, _STR, _STR, _STR, _STR, pa.binary()),
                [
                    (r.entry, r.request_id, r.provider, r.tr_id, r.reason, r.detail, r.body)
                    for r in fresh_rejections
                ],
                replace=True,
            )
            _insert(
                con,
                "archive_sources",
                ("entry", "request_id", "outcome", "candles", "ticks", "snapshots"),
                (_STR, _STR, _STR, _I32, _I32, _I32),
                [_source_row(item) for item in fresh],
                replace=True,
            )
            _insert(
                con,
                "archive_files",
                ("path", "kind", "day", "part", "bytes", "lines"),
                (_STR, _STR, pa.date32(), _I32, _I64, _I64),
                [
                    (r.path, r.kind, r.day, r.part, r.bytes, r.lines)
                    for r in pending.records.values()
                ],
                replace=True,
            )
            con.execute("COMMIT")
        except BaseException:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error as exc:
                log.warning("rolling back a failed batch: %s", first_line(exc))
            raise
        self._stage("committed")
        self._files.committed(pending)
        return WriteReport(
            entries=len(ordered),
            already_applied=len(ordered) - len(fresh),
            coverage=candles.coverage(),
            quarantined=tuple(rejections),
            candles_inserted=candles.inserted,
            candles_revised=candles.revised,
            candles_unchanged=candles.unchanged,
            ticks_written=len(ticks),
            snapshots_written=len(snapshots),
            lines=sum(chunk[3] for chunk in lines),
            seconds=time.perf_counter() - started,
        )

    def _stage(self, name: str) -> None:
        if self._crash_point is not None:
            self._crash_point(name)

    # -- reading what the writer holds -------------------------------------------------------------

    def jsonl_files(self) -> dict[str, FileRecord]:
        """Every committed JSONL file by logical path (``.jsonl``, stored gzipped when cold)."""
        return dict(self._files.records)


def _source_row(item: Item) -> tuple[str, str, str, int, int, int]:
    if isinstance(item, Rejection):
        return (item.entry, item.request_id, "quarantined", 0, 0, 0)
    data = item.data
    return (
        item.entry,
        item.request_id,
        "stored",
        len(data.candles),
        len(data.ticks),
        len(data.snapshots),
    )


class _Candles:
    """The candle side of one batch (merged in DuckDB, see ``_merge``), with the coverage to
    announce."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, ordered: list[Item], applied: set[str]
    ) -> None:
        batch = [
            (item.entry, item.entry not in applied, item.data.candles)
            for item in ordered
            if isinstance(item, Observation) and item.data.candles
        ]
        fresh = sum(len(candles) for _entry, is_fresh, candles in batch if is_fresh)
        self._merge = CandleMerge(con, observations_table(batch), fresh) if batch else None

    @property
    def inserted(self) -> int:
        """Bars new to the archive."""
        return self._merge.inserted if self._merge else 0

    @property
    def revised(self) -> int:
        """Stored bars that got a new revision."""
        return self._merge.revised if self._merge else 0

    @property
    def unchanged(self) -> int:
        """Observations that repeated the current version."""
        return self._merge.unchanged if self._merge else 0

    def apply(self, lines: list[Chunk]) -> None:
        """Merge, and add the new versions' JSONL lines (per day, in stream order) to
        ``lines``."""
        if self._merge is None:
            return
        self._merge.run()
        lines.extend(("candles", day, data, count) for day, data, count in self._merge.lines)

    def store(self) -> None:
        """Write the new and the superseded versions (inside the batch's transaction)."""
        if self._merge is not None:
            self._merge.store()

    def close(self) -> None:
        """Drop the merge's temporary tables."""
        if self._merge is not None:
            self._merge.close()

    def coverage(self) -> tuple[Coverage, ...]:
        """Per (provider, symbol, interval, source type): its bars, how many of them its own
        observations created and how many they revised."""
        if self._merge is None:
            return ()
        rows = self._merge.coverage_rows
        # The symbols of a batch share their bar starts: one datetime per distinct start.
        starts: set[int] = set()
        for row in rows:
            starts.update(row[4])
        moment = {us: from_wall_us(us) for us in starts}.__getitem__
        return tuple(
            Coverage(
                provider=provider,
                symbol=symbol,
                interval=interval,
                source_type=source_type,
                bars=tuple(map(moment, bars)),
                inserted=int(inserted),
                revised=int(revised),
                lineage=tuple(lineage or ()),
                last_entry=last_entry,
            )
            for provider, symbol, interval, source_type, bars, inserted, revised, lineage, last_entry in rows  # noqa: E501
        )


def _apply_ticks(
    con: duckdb.DuckDBPyConnection,
    observations: list[Observation],
    lines: list[Chunk],
) -> list[tuple[Any, ...]]:
    """Ticks under the rule: the same print again is a no-op, a different one replaces it."""
    if not any(item.data.ticks for item in observations):
        return []
    keys = {
        (t.provider, t.symbol, wall_us(t.ts), t.seq)
        for item in observations
        for t in item.data.ticks
    }
    current = {
        row[:4]: row[4:]
        for row in _lookup(
            con,
            "ticks",
            ("provider", "symbol", "ts", "seq"),
            (_STR, _STR, _TS, _I32),
            keys,
            "t.price, t.volume",
        )
    }
    changed: dict[tuple[str, str, int, int], tuple[Any, ...]] = {}
    for item in observations:
        for t in item.data.ticks:
            us = wall_us(t.ts)
            key = (t.provider, t.symbol, us, t.seq)
            stored = current.get(key)
            if stored is not None and stored[0] == t.price and stored[1] == t.volume:
                continue
            current[key] = (t.price, t.volume)
            changed[key] = (t.price, t.volume, t.source_type, t.lineage, item.entry)
            line = _TickLine(
                t.provider,
                t.symbol,
                from_wall_us(us),
                t.seq,
                t.price,
                t.volume,
                t.source_type,
                t.lineage,
                item.entry,
            )
            lines.append(("ticks", day_of(us), _encode(line) + _NL, 1))
    return [(*key, *row) for key, row in changed.items()]


def _apply_snapshots(
    con: duckdb.DuckDBPyConnection,
    observations: list[Observation],
    lines: list[Chunk],
) -> list[tuple[Any, ...]]:
    """Snapshots under the rule (``cum_value`` ``None`` is taken from the stored one)."""
    if not any(item.data.snapshots for item in observations):
        return []
    keys = {
        (s.provider, s.symbol, wall_us(s.ts)) for item in observations for s in item.data.snapshots
    }
    current = {
        row[:3]: row[3:]
        for row in _lookup(
            con,
            "snapshots",
            ("provider", "symbol", "ts"),
            (_STR, _STR, _TS),
            keys,
            "t.price, t.open, t.high, t.low, t.cum_volume, t.cum_value, t.change",
        )
    }
    changed: dict[tuple[str, str, int], tuple[Any, ...]] = {}
    for item in observations:
        for s in item.data.snapshots:
            us = wall_us(s.ts)
            key = (s.provider, s.symbol, us)
            stored = current.get(key)
            cum_value = s.cum_value
            if stored is not None and cum_value is None:
                cum_value = stored[5]
            values = (s.price, s.open, s.high, s.low, s.cum_volume, cum_value, s.change)
            if stored is not None and tuple(stored) == values:
                continue
            current[key] = values
            changed[key] = (*values, s.source_type, s.lineage, item.entry)
            line = _SnapshotLine(
                s.provider,
                s.symbol,
                from_wall_us(us),
                *values,
                s.source_type,
                s.lineage,
                item.entry,
            )
            lines.append(("snapshots", day_of(us), _encode(line) + _NL, 1))
    return [(*key, *row) for key, row in changed.items()]
