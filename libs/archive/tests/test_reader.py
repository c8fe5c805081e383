"""Reading the archive: SQL, streaming, Parquet exports, the candle helper, errors as one line,
and reading while the writer holds the database (in this process and from another one)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pyarrow.parquet as pq
import pytest

from apihub_archive import (
    EXPORT_TABLES,
    ArchiveBusy,
    ArchiveError,
    ArchiveNotFound,
    ArchiveQueryError,
    ArchiveReader,
    ArchiveStore,
    Observation,
    read_candles,
)
from apihub_marketdata import KST, Candle, MarketData, Tick
from apihub_testing import wait_until

START = datetime(2026, 12, 2, 9, 0, tzinfo=KST)


def candle(minute: int, close: int) -> Candle:
    return Candle(
        provider="KIWOOM",
        symbol="005930",
        interval="1m",
        ts=START + timedelta(minutes=minute),
        open=close,
        high=close + 5,
        low=close - 5,
        close=close,
        volume=100 + minute,
        value=None if minute % 2 else close * 100,
        lineage=f"req-{minute}",
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    with ArchiveStore(root, fsync=False) as store:
        store.write(
            [
                Observation(
                    "1-0", MarketData(candles=tuple(candle(m, 1000 + m) for m in range(5)))
                ),
                Observation("2-0", MarketData(candles=(candle(2, 999),))),
            ]
        )
    return root


def test_read_candles_returns_candle_values_for_a_range(root: Path) -> None:
    bars = read_candles(
        root, "KIWOOM", "005930", "1m", START + timedelta(minutes=1), START + timedelta(minutes=3)
    )
    assert [b.ts for b in bars] == [START + timedelta(minutes=m) for m in (1, 2, 3)]
    assert bars[1] == Candle(
        provider="KIWOOM",
        symbol="005930",
        interval="1m",
        ts=START + timedelta(minutes=2),
        open=999,
        high=1004,
        low=994,
        close=999,
        volume=102,
        value=99_900,
        lineage="req-2",
        revision=2,
    )
    naive = read_candles(
        root, "KIWOOM", "005930", "1m", datetime(2026, 12, 2), datetime(2026, 12, 3)
    )
    assert len(naive) == 5, "naive bounds are KST wall time"
    assert read_candles(root, "KIS", "005930", "1m", START, START) == []


def test_query_and_stream(root: Path) -> None:
    with ArchiveReader(root) as archive:
        columns, rows = archive.query("SELECT symbol, count(*) AS bars FROM candles GROUP BY 1")
        assert (columns, rows) == (["symbol", "bars"], [("005930", 5)])
        columns, stream = archive.stream("SELECT close FROM candles ORDER BY ts", chunk=2)
        assert columns == ["close"]
        assert [row[0] for row in stream] == [1000, 1001, 999, 1003, 1004]
        assert archive.query("SELECT ts::DATE, hour(ts) FROM candles LIMIT 1")[1] == [
            (datetime(2026, 12, 2).date(), 9)
        ], "ts is the KST wall time"


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELEC 1", "Parser Error"),
        ("SELECT * FROM nowhere", "Catalog Error"),
        ("DELETE FROM candles", "read-only"),
    ],
)
def test_bad_sql_is_one_line(root: Path, sql: str, reason: str) -> None:
    with ArchiveReader(root) as archive, pytest.raises(ArchiveQueryError) as caught:
        archive.query(sql)
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_archive_is_named(tmp_path: Path) -> None:
    with pytest.raises(ArchiveNotFound, match="no archive at"):
        read_candles(tmp_path, "KIS", "005930", "1m", START, START)


def test_export_parquet_writes_each_table_in_key_order(root: Path, tmp_path: Path) -> None:
    with ArchiveReader(root) as archive:
        written = archive.export_parquet(tmp_path / "out")
        with pytest.raises(ArchiveQueryError, match="no table nowhere"):
            archive.export_parquet(tmp_path / "out", tables=["nowhere"])
    assert [path.stem for path in written] == list(EXPORT_TABLES)
    candles = pq.read_table(tmp_path / "out" / "candles.parquet")
    assert candles.num_rows == 5
    assert candles.column("close").to_pylist() == [1000, 1001, 999, 1003, 1004]
    assert pq.read_table(tmp_path / "out" / "candle_revisions.parquet").num_rows == 1


def test_stats(root: Path) -> None:
    with ArchiveReader(root) as archive:
        stats = archive.stats()
    assert stats.tables["candles"] == 5
    assert stats.tables["archive_sources"] == 2
    assert stats.candles == [
        ("KIWOOM", "1m", 1, 5, datetime(2026, 12, 2, 9, 0), datetime(2026, 12, 2, 9, 4), 1)
    ]
    assert (stats.files, stats.newest_day) == (1, datetime(2026, 12, 2).date())
    assert stats.file_bytes > 0
    assert stats.quarantine == {}


@pytest.fixture
def writer(root: Path) -> Iterator[ArchiveStore]:
    """The archive's writer, holding the database open."""
    with ArchiveStore(root, fsync=False) as store:
        store.connect()
        yield store


