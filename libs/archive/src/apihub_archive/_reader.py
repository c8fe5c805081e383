"""Reading the archive while the archiver runs: read-only DuckDB connections that ask the writer
for the file (``_access``), SQL, Parquet exports and a plain-Python candle helper."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import duckdb

from apihub_marketdata import Candle

from ._access import first_line, open_reader
from ._errors import ArchiveError, ArchiveNotFound, ArchiveQueryError
from ._schema import EXPORT_TABLES, ORDER_BY, TABLES
from ._store import DEFAULT_DATABASE, DEFAULT_LOCK_WAIT_S
from ._times import aware, wall_naive

STREAM_CHUNK: Final = 10_000
"""Rows fetched at a time by :meth:`ArchiveReader.stream`."""


@dataclass(frozen=True, slots=True)
class ArchiveStats:
    """What an archive holds, for ``apihub archive stats``.

    ``tables``: rows per table; ``candles``: per (provider, interval) the symbols, bars, first
    and last bar start (naive KST wall time, as stored) and how many bars were revised;
    ``quarantine``: answers per reason; ``files``/``file_bytes``: the JSONL files and their
    committed (uncompressed) size.
    """

    tables: dict[str, int]
    candles: list[tuple[str, str, int, int, datetime, datetime, int]]
    quarantine: dict[str, int]
    files: int
    file_bytes: int
    newest_day: date | None


class ArchiveReader:
    """A read-only view of the archive in ``root``, usable while the archiver writes it.

    ``with ArchiveReader(root) as archive: columns, rows = archive.query("SELECT ...")``.
    Opening waits up to ``lock_wait_s`` for the writer to hand the file over
    (:class:`~apihub_archive.ArchiveBusy` after that); keep the reader open only as long as you
    read, because the archiver cannot write while it is open.
    """

    def __init__(
        self,
        root: Path,
        *,
        database: str = DEFAULT_DATABASE,
        lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
    ) -> None:
        self.root = Path(root)
        self.database = self.root / database
        self.lock_wait_s = lock_wait_s
        self._con: duckdb.DuckDBPyConnection | None = None

    def __enter__(self) -> ArchiveReader:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Open the database read-only (see the class docstring)."""
        if self._con is not None:
            return
        if not self.database.exists():
            raise ArchiveNotFound(
                f"no archive at {self.root} (no {self.database.name}: the archiver has not "
                "written anything there yet)",
                path=self.root,
            )
        self._con = open_reader(self.database, lock_wait_s=self.lock_wait_s)

    def close(self) -> None:
        """Close the connection: the writer may open the file again."""
        con, self._con = self._con, None
        if con is not None:
            con.close()

    @property
    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self.open()
        assert self._con is not None  # noqa: S101 - open() set it or raised
        return self._con

    def _execute(
        self, sql: str, parameters: Sequence[Any] | None = None
    ) -> duckdb.DuckDBPyConnection:
        try:
            return self._connection.execute(sql, parameters)
        except duckdb.InterruptException:
            raise KeyboardInterrupt from None
        except duckdb.Error as exc:
            raise ArchiveQueryError(first_line(exc), path=self.root) from None

    def query(
        self, sql: str, parameters: Sequence[Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one SQL statement; its column names and every row.

        Raises :class:`~apihub_archive.ArchiveQueryError` with DuckDB's one-line reason for SQL
        it refuses (including anything that would write: the connection is read-only).
        """
        cursor = self._execute(sql, parameters)
        columns = [column[0] for column in cursor.description or ()]
        try:
            rows = cursor.fetchall()
        except duckdb.Error as exc:
            raise ArchiveQueryError(first_line(exc), path=self.root) from None
        return columns, rows

    def stream(
        self, sql: str, parameters: Sequence[Any] | None = None, *, chunk: int = STREAM_CHUNK
    ) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
        """Like :meth:`query`, but the rows come ``chunk`` at a time as they are read."""
        cursor = self._execute(sql, parameters)
        columns = [column[0] for column in cursor.description or ()]

        def rows() -> Iterator[tuple[Any, ...]]:
            while True:
                try:
                    batch = cursor.fetchmany(chunk)
                except duckdb.InterruptException:
                    raise KeyboardInterrupt from None
                except duckdb.Error as exc:
                    raise ArchiveQueryError(first_line(exc), path=self.root) from None
                if not batch:
                    return
                yield from batch

        return columns, rows()

    def candles(
        self, provider: str, symbol: str, interval: str, first: datetime, last: datetime
    ) -> list[Candle]:
        """The stored bars of one symbol whose start lies in ``[first, last]`` (aware, or naive
        KST), oldest first, each at its current revision."""
        _, rows = self.query(
            "SELECT provider, symbol, interval, ts, open, high, low, close, volume, value, "
            "source_type, lineage, revision FROM candles WHERE provider = ? AND symbol = ? "
            "AND interval = ? AND ts BETWEEN ? AND ? ORDER BY ts",
            [provider, symbol, interval, wall_naive(first), wall_naive(last)],
        )
        return [
            Candle(
                provider=row[0],
                symbol=row[1],
                interval=row[2],
                ts=aware(row[3]),
                open=row[4],
                high=row[5],
                low=row[6],
                close=row[7],
                volume=row[8],
                value=row[9],
                source_type=row[10],
                lineage=row[11],
                revision=row[12],
            )
            for row in rows
        ]

    def export_parquet(self, directory: Path, tables: Sequence[str] = EXPORT_TABLES) -> list[Path]:
        """Write each table to ``<directory>/<table>.parquet`` in primary-key order; the
        files written."""
        unknown = [name for name in tables if name not in TABLES]
        if unknown:
            raise ArchiveQueryError(
                f"no table {', '.join(unknown)} in the archive (tables: {', '.join(TABLES)})",
                path=self.root,
            )
        target = Path(directory)
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(f"cannot create {target}: {exc}", path=target) from exc
        written = []
        for name in tables:
            path = target / f"{name}.parquet"
            quoted = str(path).replace("'", "''")
            self._execute(
                f"COPY (SELECT * FROM {name} ORDER BY {ORDER_BY[name]}) "  # noqa: S608
                f"TO '{quoted}' (FORMAT parquet)"
            )
            written.append(path)
        return written

    def stats(self) -> ArchiveStats:
        """Counts for ``apihub archive stats`` (see :class:`ArchiveStats`)."""
        tables = {}
        for name in TABLES:
            _, rows = self.query(f"SELECT count(*) FROM {name}")  # noqa: S608
            tables[name] = int(rows[0][0])
        _, candles = self.query(
            "SELECT c.provider, c.interval, count(DISTINCT c.symbol), count(*), min(c.ts), "
            "max(c.ts), count(*) FILTER (WHERE c.revision > 1) FROM candles c "
            "GROUP BY ALL ORDER BY ALL"
        )
        _, reasons = self.query(
            "SELECT reason, count(*) FROM quarantine GROUP BY reason ORDER BY reason"
        )
        _, files = self.query(
            "SELECT count(*), coalesce(sum(bytes), 0), max(day) FROM archive_files"
        )
        return ArchiveStats(
            tables=tables,
            candles=[tuple(row) for row in candles],
            quarantine={str(reason): int(count) for reason, count in reasons},
            files=int(files[0][0]),
            file_bytes=int(files[0][1]),
            newest_day=files[0][2],
        )


def read_candles(
    root: Path,
    provider: str,
    symbol: str,
    interval: str,
    first: datetime,
    last: datetime,
    *,
    database: str = DEFAULT_DATABASE,
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
) -> list[Candle]:
    """The bars of one symbol from the archive in ``root`` whose start lies in
    ``[first, last]``, oldest first, as :class:`~apihub_marketdata.Candle` values (no
    DataFrame). Works while the archiver runs: it waits up to ``lock_wait_s`` for the file."""
    with ArchiveReader(root, database=database, lock_wait_s=lock_wait_s) as archive:
        return archive.candles(provider, symbol, interval, first, last)
