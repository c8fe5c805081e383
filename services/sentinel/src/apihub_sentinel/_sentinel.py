"""The sentinel: keeps every tracked series complete.

Three loops and two consumer groups, all in one task group:

* ``archive`` group on ``<ns>:archive``: every ``archive.written`` sets the bars it names in
  the coverage bitmaps and wakes the open gaps of that series.
* the scanner: every ``scan_interval_s`` it compares, per tracked series and trading day of the
  look-back, the calendar's expected bars that are due (ended ``grace_s`` ago, market time)
  with the coverage, and turns missing bars not yet in a gap into gaps (adjacent misses merged),
  appending ``gap.detected``. One replica at a time scans a series (a lock), so two replicas
  never open the same gap.
* the gap worker: an open gap that is due asks for the pages covering its missing bars —
  ``RequestSubmitted`` straight into the request stream at backfill priority, tagged with the
  gap id — after claiming each page (a page claimed by another gap or a backfill job is not
  asked again), and appends ``gap.backfill_requested``.
* ``sentinel`` group on ``<ns>:responses``: the outcomes of its own requests. A success counts,
  per bar of the page, whether the broker had it: a bar missing from ``confirm_empty_after``
  answers is ``gap.confirmed_empty`` (a minute without a trade, a halt). A failure releases the
  page and retries with backoff, or gives up (``gap.backfill_failed``).

A gap whose bars are all archived (or confirmed empty) is closed with ``gap.healed`` and the
time from detection to heal.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Final, TypedDict

import anyio
import redis.asyncio as aioredis
from anyio.abc import TaskStatus

from apihub_archive import ArchiveError, read_candles
from apihub_backfill import Page, PageClaims, pages_for, plan_pages
from apihub_core import (
    DEAD_LETTER_MAXLEN,
    GAP_STREAM_MAXLEN,
    ArchiveWritten,
    EntryDecodeError,
    Event,
    GapBackfillFailed,
    GapBackfillRequested,
    GapConfirmedEmpty,
    GapDetected,
    GapHealed,
    HubClient,
    Keys,
    MarketInconsistency,
    RequestFailed,
    ResponseReceived,
    decode_archive_event,
    decode_outcome,
    encode_entry,
    now_ms,
)
from apihub_marketdata import (
    KST,
    Candle,
    Interval,
    MarketDataError,
    TradingCalendar,
    normalise,
)
from apihub_runtime import (
    Delivery,
    MarketClock,
    Settings,
    StreamConsumer,
    consumer_name,
    dead_letter_event,
)

from ._bitmaps import Bitmaps
from ._consistency import compare_day
from ._detect import due, gap_id, gap_ranges
from ._store import Gap, GapStore

log = logging.getLogger("apihub.sentinel")

GROUP: Final = "sentinel"
LOCK_MS: Final = 30_000
CATCH_UP_WAIT_S: Final = 60.0
OUTCOME_LOCK_WAIT_S: Final = 10.0
_GAP_TAG: Final = b'"gap":'
_HOPELESS: Final = frozenset({"invalid"})
"""Failures a retry of the same page cannot mend (the hub refused the request itself). A
broker's refusal (``permanent``, e.g. a symbol's quotation refused while it is halted) or a
token trouble (``auth``) can end, so those are asked again with backoff like the transient
ones, up to ``max_attempts``."""

ClockSource = Callable[[], Awaitable[MarketClock]]
Series = tuple[str, str, Interval]


class Sentinel:
    """One sentinel replica."""

    def __init__(
        self,
        redis: aioredis.Redis,
        hub: HubClient,
        settings: Settings,
        *,
        calendar: TradingCalendar,
        clock: ClockSource | None = None,
        series: Iterable[Series] | None = None,
        archive_root: Path | None = None,
    ) -> None:
        self._redis = redis
        self._hub = hub
        self._tuning = settings.sentinel
        self._calendar = calendar
        self.keys = Keys(settings.namespace)
        self._clock_source = clock or (lambda: MarketClock.read(redis, self.keys))
        self.series: tuple[Series, ...] = (
            tuple(series) if series is not None else tracked_series(settings)
        )
        ttl = int(timedelta(days=max(30, 3 * self._tuning.lookback_days)).total_seconds())
        self._bitmap_ttl_s = ttl
        self._archive_root = archive_root
        self._archive_wait_s = min(settings.archive.lock_wait_s, 10.0)
        self.coverage = Bitmaps(redis, self.keys.coverage, ttl_s=ttl)
        self.empty = Bitmaps(redis, self.keys.confirmed_empty, ttl_s=ttl)
        self.pending = Bitmaps(redis, self.keys.gap_pending, ttl_s=ttl)
        self.gaps = GapStore(redis, self.keys)
        self.claims = PageClaims(redis, self.keys)
        self._chunk_ttl_ms = max(1_000, int(self._tuning.chunk_ttl_s * 1000))
        self._wake = anyio.Event()
        self._stopping = anyio.Event()
        self.scans = 0
        self._archive_target: tuple[int, int] | None = None
        self._caught_up = anyio.Event()
        self.archive_consumer = self._consumer(self.keys.archive, self._on_archive)
        self.outcome_consumer = self._consumer(self.keys.responses, self._on_outcome)

    def _consumer(
        self, stream: str, handler: Callable[[Delivery], Awaitable[None]]
    ) -> StreamConsumer:
        return StreamConsumer(
            self._redis,
            stream=stream,
            group=GROUP,
            consumer=consumer_name(GROUP),
            handler=handler,
            on_poison=self._poison,
            concurrency=16,
            progress_key=self.keys.group_progress(stream, GROUP),
            members_key=self.keys.group_members(stream, GROUP),
        )

    # -- running -----------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Follow the streams, scan and heal until :meth:`stop`."""
        newest = await self._redis.xrevrange(self.keys.archive, count=1)
        if newest:
            self._archive_target = _entry_id(newest[0][0])
        async with anyio.create_task_group() as tg:
            await tg.start(self.archive_consumer.run)
            await tg.start(self.outcome_consumer.run)
            tg.start_soon(self._scan_loop)
            tg.start_soon(self._gap_loop)
            task_status.started()
            await self._stopping.wait()
            self.archive_consumer.stop()
            self.outcome_consumer.stop()
            self._wake.set()

    def stop(self) -> None:
        """Stop scanning and asking; the consumers drain what they hold."""
        self._stopping.set()
        self._wake.set()

    async def _scan_loop(self) -> None:
        # The coverage comes from the archive stream: scanning before it has been read up to
        # where it stood at start would take everything archived earlier for a gap.
        deadline = anyio.current_time() + CATCH_UP_WAIT_S
        while anyio.current_time() < deadline and not self._stopping.is_set():
            if await self._archive_read():
                self._caught_up.set()
                break
            await anyio.sleep(0.05)
        if not self._caught_up.is_set():
            log.warning("the archive stream is still being read; scanning anyway")
        while not self._stopping.is_set():
            try:
                await self.scan()
            except (OSError, aioredis.RedisError) as exc:
                log.warning("scan failed: %s", exc)
            with anyio.move_on_after(self._tuning.scan_interval_s):
                await self._stopping.wait()

    async def _gap_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.work_due_gaps()
            except (OSError, aioredis.RedisError) as exc:
                log.warning("gap work failed: %s", exc)
            with anyio.move_on_after(1.0):
                await self._wake.wait()
            self._wake = anyio.Event()

    # -- detection ---------------------------------------------------------------------------

    async def scan(self) -> list[Gap]:
        """Look once at every tracked series; returns the gaps opened."""
        clock = await self._clock_source()
        now = clock.now()
        opened: list[Gap] = []
        for provider, symbol, interval in self.series:
            lock = self.keys.sentinel_lock(provider, symbol, interval)
            token = consumer_name("scan")
            if not await self._redis.set(lock, token, nx=True, px=LOCK_MS):
                continue  # another replica is looking at this series right now
            try:
                opened += await self._scan_series(provider, symbol, interval, now)
            finally:
                held = await self._redis.get(lock)
                if (
                    held is not None
                    and (held.decode() if isinstance(held, bytes) else held) == token
                ):
                    await self._redis.delete(lock)
        if self._tuning.check_daily and self._archive_root is not None:
            await self.check_consistency(now)
        self.scans += 1
        return opened

    async def check_consistency(self, now: datetime) -> list[MarketInconsistency]:
        """Compare every complete past day's daily bar with its minute bars, once per day;
        appends ``market.inconsistent`` for each field that differs."""
        found: list[MarketInconsistency] = []
        minute_series = {(p, s) for p, s, i in self.series if i == "1m"}
        daily_series = {(p, s) for p, s, i in self.series if i == "1d"}
        for provider, symbol in sorted(minute_series & daily_series):
            checked_key = self.keys.consistency_checked(provider, symbol)
            for day in self._days(now.date()):
                if day >= now.date() or await self._redis.sismember(checked_key, f"{day:%Y%m%d}"):
                    continue
                if not await self._complete(provider, symbol, day, now):
                    continue
                events = await self._compare(provider, symbol, day)
                if events is None:
                    continue  # not readable now: asked again at the next scan
                found += events
                await self._redis.sadd(checked_key, f"{day:%Y%m%d}")
                await self._redis.expire(checked_key, self._bitmap_ttl_s)
        return found

    async def _complete(self, provider: str, symbol: str, day: date, now: datetime) -> bool:
        minutes = self._calendar.expected_minutes(day)
        daily = self._expected("1d", day, now)
        for interval, bars in (("1m", minutes), ("1d", daily)):
            if not bars:
                return False
            have = await self.coverage.which(provider, symbol, interval, bars)
            if len(have) < len(bars):
                empty = await self.empty.which(provider, symbol, interval, bars)
                if len(have | empty) < len(bars):
                    return False
        return True

    async def _compare(
        self, provider: str, symbol: str, day: date
    ) -> list[MarketInconsistency] | None:
        assert self._archive_root is not None  # noqa: S101 - checked by the caller
        root = self._archive_root
        start = datetime(day.year, day.month, day.day, tzinfo=KST)
        end = start + timedelta(days=1) - timedelta(minutes=1)

        def read() -> tuple[list[Candle], list[Candle]]:
            wait = self._archive_wait_s
            return (
                read_candles(root, provider, symbol, "1d", start, start, lock_wait_s=wait),
                read_candles(root, provider, symbol, "1m", start, end, lock_wait_s=wait),
            )

        try:
            daily, minutes = await anyio.to_thread.run_sync(read)
        except ArchiveError as exc:
            log.debug("consistency of %s %s: archive not readable (%s)", symbol, day, exc)
            return None
        if not daily or not minutes:
            return None  # the archiver has not written them yet
        events = [
            MarketInconsistency(
                provider=provider,
                symbol=symbol,
                day=day.isoformat(),
                field=diff.field,
                expected=diff.expected,
                found=diff.found,
                detail=f"the daily bar against the sum of its {len(minutes)} minute bars",
                seen_at_ms=now_ms(),
            )
            for diff in compare_day(daily[0], minutes)
        ]
        for event in events:
            await self._emit(event)
            log.warning(
                "%s %s %s: daily %s %s, minute bars say %s",
                provider,
                symbol,
                day,
                event.field,
                event.found,
                event.expected,
            )
        return events

    def _days(self, today: date) -> list[date]:
        sessions = self._calendar.sessions(
            today - timedelta(days=3 * self._tuning.lookback_days + 7), today
        )
        return [s.day for s in sessions][-self._tuning.lookback_days :]

    def _expected(self, interval: Interval, day: date, now: datetime) -> list[datetime]:
        if interval == "1m":
            return due(self._calendar.expected_minutes(day), "1m", now, self._tuning.grace_s)
        session = self._calendar.session(day)
        grace = timedelta(seconds=self._tuning.grace_s)
        if session is None or session.close + grace > now:
            return []
        return [datetime(day.year, day.month, day.day, tzinfo=now.tzinfo)]

    async def _scan_series(
        self, provider: str, symbol: str, interval: Interval, now: datetime
    ) -> list[Gap]:
        # Minute bars day by day (a gap never spans two days); daily bars over the whole
        # look-back at once, so missing days in a row become one gap.
        days = self._days(now.date())
        groups = (
            [self._expected(interval, day, now) for day in days]
            if interval == "1m"
            else [[bar for day in days for bar in self._expected(interval, day, now)]]
        )
        opened = []
        for expected in groups:
            if not expected:
                continue
            have = await self.coverage.which(provider, symbol, interval, expected)
            empty = await self.empty.which(provider, symbol, interval, expected)
            pending = await self.pending.which(provider, symbol, interval, expected)
            known = have | empty | pending
            missing = {bar for bar in expected if bar not in known}
            for run in gap_ranges(expected, missing, by_day=interval == "1m"):
                opened.append(await self._open(provider, symbol, interval, run))
        return opened

    async def _open(
        self, provider: str, symbol: str, interval: Interval, bars: list[datetime]
    ) -> Gap:
        detected = now_ms()
        gap = Gap(
            gap_id=gap_id(provider, symbol, interval, bars[0], detected),
            provider=provider,
            symbol=symbol,
            interval=interval,
            bars=bars,
            detected_at_ms=detected,
        )
        await self.pending.mark(provider, symbol, interval, bars)
        await self.gaps.create(gap)
        await self._emit(
            GapDetected(**_gap_fields(gap), missing=len(bars), detected_at_ms=detected)
        )
        log.info("gap %s: %d bars missing (%s … %s)", gap.gap_id, len(bars), bars[0], bars[-1])
        self._wake.set()
        return gap

    # -- healing -----------------------------------------------------------------------------

    async def work_due_gaps(self) -> int:
        """Advance every open gap that is due; returns how many were looked at."""
        ids = await self.gaps.due(now_ms())
        if not ids:
            return 0
        clock = await self._clock_source()
        for gid in ids:
            async with self._gap_lock(gid, wait_s=0.0) as held:
                if not held:
                    continue  # another replica (or this one's outcome handler) has it
                gap = await self.gaps.load(gid)
                if gap is None or gap.state != "open":
                    await self._redis.zrem(self.keys.open_gaps, gid)
                    continue
                await self._step(gap, clock.now())
        return len(ids)

    @asynccontextmanager
    async def _gap_lock(self, gid: str, *, wait_s: float) -> AsyncIterator[bool]:
        """One worker per gap at a time, across replicas: whoever changes a gap holds it."""
        key = self.keys.gap(gid) + ":lock"
        token = consumer_name("gap")
        # A deadline, not a cancel scope: a Redis command cancelled half-way would leave its
        # connection unusable.
        deadline = anyio.current_time() + wait_s
        while True:
            held = bool(await self._redis.set(key, token, nx=True, px=LOCK_MS))
            if held or anyio.current_time() >= deadline:
                break
            await anyio.sleep(0.02)
        try:
            yield held
        finally:
            if held:
                with anyio.CancelScope(shield=True):
                    await self._release(key, token)

    async def _release(self, key: str, token: str) -> None:
        current = await self._redis.get(key)
        if (
            current is not None
            and (current.decode() if isinstance(current, bytes) else current) == token
        ):
            await self._redis.delete(key)

    async def _remaining(self, gap: Gap) -> list[datetime]:
        have = await self.coverage.which(gap.provider, gap.symbol, gap.interval, gap.bars)
        empty = await self.empty.which(gap.provider, gap.symbol, gap.interval, gap.bars)
        return [bar for bar in gap.bars if bar not in have and bar not in empty]

    def _pages(self, gap: Gap, bars: list[datetime], today: date) -> list[Page]:
        planned: list[Page] = []
        for day in sorted({bar.date() for bar in bars}):
            planned += plan_pages(
                gap.provider,
                gap.symbol,
                gap.interval,
                day,
                day,
                calendar=self._calendar,
                today=today,
            )
        return pages_for(planned, bars)

    async def _step(self, gap: Gap, now: datetime) -> None:
        remaining = await self._remaining(gap)
        if not remaining:
            await self._close(gap, "confirmed_empty" if gap.empty and _all_empty(gap) else "healed")
            return
        if gap.attempt >= self._tuning.max_attempts:
            await self._give_up(gap, "too many attempts")
            return
        asked = set(gap.requests.values())
        requested: list[str] = []
        for page in self._pages(gap, remaining, now.date()):
            if page.chunk in asked:
                holder = await self.claims.holder(page)
                if holder is not None and (holder.done or holder.owner == gap.gap_id):
                    continue  # ours, still in flight (or just fetched)
                # Our claim expired without an outcome: that request is lost; ask again.
                gap.requests = {r: c for r, c in gap.requests.items() if c != page.chunk}
            holder = await self.claims.claim(page, gap.gap_id, ttl_ms=self._chunk_ttl_ms)
            if holder is not None:
                continue  # another gap or a backfill job has it (or fetched it just now)
            request_id = f"gap-{gap.gap_id}-{page.chunk}-a{gap.attempt + 1}".replace(":", ".")
            await self._hub.submit(
                page.provider,
                page.tr_id,
                page.params,
                priority="backfill",
                request_id=request_id,
                tags={"gap": gap.gap_id, "chunk": page.chunk},
            )
            gap.requests[request_id] = page.chunk
            requested.append(request_id)
        due_ms = now_ms() + self._chunk_ttl_ms
        if requested:
            gap.attempt += 1
            await self._emit(
                GapBackfillRequested(
                    **_gap_fields(gap),
                    request_ids=requested,
                    attempt=gap.attempt,
                    requested_at_ms=now_ms(),
                )
            )
        await self.gaps.save(gap, due_ms=due_ms)

    async def _close(self, gap: Gap, state: str) -> None:
        closed = now_ms()
        gap.state = "confirmed_empty" if state == "confirmed_empty" else "healed"
        gap.closed_at_ms = closed
        await self.pending.mark(gap.provider, gap.symbol, gap.interval, gap.bars, on=False)
        await self.gaps.close(gap)
        if gap.state == "healed":
            await self._emit(
                GapHealed(
                    **_gap_fields(gap),
                    detected_at_ms=gap.detected_at_ms,
                    healed_at_ms=closed,
                    heal_ms=closed - gap.detected_at_ms,
                )
            )
            log.info("gap %s healed in %d ms", gap.gap_id, closed - gap.detected_at_ms)

    async def _give_up(self, gap: Gap, why: str) -> None:
        gap.state = "gave_up"
        gap.closed_at_ms = now_ms()
        # The bars stay marked pending (until the bitmap expires): a gap given up on is not
        # opened again at every scan; ``apihub backfill`` can still fetch them.
        await self.gaps.close(gap)
        log.warning("gap %s: giving up (%s)", gap.gap_id, why)

    # -- the streams -------------------------------------------------------------------------

    async def _on_archive(self, delivery: Delivery) -> None:
        try:
            event = decode_archive_event(delivery.fields)
        except EntryDecodeError:
            await self._ack(delivery)
            return
        if isinstance(event, ArchiveWritten) and event.bars:
            await self.coverage.mark(event.provider, event.symbol, event.interval, event.bars)
            written = set(event.bars)
            for gid in await self.gaps.of_series(event.provider, event.symbol, event.interval):
                gap = await self.gaps.load(gid)
                if gap is not None and written.intersection(gap.bars):
                    await self._redis.zadd(self.keys.open_gaps, {gid: 0})
                    self._wake.set()
        await self._ack(delivery)

    async def _archive_read(self) -> bool:
        """Whether the group (every replica together) has handled the archive stream up to where
        it stood when this replica started."""
        if self._archive_target is None:
            return True
        for group in await self._redis.xinfo_groups(self.keys.archive):
            name = group.get("name")
            if (name.decode() if isinstance(name, bytes) else name) != GROUP:
                continue
            last = group.get("last-delivered-id") or "0-0"
            return _entry_id(last) >= self._archive_target and int(group.get("pending", 0)) == 0
        return False

    async def _on_outcome(self, delivery: Delivery) -> None:
        data = delivery.fields.get(b"data", b"")
        if _GAP_TAG not in data:
            await self._ack(delivery)  # most of the stream: not ours
            return
        try:
            outcome = decode_outcome(delivery.fields)
        except EntryDecodeError:
            await self._ack(delivery)
            return
        gid = outcome.tags.get("gap")
        if not gid:
            await self._ack(delivery)
            return
        async with self._gap_lock(gid, wait_s=OUTCOME_LOCK_WAIT_S) as held:
            if not held:
                raise RuntimeError(f"gap {gid} stayed locked; the outcome is left for later")
            await self._take_outcome(gid, outcome)
        await self._ack(delivery)

    async def _take_outcome(self, gid: str, outcome: ResponseReceived | RequestFailed) -> None:
        gap = await self.gaps.load(gid)
        if gap is None or gap.state != "open" or outcome.request_id not in gap.requests:
            return
        chunk = gap.requests.pop(outcome.request_id)
        clock = await self._clock_source()
        page = next(
            (p for p in self._pages(gap, gap.bars, clock.now().date()) if p.chunk == chunk), None
        )
        if isinstance(outcome, ResponseReceived):
            await self._answered(gap, page, outcome, clock.now())
        else:
            await self._failed(gap, page, outcome)

    async def _answered(
        self, gap: Gap, page: Page | None, outcome: ResponseReceived, now: datetime
    ) -> None:
        try:
            data = normalise(
                outcome.provider,
                outcome.tr_id,
                outcome.params,
                bytes(outcome.body),
                lineage=outcome.request_id,
                source_type="backfill",
            )
        except MarketDataError as exc:
            # The archiver quarantines it; for the gap it is a failed try.
            log.warning("gap %s: unreadable answer %s (%s)", gap.gap_id, outcome.request_id, exc)
            if page is not None:
                await self.claims.release(page, gap.gap_id)
            await self.gaps.save(gap, due_ms=now_ms() + self._backoff_ms(gap))
            return
        returned = {c.ts for c in data.candles if c.interval == gap.interval}
        wanted = set(gap.bars)
        lacking = [
            bar
            for bar in (page.bars if page is not None else gap.bars)
            if bar in wanted and bar not in returned and page_has_ended(bar, gap, now)
        ]
        if page is not None:
            # A page that had everything is done for anyone else who needs it; one that lacked
            # bars (or was still forming) is released, so it can be asked again.
            if page.ends_before(now) and not lacking:
                await self.claims.complete(
                    page, gap.gap_id, outcome.request_id, done_ttl_ms=self._chunk_ttl_ms
                )
            else:
                await self.claims.release(page, gap.gap_id)
        newly_empty = []
        for bar in lacking:
            key = bar.isoformat()
            gap.answers[key] = gap.answers.get(key, 0) + 1
            if gap.answers[key] >= self._tuning.confirm_empty_after and bar not in gap.empty:
                newly_empty.append(bar)
        if newly_empty:
            gap.empty += newly_empty
            await self.empty.mark(gap.provider, gap.symbol, gap.interval, newly_empty)
            await self._emit(
                GapConfirmedEmpty(**_gap_fields(gap), bars=newly_empty, confirmed_at_ms=now_ms())
            )
        # Bars the broker returned are on their way into the archive (archive.written wakes the
        # gap); bars it lacked are asked again after the backoff until confirmed empty.
        due_ms = now_ms() + (self._backoff_ms(gap) if lacking else self._chunk_ttl_ms)
        await self.gaps.save(gap, due_ms=due_ms)
        self._wake.set()

    async def _failed(self, gap: Gap, page: Page | None, outcome: RequestFailed) -> None:
        if page is not None:
            await self.claims.release(page, gap.gap_id)
        gave_up = outcome.error_class in _HOPELESS or gap.attempt >= self._tuning.max_attempts
        retry_at = now_ms() + self._backoff_ms(gap)
        await self._emit(
            GapBackfillFailed(
                **_gap_fields(gap),
                request_id=outcome.request_id,
                code=outcome.code,
                message=outcome.message[:300],
                attempt=gap.attempt,
                retry_at_ms=0 if gave_up else retry_at,
                gave_up=gave_up,
                failed_at_ms=now_ms(),
            )
        )
        if gave_up:
            await self._give_up(gap, f"{outcome.error_class}: {outcome.code}")
            return
        await self.gaps.save(gap, due_ms=retry_at)

    def _backoff_ms(self, gap: Gap) -> int:
        steps = self._tuning.retry_backoff_s or (5.0,)
        return int(steps[min(max(gap.attempt - 1, 0), len(steps) - 1)] * 1000)

    async def _emit(self, event: Event) -> None:
        await self._redis.xadd(
            self.keys.gaps, encode_entry(event), maxlen=GAP_STREAM_MAXLEN, approximate=True
        )

    async def _ack(self, delivery: Delivery) -> None:
        await self._redis.xack(delivery.stream, GROUP, delivery.entry_id)

    async def _poison(self, delivery: Delivery) -> None:
        if delivery.fields:
            letter = dead_letter_event(
                source_stream=delivery.stream,
                entry_id=delivery.id_text,
                fields=delivery.fields,
                reason="too_many_deliveries",
                detail="the sentinel kept failing on it",
                group=GROUP,
                deliveries=delivery.deliveries,
            )
            await self._redis.xadd(
                self.keys.dead_letter,
                encode_entry(letter),
                maxlen=DEAD_LETTER_MAXLEN,
                approximate=True,
            )
        await self._ack(delivery)


