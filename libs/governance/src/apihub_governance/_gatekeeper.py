"""The gatekeeper: one rate limiter for the whole fleet, on Redis.

Every dispatcher process holds a :class:`Gatekeeper`; together they behave like one polite client
that still uses the broker's full quota. See ``docs/rate-limits.md`` for the design and its
guarantees. In short:

- one script call per permit (:data:`~apihub_governance._rate_scripts.ACQUIRE_LUA`), on the
  Redis server's clock, grants only when every window of every charged bucket has room;
  otherwise it answers how long to wait, and the caller sleeps that long (bounded);
- waiters of one bucket set in one process form a *lane*: a local priority queue whose head
  alone talks to Redis, and which holds one place (the head's rank) in the fleet-wide waiters
  queue of each bucket, kept alive by the head's calls;
- the 1 s (and every) window is widened by the fleet's largest fresh jitter margin plus a
  decaying penalty after an upstream rate error;
- any failure to reach the limiter Redis fails closed (:class:`~apihub_core.HubUnavailable`).
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import anyio
import anyio.lowlevel
import redis.asyncio as aioredis
from anyio.abc import TaskStatus
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from apihub_core import (
    HubUnavailable,
    Keys,
    Priority,
    RateLimitRejected,
    RateLimitWaited,
    UpstreamRateLimited,
    UpstreamRateLimitHit,
    now_ms,
    pool_exhausted,
)
from apihub_runtime import RateLimiterSettings

from ._buckets import Bucket, Permit
from ._jitter import JitterEstimator
from ._rate_events import RateEventSink
from ._rate_scripts import ACQUIRE_LUA, PENALTY_LUA, bucket_keys

log = logging.getLogger("apihub.gatekeeper")

RATE_LIMIT_CODE: Final = "APIHUB-RATE-LIMIT"
"""``code`` of the :class:`~apihub_core.UpstreamRateLimited` raised when no permit came in time."""

REDIS_CALL_TIMEOUT_S: Final = 2.0
"""Bound of every call to the limiter Redis; past it the gatekeeper fails closed."""

WAITER_TTL_MS: Final = 2_000
"""A lane's place in the fleet-wide waiters queue lives this long without a heartbeat, so a
crashed process stops holding others back after at most this long."""

HEAD_POLL_MAX_S: Final = 0.5
"""A waiting lane head calls the script at least this often: its heartbeat (well inside
:data:`WAITER_TTL_MS`) and another chance at a permit."""

MARGIN_REPORT_TTL_MS: Final = 60_000
"""A member's margin report counts this long; an idle or dead member stops widening the windows."""

WAKE_SLACK_S: Final = 0.001
"""Added to every computed wait, so the head does not wake a hair before the slot opens."""

MAX_GRANT_BATCH: Final = 32
"""Most permits a lane head asks for at once (for itself and the local waiters behind it)."""

GRANT_BATCH_SLACK_MS: Final = 1.0
"""Permits after the first of a batch must be due (pacing) within this much of now: a batch is
for budgets so large that their spacing is below a millisecond, never a burst of a tight one."""


@dataclass(eq=False)
class _Waiter:
    """One ``acquire()`` in a lane's queue."""

    priority: Priority
    cost: int
    offset_ms: float
    enqueued_at: float
    deadline: float
    request_id: str
    wake: anyio.Event = field(default_factory=anyio.Event)
    reason: str = ""
    blocked: int = 0
    failure: HubUnavailable | None = None
    permit: Permit | None = None
    """Set by the lane head when this waiter's permit came in the head's batch."""
    grant: str = ""
    """The grant id of ``permit`` (its members in Redis: ``<grant>:<c>``), for a refund."""

    @property
    def rank(self) -> float:
        """Local rank (ms, lower first): arrival plus the class offset (aging)."""
        return self.enqueued_at * 1000 + self.offset_ms


