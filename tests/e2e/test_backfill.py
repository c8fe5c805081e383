"""Backfill jobs through the hub: planned into pages, fetched once at backfill priority, resumed
after a SIGKILL without fetching a finished page again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import anyio
import httpx
import pytest
import redis.asyncio as aioredis

from apihub_backfill import BackfillJob, JobSpec, list_jobs
from apihub_core import HubClient, Keys, decode_outcome
from apihub_dispatcher import Dispatcher
from apihub_marketdata import KST, krx_calendar
from apihub_runtime import MarketClock
from apihub_testing import async_wait_until

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 2, 10, 30, 30, tzinfo=KST)
YESTERDAY = date(2026, 12, 1)


@pytest.fixture
async def market(
    sim_admin: httpx.AsyncClient, redis: aioredis.Redis, keys: Keys
) -> AsyncIterator[MarketClock]:
    (await sim_admin.post("/__sim/clock", json={"now": NOW.isoformat()})).raise_for_status()
    clock = MarketClock.anchored(NOW, frozen=True)
    await clock.publish(redis, keys)
    try:
        yield clock
    finally:
        real = {"now": datetime.now(UTC).isoformat(), "frozen": False}
        (await sim_admin.post("/__sim/clock", json=real)).raise_for_status()


async def _calls(sim_admin: httpx.AsyncClient, tr_id: str) -> list[dict[str, object]]:
    body = (await sim_admin.get("/__sim/calls", params={"tr_id": tr_id, "limit": 10000})).json()
    return list(body["calls"] if isinstance(body, dict) else body)


async def test_a_job_fetches_every_page_once_and_a_rerun_fetches_nothing(
    redis: aioredis.Redis,
    keys: Keys,
    hub: HubClient,
    dispatcher: Dispatcher,
    market: MarketClock,
    sim_admin: httpx.AsyncClient,
) -> None:
    spec = JobSpec(provider="KIS", symbols=("005930", "000660"), first=YESTERDAY, last=YESTERDAY)

    def job() -> BackfillJob:
        return BackfillJob(
            hub, redis, keys, spec, calendar=krx_calendar(), today=NOW.date(), now=market.now
        )

    first = await job().run()
    assert (first.status, first.total, first.done, first.failed) == ("done", 8, 8, 0)
    calls = await _calls(sim_admin, "FHKST03010230")
    assert len(calls) == 8  # 381 bars a day in pages of 120, for two symbols
    outcomes = [decode_outcome(fields) for _, fields in await redis.xrange(keys.responses)]
    assert {o.priority for o in outcomes} == {"backfill"}
    assert {o.tags["backfill"] for o in outcomes} == {spec.job_id}
    again = await job().run()
    assert (again.status, again.done) == ("done", 8)
    assert len(await _calls(sim_admin, "FHKST03010230")) == 8
    (listed,) = await list_jobs(redis, keys)
    assert (listed.job_id, listed.status, listed.done) == (spec.job_id, "done", 8)


async def test_a_page_the_sentinel_holds_is_not_asked_again(
    redis: aioredis.Redis,
    keys: Keys,
    hub: HubClient,
    dispatcher: Dispatcher,
    market: MarketClock,
    sim_admin: httpx.AsyncClient,
) -> None:
    spec = JobSpec(provider="KIS", symbols=("005930",), first=YESTERDAY, last=YESTERDAY)
    job = BackfillJob(
        hub, redis, keys, spec, calendar=krx_calendar(), today=NOW.date(), now=market.now
    )
    # A gap fetched the first page a moment ago.
    first = job.pages[0]
    claim = keys.market_chunk("KIS", "005930", "1m", first.chunk)
    await redis.set(claim, "done:gap-request-1", px=60_000)
    record = await job.run()
    assert (record.done, record.deduplicated) == (4, 1)
    hours = sorted(str(c["path"]) for c in await _calls(sim_admin, "FHKST03010230"))
    assert len(hours) == 3


@pytest.mark.timeout(120)  # two CLI processes, each building the KRX calendar
async def test_a_killed_job_resumes_without_fetching_a_finished_page_twice(
    redis: aioredis.Redis,
    keys: Keys,
    redis_url: str,
    hub_namespace: str,
    dispatcher: Dispatcher,
    market: MarketClock,
    sim_admin: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    # Slow calls and two pages at a time, so the kill lands mid-job.
    latency = {"latency": {"base_ms": 150, "jitter_ms": 0}}
    (await sim_admin.post("/__sim/conditions", json=latency)).raise_for_status()
    config = tmp_path / "apihub.toml"
    config.write_text("[backfill]\nmax_in_flight = 2\n")
    symbols = ["005930", "000660", "035720", "035420", "005380"]
    command = [
        sys.executable,
        "-m",
        "apihub_cli",
        "backfill",
        *symbols,
        "--from",
        YESTERDAY.isoformat(),
        "--config",
        str(config),
    ]
    env = {**os.environ, "REDIS_URL": redis_url, "APIHUB_NAMESPACE": hub_namespace}
    spec = JobSpec(provider="KIS", symbols=tuple(symbols), first=YESTERDAY, last=YESTERDAY)
    done_key = keys.backfill_done(spec.job_id)
    async with await anyio.open_process(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as proc:
        try:
            await async_wait_until(
                lambda: redis.scard(done_key), timeout=60, message="some pages finished"
            )
        finally:
            proc.send_signal(signal.SIGKILL)
            with anyio.fail_after(10):
                await proc.wait()
    finished_at_kill = await redis.scard(done_key)
    assert 0 < finished_at_kill < 20
    with anyio.fail_after(120):
        rerun = await anyio.run_process(command, env=env, check=False)
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert b"done: 20/20 pages" in rerun.stdout
    # Every page reached the broker exactly once: finished pages were skipped, and the ones in
    # flight at the kill were asked again under the same request id, answered from the first.
    calls = await _calls(sim_admin, "FHKST03010230")
    assert len(calls) == 20
    assert sorted(Counter(c["symbol"] for c in calls).values()) == [4] * 5
