"""The collector: one loop per mode, each starting a cycle per cadence inside the session.

A cycle asks every symbol of its mode through the hub (priority ``collector``, tags
``{"collector": <name>, "mode": <mode>}``), at most ``max_in_flight`` requests at once, and runs
in the background so the cadence holds; a cycle that would start while the previous one of its
mode is unanswered, or while ``max_in_flight`` requests are outstanding, is skipped and
recorded (``collector.cycle_skipped``). A failed call is counted and logged, never fatal.

Stop (SIGTERM): no cycle starts any more; cycles in flight get ``drain_grace_s`` to be
answered, then are cancelled (their answers still reach the response stream, and the archiver).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Final

import anyio
import msgspec
import redis.asyncio as aioredis
from anyio.abc import TaskGroup, TaskStatus
from redis.exceptions import RedisError

from apihub_core import (
    COLLECTOR_STREAM_MAXLEN,
    CollectorCycleSkipped,
    CollectorEvent,
    ConfigurationError,
    HubClient,
    HubError,
    HubUnavailable,
    Keys,
    Provider,
    Response,
    SnapshotQuarantined,
    describe_redis_failure,
    encode_entry,
    now_ms,
)
from apihub_marketdata import KST, Session, Snapshot, TradingCalendar
from apihub_runtime import CollectorMode, MarketClock, Settings

from ._scalp import SCALP_TRS, observe, scalp_params
from ._schedule import (
    MAX_IDLE_S,
    MAX_PAUSE_S,
    Closed,
    SkipReason,
    admission,
    closed_pause,
    market_state,
    window_start,
)
from ._status import counts_key, polls_key
from ._swing import (
    MAX_PAGES,
    hhmmss,
    kis_bar_starts,
    next_page_hour,
    swing_params,
    swing_tr,
    window_truncated,
)
from ._watch import Target, targets

log = logging.getLogger("apihub.collector")

DRAIN_GRACE_S: Final = 5.0
"""How long cycles in flight may go on after a stop before they are cancelled."""
FAILURE_REPEAT_S: Final = 60.0
"""A symbol that keeps failing the same way is logged again at most this often."""
_MODES: Final[tuple[CollectorMode, ...]] = ("swing", "scalp")


@dataclass(slots=True)
class _Tally:
    """What one cycle did, added to the counters when it ends."""

    calls: int = 0
    failures: int = 0


@dataclass(slots=True)
class _Streak:
    """A run of failures of one symbol: how it fails, how often, when it was last logged."""

    error_class: str
    count: int
    logged_at: float


class Collector:
    """Polls the watchlist through the hub inside the KRX session (module docstring).

    The market clock is read again at least every ``recheck_s`` in the session and every
    ``idle_recheck_s`` outside it (real seconds), so a jump of the simulator's clock is seen.
    ``calendar`` may be ``None`` only for a collector with nothing to poll.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        hub: HubClient,
        settings: Settings,
        calendar: TradingCalendar | None,
        *,
        name: str = "collector",
        drain_grace_s: float = DRAIN_GRACE_S,
        recheck_s: float = MAX_PAUSE_S,
        idle_recheck_s: float = MAX_IDLE_S,
    ) -> None:
        self._redis = redis
        self._recheck_s = recheck_s
        self._idle_recheck_s = idle_recheck_s
        self._hub = hub
        self._calendar = calendar
        self._tuning = settings.collector
        self.name = name
        self.keys = Keys(settings.namespace)
        self.counts_key = counts_key(self.keys, name)
        self.polls_key = polls_key(self.keys, name)
        self._drain_grace_s = drain_grace_s
        polled, self.unsupported = targets(settings.watchlist)
        self.targets: dict[CollectorMode, tuple[Target, ...]] = {
            mode: tuple(t for t in polled if t.mode == mode) for mode in _MODES
        }
        self._interval: dict[CollectorMode, float] = {
            "swing": self._tuning.swing_interval_s,
            "scalp": self._tuning.scalp_interval_s,
        }
        self._limiter = anyio.CapacityLimiter(max(1, self._tuning.max_in_flight))
        self._stopping = anyio.Event()
        self._idle = anyio.Event()
        self._idle.set()
        self._cycles_active = 0
        self._running: dict[CollectorMode, bool] = dict.fromkeys(_MODES, False)
        self._skips: dict[CollectorMode, int] = dict.fromkeys(_MODES, 0)
        self._in_flight = 0
        self._state = ""
        self._last_polls: dict[str, datetime] = {}
        self._previous: dict[str, Snapshot] = {}
        self._failing: dict[str, _Streak] = {}
        self._cycles: TaskGroup | None = None

    @property
    def in_flight(self) -> int:
        """Requests of this collector not answered yet (one per symbol poll under way)."""
        return self._in_flight

    def stop(self) -> None:
        """Begin the drain: no cycle starts any more."""
        self._stopping.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Collect until :meth:`stop`, then drain."""
        modes = [mode for mode in _MODES if self.targets[mode]]
        if not self._tuning.enabled or not modes:
            await self._idle_until_stopped(task_status)
            return
        if self._calendar is None:
            raise ConfigurationError("the collector has symbols to poll but no trading calendar")
        try:
            await self._load_polls()
        except RedisError as exc:
            raise HubUnavailable(
                f"collector: cannot read {self.polls_key}: {describe_redis_failure(exc)}"
            ) from exc
        self._announce()
        async with anyio.create_task_group() as cycles:
            self._cycles = cycles
            async with anyio.create_task_group() as loops:
                for mode in modes:
                    loops.start_soon(self._loop, mode)
                task_status.started()
            await self._drain()
            cycles.cancel_scope.cancel()
        await self._set_state("stopped", "")

    # -- start-up and shutdown ---------------------------------------------------------------------

    async def _idle_until_stopped(self, task_status: TaskStatus[None]) -> None:
        if not self._tuning.enabled:
            detail = "nothing to collect: disabled ([collector] enabled = false)"
        else:
            detail = (
                "nothing to collect: no watchlist (add [[collector.watch]] tables to "
                "apihub.toml; the demo list is used only when the KIS default account is the "
                "simulator's demo account)"
            )
        await self._set_state("idle", detail)  # the one log line
        task_status.started()
        await self._stopping.wait()

    def _announce(self) -> None:
        for mode in _MODES:
            chosen = self.targets[mode]
            if chosen:
                symbols = ", ".join(t.key for t in chosen)
                every = self._interval[mode]
                log.info("collector %s: %s every %g s: %s", self.name, mode, every, symbols)
        if self.unsupported:
            log.warning(
                "collector %s: scalp mode reads KIS only for now; left out: %s",
                self.name,
                ", ".join(t.key for t in self.unsupported),
            )

    async def _load_polls(self) -> None:
        stored = await self._redis.hgetall(self.polls_key)
        for field, value in stored.items():
            key = field.decode() if isinstance(field, bytes) else str(field)
            try:
                self._last_polls[key] = datetime.fromtimestamp(int(value) / 1000, tz=KST)
            except ValueError:
                continue

    async def _drain(self) -> None:
        if self._cycles_active:
            log.info(
                "collector %s draining: %d cycle(s), %d request(s) in flight",
                self.name,
                self._cycles_active,
                self._in_flight,
            )
            with anyio.move_on_after(self._drain_grace_s):
                await self._idle.wait()
            if self._cycles_active:
                log.info(
                    "collector %s: %d request(s) still unanswered after %g s, cancelled (their "
                    "answers still reach the response stream)",
                    self.name,
                    self._in_flight,
                    self._drain_grace_s,
                )
                return
        log.info("collector %s drained", self.name)

    # -- the loops ---------------------------------------------------------------------------------

    async def _pause(self, seconds: float) -> None:
        with anyio.move_on_after(max(0.0, seconds)):
            await self._stopping.wait()

    async def _loop(self, mode: CollectorMode) -> None:
        due = 0.0
        while not self._stopping.is_set():
            try:
                clock = await MarketClock.read(self._redis, self.keys)
            except RedisError as exc:
                log.warning("collector %s: cannot read the market clock (%s)", self.name, exc)
                await self._pause(self._recheck_s)
                continue
            now = clock.now()
            assert self._calendar is not None  # noqa: S101 - checked by run()
            state = market_state(self._calendar, now)
            if isinstance(state, Closed):
                opens = state.next_open
                await self._set_state(
                    "closed",
                    f"{state.why.replace('_', ' ')}; next session "
                    + (f"opens {opens.isoformat()}" if opens else "unknown"),
                )
                due = 0.0  # a session starts with a cycle at once
                await self._pause(closed_pause(clock, now, opens, cap=self._idle_recheck_s))
                continue
            await self._set_state("in_session", f"session {state.session.day.isoformat()}")
            started = anyio.current_time()
            if started >= due:
                await self._begin(mode, clock, now, state.session)
                due = started + clock.wall_seconds(self._interval[mode])
            await self._pause(min(due - anyio.current_time(), self._recheck_s))

    async def _begin(
        self, mode: CollectorMode, clock: MarketClock, now: datetime, session: Session
    ) -> None:
        reason = admission(
            running=self._running[mode],
            in_flight=self._in_flight,
            max_in_flight=self._tuning.max_in_flight,
        )
        if reason is not None:
            await self._skip(mode, reason)
            return
        if self._skips[mode]:
            log.info(
                "collector %s: %s cycles resume after %d skipped",
                self.name,
                mode,
                self._skips[mode],
            )
            self._skips[mode] = 0
        assert self._cycles is not None  # noqa: S101 - set by run() before the loops start
        self._running[mode] = True
        # Every symbol's poll has one request outstanding until it ends (pages go one after
        # another): counted from now, so a cycle of the other mode sees them at once.
        self._in_flight += len(self.targets[mode])
        self._cycles_active += 1
        self._idle = anyio.Event()
        self._cycles.start_soon(self._cycle, mode, clock, now, session)

    async def _skip(self, mode: CollectorMode, reason: SkipReason) -> None:
        self._skips[mode] += 1
        if self._skips[mode] == 1:
            log.warning(
                "collector %s: skipping %s cycles (%s: %d request(s) in flight)",
                self.name,
                mode,
                reason,
                self._in_flight,
            )
        event = CollectorCycleSkipped(
            collector=self.name,
            mode=mode,
            reason=reason,
            symbols=len(self.targets[mode]),
            skipped_at_ms=now_ms(),
        )
        try:
            await self._append(event, "skipped", f"skipped_{reason}")
        except RedisError as exc:
            log.warning("collector %s: skipped cycle not recorded (%s)", self.name, exc)

    # -- one cycle ---------------------------------------------------------------------------------

    async def _cycle(
        self, mode: CollectorMode, clock: MarketClock, now: datetime, session: Session
    ) -> None:
        tally = _Tally()
        try:
            async with anyio.create_task_group() as symbols:
                for target in self.targets[mode]:
                    symbols.start_soon(self._poll, target, clock, now, session, tally)
        finally:
            self._running[mode] = False
            self._cycles_active -= 1
            if not self._cycles_active:
                self._idle.set()
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await self._count(
                    {f"{mode}_cycles": 1, "calls": tally.calls, "failures": tally.failures}
                )

    async def _poll(
        self, target: Target, clock: MarketClock, now: datetime, session: Session, tally: _Tally
    ) -> None:
        try:
            if target.mode == "swing":
                await self._swing(target, now, session, tally)
            else:
                await self._scalp(target, clock, tally)
        except HubError as exc:
            tally.failures += 1
            self._failed(target, exc)
            return
        except RedisError as exc:
            log.warning("collector %s: %s: Redis write failed (%s)", self.name, target.key, exc)
            return
        except Exception:  # a bug must not stop the other symbols or the loops
            tally.failures += 1
            log.exception("collector %s: %s %s poll failed", self.name, target.key, target.mode)
            return
        finally:
            self._in_flight -= 1
        self._recovered(target)

    async def _call(
        self, target: Target, tr_id: str, params: dict[str, str], tally: _Tally
    ) -> Response:
        async with self._limiter:
            try:
                return await self._hub.execute(
                    target.provider,
                    tr_id,
                    params,
                    account=target.account,
                    priority="collector",
                    timeout=self._tuning.request_timeout_s,
                    tags={"collector": self.name, "mode": target.mode},
                )
            finally:
                tally.calls += 1

    async def _swing(self, target: Target, now: datetime, session: Session, tally: _Tally) -> None:
        start = window_start(
            now, self._last_polls.get(target.key), session, self._tuning.swing_overlap_bars
        )
        tr_id = swing_tr(target.provider)
        hour = hhmmss(now)
        pages = 0
        while True:
            params = swing_params(target.provider, target.symbol, hour)
            response = await self._call(target, tr_id, params, tally)
            pages += 1
            if target.provider is not Provider.KIS:
                break
            starts = kis_bar_starts(response.body)
            following = next_page_hour(starts, start=start, session=session, pages=pages)
            if following is None:
                if window_truncated(starts, start=start, pages=pages):
                    log.info(
                        "collector %s: %s: %d pages reach back to %s only (not %s); the "
                        "sentinel heals the rest",
                        self.name,
                        target.key,
                        MAX_PAGES,
                        min(starts).strftime("%H:%M"),
                        start.strftime("%H:%M") if start else "",
                    )
                break
            hour = following
        self._last_polls[target.key] = now
        await self._redis.hset(self.polls_key, target.key, str(int(now.timestamp() * 1000)))

    async def _scalp(self, target: Target, clock: MarketClock, tally: _Tally) -> None:
        tr_id = SCALP_TRS[target.provider]
        params = scalp_params(target.provider, target.symbol)
        response = await self._call(target, tr_id, params, tally)
        result = observe(
            target.provider,
            tr_id,
            params,
            msgspec.json.encode(response.body),
            symbol=target.symbol,
            previous=self._previous.get(target.key),
            collector=self.name,
            lineage=response.request_id,
            received_at=broker_time(response) or clock.now(),
            now_ms=now_ms(),
        )
        if isinstance(result, SnapshotQuarantined):
            log.info(
                "collector %s: %s snapshot quarantined (%s: %s)",
                self.name,
                target.key,
                result.reason,
                result.detail,
            )
            await self._append(result, "quarantines")
            return
        event, snapshot = result
        self._previous[target.key] = snapshot
        await self._append(event, "snapshots")

    # -- reporting ---------------------------------------------------------------------------------

    def _failed(self, target: Target, exc: HubError) -> None:
        streak = self._failing.get(target.key)
        now = anyio.current_time()
        if streak is None or streak.error_class != exc.error_class:
            self._failing[target.key] = _Streak(exc.error_class, 1, now)
            log.warning(
                "collector %s: %s %s poll failed: %s: %s",
                self.name,
                target.key,
                target.mode,
                exc.error_class,
                exc,
            )
            return
        streak.count += 1
        if now - streak.logged_at >= FAILURE_REPEAT_S:
            streak.logged_at = now
            log.warning(
                "collector %s: %s %s polls still failing (%d in a row): %s: %s",
                self.name,
                target.key,
                target.mode,
                streak.count,
                exc.error_class,
                exc,
            )
        else:
            log.debug("collector %s: %s poll failed again: %s", self.name, target.key, exc)

    def _recovered(self, target: Target) -> None:
        streak = self._failing.pop(target.key, None)
        if streak is not None:
            log.info(
                "collector %s: %s %s polls answered again after %d failure(s)",
                self.name,
                target.key,
                target.mode,
                streak.count,
            )

    async def _append(self, event: CollectorEvent, *counters: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self.keys.collector,
                encode_entry(event),
                maxlen=COLLECTOR_STREAM_MAXLEN,
                approximate=True,
            )
            for counter in counters:
                pipe.hincrby(self.counts_key, counter, 1)
            await pipe.execute()

    async def _count(self, increments: dict[str, int]) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for counter, amount in increments.items():
                    if amount:
                        pipe.hincrby(self.counts_key, counter, amount)
                await pipe.execute()
        except RedisError as exc:
            log.warning("collector %s: counters not updated (%s)", self.name, exc)

    async def _set_state(self, state: str, detail: str) -> None:
        """Write (and log) a change of state; tried once per change."""
        before, self._state = self._state, f"{state}:{detail}"
        if self._state == before:
            return
        if state != before.split(":", 1)[0]:
            log.info("collector %s: %s%s", self.name, state, f" ({detail})" if detail else "")
        try:
            await self._redis.hset(
                self.counts_key,
                mapping={"state": state, "detail": detail, "updated_at_ms": now_ms()},
            )
        except RedisError as exc:
            log.warning("collector %s: state not written (%s)", self.name, exc)


def broker_time(response: Response) -> datetime | None:
    """The broker's ``Date`` header of ``response`` (the time of its quote), if it has one."""
    raw = next((v for k, v in response.headers.items() if k.lower() == "date"), "")
    if not raw:
        return None
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return when.astimezone(KST) if when.tzinfo is not None else None
