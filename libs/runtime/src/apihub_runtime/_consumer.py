"""A Redis Streams consumer-group loop with bounded concurrency, reclaim and a graceful drain.

The drain policy, in one screen. :meth:`StreamConsumer.stop`:

1. stops reading (new and reclaimed entries);
2. releases at once every handler that is only *waiting* — not started yet, or inside
   :meth:`Delivery.releasable` (the dispatcher waits for a token, a permit or the breaker
   there): its entry stays pending, nothing was done for it;
3. gives the others (a call already at the broker) ``shutdown_grace_s`` to finish;
4. cancels what is still running after the grace (its entry stays pending too);
5. hands every entry it left pending back to the group with an idle time past
   ``reclaim_idle_ms``, so the next consumer's first reclaim pass takes it without waiting.

A handler owns the acknowledgement of its entry (so it can ``XACK`` atomically with the events it
writes). A handler that raises leaves its entry pending; after ``max_deliveries`` deliveries the
entry is handed to ``on_poison`` (normally: dead-letter it) instead of the handler.

Group bookkeeping: the highest entry id ever delivered to the group is kept in ``progress_key``
(updated in the same pipeline as the next read, so it never trails a delivery for longer than
one round trip). When the group vanishes (``NOGROUP``: ``XGROUP DESTROY``, a failover to a
replica without it), it is recreated *after* that id instead of from the beginning, so entries
already delivered are not delivered again. Consumers idle longer than ``reclaim_idle_ms`` with
nothing pending and no heartbeat in ``members_key`` (dead or restarted processes) are removed
from the group.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, cast

import anyio
import redis.asyncio as aioredis
from anyio.abc import TaskGroup, TaskStatus
from redis.exceptions import NoScriptError, RedisError, ResponseError

from apihub_core import StreamBatches

log = logging.getLogger("apihub.consumer")

_MAX_RECLAIM_ROUNDS: Final = 100
"""XAUTOCLAIM calls per reclaim pass, so one pass over a huge pending list stays bounded."""

_MAX_PENDING_SCAN: Final = 1000

_HAND_BACK_TIMEOUT_S: Final = 2.0
"""Bound of handing released entries back at the end of a drain (best effort)."""

# Stream ids compare as (ms, seq) pairs, not as strings.
_ID_LUA: Final = """
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function newer(a, b)
  if not b then return true end
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am > bm or (am == bm and as > bs)
end
"""

_ADVANCE_LUA: Final = (
    _ID_LUA
    + """
if newer(ARGV[1], redis.call('GET', KEYS[1])) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"""
)
"""Raise the group's delivered-id watermark (KEYS[1]) to ARGV[1] if that is newer."""

_ENSURE_LUA: Final = (
    _ID_LUA
    + """
-- KEYS[1] = stream, KEYS[2] = watermark (or the stream key again when there is none)
-- ARGV[1] = group, ARGV[2] = the newest id this consumer saw delivered ('' = none)
local start = '0'
if KEYS[2] ~= KEYS[1] then
  local mark = redis.call('GET', KEYS[2])
  if ARGV[2] ~= '' and newer(ARGV[2], mark) then
    redis.call('SET', KEYS[2], ARGV[2])
    mark = ARGV[2]
  end
  if mark then start = mark end
end
local created = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], start, 'MKSTREAM')
if type(created) == 'table' and created.err then
  if string.find(created.err, 'BUSYGROUP', 1, true) then return {0, start} end
  return redis.error_reply(created.err)
end
return {1, start}
"""
)
"""Create the group after the watermark unless it exists; returns {created, start id}."""