class _Lane:
    """The waiters of one bucket set in this process; only the head talks to Redis."""

    def __init__(self, buckets: tuple[Bucket, ...], waiter_id: str, keys: list[str]) -> None:
        self.buckets = buckets
        self.waiter_id = waiter_id
        self.keys = keys
        self.heap: list[tuple[float, int, _Waiter]] = []
        self.in_flight = False
        self.not_before = 0.0
        self.kept_place = False
        self.blocked: tuple[str, int] | None = None
        self._seq = itertools.count()

    def push(self, waiter: _Waiter) -> None:
        if self.blocked is not None:
            waiter.reason, waiter.blocked = self.blocked
        heapq.heappush(self.heap, (waiter.rank, next(self._seq), waiter))
        self.kick()

    def note_blocked(self, reason: str, blocked: int) -> None:
        """The head was told to wait: everyone queued behind it waits for the same reason."""
        self.blocked = (reason, blocked)
        for _, _, waiter in self.heap:
            waiter.reason, waiter.blocked = reason, blocked

    def remove(self, waiter: _Waiter) -> bool:
        for i, entry in enumerate(self.heap):
            if entry[2] is waiter:
                self.heap.pop(i)
                heapq.heapify(self.heap)
                self.kick()
                return True
        return False

    def head(self) -> _Waiter | None:
        return self.heap[0][2] if self.heap else None

    def batch(self, head: _Waiter, limit: int) -> tuple[list[_Waiter], _Waiter | None]:
        """The head and the waiters right behind it with the same cost (at most ``limit``),
        in rank order, and the waiter after them (it keeps the lane's place once they go)."""
        ordered = [entry[2] for entry in heapq.nsmallest(limit + 1, self.heap)]
        batch = [head]
        for waiter in ordered[1:]:
            if waiter.cost != head.cost or len(batch) == limit:
                return batch, waiter
            batch.append(waiter)
        return batch, None

    def remove_many(self, waiters: list[_Waiter]) -> list[_Waiter]:
        """Take ``waiters`` out of the queue; the ones that were still in it."""
        wanted = {id(waiter) for waiter in waiters}
        kept = [entry for entry in self.heap if id(entry[2]) not in wanted]
        still = {id(entry[2]) for entry in self.heap if id(entry[2]) in wanted}
        self.heap = kept
        heapq.heapify(self.heap)
        self.kick()
        return [waiter for waiter in waiters if id(waiter) in still]

    def kick(self) -> None:
        """Wake the head, so it notices it is (still, or newly) the head."""
        head = self.head()
        if head is not None:
            head.wake.set()


