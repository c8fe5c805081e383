"""Backfill jobs: a range of bars planned into pages and fetched through the hub.

A job is named by what it fetches (:meth:`JobSpec.job_id`), so running the same command again
resumes it: pages already finished (the set at ``Keys.backfill_done``) are not asked again,
and a page whose call was in flight when the process died is asked again under the same request
id, which the hub answers from the first call instead of calling the broker twice. Every page is
claimed first (:class:`~apihub_backfill.PageClaims`): one the sentinel is already fetching is
waited for, one fetched recently is skipped.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, Literal

import anyio
import msgspec
import redis.asyncio as aioredis

from apihub_core import HubClient, HubError, Keys, Provider, now_ms
from apihub_marketdata import Interval, TradingCalendar

from ._claims import PageClaims
from ._errors import BackfillError
from ._pages import Page, plan_pages

log = logging.getLogger("apihub.backfill")

JobStatus = Literal["running", "done", "failed", "interrupted"]

RETRIES: Final = 3
"""Tries of a page whose call failed for a reason that may pass (transient, rate, timeout)."""

_RETRYABLE: Final = frozenset({"transient", "rate_limited", "timeout", "unavailable"})
_JOBS_KEPT: Final = 1_000


class JobSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What a backfill job fetches: ``symbols`` of ``provider`` between the days ``first`` and
    ``last`` (inclusive), bars of ``interval``, through ``account`` (the default if ``None``)."""

    provider: str
    symbols: tuple[str, ...]
    interval: Interval = "1m"
    first: date
    last: date
    account: str | None = None

    def __post_init__(self) -> None:
        if not self.symbols:
            raise BackfillError("a backfill needs at least one symbol")
        if self.first > self.last:
            raise BackfillError(f"--from {self.first} is after --to {self.last}")
        try:
            Provider.parse(self.provider)
        except ValueError as exc:
            raise BackfillError(str(exc)) from None

    @property
    def job_id(self) -> str:
        """The job's name: the same spec always gets the same id (that is how it resumes)."""
        canonical = msgspec.json.encode(
            [
                self.provider.upper(),
                sorted(self.symbols),
                self.interval,
                self.first.isoformat(),
                self.last.isoformat(),
                self.account,
            ]
        )
        return "bf-" + hashlib.sha256(canonical).hexdigest()[:12]


class JobRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A job as ``apihub backfill status`` shows it."""

    job_id: str
    spec: JobSpec
    status: JobStatus
    total: int
    done: int
    failed: int = 0
    deduplicated: int = 0
    created_at_ms: int = 0
    updated_at_ms: int = 0
    message: str = ""


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a running job stands; ``calls`` counts broker calls this run made."""

    total: int
    done: int
    failed: int
    deduplicated: int
    calls: int


_spec_decoder = msgspec.json.Decoder(JobSpec)