def _entry_id(raw: object) -> tuple[int, int]:
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def page_has_ended(bar: datetime, gap: Gap, now: datetime) -> bool:
    """Whether ``bar`` had ended by ``now`` (only an ended bar can be confirmed missing)."""
    length = timedelta(minutes=1) if gap.interval == "1m" else timedelta(days=1)
    return bar + length <= now


def _all_empty(gap: Gap) -> bool:
    return set(gap.empty) >= set(gap.bars)


class _GapFields(TypedDict):
    gap_id: str
    provider: str
    symbol: str
    interval: Interval
    first: datetime
    last: datetime


def _gap_fields(gap: Gap) -> _GapFields:
    return {
        "gap_id": gap.gap_id,
        "provider": gap.provider,
        "symbol": gap.symbol,
        "interval": gap.interval,
        "first": gap.first,
        "last": gap.last,
    }


def tracked_series(settings: Settings) -> tuple[Series, ...]:
    """What the sentinel keeps complete: minute bars of every swing symbol of the watchlist and,
    with ``check_daily``, daily bars of every watched symbol."""
    series: dict[Series, None] = {}
    for entry in settings.watchlist:
        for symbol in entry.symbols:
            if entry.mode == "swing":
                series[(entry.provider.value, symbol, "1m")] = None
            if settings.sentinel.check_daily:
                series[(entry.provider.value, symbol, "1d")] = None
    return tuple(series)
