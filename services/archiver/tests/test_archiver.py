"""The archiver group on a real Redis with real broker answers (from the simulator): what it
stores and announces, what it quarantines, redelivery, the drain, reading while it runs, and a
second archiver standing by."""

from __future__ import annotations

import gzip
import logging
import os
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio
import pytest
import redis.asyncio as aioredis

from apihub_archive import ArchiveReader, read_candles
from apihub_archiver import GROUP, Archiver, open_archiver
from apihub_core import (
    ArchiveQuarantined,
    ArchiveWritten,
    ConfigurationError,
    Event,
    Keys,
    RequestFailed,
    ResponseReceived,
    decode_archive_event,
    encode_entry,
)
from apihub_runtime import Settings, ensure_group
from apihub_testing import async_wait_until

if TYPE_CHECKING:
    from conftest import Answers

pytestmark = pytest.mark.anyio

FAST = {"reclaim_idle_ms": 300, "reclaim_interval_s": 0.1, "block_ms": 100}


@asynccontextmanager
async def running(settings: Settings, **tuning: Any) -> AsyncIterator[Archiver]:
    async with (
        open_archiver(settings, **{**FAST, **tuning}) as archiver,
        anyio.create_task_group() as tg,
    ):
        await tg.start(archiver.run)
        yield archiver
        archiver.stop()


async def append(aredis: aioredis.Redis, settings: Settings, *events: Event) -> list[bytes]:
    stream = Keys(settings.namespace).responses
    return [cast(bytes, await aredis.xadd(stream, encode_entry(event))) for event in events]


async def settled(aredis: aioredis.Redis, settings: Settings, last: bytes) -> bool:
    """Whether the group has read up to ``last`` and holds nothing pending."""
    groups = await aredis.xinfo_groups(Keys(settings.namespace).responses)
    ours = [g for g in groups if g["name"] in (GROUP, GROUP.encode())]
    return bool(ours) and ours[0]["pending"] == 0 and ours[0]["last-delivered-id"] == last


async def archive_events(aredis: aioredis.Redis, settings: Settings) -> list[Any]:
    entries = await aredis.xrange(Keys(settings.namespace).archive)
    return [decode_archive_event(fields) for _id, fields in entries]


def root_of(settings: Settings) -> Path:
    return settings.archive.root(settings.data_dir)


def query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    with ArchiveReader(root_of(settings), lock_wait_s=20) as archive:
        return archive.query(sql)[1]


def jsonl_tree(root: Path) -> dict[str, bytes]:
    found = {}
    for directory, _dirs, names in os.walk(root / "jsonl"):
        for name in names:
            path = Path(directory) / name
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def jsonl_lines(root: Path) -> dict[str, bytes]:
    """The JSONL archive's content by logical name, whether a file is gzipped yet or not."""
    return {
        name.removesuffix(".gz"): gzip.decompress(data) if name.endswith(".gz") else data
        for name, data in jsonl_tree(root).items()
    }


async def test_every_market_answer_is_archived_and_announced(
    settings: Settings, aredis: aioredis.Redis, answers: Answers
) -> None:
    others = [
        ResponseReceived(
            request_id="order", provider="KIS", tr_id="TTTC0012U", account="a", status=200
        ),
        RequestFailed(
            request_id="lost", provider="KIS", tr_id="FHKST03010100", error_class="timeout"
        ),
    ]
    ids = await append(
        aredis,
        settings,
        answers.kis_daily.response("col-1"),
        others[0],
        answers.kiwoom_daily.response("strat-1", priority="interactive"),
        others[1],
        answers.kis_daily_hynix.response("bf-1", priority="backfill"),
        answers.kis_price.response("quote-1"),
    )
    async with running(settings) as archiver:
        await async_wait_until(lambda: settled(aredis, settings, ids[-1]), timeout=20)
        await async_wait_until(lambda: archiver.stats.skipped == 2, timeout=20)
        events = await archive_events(aredis, settings)
        # Readable while the archiver runs (from a thread: this one runs the archiver).
        bounds = _bounds(events, "KIS", "005930")
        bars = await anyio.to_thread.run_sync(
            lambda: read_candles(root_of(settings), "KIS", "005930", "1d", *bounds)
        )
    written = {
        (e.provider, e.symbol, e.interval): e for e in events if isinstance(e, ArchiveWritten)
    }
    assert sorted(written) == [
        ("KIS", "000660", "1d"),
        ("KIS", "005930", "1d"),
        ("KIWOOM", "005930", "1d"),
    ]
    samsung = written[("KIS", "005930", "1d")]
    assert samsung.count == samsung.inserted == len(samsung.bars) == len(bars) > 20
    assert (samsung.revised, samsung.source_type, samsung.lineage) == (0, "rest", ["col-1"])
    assert samsung.bars == sorted(samsung.bars)
    assert (samsung.first, samsung.last) == (samsung.bars[0], samsung.bars[-1])
    assert samsung.source_entry == ids[0].decode()
    assert [b.ts for b in bars] == samsung.bars
    assert all(b.lineage == "col-1" and b.revision == 1 for b in bars)
    assert written[("KIS", "000660", "1d")].source_type == "backfill"
    assert written[("KIWOOM", "005930", "1d")].lineage == ["strat-1"]
    assert query(settings, "SELECT count(*) FROM snapshots") == [(1,)]
    assert query(settings, "SELECT count(*) FROM archive_sources") == [(4,)], "only market data"
    assert query(settings, "SELECT count(*) FROM quarantine") == [(0,)]


