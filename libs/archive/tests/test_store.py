"""The archive store on a real DuckDB file and real JSONL files: the correction rule, exactly-once
writes, rolling and compression, repair after a crash, and byte-identical replay."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import os
import zlib
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import msgspec
import pytest

from apihub_archive import (
    ArchiveBusy,
    ArchiveCorrupt,
    ArchiveError,
    ArchiveReader,
    ArchiveStore,
    ArchiveWriteError,
    Item,
    Observation,
    Rejection,
    _jsonl,
    _merge,
    _store,
    entry_order,
)
from apihub_archive._jsonl import JsonlFiles
from apihub_marketdata import KST, Candle, MarketData, Snapshot, Tick

DAY = datetime(2026, 12, 1, tzinfo=KST)


def bar(
    day: int = 0,
    minute: int = 0,
    close: int = 100,
    *,
    value: int | None = 1_000,
    symbol: str = "005930",
    interval: str = "1m",
    source_type: str = "rest",
    lineage: str = "req-1",
    volume: int = 10,
) -> Candle:
    start = DAY + timedelta(days=day, minutes=0 if interval == "1d" else 9 * 60 + minute)
    return Candle(
        provider="KIS",
        symbol=symbol,
        interval=interval,  # type: ignore[arg-type]
        ts=start,
        open=100,
        high=max(110, close),
        low=min(90, close),
        close=close,
        volume=volume,
        value=value,
        source_type=source_type,  # type: ignore[arg-type]
        lineage=lineage,
    )


def seen(entry: str, *candles: Candle, request_id: str = "req-1") -> Observation:
    return Observation(entry, MarketData(candles=candles), request_id, "KIS", "FHKST03010200")


def store_at(root: Path, **options: object) -> ArchiveStore:
    return ArchiveStore(root, fsync=False, **options)  # type: ignore[arg-type]


def rows(root: Path, sql: str) -> list[tuple[object, ...]]:
    with ArchiveReader(root, lock_wait_s=5) as archive:
        return archive.query(sql)[1]


def jsonl_tree(root: Path) -> dict[str, bytes]:
    """Every JSONL file (plain or gzipped) with its exact bytes."""
    base = root / "jsonl"
    found = {}
    for directory, _dirs, names in os.walk(base):
        for name in names:
            path = Path(directory) / name
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def content(root: Path) -> dict[str, list[tuple[object, ...]]]:
    """The archive's tables, in key order (what must be equal after a replay)."""
    tables = {
        "candles": "SELECT * FROM candles ORDER BY ALL",
        "candle_revisions": "SELECT * FROM candle_revisions ORDER BY ALL",
        "ticks": "SELECT * FROM ticks ORDER BY ALL",
        "snapshots": "SELECT * FROM snapshots ORDER BY ALL",
        "quarantine": "SELECT * FROM quarantine ORDER BY ALL",
        "archive_sources": "SELECT * FROM archive_sources ORDER BY ALL",
        "archive_files": "SELECT * FROM archive_files ORDER BY ALL",
    }
    with ArchiveReader(root, lock_wait_s=5) as archive:
        return {name: archive.query(sql)[1] for name, sql in tables.items()}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "archive"


@pytest.fixture
def store(root: Path) -> Iterator[ArchiveStore]:
    with store_at(root) as opened:
        yield opened


# -- the correction rule -------------------------------------------------------------------------


def test_new_bars_are_inserted_as_revision_one_with_a_jsonl_line_each(
    store: ArchiveStore, root: Path
) -> None:
    report = store.write([seen("1-0", bar(0, 0), bar(0, 1, 101))])
    assert (report.candles_inserted, report.candles_revised, report.lines) == (2, 0, 2)
    (coverage,) = report.coverage
    assert (coverage.symbol, coverage.interval, coverage.count, coverage.inserted) == (
        "005930",
        "1m",
        2,
        2,
    )
    assert coverage.first == DAY + timedelta(hours=9)
    assert coverage.last == DAY + timedelta(hours=9, minutes=1)
    assert coverage.lineage == ("req-1",)
    assert coverage.last_entry == "1-0"
    store.disconnect()
    assert rows(root, "SELECT ts, close, revision, source_entry FROM candles ORDER BY ts") == [
        (datetime(2026, 12, 1, 9, 0), 100, 1, "1-0"),
        (datetime(2026, 12, 1, 9, 1), 101, 1, "1-0"),
    ]
    (name,) = jsonl_tree(root)
    assert name == "jsonl/candles/2026/12/candles-2026-12-01.jsonl"
    first = jsonl_tree(root)[name].splitlines()[0]
    assert first == (
        b'{"provider":"KIS","symbol":"005930","interval":"1m","ts":"2026-12-01T09:00:00+09:00",'
        b'"open":100,"high":110,"low":90,"close":100,"volume":10,"value":1000,'
        b'"source_type":"rest","lineage":"req-1","revision":1,"source_entry":"1-0"}'
    )