@dataclass(frozen=True, slots=True)
class _Answer:
    grant_id: str
    granted: bool
    now_ms: float
    wait_ms: float
    reason: str
    blocked: int
    margin_ms: float
    count: int = 1


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Gatekeeper:
    """The fleet-wide rate limiter. One per process; ``member`` names it in Redis.

    ``limiter_redis`` holds the budgets (``REDIS_URL_GATEKEEPER``); ``events_redis`` gets the
    rate-limit events (``keys.rate_limits``) and may be another server. Start :meth:`run` in the
    service's task group (it writes the events) and :meth:`stop` it on shutdown.
    """

    def __init__(
        self,
        limiter_redis: aioredis.Redis,
        events_redis: aioredis.Redis,
        keys: Keys,
        settings: RateLimiterSettings,
        *,
        member: str,
    ) -> None:
        self._redis = limiter_redis
        self._keys = keys
        self._settings = settings
        self._member = member
        self._events = RateEventSink(events_redis, keys.rate_limits)
        self._acquire_script = limiter_redis.register_script(ACQUIRE_LUA)
        self._penalty_script = limiter_redis.register_script(PENALTY_LUA)
        self._lanes: dict[tuple[str, ...], _Lane] = {}
        self._jitter: dict[str, JitterEstimator] = {}
        self._grant_seq = itertools.count()
        self._lane_seq = itertools.count()

    @property
    def member(self) -> str:
        """This gatekeeper's name in the shared waiters queue and margin reports."""
        return self._member

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Background work until :meth:`stop`: write buffered events in batches."""
        await self._events.run(task_status=task_status)

    def stop(self) -> None:
        """Make :meth:`run` flush the remaining events and return."""
        self._events.stop()

    def margin_ms(self, bucket: Bucket) -> float:
        """The margin this process measures for ``bucket`` (what it reports to the fleet)."""
        return self._estimator(bucket.name).margin_ms

    async def acquire(
        self,
        buckets: Sequence[Bucket],
        priority: Priority,
        *,
        timeout_s: float,
        request_id: str = "",
        cost: int = 1,
    ) -> Permit:
        """Wait for leave to make a call that charges ``cost`` permits of every bucket.

        Waits at most ``timeout_s`` (capped at ``max_wait_s``); higher ``priority`` classes are
        served first when the budget is saturated, and a waiting low class ages into the lead.

        Raises:
            UpstreamRateLimited: code ``APIHUB-RATE-LIMIT``: no permit within the timeout.
            HubUnavailable: the limiter Redis could not be reached; no call may go out.
            ValueError: ``cost`` below 1 or above a window's limit (it could never be granted).
        """
        charged = tuple(buckets)
        _check_cost(charged, cost)
        started = anyio.current_time()
        if not self._settings.enabled or not any(b.windows for b in charged):
            return Permit(charged, float(now_ms()), 0.0, 0.0, started)
        lane = self._lane(charged)
        waiter = _Waiter(
            priority=priority,
            cost=cost,
            offset_ms=float(self._settings.priority_offsets_ms.get(priority, 0.0)),
            enqueued_at=started,
            deadline=started + max(0.0, min(timeout_s, self._settings.max_wait_s)),
            request_id=request_id,
        )
        lane.push(waiter)
        try:
            return await self._wait_for_permit(lane, waiter, charged)
        except anyio.get_cancelled_exc_class():
            if waiter.permit is not None:
                # Granted in its head's batch, cancelled before it could use the permit.
                with anyio.CancelScope(shield=True):
                    await self._refund(lane, waiter.grant, waiter.cost)
            raise
        except HubUnavailable:
            # Another call to a failing Redis would only delay the error; the entry expires.
            lane.remove(waiter)
            raise
        finally:
            if lane.remove(waiter) and not lane.heap:
                # Nobody left waiting: what held the lane back no longer describes anyone, and
                # the next caller must not report a wait it never had.
                lane.blocked = None
                await self._leave_queue(lane)

    def observe(self, permit: Permit, answered_at: float) -> None:
        """Record the permit-to-answer time of a call (``answered_at`` from
        ``anyio.current_time()``) for the jitter margin of each of its buckets."""
        delay_ms = (answered_at - permit.requested_at) * 1000
        for bucket in permit.buckets:
            self._estimator(bucket.name).add(delay_ms, answered_at)

    async def upstream_limited(self, permit: Permit, *, code: str, request_id: str = "") -> None:
        """The broker refused a permitted call for its rate (EGW00201, 1700, HTTP 429).

        Adds ``penalty_ms`` of spacing to each of the permit's buckets (shared in Redis,
        decaying linearly over ``penalty_decay_s``) and emits ``UpstreamRateLimitHit``. A
        limiter Redis that cannot be reached is logged, not raised: the call already failed.
        """
        buckets = [b for b in permit.buckets if b.windows]
        if not buckets:
            return
        settings = self._settings
        penalties: list[float] = [0.0] * len(buckets)
        at = float(now_ms())
        if settings.penalty_ms > 0 and settings.penalty_decay_s > 0:
            keys = [bucket_keys(self._keys.rate_limit_prefix, b)[4] for b in buckets]
            try:
                reply = await self._call(
                    self._penalty_script,
                    keys,
                    [settings.penalty_ms, settings.penalty_decay_s * 1000, settings.max_margin_ms],
                )
                at = float(_text(reply[0]))
                penalties = [float(_text(value)) for value in reply[1:]]
            except HubUnavailable:
                log.warning("rate-limit penalty not recorded: limiter Redis unreachable")
        for bucket, penalty in zip(buckets, penalties, strict=True):
            self._events.emit(
                UpstreamRateLimitHit(
                    bucket=bucket.name,
                    provider=bucket.provider,
                    account=bucket.account,
                    request_id=request_id,
                    code=code,
                    penalty_ms=penalty,
                    at_ms=int(at),
                )
            )

    # -- the waiting loop ------------------------------------------------------------------

    async def _wait_for_permit(
        self, lane: _Lane, waiter: _Waiter, charged: tuple[Bucket, ...]
    ) -> Permit:
        while True:
            if waiter.permit is not None:
                return waiter.permit  # granted in the batch its lane head asked for
            if waiter.failure is not None:
                raise waiter.failure
            remaining = waiter.deadline - anyio.current_time()
            if remaining <= 0:
                raise self._deadline(lane, waiter)
            if lane.head() is not waiter or lane.in_flight:
                await self._sleep(waiter, remaining)
                continue
            paced = lane.not_before - anyio.current_time()
            if paced > 0:
                # The last grant said when the next one can come (pacing): no point asking.
                await self._sleep(waiter, min(paced, remaining))
                continue
            requested_at = anyio.current_time()
            lane.in_flight = True
            batch, follower = lane.batch(waiter, MAX_GRANT_BATCH)
            try:
                answer = await self._try_grant(lane, batch, follower)
            except HubUnavailable as exc:
                raise self._fail_lane(lane, waiter, exc) from exc.__cause__
            finally:
                lane.in_flight = False
                if lane.head() is not waiter:
                    lane.kick()  # a better waiter arrived during the call: its turn now
            if answer.granted:
                lane.kept_place = follower is not None or answer.count < len(batch)
                # Only a lane that kept its place in the shared queue may wait out the pacing
                # gap silently; a lane that left it must ask, and so queue, like everyone else.
                lane.not_before = (
                    anyio.current_time() + answer.wait_ms / 1000 if lane.kept_place else 0.0
                )
                await self._hand_out(lane, batch[1 : answer.count], answer, requested_at, charged)
                return await self._granted(lane, waiter, answer, requested_at, charged)
            lane.note_blocked(answer.reason, answer.blocked)
            wait_s = answer.wait_ms / 1000 + WAKE_SLACK_S
            if answer.reason != "priority" and wait_s > remaining:
                # The window cannot open in time: say so now rather than hold a slot to the end.
                raise self._deadline(lane, waiter)
            await self._sleep(waiter, min(wait_s, remaining, HEAD_POLL_MAX_S))

    @staticmethod
    async def _sleep(waiter: _Waiter, seconds: float) -> None:
        # A fresh event per sleep: whoever changes the lane sets the head's, so a new head (a
        # better-ranked arrival, a departure) takes over at once instead of after the sleep.
        waiter.wake = anyio.Event()
        with anyio.move_on_after(seconds):
            await waiter.wake.wait()

    async def _try_grant(
        self, lane: _Lane, batch: list[_Waiter], follower: _Waiter | None
    ) -> _Answer:
        now = anyio.current_time()
        waiter = batch[0]
        grant_id = f"{self._member}:{next(self._grant_seq)}"
        args: list[str | int | float] = [
            lane.waiter_id,
            grant_id,
            waiter.cost,
            (now - waiter.enqueued_at) * 1000,
            waiter.offset_ms,
            -1 if follower is None else (now - follower.enqueued_at) * 1000,
            0 if follower is None else follower.offset_ms,
            1 if follower is None else follower.cost,
            self._member,
            MARGIN_REPORT_TTL_MS,
            WAITER_TTL_MS,
            self._settings.penalty_decay_s * 1000,
            2 * self._settings.max_margin_ms + 1000,
            len(lane.buckets),
            self._settings.pacing,
            len(batch),
            GRANT_BATCH_SLACK_MS,
        ]
        for member in batch[1:]:
            args += [(now - member.enqueued_at) * 1000, member.offset_ms]
        for bucket in lane.buckets:
            args += [self.margin_ms(bucket), len(bucket.windows)]
            for window in bucket.windows:
                args += [window.limit, window.window_ms]
        reply = await self._call(self._acquire_script, lane.keys, args)
        granted = int(_text(reply[0])) == 1
        return _Answer(
            grant_id=grant_id,
            granted=granted,
            now_ms=float(_text(reply[1])),
            wait_ms=float(_text(reply[2])),
            reason=_text(reply[3]),
            blocked=int(_text(reply[4])),
            margin_ms=float(_text(reply[5])),
            count=int(_text(reply[6])) if granted and len(reply) > 6 else 1,
        )

    async def _hand_out(
        self,
        lane: _Lane,
        others: list[_Waiter],
        answer: _Answer,
        requested_at: float,
        charged: tuple[Bucket, ...],
    ) -> None:
        """Give the batch's extra permits to the waiters they were asked for; a permit whose
        waiter left meanwhile (timed out, cancelled) goes back to the budget."""
        if not others:
            return
        present = {id(waiter) for waiter in lane.remove_many(others)}
        for j, waiter in enumerate(others, start=2):
            grant = f"{answer.grant_id}:{j}"
            if id(waiter) not in present:
                await self._refund(lane, grant, waiter.cost)
                continue
            waiter.grant = grant
            waiter.permit = self._permit(waiter, lane, answer, requested_at, charged)
            waiter.wake.set()

    async def _granted(
        self,
        lane: _Lane,
        waiter: _Waiter,
        answer: _Answer,
        requested_at: float,
        charged: tuple[Bucket, ...],
    ) -> Permit:
        lane.blocked = None
        lane.remove(waiter)
        try:
            # The script call was shielded; a cancellation that arrived meanwhile lands here,
            # and the permit nobody will use goes back to the budget.
            await anyio.lowlevel.checkpoint()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._refund(lane, f"{answer.grant_id}:1", waiter.cost)
            raise
        return self._permit(waiter, lane, answer, requested_at, charged)

    def _permit(
        self,
        waiter: _Waiter,
        lane: _Lane,
        answer: _Answer,
        requested_at: float,
        charged: tuple[Bucket, ...],
    ) -> Permit:
        waited_ms = (anyio.current_time() - waiter.enqueued_at) * 1000
        permit = Permit(charged, answer.now_ms, waited_ms, answer.margin_ms, requested_at)
        if waiter.reason:
            bucket = lane.buckets[max(0, waiter.blocked - 1)]
            self._events.emit(
                RateLimitWaited(
                    bucket=bucket.name,
                    provider=bucket.provider,
                    account=bucket.account,
                    request_id=waiter.request_id,
                    priority=waiter.priority,
                    reason=waiter.reason,
                    waited_ms=waited_ms,
                    margin_ms=answer.margin_ms,
                    at_ms=int(answer.now_ms),
                )
            )
        return permit

    def _deadline(self, lane: _Lane, waiter: _Waiter) -> UpstreamRateLimited:
        bucket = lane.buckets[max(0, waiter.blocked - 1)]
        waited_ms = (anyio.current_time() - waiter.enqueued_at) * 1000
        self._reject(lane, waiter, "deadline", waited_ms)
        return UpstreamRateLimited(
            f"no rate-limit permit for {bucket.name} within {waited_ms / 1000:.3f} s"
            f" ({waiter.reason or 'queued'})",
            code=RATE_LIMIT_CODE,
            request_id=waiter.request_id or None,
            provider=bucket.provider,
        )

    def _fail_lane(self, lane: _Lane, head: _Waiter, exc: HubUnavailable) -> HubUnavailable:
        """The limiter Redis failed the head: fail every waiter of the lane at once rather than
        letting each wait out its own bounded call to a dead server. Returns the head's error."""
        provider = lane.buckets[0].provider
        for _, _, waiter in lane.heap:
            if waiter.failure is None:
                waiter.failure = HubUnavailable(
                    exc.message, request_id=waiter.request_id or None, provider=provider
                )
                waited_ms = (anyio.current_time() - waiter.enqueued_at) * 1000
                self._reject(lane, waiter, "unavailable", waited_ms)
                if waiter is not head:
                    waiter.wake.set()
        return head.failure or exc

    def _reject(self, lane: _Lane, waiter: _Waiter, reason: str, waited_ms: float) -> None:
        bucket = lane.buckets[max(0, waiter.blocked - 1)]
        self._events.emit(
            RateLimitRejected(
                bucket=bucket.name,
                provider=bucket.provider,
                account=bucket.account,
                request_id=waiter.request_id,
                priority=waiter.priority,
                reason=reason,
                waited_ms=waited_ms,
                at_ms=now_ms(),
            )
        )

    # -- Redis ------------------------------------------------------------------------------

    async def _call(
        self, script: AsyncScript, keys: list[str], args: list[str | int | float]
    ) -> list[object]:
        """Run a script, bounded and shielded (a cancelled caller must not leave a grant it
        never learns about); any failure becomes :class:`HubUnavailable`: fail closed."""
        try:
            # One scope, shielded and bounded (cheaper than a shield plus a fail_after).
            with anyio.CancelScope(shield=True) as scope:
                scope.deadline = anyio.current_time() + REDIS_CALL_TIMEOUT_S
                return list(await script(keys=keys, args=args))
        except (RedisError, OSError) as exc:
            what = (
                f"no free connection to the rate limiter's Redis in this process's pool ({exc})"
                if pool_exhausted(exc)
                else f"rate limiter Redis unreachable ({type(exc).__name__})"
            )
            raise HubUnavailable(f"{what}: failing closed") from exc
        raise HubUnavailable(
            f"rate limiter Redis: no answer within {REDIS_CALL_TIMEOUT_S:g} s: failing closed"
        )

    async def _leave_queue(self, lane: _Lane) -> None:
        """The lane emptied without a grant (timeout, cancellation): drop its place in the
        fleet-wide queue. Best effort: an entry left behind expires after WAITER_TTL_MS."""
        lane.in_flight = True
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(REDIS_CALL_TIMEOUT_S):
                pipe = self._redis.pipeline(transaction=False)
                for i in range(len(lane.buckets)):
                    pipe.zrem(lane.keys[5 * i + 1], lane.waiter_id)
                    pipe.hdel(lane.keys[5 * i + 2], lane.waiter_id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.info("waiter %s not removed (%s); it expires", lane.waiter_id, exc)
        finally:
            lane.in_flight = False
            lane.kick()

    async def _refund(self, lane: _Lane, grant_id: str, cost: int) -> None:
        members = [f"{grant_id}:{c}" for c in range(1, cost + 1)]
        try:
            with anyio.move_on_after(REDIS_CALL_TIMEOUT_S):
                pipe = self._redis.pipeline(transaction=False)
                for i in range(len(lane.buckets)):
                    pipe.zrem(lane.keys[5 * i], *members)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.info("unused permit %s not refunded (%s)", grant_id, exc)

    # -- bookkeeping ------------------------------------------------------------------------

    def _lane(self, buckets: tuple[Bucket, ...]) -> _Lane:
        charged = tuple(b for b in buckets if b.windows)
        key = tuple(b.name for b in charged)
        lane = self._lanes.get(key)
        if lane is None or lane.buckets != charged:
            # A changed definition under the same names (new limits) gets a fresh lane; the old
            # one drains on its own.
            keys = [k for b in charged for k in bucket_keys(self._keys.rate_limit_prefix, b)]
            lane = _Lane(charged, f"{self._member}#{next(self._lane_seq)}", keys)
            self._lanes[key] = lane
        return lane

    def _estimator(self, name: str) -> JitterEstimator:
        estimator = self._jitter.get(name)
        if estimator is None:
            estimator = self._jitter[name] = JitterEstimator.from_settings(self._settings)
        return estimator


def _check_cost(buckets: tuple[Bucket, ...], cost: int) -> None:
    if cost < 1:
        raise ValueError(f"cost must be at least 1, got {cost}")
    for bucket in buckets:
        for window in bucket.windows:
            if cost > window.limit:
                raise ValueError(
                    f"cost {cost} exceeds the limit {window.limit} of {bucket.name}:"
                    " never grantable"
                )