def _bounds(events: Sequence[Any], provider: str, symbol: str) -> tuple[Any, Any]:
    (event,) = [
        e
        for e in events
        if isinstance(e, ArchiveWritten)
        and (e.provider, e.symbol) == (provider, symbol)
        and e.interval == "1d"
    ]
    return event.first, event.last


async def test_bad_payloads_are_quarantined_never_dropped(
    settings: Settings, aredis: aioredis.Redis, answers: Answers
) -> None:
    broken = replace(answers.kis_daily, body=b'{"output2": 7}')
    refused = replace(
        answers.kis_daily, body=b'{"rt_cd": "1", "msg_cd": "EGW00201", "msg1": "too fast"}'
    )
    wrong_number = answers.kiwoom_daily.edited(
        lambda doc: doc["stk_dt_pole_chart_qry"][0].update(cur_prc="12x")
    )
    ids = await append(
        aredis,
        settings,
        broken.response("r-broken"),
        refused.response("r-refused"),
        wrong_number.response("r-number"),
        answers.kis_daily.response("r-good"),
    )
    stream = Keys(settings.namespace).responses
    ids.append(
        cast(bytes, await aredis.xadd(stream, {"type": "response.received", "data": b"{nope"}))
    )
    async with running(settings) as archiver:
        await async_wait_until(lambda: settled(aredis, settings, ids[-1]), timeout=20)
        await async_wait_until(lambda: archiver.stats.quarantined == 4, timeout=20)
    events = await archive_events(aredis, settings)
    quarantined = {
        e.request_id or e.source_entry: e for e in events if isinstance(e, ArchiveQuarantined)
    }
    assert {key: e.reason for key, e in quarantined.items()} == {
        "r-broken": "malformed_json",
        "r-refused": "broker_error",
        "r-number": "bad_number",
        ids[-1].decode(): "bad_encoding",
    }
    assert quarantined["r-number"].provider == "KIWOOM"
    assert "output" in quarantined["r-broken"].detail or quarantined["r-broken"].detail
    rows = query(settings, "SELECT request_id, reason, body FROM quarantine ORDER BY source_entry")
    assert [(r[0], r[1]) for r in rows] == [
        ("r-broken", "malformed_json"),
        ("r-refused", "broker_error"),
        ("r-number", "bad_number"),
        ("", "bad_encoding"),
    ]
    assert rows[0][2] == broken.body, "the raw answer is kept"
    assert query(settings, "SELECT count(*) FROM candles") != [(0,)]


async def test_a_later_observation_revises_a_bar(
    settings: Settings, aredis: aioredis.Redis, answers: Answers
) -> None:
    def bump(doc: Any) -> None:
        newest = doc["output2"][0]
        newest["stck_clpr"] = str(int(newest["stck_clpr"]) + 1)
        newest["stck_hgpr"] = str(max(int(newest["stck_hgpr"]), int(newest["stck_clpr"])))

    ids = await append(
        aredis,
        settings,
        answers.kis_daily.response("live-1"),
        answers.kis_daily.response("live-2"),  # the same bars again: confirmed, no revision
        answers.kis_daily.edited(bump).response("bf-1", priority="backfill"),
    )
    async with running(settings):
        await async_wait_until(lambda: settled(aredis, settings, ids[-1]), timeout=20)
    written = [e for e in await archive_events(aredis, settings) if isinstance(e, ArchiveWritten)]
    by_source = {(e.source_type, e.revised, e.inserted) for e in written}
    assert ("backfill", 1, 0) in by_source
    rows = query(settings, "SELECT revision, source_type, lineage FROM candles WHERE revision > 1")
    assert rows == [(2, "backfill", "bf-1")]
    assert query(settings, "SELECT lineage, superseded_by_lineage FROM candle_revisions") == [
        ("live-1", "bf-1")
    ]