def test_a_bar_seen_again_unchanged_is_a_no_op(store: ArchiveStore, root: Path) -> None:
    store.write([seen("1-0", bar(0, 0))])
    report = store.write([seen("2-0", bar(0, 0, lineage="req-2"), request_id="req-2")])
    assert (report.candles_inserted, report.candles_revised, report.candles_unchanged) == (0, 0, 1)
    assert report.lines == 0
    (coverage,) = report.coverage
    assert (coverage.count, coverage.inserted, coverage.revised) == (1, 0, 0), "confirmed"
    store.disconnect()
    assert rows(root, "SELECT revision, lineage FROM candles") == [(1, "req-1")]
    assert rows(root, "SELECT count(*) FROM candle_revisions") == [(0,)]


def test_a_value_the_new_observation_lacks_is_taken_from_the_stored_bar(
    store: ArchiveStore, root: Path
) -> None:
    store.write([seen("1-0", bar(0, 0, value=5_000))])
    unchanged = store.write([seen("2-0", bar(0, 0, value=None))])
    assert unchanged.candles_unchanged == 1
    revised = store.write([seen("3-0", bar(0, 0, 105, value=None))])
    assert revised.candles_revised == 1
    store.disconnect()
    assert rows(root, "SELECT close, value, revision FROM candles") == [(105, 5_000, 2)]


def test_a_changed_bar_gets_the_next_revision_and_the_old_one_stays_auditable(
    store: ArchiveStore, root: Path
) -> None:
    # A bar still forming at one poll, read complete at the next, then replaced by a backfill.
    store.write([seen("1-0", bar(0, 0, 100, volume=5))])
    store.write([seen("2-0", bar(0, 0, 103, volume=9, lineage="req-2"), request_id="req-2")])
    report = store.write(
        [seen("3-0", bar(0, 0, 104, volume=9, source_type="backfill", lineage="bf-1"))]
    )
    (coverage,) = report.coverage
    assert (coverage.source_type, coverage.revised) == ("backfill", 1)
    store.disconnect()
    assert rows(root, "SELECT close, volume, source_type, lineage, revision FROM candles") == [
        (104, 9, "backfill", "bf-1", 3)
    ]
    assert rows(
        root,
        "SELECT revision, close, lineage, superseded_by_revision, superseded_by_lineage, "
        "superseded_by_entry FROM candle_revisions ORDER BY revision",
    ) == [(1, 100, "req-1", 2, "req-2", "2-0"), (2, 103, "req-2", 3, "bf-1", "3-0")]
    lines = next(iter(jsonl_tree(root).values())).splitlines()
    assert [b'"revision":1' in lines[0], b'"revision":2' in lines[1], len(lines)] == [
        True,
        True,
        3,
    ]


def test_within_one_batch_the_later_entry_wins_whatever_the_order_given(
    store: ArchiveStore, root: Path
) -> None:
    report = store.write([seen("5-0", bar(0, 0, 107)), seen("4-0", bar(0, 0, 106))])
    assert (report.candles_inserted, report.candles_revised, report.lines) == (1, 0, 2)
    store.disconnect()
    assert rows(root, "SELECT close, revision, source_entry FROM candles") == [(107, 2, "5-0")]


def test_a_redelivered_entry_changes_nothing_and_is_reported_again(
    store: ArchiveStore, root: Path
) -> None:
    first = store.write([seen("1-0", bar(0, 0), bar(0, 1))])
    files = jsonl_tree(root)
    again = store.write([seen("1-0", bar(0, 0), bar(0, 1))])
    assert (again.already_applied, again.lines, again.candles_inserted) == (1, 0, 0)
    assert [c.bars for c in again.coverage] == [c.bars for c in first.coverage]
    assert [(c.inserted, c.revised) for c in again.coverage] == [(0, 0)]
    assert jsonl_tree(root) == files
    assert store.write([]).entries == 0


