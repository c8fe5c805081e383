"""The archiver service: the ``archiver`` consumer group on the response stream, projecting every
market-data answer into the archive (``apihub_archive``) in batches.

How an entry travels:

1. the handler acknowledges at once what is not the archiver's business (any other event, a TR
   without market data), reading only the ``type`` field and the event's provider and TR;
2. the others join the **batch** being collected; a batch is written when it holds
   ``[archive] batch_max`` entries or ``batch_wait_ms`` after its first one arrived. While a
   batch is written, the entries of the next one are already projected (normalised) in another
   worker thread: the write spends most of its time inside DuckDB, which releases the GIL, so
   the two use both cores (projection is a pure function of the entry, so when it runs does
   not change what is stored);
3. writing a batch (seen through, never half done): take over any *older* entry still pending
   in the group (a dead member's, or one whose batch failed) so the archive is always applied in
   stream order; project and write everything in a worker thread (one DuckDB transaction);
   then append one ``archive.written`` per (provider, symbol, interval, source type) and one
   ``archive.quarantined`` per rejected answer and ``XACK`` every entry of the batch, in one
   ``MULTI``. A crash anywhere leaves the entries pending: a redelivered entry that was applied
   changes nothing in the store and has its events appended again.

While deliveries wait for their batch they are *releasable*: a drain hands them back at once,
and finishes only the batch already being written.

The database is held only while batches follow each other: the archiver closes it when idle,
and right after a batch when a reader (``apihub archive query``) asked for it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final, cast

import anyio
import redis.asyncio as aioredis
from anyio.abc import TaskStatus

from apihub_archive import (
    ArchiveError,
    ArchiveStore,
    Coverage,
    Item,
    Rejection,
    WriteReport,
    entry_order,
)
from apihub_core import (
    ARCHIVE_STREAM_MAXLEN,
    DATA_FIELD,
    ArchiveQuarantined,
    ArchiveWritten,
    ConfigurationError,
    Keys,
    encode_entry,
    now_ms,
    redis_client,
)
from apihub_runtime import Delivery, Settings, StreamConsumer, consumer_name, serve

from ._project import project, quarantine_poison, wanted

log = logging.getLogger("apihub.archiver")

_DATA: Final = DATA_FIELD.encode()

GROUP: Final = "archiver"
STANDBY_POLL_S: Final = 1.0
"""How often a standby archiver tries the writer lock of an archive another one writes."""
PULL_IN_MAX: Final = 10_000
"""Most older pending entries taken over into one batch."""
BATCH_MAX_BYTES: Final = 16 * 1024 * 1024
"""Most entry data (broker answers) in one batch, whatever ``batch_max`` says. 16 MiB of chart
answers is about 300 answers, 80,000 candles, half a second of store work on a 2-core machine:
as long as 8 MiB took before the store's fast paths, so a reader waits no longer, and each
batch's fixed costs (statements, commit, one fsync per JSONL file) are spread over twice the
candles (+10 % ingest measured)."""
IDLE_READER_CHECK_S: Final = 0.05
"""How often an archiver holding the database between batches looks for waiting readers."""
COMMIT_TIMEOUT_S: Final = 30.0
"""Bound of one batch's Redis work (taking over older entries, events + acknowledgements)."""
PROJECT_CHUNK: Final = 16
"""Entries projected ahead per worker-thread call (small: new arrivals and a taken batch are
seen between calls)."""
PROJECT_SWITCH_INTERVAL_S: Final = 0.0005
"""The interpreter's GIL switch interval while entries are projected ahead (the default is
5 ms). The writer thread gives the GIL up at every DuckDB statement and, with the projection
running, waited up to a whole interval to get it back: ~20 statements a batch made that a tenth
of its time. The setting is the process's: restored after each chunk, so it is short only
while there is contention (measured: 97,000 → 104,000 candles/s end to end)."""