async def test_entries_normalised_ahead_of_their_batch_are_stored_as_a_replay_stores_them(
    settings: Settings, aredis: aioredis.Redis, answers: Answers, tmp_path: Path
) -> None:
    """The next batch is projected while the one before it is written: new bars, confirmed and
    revised ones and a quarantined answer, over many small batches, give the same archive as a
    rebuild (which projects each batch as it writes it)."""
    from apihub_archiver import rebuild_archive

    def bump(doc: Any) -> None:
        newest = doc["output2"][0]
        newest["acml_vol"] = str(int(newest["acml_vol"]) + 1)

    small = replace(settings, archive=replace(settings.archive, batch_max=2))
    ids = await append(
        aredis,
        small,
        answers.kis_daily.response("p-1"),
        answers.kiwoom_daily.response("p-2"),
        answers.kis_daily_older.response("p-3"),
        answers.kis_daily.response("p-4"),
        replace(answers.kis_daily, body=b'{"output2": 7}').response("p-5"),
        answers.kis_daily.edited(bump).response("p-6"),
        answers.kis_daily_hynix.response("p-7", priority="backfill"),
        answers.kiwoom_daily.response("p-8"),
    )
    async with running(small) as archiver:
        await async_wait_until(lambda: settled(aredis, small, ids[-1]), timeout=20)
    assert archiver.stats.batches >= 4
    assert archiver.stats.projected_ahead > 0
    assert (archiver.stats.candles_revised, archiver.stats.quarantined) == (1, 1)
    clean = tmp_path / "clean"
    await rebuild_archive(aredis, small, clean)
    assert jsonl_lines(root_of(small)) == jsonl_lines(clean)
    live = query(small, "SELECT * FROM candles ORDER BY ALL")
    with ArchiveReader(clean, lock_wait_s=20) as rebuilt:
        assert rebuilt.query("SELECT * FROM candles ORDER BY ALL")[1] == live


async def test_a_redelivered_entry_announces_again_and_changes_nothing(
    settings: Settings, aredis: aioredis.Redis, answers: Answers
) -> None:
    ids = await append(aredis, settings, answers.kis_daily.response("col-1"))
    stream = Keys(settings.namespace).responses
    async with running(settings) as archiver:
        await async_wait_until(lambda: settled(aredis, settings, ids[-1]), timeout=20)
        files = jsonl_lines(root_of(settings))
        # Deliver every entry of the stream again (as after a lost acknowledgement).
        await aredis.xgroup_setid(stream, GROUP, "0")
        await async_wait_until(lambda: archiver.stats.already_applied == 1, timeout=20)
        await async_wait_until(lambda: settled(aredis, settings, ids[-1]), timeout=20)
    first, again = [
        e for e in await archive_events(aredis, settings) if isinstance(e, ArchiveWritten)
    ]
    assert again.bars == first.bars
    assert (again.inserted, again.revised, first.inserted) == (0, 0, first.count)
    assert jsonl_lines(root_of(settings)) == files
    assert query(settings, "SELECT max(revision), count(*) FROM candles") == [(1, first.count)]
    assert query(settings, "SELECT count(*) FROM archive_sources") == [(1,)]