def mixed_batches() -> list[list[Item]]:
    """Batches where every kind of bar meets every path of the merge: only new bars, new and
    observed once, new and observed twice, stored and observed once (unchanged, changed,
    without a value), stored and observed twice, a naive start, an entry applied before, two
    source types."""
    only_new = [seen("0-1", bar(3, 0), bar(3, 1, 101, value=None), bar(4, interval="1d"))]
    first = [
        seen("1-0", *(bar(0, m, 100 + m) for m in range(6)), bar(1, 0, interval="1d")),
        seen("2-0", bar(0, 6, 100), bar(0, 6, 101), bar(0, 7, 100, value=None)),
    ]
    naive = msgspec.structs.replace(bar(0, 8), ts=bar(0, 8).ts.replace(tzinfo=None))
    second = [
        seen(
            "3-0",
            bar(0, 0, 100),  # stored, the same again
            bar(0, 1, 150),  # stored, changed
            bar(0, 2, 102, value=None),  # stored, value taken from it: unchanged
            bar(0, 3, 160, value=None),  # stored, changed, value taken from it
            bar(0, 4, 104, volume=11),  # stored, changed, then seen again below
            bar(0, 7, 100, value=7),  # stored without a value, now with one
            naive,  # new
            bar(0, 9, 109),  # new, seen again below
            bar(2, 0, interval="1d", source_type="backfill", lineage="bf-1"),  # new
            request_id="req-3",
        ),
        first[0],  # applied before
        seen("4-0", bar(0, 4, 104, volume=12), bar(0, 9, 110), bar(0, 5, 105, lineage="req-4")),
        seen("5-0", bar(0, 4, 104, volume=12), bar(0, 10, 1), bar(1, 0, 99, interval="1d")),
    ]
    third = [seen("6-0", bar(0, 1, 151), bar(0, 4, 104, volume=13), bar(0, 11, 1))]
    return [only_new, first, second, third]


def _report(report: _store.WriteReport) -> dict[str, object]:
    return {**dataclasses.asdict(report), "seconds": None}


def _write_all(root: Path, batches: list[list[Item]]) -> list[dict[str, object]]:
    with store_at(root, jsonl_max_bytes=1_000) as store:
        return [_report(store.write(batch)) for batch in batches]


@pytest.mark.parametrize("arrow_rows", [_merge._ARROW_ROWS, 2])
def test_new_and_paired_bars_skip_the_windows_with_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arrow_rows: int
) -> None:
    # Small Arrow batches split a day's lines across batches, which must not change them.
    monkeypatch.setattr(_merge, "_ARROW_ROWS", arrow_rows)
    batches = mixed_batches()
    fast = _write_all(tmp_path / "fast", batches)
    monkeypatch.setattr(_store, "CandleMerge", functools.partial(_merge.CandleMerge, fast=False))
    windows = _write_all(tmp_path / "windows", batches)
    assert fast == windows
    assert [(r["candles_inserted"], r["candles_revised"]) for r in fast] == [
        (3, 0),
        (9, 0),
        (4, 5),
        (1, 2),
    ]
    assert jsonl_tree(tmp_path / "fast") == jsonl_tree(tmp_path / "windows")
    assert content(tmp_path / "fast") == content(tmp_path / "windows")


def test_a_chunk_of_lines_lands_as_its_lines_one_by_one_would(tmp_path: Path) -> None:
    lines = [b'{"n":%d,"pad":"%s"}\n' % (n, b"x" * (n % 7)) for n in range(40)]
    day = date(2026, 12, 1)
    for limit in (10, 60, 400, 10_000):
        for before in ([], [b'{"first":1}\n']):
            one_by_one, chunked = (
                JsonlFiles(tmp_path / name, max_bytes=limit, compress_after_days=1)
                for name in ("lines", "chunk")
            )
            by_line = one_by_one.plan(("candles", day, line, 1) for line in [*before, *lines])
            chunks = [("candles", day, line, 1) for line in before]
            by_chunk = chunked.plan([*chunks, ("candles", day, memoryview(b"".join(lines)), 40)])
            assert by_chunk.records == by_line.records
            assert {path: b"".join(parts) for path, parts in by_chunk.appends.items()} == {
                path: b"".join(parts) for path, parts in by_line.appends.items()
            }