@dataclass(eq=False)
class _Ticket:
    """One delivery waiting for its batch."""

    delivery: Delivery | None
    entry_id: bytes
    fields: dict[bytes, bytes]
    poison: int = 0
    size: int = 0
    started: anyio.Event = field(default_factory=anyio.Event)
    done: anyio.Event = field(default_factory=anyio.Event)
    taken: bool = False
    item: Item | None = None
    projected: bool = False
    """Whether ``item`` holds the entry's projection already (made ahead of its batch)."""


@dataclass
class ArchiverStats:
    """Counters of one archiver since it started (logged at the end, shown by tests)."""

    batches: int = 0
    entries: int = 0
    skipped: int = 0
    already_applied: int = 0
    pulled_in: int = 0
    projected_ahead: int = 0
    """Entries normalised while the batch before theirs was written."""
    candles_inserted: int = 0
    candles_revised: int = 0
    candles_unchanged: int = 0
    quarantined: int = 0
    failed_batches: int = 0
    yielded_to_readers: int = 0
    last: WriteReport | None = None


def written_event(coverage: Coverage) -> ArchiveWritten:
    """The ``archive.written`` event of one coverage group of a batch."""
    return ArchiveWritten(
        provider=coverage.provider,
        symbol=coverage.symbol,
        interval=cast(Any, coverage.interval),
        first=coverage.first,
        last=coverage.last,
        count=coverage.count,
        inserted=coverage.inserted,
        revised=coverage.revised,
        bars=list(coverage.bars),
        source_type=coverage.source_type,
        lineage=list(coverage.lineage),
        source_entry=coverage.last_entry,
        written_at_ms=now_ms(),
    )


def quarantined_event(rejection: Rejection) -> ArchiveQuarantined:
    """The ``archive.quarantined`` event of one rejected answer."""
    return ArchiveQuarantined(
        source_entry=rejection.entry,
        request_id=rejection.request_id,
        provider=rejection.provider,
        tr_id=rejection.tr_id,
        reason=rejection.reason,
        detail=rejection.detail,
        quarantined_at_ms=now_ms(),
    )