async def test_a_dead_members_entries_are_taken_over_in_stream_order(
    settings: Settings, aredis: aioredis.Redis, answers: Answers, tmp_path: Path
) -> None:
    """Consumer A takes a batch and dies without acknowledging it; newer entries arrive; B
    archives everything, A's entries first, exactly as an archiver that never died."""
    from apihub_archiver import rebuild_archive

    keys = Keys(settings.namespace)
    early = await append(
        aredis,
        settings,
        answers.kis_daily_older.response("a-1"),
        answers.kis_daily.response("a-2"),
    )
    await ensure_group(aredis, keys.responses, GROUP)
    taken = await aredis.xreadgroup(GROUP, "archiver-dead", {keys.responses: ">"}, count=10)
    assert len(taken[0][1]) == 2
    late = await append(
        aredis,
        settings,
        answers.kis_daily.edited(lambda doc: doc["output2"][0].update(acml_vol="1")).response(
            "b-1"
        ),
    )
    # Reclaim would take them only after a minute: the batch of the late entry must.
    async with running(settings, reclaim_idle_ms=60_000) as archiver:
        await async_wait_until(lambda: settled(aredis, settings, late[-1]), timeout=20)
        await async_wait_until(lambda: archiver.stats.pulled_in == 2, timeout=20)
    clean = tmp_path / "clean"
    await rebuild_archive(aredis, settings, clean)
    assert jsonl_tree(root_of(settings)) == jsonl_tree(clean)
    revised = query(settings, "SELECT lineage, revision FROM candles WHERE revision > 1")
    assert revised == [("b-1", 2)], "the late entry was applied after A's entries"
    assert early


async def test_the_drain_hands_back_what_only_waits_for_its_batch(
    settings: Settings, aredis: aioredis.Redis, answers: Answers
) -> None:
    slow = replace(settings, archive=replace(settings.archive, batch_wait_ms=60_000, batch_max=500))
    ids = await append(
        aredis,
        settings,
        answers.kis_daily.response("w-1"),
        answers.kiwoom_daily.response("w-2"),
    )
    async with running(slow, shutdown_grace_s=5.0) as archiver:
        await async_wait_until(lambda: len(archiver._queue) == 2, timeout=20)
        archiver.stop()
        await async_wait_until(lambda: archiver.consumer.drain.released == 2, timeout=20)
    assert archiver.stats.batches == 0, "nothing half-written"
    pending = await aredis.xpending(Keys(settings.namespace).responses, GROUP)
    assert pending["pending"] == 2
    async with running(settings, reclaim_idle_ms=0) as successor:
        await async_wait_until(lambda: settled(aredis, settings, ids[-1]), timeout=20)
        await async_wait_until(lambda: successor.stats.entries == 2, timeout=20)


async def test_a_reader_gets_the_database_while_the_archiver_holds_it(
    settings: Settings, aredis: aioredis.Redis, answers: Answers
) -> None:
    # A long batch window: after its batch the archiver keeps the database for the next one.
    holding = replace(
        settings, archive=replace(settings.archive, batch_max=1, batch_wait_ms=30_000)
    )
    ids = await append(aredis, settings, answers.kis_daily.response("h-1"))
    async with running(holding) as archiver:
        await async_wait_until(lambda: settled(aredis, settings, ids[-1]), timeout=40)
        assert archiver.store.connected
        got: list[int] = []

        def read() -> None:
            with ArchiveReader(root_of(settings), lock_wait_s=20) as archive:
                got.append(archive.query("SELECT count(*) FROM candles")[1][0][0])

        reader = threading.Thread(target=read)
        reader.start()
        await async_wait_until(lambda: got, timeout=20, message="the reader got in")
        await anyio.to_thread.run_sync(reader.join)
        assert archiver.stats.yielded_to_readers >= 1
        more = await append(aredis, settings, answers.kiwoom_daily.response("h-2"))
        await async_wait_until(lambda: settled(aredis, settings, more[-1]), timeout=40)
    assert got[0] > 0
    assert query(settings, "SELECT count(DISTINCT provider) FROM candles") == [(2,)]


async def test_a_second_archiver_stands_by_until_the_first_stops(
    settings: Settings, aredis: aioredis.Redis, answers: Answers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "apihub.archiver")
    async with running(settings) as first:
        async with running(settings) as second:
            assert "standing by" in caplog.text
            first.stop()
            await async_wait_until(lambda: "took over the archive" in caplog.text, timeout=20)
            ids = await append(aredis, settings, answers.kis_daily.response("s-1"))
            await async_wait_until(lambda: settled(aredis, settings, ids[-1]), timeout=20)
            await async_wait_until(lambda: second.stats.entries == 1, timeout=20)
        assert first.stats.entries == 0


async def test_a_standby_archiver_can_be_stopped(settings: Settings) -> None:
    async with running(settings), running(settings) as standby:
        standby.stop()