_FORGET_DEAD_LUA: Final = """
-- KEYS[1] = stream, KEYS[2] = the group's heartbeat hash (or the stream again: none)
-- ARGV[1] = group, ARGV[2] = this consumer, ARGV[3] = idle threshold ms, ARGV[4] = heartbeat ms
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local beats = KEYS[2] ~= KEYS[1]
if beats then
  redis.call('HSET', KEYS[2], ARGV[2], now + tonumber(ARGV[4]))
  redis.call('PEXPIRE', KEYS[2], 2 * tonumber(ARGV[4]))
end
local removed = {}
for _, row in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #row, 2 do info[row[i]] = row[i + 1] end
  local name = info['name']
  local alive = false
  if beats then
    local until_ms = tonumber(redis.call('HGET', KEYS[2], name) or '0')
    alive = until_ms > now
  end
  if name ~= ARGV[2] and not alive and tonumber(info['pending']) == 0
      and tonumber(info['idle']) > tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    if beats then redis.call('HDEL', KEYS[2], name) end
    table.insert(removed, name)
  end
end
return removed
"""
"""Renew this consumer's heartbeat, then remove consumers with nothing pending, idle past the
threshold and without a live heartbeat, atomically (checked and deleted in one step, so no
entry pending on a consumer is ever dropped). The heartbeat matters because Redis's ``idle``
keeps growing for a live consumer that blocks on an empty stream."""


class DeliveryReleased(Exception):
    """A drain released this delivery while its handler was only waiting: nothing was done for
    it, and its entry stays pending for the next consumer. Let it propagate."""


@dataclass(eq=False)
class _Task:
    """The consumer's view of one running handler: the scope a drain cancels it by, and whether
    it is only waiting right now (inside :meth:`Delivery.releasable`)."""

    delivery: Delivery
    draining: Callable[[], bool]
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    waiting: bool = False


class _Waiting:
    """The context manager :meth:`Delivery.releasable` returns (a class, not a generator:
    it runs several times on every request)."""

    __slots__ = ("_task",)

    def __init__(self, task: _Task) -> None:
        self._task = task

    def __enter__(self) -> None:
        task = self._task
        if task.draining():
            raise DeliveryReleased(task.delivery.id_text)
        task.waiting = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = self._task
        task.waiting = False
        if exc_type is None and task.scope.cancel_called:
            # Released while waiting, but the cancellation had not landed yet: stop here,
            # before the handler goes on to what must not be interrupted.
            raise DeliveryReleased(task.delivery.id_text)


@dataclass(eq=False)
class Delivery:
    """One stream entry handed to a handler. ``fields`` is empty for an entry deleted meanwhile."""

    stream: str
    entry_id: bytes
    fields: dict[bytes, bytes]
    deliveries: int = 1
    reclaimed: bool = False
    _task: _Task | None = field(default=None, repr=False)

    @property
    def id_text(self) -> str:
        """The entry id as text (``1700000000000-0``)."""
        return self.entry_id.decode()

    def releasable(self) -> AbstractContextManager[None]:
        """Mark a stretch of the handler that only waits (for a token, a permit, a retry):
        a drain may cancel it, and the entry then stays pending for the next consumer (the
        handler ends with :class:`DeliveryReleased` or a cancellation; let either propagate).
        Entered during a drain, it raises at once. Outside such a stretch a handler is seen
        through (within the grace)."""
        if self._task is None:  # not delivered by a consumer (a unit test, a replay tool)
            return nullcontext()
        return _Waiting(self._task)


Handler = Callable[[Delivery], Awaitable[None]]


def consumer_name(service: str) -> str:
    """A unique, readable consumer name: service, host, pid and a random suffix."""
    return f"{service}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


async def ensure_group(
    redis: aioredis.Redis,
    stream: str,
    group: str,
    *,
    progress_key: str | None = None,
    seen: bytes | None = None,
) -> bool:
    """Create ``group`` on ``stream`` (and the stream) if missing; returns whether it was created.

    A new group starts after the watermark in ``progress_key`` (the newest id ever delivered to
    it, raised to ``seen`` first), or from the beginning when there is none: entries appended
    before the first consumer ran are read, entries already delivered are not.
    """
    script = redis.register_script(_ENSURE_LUA)
    reply = await script(
        keys=[stream, progress_key or stream], args=[group, (seen or b"").decode()]
    )
    created, start = int(reply[0]), reply[1]
    if created:
        start_text = start.decode() if isinstance(start, bytes) else str(start)
        log.info("created group %s on %s after %s", group, stream, start_text)
    return bool(created)


