"""A killed archiver (a real process, stopped dead at a chosen point of a write) leaves nothing
that its successor cannot finish: the archive ends byte for byte as a clean replay of the
stream, and every batch is announced."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio
import pytest
import redis.asyncio as aioredis

from apihub_archive import ArchiveReader
from apihub_archiver import GROUP, open_archiver, rebuild_archive
from apihub_core import ArchiveWritten, Keys, ResponseReceived, decode_archive_event, encode_entry
from apihub_runtime import Settings
from apihub_testing import async_wait_until

if TYPE_CHECKING:
    from conftest import Answers

pytestmark = pytest.mark.anyio

DOOMED = """
import json, os, sys
from dataclasses import replace
import anyio
from apihub_archive import ArchiveStore
from apihub_archiver import open_archiver
from apihub_runtime import load_settings

conf = json.loads(sys.argv[1])
settings = load_settings(env=conf["env"])
settings = replace(settings, archive=replace(settings.archive, **conf["archive"]))
archive = settings.archive


def crash(stage):
    if stage == conf["stage"]:
        os._exit(17)  # no cleanup at all, like SIGKILL


store = ArchiveStore(
    archive.root(settings.data_dir),
    database=archive.database,
    jsonl_max_bytes=archive.jsonl_max_bytes,
    compress_after_days=archive.compress_after_days,
    crash_point=crash,
)


async def main():
    async with open_archiver(settings, store=store, consumer="archiver-doomed") as archiver:
        await archiver.run()


anyio.run(main)
"""


def tree(root: Path) -> dict[str, bytes]:
    found = {}
    for directory, _dirs, names in os.walk(root / "jsonl"):
        for name in names:
            path = Path(directory) / name
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def tables(root: Path) -> dict[str, list[tuple[Any, ...]]]:
    names = ("candles", "candle_revisions", "snapshots", "quarantine", "archive_sources")
    with ArchiveReader(root, lock_wait_s=20) as archive:
        return {
            name: archive.query(f"SELECT * FROM {name} ORDER BY ALL")[1]  # noqa: S608
            for name in names
        }


@pytest.mark.parametrize("stage", ["jsonl_appended", "committed"])
async def test_a_killed_archiver_is_finished_by_its_successor(
    settings: Settings,
    aredis: aioredis.Redis,
    answers: Answers,
    tmp_path: Path,
    redis_url: str,
    stage: str,
) -> None:
    keys = Keys(settings.namespace)
    revised = answers.kis_daily.edited(lambda doc: doc["output2"][0].update(acml_vol="7"))
    events: list[ResponseReceived] = [
        answers.kis_daily_older.response("k-1"),
        answers.kis_daily.response("k-2"),
        answers.kiwoom_daily.response("k-3"),
        revised.response("k-4", priority="backfill"),
        answers.kis_price.response("k-5"),
    ]
    ids = [cast(bytes, await aredis.xadd(keys.responses, encode_entry(e))) for e in events]
    archive = settings.archive
    conf = {
        "stage": stage,
        "env": {
            "REDIS_URL": redis_url,
            "APIHUB_NAMESPACE": settings.namespace,
            "APIHUB_DATA_DIR": str(settings.data_dir),
        },
        "archive": {
            key: value
            for key, value in asdict(archive).items()
            if key in ("batch_max", "batch_wait_ms", "jsonl_max_bytes", "compress_after_days")
        },
    }
    script = tmp_path / "doomed.py"
    script.write_text(DOOMED)
    died = await anyio.run_process(
        [sys.executable, str(script), json.dumps(conf)], check=False, stderr=None
    )
    assert died.returncode == 17, died.stderr
    pending = await aredis.xpending(keys.responses, GROUP)
    assert pending["pending"] == len(ids), "it died holding the whole batch"
    root = archive.root(settings.data_dir)
    assert tree(root), "it had appended its JSONL lines"

    async with (
        open_archiver(settings, reclaim_idle_ms=0, reclaim_interval_s=0.1, block_ms=100) as heir,
        anyio.create_task_group() as tg,
    ):
        await tg.start(heir.run)
        await async_wait_until(lambda: heir.stats.entries == len(ids), timeout=30)
        heir.stop()
    assert heir.stats.already_applied == (len(ids) if stage == "committed" else 0)

    clean = tmp_path / "clean"
    await rebuild_archive(aredis, settings, clean)
    assert tree(root) == tree(clean)
    assert tables(root) == tables(clean)
    announced = [decode_archive_event(fields) for _id, fields in await aredis.xrange(keys.archive)]
    assert {(e.provider, e.symbol) for e in announced if isinstance(e, ArchiveWritten)} == {
        ("KIS", "005930"),
        ("KIWOOM", "005930"),
    }