async def test_the_archiver_needs_a_redis_url_and_to_be_enabled(settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="needs REDIS_URL"):
        async with open_archiver(Settings()):
            pass
    off = replace(settings, archive=replace(settings.archive, enabled=False))
    with pytest.raises(ConfigurationError, match="disabled"):
        async with open_archiver(off):
            pass


async def test_an_unusable_archive_directory_is_a_configuration_error(
    settings: Settings, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    unusable = replace(settings, archive=replace(settings.archive, dir=blocker / "archive"))
    async with open_archiver(unusable) as archiver:
        with pytest.raises(ConfigurationError, match="cannot lock"):
            await archiver.run()


async def test_an_entry_that_keeps_failing_is_quarantined(
    settings: Settings, aredis: aioredis.Redis, answers: Answers
) -> None:
    keys = Keys(settings.namespace)
    (entry,) = await append(aredis, settings, answers.kis_daily.response("p-1"))
    await ensure_group(aredis, keys.responses, GROUP)
    await aredis.xreadgroup(GROUP, "archiver-dead", {keys.responses: ">"}, count=1)
    await aredis.xclaim(
        keys.responses, GROUP, "archiver-dead", min_idle_time=0, message_ids=[entry], retrycount=9
    )
    async with running(settings, reclaim_idle_ms=0) as archiver:
        await async_wait_until(lambda: settled(aredis, settings, entry), timeout=20)
        await async_wait_until(lambda: archiver.stats.quarantined == 1, timeout=20)
    (event,) = await archive_events(aredis, settings)
    assert (event.reason, event.provider, event.request_id) == ("too_many_deliveries", "KIS", "")
    assert query(settings, "SELECT reason FROM quarantine") == [("too_many_deliveries",)]


async def test_a_failed_batch_leaves_its_entries_pending_and_is_retried_in_order(
    settings: Settings, aredis: aioredis.Redis, answers: Answers, caplog: pytest.LogCaptureFixture
) -> None:
    from apihub_archive import ArchiveStore

    failures: list[str] = []

    def fail_once(stage: str) -> None:
        if stage == "jsonl_appended" and not failures:
            failures.append(stage)
            raise OSError("disk full (drill)")

    archive = settings.archive
    store = ArchiveStore(
        root_of(settings),
        database=archive.database,
        jsonl_max_bytes=archive.jsonl_max_bytes,
        compress_after_days=archive.compress_after_days,
        crash_point=fail_once,
    )
    caplog.set_level(logging.WARNING, "apihub.archiver")
    ids = await append(
        aredis, settings, answers.kis_daily.response("f-1"), answers.kiwoom_daily.response("f-2")
    )
    async with running(settings, store=store, reclaim_idle_ms=200) as archiver:
        await async_wait_until(lambda: archiver.stats.failed_batches == 1, timeout=20)
        await async_wait_until(lambda: archiver.stats.entries == 2, timeout=20)
        await async_wait_until(lambda: settled(aredis, settings, ids[-1]), timeout=20)
    assert "was not archived (ArchiveWriteError" in caplog.text
    assert query(settings, "SELECT count(DISTINCT provider), max(revision) FROM candles") == [
        (2, 1)
    ]


async def test_readers_holding_the_archive_pause_archiving_without_losing_anything(
    settings: Settings, aredis: aioredis.Redis, answers: Answers, caplog: pytest.LogCaptureFixture
) -> None:
    patient = replace(settings, archive=replace(settings.archive, lock_wait_s=0.05))
    caplog.set_level(logging.WARNING, "apihub.archiver")
    async with running(patient) as archiver:
        await async_wait_until(lambda: not archiver.store.connected, timeout=20)
        reader = ArchiveReader(root_of(settings), lock_wait_s=20)
        await anyio.to_thread.run_sync(reader.open)
        try:
            ids = await append(aredis, settings, answers.kis_daily.response("r-1"))
            await async_wait_until(lambda: "archiving is paused" in caplog.text, timeout=20)
            assert archiver.stats.entries == 0
        finally:
            await anyio.to_thread.run_sync(reader.close)
        await async_wait_until(lambda: archiver.stats.entries == 1, timeout=20)
        await async_wait_until(lambda: settled(aredis, settings, ids[-1]), timeout=20)


def test_python_m_apihub_archiver_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    from apihub_archiver.__main__ import main

    with pytest.raises(SystemExit) as stopped:
        main(["-h"])
    assert stopped.value.code == 0
    assert "archiver" in capsys.readouterr().out