@dataclass
class DrainReport:
    """How the last drain went: what finished, what was released, what had to be cancelled."""

    finished: int = 0
    released: int = 0
    cancelled: int = 0
    handed_back: int = 0


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
        progress_key: str | None = None,
        members_key: str | None = None,
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
        self._progress_key = progress_key
        self._members_key = members_key
        self._advance = redis.register_script(_ADVANCE_LUA)
        self._forget_dead = redis.register_script(_FORGET_DEAD_LUA)
        self._tasks: dict[bytes, _Task] = {}
        self._drained = anyio.Event()
        self._stopping = anyio.Event()
        self._last_delivered: bytes | None = None
        self._unrecorded = False
        self._left_pending: list[bytes] = []
        self.handled = 0
        self.drain = DrainReport()

    @property
    def in_flight(self) -> int:
        """Entries being handled right now."""
        return len(self._tasks)

    @property
    def draining(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopping.is_set()

    def stop(self) -> None:
        """Stop reading and drain (see the module docstring); :meth:`run` returns once done."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        released = 0
        for task in self._tasks.values():
            if task.waiting:
                task.scope.cancel()
                released += 1
        log.info(
            "%s: draining: %d in flight (%d only waiting, released now; the rest get %.1f s)",
            self.consumer,
            len(self._tasks),
            released,
            self._grace_s,
        )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Consume until :meth:`stop`; signals readiness once the group exists."""
        await ensure_group(self._redis, self.stream, self.group, progress_key=self._progress_key)
        async with anyio.create_task_group() as work:
            async with anyio.create_task_group() as loops:
                loops.start_soon(self._read_loop, work)
                loops.start_soon(self._reclaim_loop, work)
                task_status.started()
                await self._stopping.wait()
                loops.cancel_scope.cancel()
            with anyio.move_on_after(self._grace_s):
                while self._tasks:
                    await self._drained.wait()
            still = len(self._tasks)
            if still:
                log.warning(
                    "%s: %d handlers still running after the %.1f s grace: cancelling them "
                    "(their entries stay pending)",
                    self.consumer,
                    still,
                    self._grace_s,
                )
            work.cancel_scope.cancel()
        await self._hand_back()
        report = self.drain
        log.info(
            "%s: drained: %d finished, %d released, %d cancelled; %d entries left pending for "
            "the next consumer",
            self.consumer,
            report.finished,
            report.released,
            report.cancelled,
            report.handed_back,
        )

    # -- reading ---------------------------------------------------------------------------

    async def _read_loop(self, work: TaskGroup) -> None:
        backoff = 0.05
        while True:
            if self._unrecorded and self._in_use() >= self._concurrency:
                # No read is coming soon to carry the watermark: record it now.
                await self._record_progress()
            await self._wait_for_capacity()
            available = max(1, self._concurrency - self._in_use())
            try:
                batches = await self._read(min(self._read_count, available))
                backoff = 0.05
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                log.warning("%s: group %s vanished; recreating it", self.consumer, self.group)
                await ensure_group(
                    self._redis,
                    self.stream,
                    self.group,
                    progress_key=self._progress_key,
                    seen=self._last_delivered,
                )
                continue
            except (RedisError, OSError) as exc:
                log.warning("%s: read failed (%s); retrying", self.consumer, type(exc).__name__)
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            for _stream, entries in batches or ():
                for entry_id, fields in entries:
                    self._note_delivered(entry_id)
                    self._spawn(work, Delivery(self.stream, entry_id, fields or {}))

    async def _read(self, count: int) -> StreamBatches:
        if not self._unrecorded or self._progress_key is None:
            return cast(
                StreamBatches,
                await self._redis.xreadgroup(
                    self.group,
                    self.consumer,
                    {self.stream: ">"},
                    count=count,
                    block=self._block_ms,
                ),
            )
        # The watermark of the last batch travels with the next read: no extra round trip.
        # A raw EVALSHA, not the Script object: redis-py checks every script of a pipeline with
        # an extra SCRIPT EXISTS round trip each time it executes one.
        mark = self._last_delivered
        assert mark is not None  # noqa: S101 - unrecorded means something was delivered
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.evalsha(self._advance.sha, 1, self._progress_key, mark)
            pipe.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=count, block=self._block_ms
            )
            advanced, batches = await pipe.execute(raise_on_error=False)
        if isinstance(batches, Exception):
            raise batches
        if isinstance(advanced, NoScriptError):
            # Redis lost its scripts (a restart, SCRIPT FLUSH): load it; the next read retries.
            await self._redis.script_load(_ADVANCE_LUA)
        elif isinstance(advanced, Exception):
            log.warning("%s: watermark not recorded (%s)", self.consumer, advanced)
        elif mark == self._last_delivered:
            self._unrecorded = False
        return cast(StreamBatches, batches)

    async def _record_progress(self) -> None:
        if self._progress_key is None or self._last_delivered is None:
            self._unrecorded = False
            return
        mark = self._last_delivered
        try:
            await self._advance(keys=[self._progress_key], args=[mark])
        except (RedisError, OSError) as exc:
            log.warning("%s: watermark not recorded (%s)", self.consumer, type(exc).__name__)
            return
        if mark == self._last_delivered:
            self._unrecorded = False

    def _note_delivered(self, entry_id: bytes) -> None:
        if self._last_delivered is None or _id_key(entry_id) > _id_key(self._last_delivered):
            self._last_delivered = entry_id
            self._unrecorded = self._progress_key is not None

    def _in_use(self) -> int:
        return len(self._tasks)

    async def _wait_for_capacity(self) -> None:
        async with self._slots:
            pass

    # -- reclaiming ------------------------------------------------------------------------

    async def _reclaim_loop(self, work: TaskGroup) -> None:
        # A first pass at once: a restarted consumer takes over what its predecessor handed
        # back (or left behind) without waiting a whole interval.
        while True:
            try:
                await self.renew_leases()
                await self.reclaim_once(work)
                await self.forget_dead_consumers()
            except (RedisError, OSError) as exc:
                log.warning("%s: reclaim failed (%s)", self.consumer, type(exc).__name__)
            await anyio.sleep(self._reclaim_interval_s)

    async def renew_leases(self) -> int:
        """Reset the idle time of entries this consumer is still working on.

        A pending entry's idle time is its lease: without renewal a handler slower than
        ``reclaim_idle_ms`` would be reclaimed and run twice. ``JUSTID`` leaves the delivery
        count alone, and the minimum idle keeps an entry another consumer just took from being
        taken back at once.
        """
        if not self._tasks:
            return 0
        renewed = await self._redis.xclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=min(int(self._reclaim_interval_s * 500), self._reclaim_idle_ms // 3),
            message_ids=list(self._tasks),
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
            fresh = [(entry_id, fields) for entry_id, fields in live if entry_id not in self._tasks]
            counts = await self._delivery_counts([entry_id for entry_id, _ in fresh])
            for entry_id, fields in fresh:
                delivery = Delivery(
                    self.stream,
                    entry_id,
                    fields or {},
                    deliveries=counts.get(entry_id, 1),
                    reclaimed=True,
                )
                # Another pass may have taken it while this one awaited the counts.
                if not self._spawn(work, delivery):
                    continue
                claimed += 1
                log.debug(
                    "%s: reclaimed %s (delivery %d)",
                    self.consumer,
                    delivery.id_text,
                    delivery.deliveries,
                )
            if next_start in (b"0-0", "0-0"):
                break
            start = next_start
        if claimed:
            log.info("%s: reclaimed %d entries left pending by others", self.consumer, claimed)
        return claimed

    async def forget_dead_consumers(self) -> list[str]:
        """Renew this consumer's heartbeat and remove other consumers idle past
        ``reclaim_idle_ms`` with nothing pending and no live heartbeat (``members_key``); their
        names. Their entries were reclaimed first, so nothing is lost with them."""
        heartbeat_ms = max(self._reclaim_idle_ms, int(3 * self._reclaim_interval_s * 1000))
        removed = await self._forget_dead(
            keys=[self.stream, self._members_key or self.stream],
            args=[self.group, self.consumer, self._reclaim_idle_ms, heartbeat_ms],
        )
        names = [name.decode() if isinstance(name, bytes) else str(name) for name in removed]
        if names:
            log.info("%s: removed idle consumers %s", self.consumer, ", ".join(names))
        return names

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
        candidates = [entry_id for entry_id in ids if entry_id not in self._tasks]
        if not candidates:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in candidates:
                pipe.xrange(self.stream, min=entry_id, max=entry_id, count=1)
            found = await pipe.execute()
        released = 0
        for entry_id, existing in zip(candidates, found, strict=True):
            if not existing and self._spawn(
                work, Delivery(self.stream, entry_id, {}, reclaimed=True)
            ):
                released += 1
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

    # -- running handlers ------------------------------------------------------------------

    def _spawn(self, work: TaskGroup, delivery: Delivery) -> bool:
        """Start a handler for ``delivery`` unless one is already running for that entry."""
        if delivery.entry_id in self._tasks:
            return False
        task = _Task(delivery, lambda: self._stopping.is_set())
        delivery._task = task
        self._tasks[delivery.entry_id] = task
        self._drained = anyio.Event() if self._drained.is_set() else self._drained
        work.start_soon(self._run_one, task)
        return True

    async def _run_one(self, task: _Task) -> None:
        delivery = task.delivery
        outcome = "cancelled"
        try:
            with task.scope:
                acquired = False
                try:
                    # Waiting for a slot is waiting too: a drain releases it.
                    with delivery.releasable():
                        await self._slots.acquire()
                        acquired = True
                    if delivery.deliveries > self._max_deliveries or not delivery.fields:
                        await self._on_poison(delivery)
                    else:
                        await self._handler(delivery)
                finally:
                    if acquired:
                        self._slots.release()
                self.handled += 1
                outcome = "finished"
            if task.scope.cancelled_caught:
                outcome = "released"  # the drain's cancellation landed while it waited
        except DeliveryReleased:
            outcome = "released"
        except Exception:
            # The entry stays pending; the reclaim loop retries it and, after max_deliveries,
            # dead-letters it. One bad entry never stops the consumer.
            outcome = "failed"
            log.exception("%s: handler failed on %s", self.consumer, delivery.id_text)
        finally:
            del self._tasks[delivery.entry_id]
            if self._stopping.is_set():
                self._count_drained(delivery, outcome)
            if not self._tasks:
                self._drained.set()

    def _count_drained(self, delivery: Delivery, outcome: str) -> None:
        report = self.drain
        if outcome == "finished":
            report.finished += 1
            return
        if outcome == "released":
            report.released += 1
        elif outcome == "cancelled":
            report.cancelled += 1
        self._left_pending.append(delivery.entry_id)

    async def _hand_back(self) -> None:
        """Give the entries this drain left pending an idle time past ``reclaim_idle_ms``, so
        the next consumer's first reclaim pass takes them at once (best effort: otherwise they
        are reclaimed after ``reclaim_idle_ms`` as usual), and stop this consumer's heartbeat
        so the group can forget it once they are taken."""
        ids: list[Any] = self._left_pending
        self._left_pending = []
        if self._members_key is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_HAND_BACK_TIMEOUT_S):
                try:
                    await self._redis.hdel(self._members_key, self.consumer)
                except (RedisError, OSError) as exc:
                    log.info("%s: heartbeat not removed (%s)", self.consumer, exc)
        if not ids:
            return
        try:
            with anyio.CancelScope(shield=True), anyio.fail_after(_HAND_BACK_TIMEOUT_S):
                claimed = await self._redis.xclaim(
                    self.stream,
                    self.group,
                    self.consumer,
                    min_idle_time=0,
                    message_ids=ids,
                    idle=self._reclaim_idle_ms + 1,
                    justid=True,
                )
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning(
                "%s: %d entries not handed back (%s); they are reclaimed after %d ms",
                self.consumer,
                len(ids),
                type(exc).__name__,
                self._reclaim_idle_ms,
            )
            self.drain.handed_back += len(ids)
            return
        self.drain.handed_back += len(claimed)


def _id_key(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)
