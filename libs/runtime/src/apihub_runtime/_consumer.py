"""A Redis Streams consumer-group loop with bounded concurrency, reclaim and graceful drain.

The drain policy, in one screen: :meth:`StreamConsumer.stop` stops reading (new and reclaimed
entries) → in-flight handlers get ``shutdown_grace_s`` to finish → whatever is still running is
cancelled and stays pending, to be reclaimed by another consumer with ``XAUTOCLAIM``.

A handler owns the acknowledgement of its entry (so it can ``XACK`` atomically with the events it
writes). A handler that raises leaves its entry pending; after ``max_deliveries`` deliveries the
entry is handed to ``on_poison`` (normally: dead-letter it) instead of the handler.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import anyio
import redis.asyncio as aioredis
from anyio.abc import TaskGroup, TaskStatus
from redis.exceptions import RedisError, ResponseError

from apihub_core import StreamBatches

log = logging.getLogger("apihub.consumer")

_MAX_RECLAIM_ROUNDS = 100
"""XAUTOCLAIM calls per reclaim pass, so one pass over a huge pending list stays bounded."""

_MAX_PENDING_SCAN = 1000


@dataclass(frozen=True, slots=True)
class Delivery:
    """One stream entry handed to a handler. ``fields`` is empty for an entry deleted meanwhile."""

    stream: str
    entry_id: bytes
    fields: dict[bytes, bytes]
    deliveries: int = 1
    reclaimed: bool = False

    @property
    def id_text(self) -> str:
        """The entry id as text (``1700000000000-0``)."""
        return self.entry_id.decode()


Handler = Callable[[Delivery], Awaitable[None]]


def consumer_name(service: str) -> str:
    """A unique, readable consumer name: service, host, pid and a random suffix."""
    return f"{service}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


async def ensure_group(redis: aioredis.Redis, stream: str, group: str) -> None:
    """Create ``group`` on ``stream`` (and the stream) reading from the beginning, if missing."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class StreamConsumer:
    """Reads ``stream`` as ``consumer`` of ``group`` and runs ``handler`` on every entry."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        stream: str,
        group: str,
        consumer: str,
        handler: Handler,
        on_poison: Handler,
        concurrency: int = 256,
        read_count: int = 64,
        block_ms: int = 500,
        reclaim_idle_ms: int = 30_000,
        reclaim_interval_s: float = 5.0,
        max_deliveries: int = 5,
        shutdown_grace_s: float = 8.0,
    ) -> None:
        self._redis = redis
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self._handler = handler
        self._on_poison = on_poison
        self._slots = anyio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._read_count = read_count
        self._block_ms = block_ms
        self._reclaim_idle_ms = reclaim_idle_ms
        self._reclaim_interval_s = reclaim_interval_s
        self._max_deliveries = max_deliveries
        self._grace_s = shutdown_grace_s
        self._in_flight = 0
        self._active: set[bytes] = set()
        self._drained = anyio.Event()
        self._stopping = anyio.Event()
        self.handled = 0

    @property
    def in_flight(self) -> int:
        """Entries being handled right now."""
        return self._in_flight

    def stop(self) -> None:
        """Stop reading; :meth:`run` returns once in-flight work is done or the grace ran out."""
        self._stopping.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Consume until :meth:`stop`; signals readiness once the group exists."""
        await ensure_group(self._redis, self.stream, self.group)
        async with anyio.create_task_group() as work:
            async with anyio.create_task_group() as loops:
                loops.start_soon(self._read_loop, work)
                loops.start_soon(self._reclaim_loop, work)
                task_status.started()
                await self._stopping.wait()
                loops.cancel_scope.cancel()
            with anyio.move_on_after(self._grace_s):
                while self._in_flight:
                    await self._drained.wait()
            if self._in_flight:
                log.warning(
                    "%s: %d handlers still running after %.1fs; cancelling (entries stay pending)",
                    self.consumer,
                    self._in_flight,
                    self._grace_s,
                )
            work.cancel_scope.cancel()

    async def _read_loop(self, work: TaskGroup) -> None:
        backoff = 0.05
        while True:
            await self._wait_for_capacity()
            available = max(1, self._concurrency - self._in_flight)
            try:
                batches = cast(
                    StreamBatches,
                    await self._redis.xreadgroup(
                        self.group,
                        self.consumer,
                        {self.stream: ">"},
                        count=min(self._read_count, available),
                        block=self._block_ms,
                    ),
                )
                backoff = 0.05
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                log.warning("%s: group %s vanished; recreating it", self.consumer, self.group)
                await ensure_group(self._redis, self.stream, self.group)
                continue
            except (RedisError, OSError) as exc:
                log.warning("%s: read failed (%s); retrying", self.consumer, type(exc).__name__)
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            for _stream, entries in batches or ():
                for entry_id, fields in entries:
                    self._spawn(work, Delivery(self.stream, entry_id, fields or {}))

    async def _wait_for_capacity(self) -> None:
        async with self._slots:
            pass

    async def _reclaim_loop(self, work: TaskGroup) -> None:
        while True:
            await anyio.sleep(self._reclaim_interval_s)
            try:
                await self.renew_leases()
                await self.reclaim_once(work)
            except (RedisError, OSError) as exc:
                log.warning("%s: reclaim failed (%s)", self.consumer, type(exc).__name__)

    async def renew_leases(self) -> int:
        """Reset the idle time of entries this consumer is still working on.

        A pending entry's idle time is its lease: without renewal a handler slower than
        ``reclaim_idle_ms`` would be reclaimed and run twice. ``JUSTID`` leaves the delivery
        count alone, and the minimum idle keeps an entry another consumer just took from being
        taken back at once.
        """
        if not self._active:
            return 0
        renewed = await self._redis.xclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=min(int(self._reclaim_interval_s * 500), self._reclaim_idle_ms // 3),
            message_ids=list(self._active),
            justid=True,
        )
        return len(renewed)

    async def reclaim_once(self, work: TaskGroup) -> int:
        """Claim entries idle longer than ``reclaim_idle_ms`` on any consumer; returns how many."""
        start: bytes | str = b"0-0"
        claimed = 0
        for _ in range(_MAX_RECLAIM_ROUNDS):
            reply = await self._redis.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=self._reclaim_idle_ms,
                start_id=start,
                count=self._read_count,
            )
            # Redis 7 adds a third element, the ids of deleted entries it dropped from the
            # pending list itself; Redis 6.2 returns those entries as nil instead.
            next_start, entries = reply[0], reply[1]
            live = [(entry_id, fields) for entry_id, fields in entries if entry_id is not None]
            if len(live) < len(entries):
                claimed += await self._release_deleted(work)
            fresh = [
                (entry_id, fields) for entry_id, fields in live if entry_id not in self._active
            ]
            counts = await self._delivery_counts([entry_id for entry_id, _ in fresh])
            for entry_id, fields in fresh:
                claimed += 1
                delivery = Delivery(
                    self.stream,
                    entry_id,
                    fields or {},
                    deliveries=counts.get(entry_id, 1),
                    reclaimed=True,
                )
                log.info(
                    "%s: reclaimed %s (delivery %d)",
                    self.consumer,
                    delivery.id_text,
                    delivery.deliveries,
                )
                self._spawn(work, delivery)
            if next_start in (b"0-0", "0-0"):
                break
            start = next_start
        return claimed

    async def _release_deleted(self, work: TaskGroup) -> int:
        # Redis 6.2 only: find this consumer's pending ids whose entry no longer exists and hand
        # them to on_poison (empty fields), which acknowledges them.
        rows = await self._redis.xpending_range(
            self.stream,
            self.group,
            min="-",
            max="+",
            count=_MAX_PENDING_SCAN,
            consumername=self.consumer,
        )
        ids = cast(list[bytes], [row["message_id"] for row in rows])
        candidates = [entry_id for entry_id in ids if entry_id not in self._active]
        if not candidates:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in candidates:
                pipe.xrange(self.stream, min=entry_id, max=entry_id, count=1)
            found = await pipe.execute()
        released = 0
        for entry_id, existing in zip(candidates, found, strict=True):
            if not existing:
                released += 1
                self._spawn(work, Delivery(self.stream, entry_id, {}, reclaimed=True))
        return released

    async def _delivery_counts(self, entry_ids: list[bytes]) -> dict[bytes, int]:
        if not entry_ids:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in entry_ids:
                pipe.xpending_range(self.stream, self.group, min=entry_id, max=entry_id, count=1)
            replies = await pipe.execute()
        counts: dict[bytes, int] = {}
        for entry_id, rows in zip(entry_ids, replies, strict=True):
            if rows:
                counts[entry_id] = int(rows[0]["times_delivered"])
        return counts

    def _spawn(self, work: TaskGroup, delivery: Delivery) -> None:
        self._active.add(delivery.entry_id)
        self._in_flight += 1
        self._drained = anyio.Event() if self._drained.is_set() else self._drained
        work.start_soon(self._run_one, delivery)

    async def _run_one(self, delivery: Delivery) -> None:
        try:
            async with self._slots:
                if delivery.deliveries > self._max_deliveries or not delivery.fields:
                    await self._on_poison(delivery)
                else:
                    await self._handler(delivery)
                self.handled += 1
        except Exception:
            # The entry stays pending; the reclaim loop retries it and, after max_deliveries,
            # dead-letters it. One bad entry never stops the consumer.
            log.exception("%s: handler failed on %s", self.consumer, delivery.id_text)
        finally:
            self._active.discard(delivery.entry_id)
            self._in_flight -= 1
            if self._in_flight == 0:
                self._drained.set()