def test_ticks_and_snapshots_follow_the_same_rule(store: ArchiveStore, root: Path) -> None:
    at = DAY + timedelta(hours=10)
    tick = Tick(provider="KIS", symbol="005930", ts=at, price=100, volume=3, lineage="r")
    snap = Snapshot(
        provider="KIS",
        symbol="005930",
        ts=at,
        price=100,
        open=99,
        high=101,
        low=98,
        cum_volume=1_000,
        cum_value=100_000,
        lineage="r",
    )
    store.write([Observation("1-0", MarketData(ticks=(tick,), snapshots=(snap,)))])
    same_snapshot = Snapshot(**{**_fields(snap), "cum_value": None})
    report = store.write(
        [Observation("2-0", MarketData(ticks=(tick,), snapshots=(same_snapshot,)))]
    )
    assert (report.ticks_written, report.snapshots_written, report.lines) == (0, 0, 0)
    moved = Tick(provider="KIS", symbol="005930", ts=at, price=101, volume=3, lineage="s")
    report = store.write([Observation("3-0", MarketData(ticks=(moved,)))])
    assert (report.ticks_written, report.lines) == (1, 1)
    store.disconnect()
    assert rows(root, "SELECT price, lineage, source_entry FROM ticks") == [(101, "s", "3-0")]
    assert rows(root, "SELECT cum_value FROM snapshots") == [(100_000,)]
    assert sorted(jsonl_tree(root)) == [
        "jsonl/snapshots/2026/12/snapshots-2026-12-01.jsonl",
        "jsonl/ticks/2026/12/ticks-2026-12-01.jsonl",
    ]


def _fields(snapshot: Snapshot) -> dict[str, object]:
    return {name: getattr(snapshot, name) for name in snapshot.__struct_fields__}


def test_rejections_are_quarantined_with_their_reason_and_body(
    store: ArchiveStore, root: Path
) -> None:
    bad = Rejection("1-0", "malformed_json", "not JSON", "req-9", "KIS", "FHKST03010100", b"{")
    report = store.write([bad, seen("2-0", bar(0, 0))])
    assert report.quarantined == (bad,)
    again = store.write([bad])
    assert (again.already_applied, again.quarantined) == (1, (bad,)), "reported again"
    store.disconnect()
    assert rows(root, "SELECT source_entry, reason, detail, body FROM quarantine") == [
        ("1-0", "malformed_json", "not JSON", b"{")
    ]
    assert rows(root, "SELECT entry, outcome, candles FROM archive_sources ORDER BY entry") == [
        ("1-0", "quarantined", 0),
        ("2-0", "stored", 1),
    ]


def test_entry_ids_order_as_numbers() -> None:
    assert sorted(["10-0", "9-1", "9-0", "junk"], key=entry_order) == ["junk", "9-0", "9-1", "10-0"]


# -- replay ----------------------------------------------------------------------------------------


def history() -> list[Item]:
    """Entries touching several days, revising bars, late lines for old days, a rejection."""
    items: list[Item] = []
    number = 0
    for day in range(6):
        for poll in range(3):
            number += 1
            candles = [
                bar(day, minute, 100 + poll + minute % 3)
                for minute in range(poll * 4, poll * 4 + 6)
            ]
            items.append(seen(f"{1000 + number}-0", *candles))
        number += 1
        items.append(seen(f"{1000 + number}-0", bar(day, 0, interval="1d")))
    # A backfill of day 0 after day 5 was written: lands in day 0's (by then gzipped) files.
    number += 1
    items.append(
        seen(f"{1000 + number}-0", *(bar(0, m, 90 + m, source_type="backfill") for m in range(8)))
    )
    number += 1
    items.append(Rejection(f"{1000 + number}-0", "bad_number", "output2[0].stck_prpr", body=b"{}"))
    return items


@pytest.mark.parametrize("cut", [1, 3, 100])
def test_replay_into_an_empty_archive_is_byte_identical_however_batches_are_cut(
    tmp_path: Path, cut: int
) -> None:
    items = history()
    options = {"jsonl_max_bytes": 2_000, "compress_after_days": 1}
    with store_at(tmp_path / "whole", **options) as whole:
        whole.write(items)
    with store_at(tmp_path / "cut", **options) as pieces:
        for start in range(0, len(items), cut):
            pieces.write(items[start : start + cut])
    expected, got = jsonl_tree(tmp_path / "whole"), jsonl_tree(tmp_path / "cut")
    assert sorted(got) == sorted(expected)
    assert got == expected
    assert content(tmp_path / "cut") == content(tmp_path / "whole")
    assert any(name.endswith(".gz") for name in got), "old days are gzipped"
    assert any(".1.jsonl" in name for name in got), "full parts roll over"


