"""The projection of one response-stream entry, and rebuilding an archive from the stream."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import pytest
import redis.asyncio as aioredis

from apihub_archive import ArchiveBusy, ArchiveError, ArchiveReader, ArchiveStore, Observation
from apihub_archiver import (
    RebuildReport,
    holds_archive,
    project,
    quarantined_event,
    rebuild_archive,
    received_at,
    wanted,
)
from apihub_core import Keys, RequestFailed, ResponseReceived, encode_entry
from apihub_runtime import Settings

if TYPE_CHECKING:
    from conftest import Answers


def fields(event: ResponseReceived | RequestFailed) -> dict[bytes, bytes]:
    return {key.encode(): value for key, value in encode_entry(event).items()}


def test_only_market_answers_are_wanted(answers: Answers) -> None:
    assert wanted(fields(answers.kis_daily.response("r")))
    order = ResponseReceived(
        request_id="o", provider="KIS", tr_id="TTTC0012U", account="a", status=200
    )
    assert not wanted(fields(order))
    failed = RequestFailed(
        request_id="f", provider="KIS", tr_id="FHKST03010100", error_class="timeout"
    )
    assert not wanted(fields(failed))
    assert wanted({b"type": b"response.received"}), "no data: quarantined, not dropped"
    assert wanted({b"type": b"response.received", b"data": b"[1, 2"})


def test_a_backfill_answer_is_marked_backfill_and_carries_its_request(answers: Answers) -> None:
    item = project("5-0", fields(answers.kis_daily.response("bf-7", priority="backfill")))
    assert isinstance(item, Observation)
    assert (item.entry, item.request_id, item.provider, item.tr_id) == (
        "5-0",
        "bf-7",
        "KIS",
        "FHKST03010100",
    )
    assert {c.source_type for c in item.data.candles} == {"backfill"}
    assert {c.lineage for c in item.data.candles} == {"bf-7"}
    live = project("6-0", fields(answers.kis_daily.response("c-1")))
    assert isinstance(live, Observation)
    assert {c.source_type for c in live.data.candles} == {"rest"}


def test_what_is_not_an_answer_projects_to_nothing() -> None:
    failed = RequestFailed(
        request_id="f", provider="KIS", tr_id="FHKST03010100", error_class="timeout"
    )
    lying = {b"type": b"response.received", b"data": fields(failed)[b"data"]}
    assert project("1-0", lying) is None
    assert project("1-0", {b"type": b"request.failed", b"data": b"{}"}) is None


def test_numbers_beyond_64_bits_are_quarantined(answers: Answers) -> None:
    huge = answers.kiwoom_daily.edited(
        lambda doc: doc["stk_dt_pole_chart_qry"][0].update(trde_qty="9" * 30)
    )
    item = project("1-0", fields(huge.response("r")))
    assert item is not None
    assert not isinstance(item, Observation)
    assert (item.reason, item.request_id) == ("out_of_range", "r")
    assert "64 bits" in item.detail
    event = quarantined_event(item)
    assert (event.source_entry, event.reason, event.tr_id) == ("1-0", "out_of_range", "ka10081")


def test_the_answer_is_dated_by_the_brokers_date_header(answers: Answers) -> None:
    event = answers.kis_price.response("q")
    dated = replace_headers(event, {"date": "Wed, 02 Dec 2026 00:00:05 GMT"})
    assert received_at(dated) == datetime(2026, 12, 2, 0, 0, 5, tzinfo=UTC)
    naive = replace_headers(event, {"date": "Wed, 02 Dec 2026 00:00:05 -0000"})
    assert received_at(naive) == datetime(2026, 12, 2, 0, 0, 5, tzinfo=UTC)
    fallback = replace_headers(event, {"date": "yesterday"})
    assert received_at(fallback) == datetime.fromtimestamp(event.received_at_ms / 1000, UTC)
    assert received_at(msgspec.structs.replace(fallback, received_at_ms=0)) is None


def replace_headers(event: ResponseReceived, headers: dict[str, str]) -> ResponseReceived:
    return msgspec.structs.replace(event, headers=headers)


@pytest.mark.anyio
async def test_rebuild_replays_the_stream_into_an_empty_archive(
    settings: Settings, aredis: aioredis.Redis, answers: Answers, tmp_path: Path
) -> None:
    stream = Keys(settings.namespace).responses
    for event in (
        answers.kis_daily.response("r-1"),
        answers.kiwoom_daily.response("r-2"),
        replace(answers.kis_daily, body=b'{"output2": 7}').response("r-3"),
        ResponseReceived(
            request_id="o", provider="KIS", tr_id="TTTC0012U", account="a", status=200
        ),
    ):
        await aredis.xadd(stream, encode_entry(event))  # type: ignore[arg-type]
    seen: list[RebuildReport] = []
    into = tmp_path / "rebuilt"
    report = await rebuild_archive(aredis, settings, into, batch=2, progress=seen.append)
    assert (report.entries, report.stored, report.quarantined) == (4, 2, 1)
    assert report.candles_inserted > 0
    assert report.lines == report.candles_inserted
    assert [r.entries for r in seen] == [2, 4]
    assert holds_archive(into, settings.archive.database)
    with ArchiveReader(into) as archive:
        assert archive.stats().tables["archive_sources"] == 3
    with pytest.raises(ArchiveError, match="already holds an archive"):
        await rebuild_archive(aredis, settings, into)


@pytest.mark.anyio
async def test_rebuild_of_an_empty_stream_gives_an_empty_archive(
    settings: Settings, aredis: aioredis.Redis, tmp_path: Path
) -> None:
    report = await rebuild_archive(aredis, settings, tmp_path / "empty")
    assert report.entries == 0
    with ArchiveReader(tmp_path / "empty") as archive:
        assert archive.stats().tables["candles"] == 0


@pytest.mark.anyio
async def test_rebuild_refuses_an_archive_an_archiver_writes(
    settings: Settings, aredis: aioredis.Redis, tmp_path: Path
) -> None:
    with ArchiveStore(tmp_path / "busy"), pytest.raises(ArchiveBusy, match="archiver is writing"):
        await rebuild_archive(aredis, settings, tmp_path / "busy")
    answers_only = await rebuild_archive(aredis, settings, tmp_path / "busy")
    assert answers_only.entries == 0
