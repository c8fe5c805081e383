"""``apihub archive rebuild``: the archive rebuilt from the event log.

The response stream is read from its first entry to the entry that was last when the rebuild
started (``XRANGE``, in order), projected exactly as the archiver projects it and written in
batches into an **empty** archive directory. Because the store's result depends only on the
entries and their order, the rebuilt JSONL files are byte for byte those of an archiver that
saw the same entries (as far back as the stream still holds them: it is capped, see
``RESPONSE_STREAM_MAXLEN``). No ``archive.*`` events are appended: followers of the live
archive are not told about a rebuild.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, cast

import anyio
import redis.asyncio as aioredis

from apihub_archive import ArchiveBusy, ArchiveError, ArchiveStore, WriteReport
from apihub_core import Keys, StreamEntry
from apihub_runtime import Settings

from ._project import project

READ_COUNT: Final = 1000
"""Entries per ``XRANGE`` call (and at most per write batch) of a rebuild."""


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """How a rebuild went: entries read from the stream, entries stored or quarantined, bars
    and JSONL lines written, the time it took and the last entry replayed."""

    root: Path
    entries: int = 0
    stored: int = 0
    quarantined: int = 0
    candles_inserted: int = 0
    candles_revised: int = 0
    lines: int = 0
    seconds: float = 0.0
    last_entry: str = ""


def holds_archive(root: Path, database: str) -> bool:
    """Whether ``root`` already holds an archive (its database or JSONL files)."""
    return (root / database).exists() or (root / "jsonl").exists()


async def rebuild_archive(
    redis: aioredis.Redis,
    settings: Settings,
    into: Path | None = None,
    *,
    batch: int | None = None,
    progress: Callable[[RebuildReport], None] | None = None,
) -> RebuildReport:
    """Replay the response stream into the empty archive ``into`` (default: the configured
    ``[archive] dir``); see the module docstring.

    Raises :class:`~apihub_archive.ArchiveError` when ``into`` already holds an archive and
    :class:`~apihub_archive.ArchiveBusy` when an archiver writes it.
    """
    archive = settings.archive
    root = Path(into) if into is not None else archive.root(settings.data_dir)
    if holds_archive(root, archive.database):
        raise ArchiveError(
            f"{root} already holds an archive: rebuild into an empty directory", path=root
        )
    size = max(1, min(batch or archive.batch_max, archive.batch_max))
    store = ArchiveStore(
        root,
        database=archive.database,
        jsonl_max_bytes=archive.jsonl_max_bytes,
        compress_after_days=archive.compress_after_days,
        lock_wait_s=archive.lock_wait_s,
    )
    if not store.claim():
        raise ArchiveBusy(f"an archiver is writing {root}: stop it first", path=root)
    stream = Keys(settings.namespace).responses
    started = time.perf_counter()
    report = RebuildReport(root=root)
    try:
        newest = await redis.xrevrange(stream, count=1)
        if not newest:
            await anyio.to_thread.run_sync(store.connect)
            return replace(report, seconds=time.perf_counter() - started)
        end = cast(bytes, newest[0][0])
        send, receive = anyio.create_memory_object_stream[list[StreamEntry]](1)

        async def read() -> None:
            # Reads ahead of the writer by one batch: the stream and the disk work together.
            start: bytes | str = "-"
            async with send:
                while True:
                    entries = cast(
                        list[StreamEntry],
                        await redis.xrange(stream, min=start, max=end, count=min(size, READ_COUNT)),
                    )
                    if not entries:
                        return
                    await send.send(entries)
                    last = entries[-1][0]
                    if last == end:
                        return
                    start = b"(" + last

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            async with receive:
                async for entries in receive:
                    written = await anyio.to_thread.run_sync(_replay, store, entries)
                    report = _add(report, len(entries), written, entries[-1][0].decode())
                    if progress is not None:
                        progress(replace(report, seconds=time.perf_counter() - started))
        if report.stored == 0 and report.quarantined == 0:
            await anyio.to_thread.run_sync(store.connect)  # an empty archive, but an archive
    finally:
        await anyio.to_thread.run_sync(store.close)
    return replace(report, seconds=time.perf_counter() - started)


def _replay(store: ArchiveStore, entries: list[StreamEntry]) -> WriteReport:
    items = []
    for entry_id, fields in entries:
        item = project(entry_id.decode(), fields)
        if item is not None:
            items.append(item)
    return store.write(items)


def _add(report: RebuildReport, read: int, written: WriteReport, last: str) -> RebuildReport:
    quarantined = len(written.quarantined)
    return replace(
        report,
        entries=report.entries + read,
        stored=report.stored + written.entries - quarantined,
        quarantined=report.quarantined + quarantined,
        candles_inserted=report.candles_inserted + written.candles_inserted,
        candles_revised=report.candles_revised + written.candles_revised,
        lines=report.lines + written.lines,
        last_entry=last,
    )