def test_gzip_is_deterministic_and_holds_the_committed_lines(
    store: ArchiveStore, root: Path
) -> None:
    store.write([seen("1-0", bar(0, 0)), seen("2-0", bar(3, 0))])
    assert "jsonl/candles/2026/12/candles-2026-12-01.jsonl" in jsonl_tree(root), (
        "a cold file the batch just wrote waits for the next batches to leave it alone"
    )
    store.write([seen("3-0", bar(3, 1))])
    assert "jsonl/candles/2026/12/candles-2026-12-01.jsonl" in jsonl_tree(root)
    store.write([seen("4-0", bar(3, 2))])
    assert "jsonl/candles/2026/12/candles-2026-12-01.jsonl.gz" in jsonl_tree(root)
    assert store.settle() == 0
    tree = jsonl_tree(root)
    packed = tree["jsonl/candles/2026/12/candles-2026-12-01.jsonl.gz"]
    assert packed[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + packed[8:10], "no name, mtime 0"
    lines = gzip.decompress(packed)
    assert lines == store._files.read_lines("jsonl/candles/2026/12/candles-2026-12-01.jsonl")[0]
    assert zlib.crc32(lines) == int.from_bytes(packed[-8:-4], "little")
    assert "jsonl/candles/2026/12/candles-2026-12-04.jsonl" in tree, "the newest day stays plain"


def test_a_part_rolls_over_at_the_size_limit(root: Path) -> None:
    with store_at(root, jsonl_max_bytes=500) as store:
        store.write([seen("1-0", *(bar(0, m) for m in range(5)))])
        records = store.jsonl_files()
    assert sorted((r.part, r.lines) for r in records.values()) == [(0, 2), (1, 2), (2, 1)]
    assert all(r.bytes <= 500 for r in records.values())
    with store_at(root, jsonl_max_bytes=10) as store:
        store.write([seen("2-0", bar(1, 0))])
        assert store.jsonl_files()["jsonl/candles/2026/12/candles-2026-12-02.jsonl"].lines == 1


def test_a_batch_touching_more_files_than_it_opens_at_once_appends_to_each(root: Path) -> None:
    days = 2 * _jsonl._OPEN_AT_ONCE + 3
    daily = [bar(day, interval="1d", close=100 + day) for day in range(days)]
    with ArchiveStore(root, compress_after_days=-1) as store:  # fsynced, as in production
        store.write([seen("1-0", *daily)])
        records = store.jsonl_files()
    assert len(records) == days
    assert all(record.lines == 1 for record in records.values())
    sizes = {name: len(data) for name, data in jsonl_tree(root).items()}
    assert sizes == {path: record.bytes for path, record in records.items()}


def test_compression_can_be_turned_off(root: Path) -> None:
    with store_at(root, compress_after_days=-1) as store:
        store.write([seen("1-0", bar(0, 0)), seen("2-0", bar(30, 0))])
    assert not any(name.endswith(".gz") for name in jsonl_tree(root))


# -- crashes ------------------------------------------------------------------------------------


class Crash(Exception):
    pass


def crash_at(stage: str) -> Callable[[str], None]:
    def point(name: str) -> None:
        if name == stage:
            raise Crash(name)

    return point


@pytest.mark.parametrize("stage", ["jsonl_appended", "committed"])
def test_a_write_interrupted_at_any_stage_ends_as_if_it_ran_once(
    tmp_path: Path, stage: str
) -> None:
    items = history()
    options = {"jsonl_max_bytes": 2_000, "compress_after_days": 1}
    with store_at(tmp_path / "clean", **options) as clean:
        clean.write(items)
    root = tmp_path / "crashed"
    with store_at(root, **options) as first:
        first.write(items[:10])
    with store_at(root, crash_point=crash_at(stage), **options) as dying:
        with pytest.raises(Crash):
            dying.write(items[10:20])
        assert not dying.connected, "a failed write gives the database up"
    if stage == "jsonl_appended":
        # The uncommitted tail is on disk until the next writer opens the archive.
        assert jsonl_tree(root) != jsonl_tree(tmp_path / "clean")
    with store_at(root, **options) as second:
        second.write(items[10:])
    assert jsonl_tree(root) == jsonl_tree(tmp_path / "clean")
    assert content(root) == content(tmp_path / "clean")


def test_the_same_store_repairs_itself_after_a_failed_write(root: Path) -> None:
    calls: list[str] = []

    def once(name: str) -> None:
        calls.append(name)
        if calls == ["jsonl_appended", "committed", "jsonl_appended"]:
            raise Crash(name)

    with store_at(root, crash_point=once) as store:
        store.write([seen("1-0", bar(0, 0))])
        with pytest.raises(Crash):
            store.write([seen("2-0", bar(0, 1))])
        store.write([seen("2-0", bar(0, 1))])
        assert store.jsonl_files()["jsonl/candles/2026/12/candles-2026-12-01.jsonl"].lines == 2
    assert len(next(iter(jsonl_tree(root).values())).splitlines()) == 2


def test_uncommitted_files_and_leftovers_are_removed_on_open(root: Path) -> None:
    with store_at(root) as store:
        store.write([seen("1-0", bar(0, 0))])
    stray = root / "jsonl/candles/2026/12/candles-2026-12-09.jsonl"
    stray.write_bytes(b"{}\n")
    (root / "jsonl/candles/2026/12/candles-2026-12-01.jsonl.gz.tmp").write_bytes(b"x")
    with store_at(root) as store:
        store.connect()
    assert sorted(jsonl_tree(root)) == ["jsonl/candles/2026/12/candles-2026-12-01.jsonl"]


def test_an_interrupted_compression_is_finished_on_open(root: Path) -> None:
    with store_at(root) as store:
        store.write([seen("1-0", bar(0, 0)), seen("2-0", bar(5, 0))])
    packed = root / "jsonl/candles/2026/12/candles-2026-12-01.jsonl.gz"
    plain = packed.with_suffix("")
    plain.write_bytes(gzip.decompress(packed.read_bytes()) + b"uncommitted tail\n")
    expected = packed.read_bytes()
    with store_at(root) as store:
        store.connect()
    assert not plain.exists()
    assert packed.read_bytes() == expected


def test_a_file_shorter_than_committed_is_refused(root: Path) -> None:
    with store_at(root) as store:
        store.write([seen("1-0", bar(0, 0), bar(0, 1))])
    path = root / "jsonl/candles/2026/12/candles-2026-12-01.jsonl"
    path.write_bytes(path.read_bytes()[:10])
    with store_at(root) as store, pytest.raises(ArchiveCorrupt, match="were committed"):
        store.connect()
    path.unlink()
    with store_at(root) as store, pytest.raises(ArchiveCorrupt, match="missing"):
        store.connect()


def test_a_newer_schema_is_refused(root: Path) -> None:
    with store_at(root) as store:
        store.connect()
    con = duckdb.connect(str(root / "market.duckdb"))
    con.execute("UPDATE schema_version SET version = 99")
    con.close()
    with store_at(root) as store, pytest.raises(ArchiveCorrupt, match="schema v99"):
        store.connect()


def test_a_database_error_becomes_an_archive_write_error(root: Path) -> None:
    with store_at(root) as store:
        store.write([seen("1-0", bar(0, 0))])
        store._con.execute("DROP TABLE candle_revisions")  # type: ignore[union-attr]
        with pytest.raises(ArchiveWriteError, match="candle_revisions"):
            store.write([seen("2-0", bar(0, 0, 200))])
        assert not store.connected


def test_one_writer_per_archive(root: Path) -> None:
    with store_at(root) as first:
        second = store_at(root)
        with pytest.raises(ArchiveBusy, match="another archiver"), second:
            pass
        assert not second.claim()
        with pytest.raises(ArchiveError, match="claimed store"):
            second.try_connect()
        first.write([seen("1-0", bar(0, 0))])
    with store_at(root) as again:
        assert again.claim()


def test_a_bad_location_is_an_archive_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ArchiveError, match="cannot lock"):
        store_at(blocker / "archive").claim()
    with (
        store_at(tmp_path / "a", database="sub/dir/x.duckdb") as store,
        pytest.raises(ArchiveError, match="cannot open"),
    ):
        store.connect()