def test_a_reader_in_this_process_gets_the_database_when_the_writer_yields(
    writer: ArchiveStore, root: Path
) -> None:
    got: list[list[Candle]] = []
    reader = threading.Thread(
        target=lambda: got.append(
            read_candles(root, "KIWOOM", "005930", "1m", START, START, lock_wait_s=20)
        )
    )
    reader.start()
    wait_until(writer.readers_waiting, message="the reader asks for the database")
    assert got == [], "it waits while the writer holds the file"
    writer.disconnect()  # what the archiver does after a batch when a reader asked
    reader.join(timeout=20)
    assert [len(bars) for bars in got] == [1]
    writer.connect()  # and the writer gets it back once the reader is done
    writer.write([Observation("3-0", MarketData(candles=(candle(9, 1),)))])


def test_a_reader_in_another_process_asks_and_gets_in(writer: ArchiveStore, root: Path) -> None:
    script = (
        "import sys\n"
        "from apihub_archive import ArchiveReader\n"
        "with ArchiveReader(sys.argv[1], lock_wait_s=30) as archive:\n"
        "    print(archive.stats().tables['candles'])\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(writer.readers_waiting, timeout=30, message="the other process asks")
        writer.disconnect()
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert (child.returncode, out.strip()) == (0, "5"), err


def test_a_reader_gives_up_after_its_wait(writer: ArchiveStore, root: Path) -> None:
    with pytest.raises(ArchiveBusy, match="stayed held by its writer"):
        read_candles(root, "KIWOOM", "005930", "1m", START, START, lock_wait_s=0.05)
    assert not writer.readers_waiting(), "a reader that gave up withdraws its wish"


def test_the_writer_waits_for_readers_then_says_busy(root: Path) -> None:
    with ArchiveReader(root) as archive, ArchiveStore(root, fsync=False) as store:
        assert not store.try_connect()
        with pytest.raises(ArchiveBusy, match="readers held"):
            store.connect(wait_s=0.05)
        archive.close()
        store.connect(wait_s=5)
        assert store.connected


def test_a_stale_wish_is_ignored_and_removed(tmp_path: Path) -> None:
    from apihub_archive._access import WISH_DIR, readers_waiting

    folder = tmp_path / WISH_DIR
    folder.mkdir()
    stale = folder / "1-dead.wish"
    stale.touch()
    os.utime(stale, (1_000_000, 1_000_000))
    assert not readers_waiting(tmp_path)
    assert not stale.exists()
    assert not readers_waiting(tmp_path / "nowhere")


def test_a_file_that_is_no_archive_is_an_archive_error(tmp_path: Path) -> None:
    (tmp_path / "market.duckdb").write_bytes(b"not a database at all" * 100)
    with pytest.raises(ArchiveError, match="cannot open"):
        read_candles(tmp_path, "KIS", "005930", "1m", START, START)


def test_a_reader_opens_lazily_and_once(root: Path, tmp_path: Path) -> None:
    archive = ArchiveReader(root)
    assert archive.query("SELECT count(*) FROM candles")[1] == [(5,)]
    archive.open()  # already open: nothing happens
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ArchiveError, match="cannot create"):
        archive.export_parquet(blocker / "out")
    with pytest.raises(ArchiveQueryError):
        archive.stream("SELECT * FROM nowhere")
    archive.close()
    archive.close()


def test_times_in_other_zones_land_on_the_same_kst_bar(tmp_path: Path) -> None:
    from datetime import UTC

    utc = candle(0, 10).ts.astimezone(UTC)
    naive = candle(1, 11).ts.replace(tzinfo=None)
    bars = (
        msgspec.structs.replace(candle(0, 10), ts=utc),
        msgspec.structs.replace(candle(1, 11), ts=naive),
    )
    tick = Tick(provider="KIS", symbol="005930", ts=utc, price=10, volume=1)
    with ArchiveStore(tmp_path / "a", fsync=False) as store:
        store.write([Observation("1-0", MarketData(candles=bars, ticks=(tick,)))])
    stored = read_candles(
        tmp_path / "a", "KIWOOM", "005930", "1m", START, START + timedelta(minutes=1)
    )
    assert [b.ts for b in stored] == [START, START + timedelta(minutes=1)]
    with ArchiveReader(tmp_path / "a") as archive:
        assert archive.query("SELECT ts FROM ticks")[1] == [(datetime(2026, 12, 2, 9, 0),)]