class Archiver:
    """One member of the ``archiver`` group (see the module docstring).

    One archiver writes an archive at a time: a second one started on the same archive
    directory stands by until the first one stops (the archive's writer lock).
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        settings: Settings,
        *,
        store: ArchiveStore | None = None,
        reclaim_idle_ms: int = 30_000,
        reclaim_interval_s: float = 5.0,
        block_ms: int = 500,
        max_deliveries: int = 5,
        shutdown_grace_s: float = 8.0,
        consumer: str | None = None,
    ) -> None:
        archive = settings.archive
        self._redis = redis
        self.keys = Keys(settings.namespace)
        self.root = archive.root(settings.data_dir)
        self.store = store or ArchiveStore(
            self.root,
            database=archive.database,
            jsonl_max_bytes=archive.jsonl_max_bytes,
            compress_after_days=archive.compress_after_days,
            lock_wait_s=archive.lock_wait_s,
        )
        self._batch_max = max(1, archive.batch_max)
        self._batch_wait_s = max(0.0, archive.batch_wait_ms / 1000)
        self._lock_wait_s = archive.lock_wait_s
        self._queue: list[_Ticket] = []
        self._queued_bytes = 0
        self._joined = anyio.Event()
        self._moved = anyio.Event()
        """Set when an entry joins the queue or a batch leaves it (the projector's cue)."""
        self._stopping = anyio.Event()
        self._writing = False
        self.stats = ArchiverStats()
        self.consumer = StreamConsumer(
            redis,
            stream=self.keys.responses,
            group=GROUP,
            consumer=consumer or consumer_name(GROUP),
            handler=self._handle,
            on_poison=self._poison,
            # Every delivery waits in a slot for its batch: room for one batch being written
            # and the next one filling.
            concurrency=2 * self._batch_max,
            read_count=min(self._batch_max, 500),
            block_ms=block_ms,
            reclaim_idle_ms=reclaim_idle_ms,
            reclaim_interval_s=reclaim_interval_s,
            max_deliveries=max_deliveries,
            shutdown_grace_s=shutdown_grace_s,
            progress_key=self.keys.group_progress(self.keys.responses, GROUP),
            members_key=self.keys.group_members(self.keys.responses, GROUP),
        )

    # -- the service -----------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Take the archive's writer lock (standing by while another archiver has it), open the
        archive, then consume until :meth:`stop` and drain."""
        try:
            try:
                claimed, standby = await self._claim(task_status)
            except ArchiveError as exc:
                raise ConfigurationError(f"archive {self.root}: {exc}") from None
            if not claimed:
                return
            await self._prepare()
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._flush_loop)
                tg.start_soon(self._project_ahead)
                await self.consumer.run(
                    task_status=anyio.TASK_STATUS_IGNORED if standby else task_status
                )
                # Every delivery finished or was handed back; the batch in hand was written.
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.store.close)
        stats = self.stats
        log.info(
            "%s: %d batches, %d entries (%d already applied), %d candles new, %d revised, "
            "%d quarantined",
            self.consumer.consumer,
            stats.batches,
            stats.entries,
            stats.already_applied,
            stats.candles_inserted,
            stats.candles_revised,
            stats.quarantined,
        )

    def stop(self) -> None:
        """Begin the drain: deliveries waiting for a batch are handed back, the batch being
        written is finished."""
        self._stopping.set()
        self.consumer.stop()

    async def _claim(self, task_status: TaskStatus[None]) -> tuple[bool, bool]:
        """Take the writer lock: (whether it is held, whether this stood by and so already
        signalled readiness)."""
        if await anyio.to_thread.run_sync(self.store.claim):
            return True, False
        log.warning("another archiver writes %s: standing by until it stops", self.root)
        task_status.started()
        while True:
            with anyio.move_on_after(STANDBY_POLL_S):
                await self._stopping.wait()
            if self._stopping.is_set():
                return False, True
            if await anyio.to_thread.run_sync(self.store.claim):
                log.info("took over the archive %s", self.root)
                return True, True

    async def _prepare(self) -> None:
        """Open the archive once at start (schema, repairs), so a wrong directory fails now."""
        try:
            await self._connect()
        except ArchiveError as exc:
            raise ConfigurationError(f"archive {self.root}: {exc}") from None
        await anyio.to_thread.run_sync(self.store.disconnect)

    # -- deliveries ------------------------------------------------------------------------------

    async def _handle(self, delivery: Delivery) -> None:
        if not wanted(delivery.fields):
            self.stats.skipped += 1
            await self._redis.xack(self.keys.responses, GROUP, delivery.entry_id)
            return
        size = len(delivery.fields.get(_DATA, b""))
        await self._wait_for_batch(_Ticket(delivery, delivery.entry_id, delivery.fields, size=size))

    async def _poison(self, delivery: Delivery) -> None:
        if not delivery.fields:  # deleted or trimmed while pending: nothing to store
            await self._redis.xack(self.keys.responses, GROUP, delivery.entry_id)
            return
        log.warning(
            "%s was delivered %d times without being stored: quarantining it",
            delivery.id_text,
            delivery.deliveries,
        )
        ticket = _Ticket(
            delivery,
            delivery.entry_id,
            delivery.fields,
            poison=delivery.deliveries,
            size=len(delivery.fields.get(_DATA, b"")),
        )
        await self._wait_for_batch(ticket)

    async def _wait_for_batch(self, ticket: _Ticket) -> None:
        self._queue.append(ticket)
        self._queued_bytes += ticket.size
        self._joined.set()
        self._moved.set()
        assert ticket.delivery is not None  # noqa: S101 - a delivery's own ticket
        try:
            # Only waiting: a drain releases it (the entry stays pending for the next member).
            with ticket.delivery.releasable():
                await ticket.started.wait()
        except BaseException:
            if not ticket.taken:
                self._queue.remove(ticket)
                self._queued_bytes -= ticket.size
            raise
        # Its batch is being written: seen through (a failed batch leaves the entry pending,
        # to be taken over by the next batch or reclaimed; the batch logged why).
        await ticket.done.wait()

    # -- batches ---------------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await self._collect()
            try:
                await self._connect()
            except ArchiveError as exc:
                log.warning("cannot open the archive %s: %s", self.root, exc)
                await anyio.sleep(1.0)
                continue
            batch = self._take()
            if not batch:
                continue
            with anyio.CancelScope(shield=True):
                await self._write(batch)
            if await anyio.to_thread.run_sync(self.store.readers_waiting):
                self.stats.yielded_to_readers += 1
                await anyio.to_thread.run_sync(self.store.disconnect)

    async def _collect(self) -> None:
        """Wait for a batch's worth of entries (or its first one plus ``batch_wait_ms``); an
        archive left idle meanwhile is closed so that readers get it without asking."""
        while not self._queue:
            joined = self._joined = anyio.Event()
            if self.store.connected:
                await self._idle(joined)
                continue
            await joined.wait()
        with anyio.move_on_after(self._batch_wait_s):
            while not self._full():
                joined = self._joined = anyio.Event()
                await joined.wait()

    def _full(self) -> bool:
        """Whether the queue holds a whole batch (by count or by bytes)."""
        return len(self._queue) >= self._batch_max or self._queued_bytes >= BATCH_MAX_BYTES

    async def _idle(self, joined: anyio.Event) -> None:
        """Keep the database for up to ``batch_wait_ms`` in case the next batch follows at
        once, looking for readers meanwhile; then close it."""
        with anyio.move_on_after(self._batch_wait_s):
            while not joined.is_set():
                with anyio.move_on_after(IDLE_READER_CHECK_S):
                    await joined.wait()
                if not joined.is_set() and await anyio.to_thread.run_sync(
                    self.store.readers_waiting
                ):
                    self.stats.yielded_to_readers += 1
                    break
        if not self._queue:
            await anyio.to_thread.run_sync(self._rest)

    def _rest(self) -> None:
        """Idle: gzip what went cold, then give the database up."""
        try:
            self.store.settle()
        except ArchiveError as exc:
            log.warning("compressing the archive's cold days: %s", exc)
        self.store.disconnect()

    async def _connect(self) -> None:
        """Open the database for writing: first let waiting readers in, then wait for them to
        close it (the entries only wait meanwhile; the stream is the buffer)."""
        if self.store.connected:
            return
        attempt, waited = 0, 0.0
        warned = False
        while await anyio.to_thread.run_sync(
            self.store.readers_waiting
        ) or not await anyio.to_thread.run_sync(self.store.try_connect):
            pause = _pause(attempt)
            await anyio.sleep(pause)
            attempt += 1
            waited += pause
            if not warned and waited >= self._lock_wait_s:
                warned = True
                log.warning(
                    "readers have held the archive %s for %.0f s: archiving is paused",
                    self.root,
                    waited,
                )

    def _take(self) -> list[_Ticket]:
        """The oldest queued entries, up to ``batch_max`` of them and :data:`BATCH_MAX_BYTES`
        of entry data (a batch of big chart answers stays a second's work, so readers and a
        drain never wait long for it)."""
        queue = self._queue
        queue.sort(key=lambda ticket: _id_key(ticket.entry_id))
        size = count = 0
        for ticket in queue[: self._batch_max]:
            size += ticket.size
            count += 1
            if size >= BATCH_MAX_BYTES:
                break
        batch = queue[:count]
        del queue[:count]
        self._queued_bytes -= size
        for ticket in batch:
            ticket.taken = True
            ticket.started.set()
        self._moved.set()
        return batch

    async def _project_ahead(self) -> None:
        """Project the entries of the next batch while the current one is written (see the
        module docstring); at most one batch ahead, so the queue does not hold every waiting
        entry twice (raw and normalised)."""
        while True:
            chunk = self._next_to_project()
            if not chunk:
                moved = self._moved = anyio.Event()
                await moved.wait()
                continue
            await anyio.to_thread.run_sync(_project_ahead, chunk)

    def _next_to_project(self) -> list[_Ticket]:
        """Up to :data:`PROJECT_CHUNK` entries not projected yet among the first queued ones
        that would make the next batch (the queue is in arrival order, about stream order, and
        sorted when a batch is taken: close enough for a head start)."""
        chunk: list[_Ticket] = []
        size = 0
        for count, ticket in enumerate(self._queue, start=1):
            if count > self._batch_max or size >= BATCH_MAX_BYTES:
                break
            size += ticket.size
            if not ticket.projected and not ticket.poison and ticket.fields:
                chunk.append(ticket)
                if len(chunk) >= PROJECT_CHUNK:
                    break
        return chunk

    async def _write(self, batch: list[_Ticket]) -> None:
        """Write one batch and commit it to Redis (see the module docstring)."""
        stats = self.stats
        try:
            with anyio.fail_after(COMMIT_TIMEOUT_S):
                batch += await self._older_pending(batch)
            # Projection (normalising the bodies) and the write: CPU and disk, in a thread.
            report, ids, ahead = await anyio.to_thread.run_sync(self._apply, batch)
            with anyio.fail_after(COMMIT_TIMEOUT_S):
                await self._commit(report, ids)
        except Exception as exc:
            stats.failed_batches += 1
            log.warning(
                "a batch of %d entries was not archived (%s: %s); its entries stay pending",
                len(batch),
                type(exc).__name__,
                exc,
            )
            return
        finally:
            for ticket in batch:
                ticket.done.set()
        stats.batches += 1
        stats.last = report
        stats.entries += report.entries
        stats.already_applied += report.already_applied
        stats.candles_inserted += report.candles_inserted
        stats.candles_revised += report.candles_revised
        stats.candles_unchanged += report.candles_unchanged
        stats.quarantined += len(report.quarantined)
        stats.projected_ahead += ahead
        log.debug(
            "batch: %d entries, %d candles new, %d revised, %d lines, %.3f s",
            report.entries,
            report.candles_inserted,
            report.candles_revised,
            report.lines,
            report.seconds,
        )

    def _apply(self, batch: list[_Ticket]) -> tuple[WriteReport, list[bytes], int]:
        ahead = sum(ticket.projected for ticket in batch)
        items, ids = _items(batch)
        return self.store.write(items), ids, ahead

    async def _older_pending(self, batch: list[_Ticket]) -> list[_Ticket]:
        """Entries older than the batch's newest that are still pending in the group but not in
        the batch (a dead member's, one whose batch failed, a reclaimed one still queued):
        taken over so the archive is applied in stream order."""
        stream = self.keys.responses
        summary = await self._redis.xpending(stream, GROUP)
        if not summary or not summary.get("pending"):
            return []
        newest = max(batch, key=lambda ticket: _id_key(ticket.entry_id)).entry_id
        oldest = min(_id_key(ticket.entry_id) for ticket in batch)
        me = self.consumer.consumer
        others = any(_text(row.get("name")) != me for row in summary.get("consumers") or ())
        lowest = summary.get("min")
        if not others and lowest is not None and _id_key(cast(bytes, lowest)) >= oldest:
            return []
        rows = await self._redis.xpending_range(
            stream, GROUP, min="-", max=newest, count=PULL_IN_MAX
        )
        have = {ticket.entry_id for ticket in batch}
        queued = {ticket.entry_id: ticket for ticket in self._queue}
        extra: list[_Ticket] = []
        claim: list[bytes] = []
        for row in rows:
            entry_id = cast(bytes, row["message_id"])
            if entry_id in have:
                continue
            ticket = queued.get(entry_id)
            if ticket is not None:
                self._queue.remove(ticket)
                self._queued_bytes -= ticket.size
                ticket.taken = True
                ticket.started.set()
                extra.append(ticket)
            else:
                claim.append(entry_id)
        if claim:
            claimed = cast(
                list[tuple[bytes | None, dict[bytes, bytes] | None]],
                await self._redis.xclaim(
                    stream, GROUP, me, min_idle_time=0, message_ids=cast(list[Any], claim)
                ),
            )
            found = {entry_id for entry_id, _fields in claimed if entry_id is not None}
            for claimed_id, fields in claimed:
                if claimed_id is not None:
                    extra.append(_Ticket(None, claimed_id, fields or {}))
            # Deleted meanwhile: nothing to store, free the pending slot with the batch.
            extra += [_Ticket(None, entry_id, {}) for entry_id in claim if entry_id not in found]
        if extra:
            self.stats.pulled_in += len(extra)
            log.info("took over %d older pending entries into the batch", len(extra))
        return extra

    async def _commit(self, report: WriteReport, ids: Sequence[bytes]) -> None:
        archive = self.keys.archive
        async with self._redis.pipeline(transaction=True) as pipe:
            for coverage in report.coverage:
                pipe.xadd(
                    archive,
                    encode_entry(written_event(coverage)),
                    maxlen=ARCHIVE_STREAM_MAXLEN,
                    approximate=True,
                )
            for rejection in report.quarantined:
                pipe.xadd(
                    archive,
                    encode_entry(quarantined_event(rejection)),
                    maxlen=ARCHIVE_STREAM_MAXLEN,
                    approximate=True,
                )
            if ids:
                pipe.xack(self.keys.responses, GROUP, *ids)
            await pipe.execute()


def _items(batch: list[_Ticket]) -> tuple[list[Item], list[bytes]]:
    """The batch's archive items in stream order, and every entry id to acknowledge."""
    items: list[Item] = []
    ids: list[bytes] = []
    for ticket in batch:
        ids.append(ticket.entry_id)
        entry = ticket.entry_id.decode()
        if not ticket.fields:
            continue
        if ticket.poison:
            items.append(quarantine_poison(entry, ticket.fields, ticket.poison))
            continue
        item = ticket.item if ticket.projected else project(entry, ticket.fields)
        if item is not None:
            items.append(item)
    items.sort(key=lambda item: entry_order(item.entry))
    return items, ids


def _project_ahead(tickets: list[_Ticket]) -> None:
    """Project entries ahead of their batch (in a worker thread). One that is already in a
    batch is left to it; one whose projection fails is too (its batch fails the same way and
    says why)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(PROJECT_SWITCH_INTERVAL_S)
    try:
        for ticket in tickets:
            if ticket.taken or ticket.projected:
                continue
            try:
                item = project(ticket.entry_id.decode(), ticket.fields)
            except Exception:  # noqa: S112 - the batch projects it again and reports
                continue
            ticket.item = item
            ticket.projected = True
    finally:
        sys.setswitchinterval(previous)


def _pause(attempt: int) -> float:
    return (0.005, 0.01, 0.02, 0.05, 0.1)[min(attempt, 4)]


def _id_key(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@asynccontextmanager
async def open_archiver(settings: Settings, **tuning: Any) -> AsyncIterator[Archiver]:
    """The composition root: a Redis pool and the archiver (its archive is opened by
    :meth:`Archiver.run`, which stands by while another archiver writes it).

    ``tuning`` passes :class:`Archiver`'s keyword arguments (reclaim timings, a store)."""
    if not settings.redis_url:
        raise ConfigurationError(
            "the archiver needs REDIS_URL (or run everything with `apihub up`)"
        )
    if not settings.archive.enabled:
        raise ConfigurationError("the archiver is disabled ([archive] enabled = false)")
    # The loop's reads and reclaims, the handlers' acknowledgements, the batch commits.
    redis = redis_client(settings.redis_url, max_connections=32)
    try:
        yield Archiver(redis, settings, **tuning)
    finally:
        with anyio.CancelScope(shield=True):
            await redis.aclose()


async def run_archiver(settings: Settings) -> int:
    """Run one archiver until SIGINT/SIGTERM, drain it, and return the exit status."""
    return await serve(open_archiver(settings), name="archiver")