class BackfillJob:
    """One backfill job: plan, claim, fetch, record. Use :meth:`run`."""

    def __init__(
        self,
        hub: HubClient,
        redis: aioredis.Redis,
        keys: Keys,
        spec: JobSpec,
        *,
        calendar: TradingCalendar,
        today: date,
        now: Callable[[], datetime],
        max_in_flight: int = 32,
        request_timeout_s: float = 300.0,
        chunk_ttl_s: float = 600.0,
        on_progress: Callable[[Progress], None] | None = None,
        retry_backoff_s: float = 1.0,
    ) -> None:
        self._hub = hub
        self._redis = redis
        self._keys = keys
        self.spec = spec
        self.job_id = spec.job_id
        self._claims = PageClaims(redis, keys)
        self._now = now
        self._limit = anyio.Semaphore(max(1, max_in_flight))
        self._timeout = request_timeout_s
        self._ttl_ms = max(1_000, int(chunk_ttl_s * 1000))
        self._on_progress = on_progress
        self._backoff = retry_backoff_s
        self.pages: list[Page] = [
            page
            for symbol in spec.symbols
            for page in plan_pages(
                spec.provider,
                symbol,
                spec.interval,
                spec.first,
                spec.last,
                calendar=calendar,
                today=today,
            )
        ]
        self._done = 0
        self._failed = 0
        self._deduplicated = 0
        self._calls = 0
        self._failures: dict[str, str] = {}

    async def run(self) -> JobRecord:
        """Fetch every page not yet finished; returns the job as it ended."""
        finished = await self._finished()
        pending = [(n, page) for n, page in enumerate(self.pages) if _member(page) not in finished]
        self._done = len(self.pages) - len(pending)
        await self._save("running")
        self._report()
        try:
            async with anyio.create_task_group() as tg:
                for number, page in pending:
                    await self._limit.acquire()
                    tg.start_soon(self._fetch_page, number, page)
        except BaseException:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await self._save("interrupted", "stopped before the end; run it again to resume")
            raise
        status: JobStatus = "failed" if self._failed else "done"
        message = "; ".join(f"{c}: {m}" for c, m in sorted(self._failures.items())[:3])
        return await self._save(status, message)

    async def _fetch_page(self, number: int, page: Page) -> None:
        try:
            if not await self._take(page):
                self._deduplicated += 1
                await self._mark_done(page)
                return
            try:
                request_id = await self._call(number, page)
            except HubError as exc:
                await self._claims.release(page, self.job_id)
                self._failed += 1
                self._failures[_member(page)] = str(exc)
                log.warning("backfill %s: %s failed: %s", self.job_id, page.chunk, exc)
                return
            if page.ends_before(self._now()):
                await self._claims.complete(page, self.job_id, request_id, done_ttl_ms=self._ttl_ms)
            else:
                await self._claims.release(page, self.job_id)
            await self._mark_done(page)
        finally:
            self._limit.release()
            self._report()

    async def _take(self, page: Page) -> bool:
        """Claim ``page``: True when we are to fetch it, False when someone else did."""
        with anyio.fail_after(self._timeout):
            while True:
                holder = await self._claims.claim(page, self.job_id, ttl_ms=self._ttl_ms)
                if holder is None:
                    return True
                if holder.done:
                    return False
                # Someone (a gap of the sentinel) is fetching it: wait for the outcome.
                await anyio.sleep(0.2)

    async def _call(self, number: int, page: Page) -> str:
        for attempt in range(RETRIES):
            # The first try's id is fixed: after a crash the hub answers it from the first call.
            suffix = f"-r{attempt}" if attempt else ""
            request_id = f"{self.job_id}-{number:05d}{suffix}"
            self._calls += 1
            try:
                await self._hub.execute(
                    page.provider,
                    page.tr_id,
                    page.params,
                    account=self.spec.account,
                    priority="backfill",
                    timeout=self._timeout,
                    request_id=request_id,
                    tags={"backfill": self.job_id, "chunk": page.chunk},
                )
            except HubError as exc:
                if exc.error_class not in _RETRYABLE or attempt == RETRIES - 1:
                    raise
                await anyio.sleep(self._backoff * 2**attempt)
                continue
            return request_id
        raise AssertionError("unreachable")  # pragma: no cover

    async def _finished(self) -> set[str]:
        members = await self._redis.smembers(self._keys.backfill_done(self.job_id))
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members}

    async def _mark_done(self, page: Page) -> None:
        await self._redis.sadd(self._keys.backfill_done(self.job_id), _member(page))
        self._done += 1

    async def _save(self, status: JobStatus, message: str = "") -> JobRecord:
        key = self._keys.backfill_job(self.job_id)
        now = now_ms()
        created = await self._redis.hget(key, "created_at_ms")
        record = JobRecord(
            job_id=self.job_id,
            spec=self.spec,
            status=status,
            total=len(self.pages),
            done=self._done,
            failed=self._failed,
            deduplicated=self._deduplicated,
            created_at_ms=int(created) if created else now,
            updated_at_ms=now,
            message=message,
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "record": msgspec.json.encode(record),
                    "created_at_ms": record.created_at_ms,
                },
            )
            pipe.zadd(self._keys.backfill_jobs, {self.job_id: record.created_at_ms})
            pipe.zremrangebyrank(self._keys.backfill_jobs, 0, -_JOBS_KEPT - 1)
            await pipe.execute()
        return record

    def _report(self) -> None:
        if self._on_progress is not None:
            self._on_progress(
                Progress(
                    total=len(self.pages),
                    done=self._done,
                    failed=self._failed,
                    deduplicated=self._deduplicated,
                    calls=self._calls,
                )
            )


def _member(page: Page) -> str:
    """A page's name in the job's set of finished pages (chunk ids repeat across symbols)."""
    return f"{page.provider}:{page.symbol}:{page.chunk}"


_record_decoder = msgspec.json.Decoder(JobRecord)


async def list_jobs(redis: aioredis.Redis, keys: Keys, *, limit: int = 50) -> list[JobRecord]:
    """The newest ``limit`` jobs, newest first."""
    ids = await redis.zrevrange(keys.backfill_jobs, 0, limit - 1)
    records = []
    for raw_id in ids:
        job_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        raw = await redis.hget(keys.backfill_job(job_id), "record")
        if raw is None:
            continue
        try:
            records.append(_record_decoder.decode(raw))
        except msgspec.DecodeError:
            log.warning("unreadable backfill job record %s", job_id)
    return records


def eta_seconds(remaining_calls: int, rate_per_s: float) -> float:
    """How long ``remaining_calls`` take at the account's quota (what the limiter will allow)."""
    if remaining_calls <= 0:
        return 0.0
    if rate_per_s <= 0 or not math.isfinite(rate_per_s):
        return math.inf
    return remaining_calls / rate_per_s


def symbols_of(raw: Sequence[str]) -> tuple[str, ...]:
    """Symbols from the command line: commas or spaces, duplicates dropped, order kept."""
    seen: dict[str, None] = {}
    for item in raw:
        for code in item.replace(",", " ").split():
            seen.setdefault(code.strip(), None)
    return tuple(seen)
