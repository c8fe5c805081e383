"""Backfill speed benchmark: a day of minute bars for many symbols through one KIS account.

Run from the repository root::

    uv run python ops/bench/backfill_speed.py                 # 100 symbols, both phases
    uv run python ops/bench/backfill_speed.py --symbols 20    # a smaller run

What runs where: ``redis-server`` (embedded, no AOF), the broker simulator
(``apihub sim --kis-rate-limit 18``: EGW00201 beyond 18 calls in any second, at arrival), one
token-keeper and two dispatcher processes with the account's budget at 18/s, and this process,
which runs the backfill job (``apihub_backfill.BackfillJob``, the code behind ``apihub
backfill``) through a ``HubClient``.

1. **alone**: yesterday's minute bars for ``--symbols`` symbols: ``FHKST03010230`` pages of 120
   rows, 4 per symbol and day. Printed: calls needed, wall time, the ideal (calls ÷ 18/s), their
   ratio (goal ≤ 1.05), pages the broker saw twice, bars fetched twice (beyond the planned
   one-row overlap: a page also returns the row before its first bar, for its traded value)
   and EGW00201 answers.
2. **with a collector**: the same job for other symbols while a collector-priority caller polls
   20 symbols' latest minute bars (``FHKST03010200``) every 2 s, each poll waiting for its
   answer. Printed: the ratio again, with the ideal counting the collector's calls too (they
   share the 18/s), and the collector's polls answered / asked with their latency (p50, max):
   the collector class goes first, so it is not starved.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import anyio
import httpx
import msgspec
from _harness import child_env, console, fresh_app_key, percentile, start_hub, start_sim

from apihub_backfill import BackfillJob, JobSpec, Page
from apihub_core import HubClient, HubError, Keys, ResponseReceived, decode_outcome, redis_client
from apihub_embedded import EmbeddedRedis
from apihub_marketdata import KST, krx_calendar, normalise
from apihub_runtime import MarketClock

LIMIT: Final = 18
DISPATCHERS: Final = 2
GOAL_RATIO: Final = 1.05
NOW: Final = datetime(2026, 12, 2, 14, 0, tzinfo=KST)  # a Wednesday afternoon (simulated)
COLLECTOR_SYMBOLS: Final = 20
COLLECTOR_EVERY_S: Final = 2.0
WARM_UP: Final = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}


def symbols(count: int, offset: int) -> tuple[str, ...]:
    """Six-digit codes the simulator generates data for (any code works)."""
    return tuple(f"{100000 + offset + n:06d}" for n in range(count))


async def run_job(
    redis_url: str,
    namespace: str,
    spec: JobSpec,
    today: date,
    clock: MarketClock,
    go: anyio.Event,
) -> tuple[float, list[Page]]:
    keys = Keys(namespace)
    redis = redis_client(redis_url, max_connections=96)
    try:
        async with HubClient.from_url(redis_url, namespace=namespace, max_connections=96) as hub:
            # The account's token is issued before the clock starts: the figure is the job's.
            await hub.execute("KIS", "FHKST01010100", WARM_UP, timeout=30)
            await anyio.sleep(1.0)  # and its permit's second has passed
            job = BackfillJob(
                hub,
                redis,
                keys,
                spec,
                calendar=krx_calendar(),
                today=today,
                now=clock.now,
                max_in_flight=64,
                request_timeout_s=600,
            )
            go.set()  # the collector starts with the clock, so all it asks shares the figure
            started = time.perf_counter()
            record = await job.run()
            elapsed = time.perf_counter() - started
            if record.status != "done":
                raise RuntimeError(f"the job ended {record.status}: {record.message}")
            return elapsed, list(job.pages)
    finally:
        await redis.aclose()


async def collector(
    redis_url: str,
    namespace: str,
    go: anyio.Event,
    stop: anyio.Event,
    latencies: list[float],
    failures: list[str],
) -> int:
    asked = 0
    codes = symbols(COLLECTOR_SYMBOLS, 900)
    async with HubClient.from_url(redis_url, namespace=namespace, max_connections=32) as hub:
        await go.wait()
        while not stop.is_set():
            async with anyio.create_task_group() as tg:
                for code in codes:
                    asked += 1
                    tg.start_soon(_poll, hub, code, latencies, failures)
            with anyio.move_on_after(COLLECTOR_EVERY_S):
                await stop.wait()
    return asked


async def _poll(hub: HubClient, code: str, latencies: list[float], failures: list[str]) -> None:
    params = {
        "FID_COND_MRKT_DIV_CODE": "J",
        "FID_INPUT_ISCD": code,
        "FID_INPUT_HOUR_1": NOW.strftime("%H%M%S"),
        "FID_PW_DATA_INCU_YN": "N",
        "FID_ETC_CLS_CODE": "",
    }
    started = time.perf_counter()
    try:
        await hub.execute("KIS", "FHKST03010200", params, priority="collector", timeout=30)
    except HubError as exc:
        failures.append(exc.error_class)
        return
    latencies.append((time.perf_counter() - started) * 1000)


async def phase(
    args: argparse.Namespace,
    redis_url: str,
    namespace: str,
    sim_url: str,
    offset: int,
    with_collector: bool,
) -> dict[str, Any]:
    clock = MarketClock.anchored(NOW, frozen=True)
    redis = redis_client(redis_url, max_connections=4)
    await clock.publish(redis, Keys(namespace))
    await redis.aclose()
    yesterday = krx_calendar().previous_trading_day(NOW.date())
    spec = JobSpec(
        provider="KIS", symbols=symbols(args.symbols, offset), first=yesterday, last=yesterday
    )
    async with httpx.AsyncClient(base_url=sim_url, timeout=30) as admin:
        (await admin.delete("/__sim/calls")).raise_for_status()
    latencies: list[float] = []
    failures: list[str] = []
    stop = anyio.Event()
    go = anyio.Event()
    result: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        if with_collector:

            async def run_collector() -> None:
                result["collector_asked"] = await collector(
                    redis_url, namespace, go, stop, latencies, failures
                )

            tg.start_soon(run_collector)
        elapsed, planned = await run_job(redis_url, namespace, spec, NOW.date(), clock, go)
        stop.set()
    pages = len(planned)
    # A KIS minute page also returns the row before its first bar (that row's cumulative value
    # gives the first bar its own): one bar fetched twice per page not starting the session.
    opens = {krx_calendar().expected_minutes(p.day)[0] for p in planned}
    overlap = sum(1 for p in planned if p.first not in opens)
    async with httpx.AsyncClient(base_url=sim_url, timeout=30) as admin:
        query = {"tr_id": "FHKST03010230", "limit": 100_000}
        calls = (await admin.get("/__sim/calls", params=query)).json()
        stats = (await admin.get("/__sim/stats")).json()
    calls = calls["calls"] if isinstance(calls, dict) else calls
    twice = await _bars_fetched_twice(redis_url, namespace, spec.job_id)
    # With the collector, its calls share the account's 18/s: they count towards the ideal.
    shared = len(latencies) + len(failures)
    ideal = (pages + shared) / LIMIT
    result.update(
        {
            "symbols": args.symbols,
            "calls_needed": pages,
            "collector_calls": shared,
            "broker_calls": len(calls),
            "wall_s": round(elapsed, 2),
            "ideal_s": round(ideal, 2),
            "ratio": round(elapsed / ideal, 3),
            "pages_seen_twice": len(calls) - pages,
            "bars_fetched_twice": twice,
            "planned_overlap_rows": overlap,
            "egw00201": stats.get("rate_limit_rejections", 0),
        }
    )
    if with_collector:
        result.update(
            {
                "collector_answered": len(latencies),
                "collector_failed": dict(Counter(failures)),
                "collector_p50_ms": round(percentile(latencies, 50), 1),
                "collector_max_ms": round(max(latencies, default=float("nan")), 1),
            }
        )
    return result


async def _bars_fetched_twice(redis_url: str, namespace: str, job_id: str) -> int:
    redis = redis_client(redis_url, max_connections=2)
    seen: Counter[tuple[str, datetime]] = Counter()
    try:
        for _, fields in await redis.xrange(Keys(namespace).responses):
            outcome = decode_outcome(fields)
            if not isinstance(outcome, ResponseReceived) or outcome.tags.get("backfill") != job_id:
                continue
            data = normalise(
                outcome.provider,
                outcome.tr_id,
                outcome.params,
                bytes(outcome.body),
                lineage=outcome.request_id,
            )
            seen.update((c.symbol, c.ts) for c in data.candles)
    finally:
        await redis.aclose()
    return sum(n - 1 for n in seen.values() if n > 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=100, help="symbols per job (100)")
    parser.add_argument("--skip-collector", action="store_true", help="phase 1 only")
    args = parser.parse_args()
    console.print(
        f"[bold]backfill speed[/]: one day of minute bars, {args.symbols} symbols, one KIS "
        f"account at {LIMIT}/s, {DISPATCHERS} dispatchers"
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="apihub-backfill-") as tmp:
        workdir = Path(tmp)
        sim, sim_url = start_sim(workdir, "backfill", "--kis-rate-limit", str(LIMIT))
        try:
            clock = {"now": NOW.isoformat(), "frozen": True}
            httpx.post(f"{sim_url}/__sim/clock", json=clock, timeout=10).raise_for_status()
            with EmbeddedRedis(workdir / "redis", appendonly=False) as server:
                namespace = f"backfill-{secrets.token_hex(4)}"
                app_key, app_secret = fresh_app_key()
                env = child_env(
                    {
                        "REDIS_URL": server.url,
                        "APIHUB_NAMESPACE": namespace,
                        "APIHUB_KIS_BASE_URL": sim_url,
                        "APIHUB_KIS_APP_KEY": app_key,
                        "APIHUB_KIS_APP_SECRET": app_secret,
                        "APIHUB_KIS_RATE_PER_S": str(LIMIT),
                        "APIHUB_DATA_DIR": str(workdir / "data"),
                    }
                )
                services = start_hub(workdir, server.url, namespace, env, DISPATCHERS)
                try:
                    for offset, with_collector in ((0, False), (args.symbols, True)):
                        if with_collector and args.skip_collector:
                            continue
                        name = "with collector" if with_collector else "alone"
                        results.append(
                            anyio.run(
                                phase, args, server.url, namespace, sim_url, offset, with_collector
                            )
                        )
                        console.print(f"{name}: {msgspec.json.encode(results[-1]).decode()}")
                finally:
                    for child in reversed(services):
                        child.stop()
        finally:
            sim.stop()
    ok = True
    for result in results:
        passed = (
            result["ratio"] <= GOAL_RATIO
            and result["pages_seen_twice"] == 0
            and result["bars_fetched_twice"] == result["planned_overlap_rows"]
        )
        ok = ok and passed
        shared = f" + {result['collector_calls']} collector" if result["collector_calls"] else ""
        console.print(
            f"{result['calls_needed']}{shared} calls: {result['wall_s']} s vs ideal "
            f"{result['ideal_s']} s "
            f"= {result['ratio']:.3f}x ({'PASS' if passed else 'MISS'} vs ≤ {GOAL_RATIO}x), "
            f"pages seen twice {result['pages_seen_twice']}, bars fetched twice "
            f"{result['bars_fetched_twice']} (planned one-row overlaps "
            f"{result['planned_overlap_rows']}), EGW00201 {result['egw00201']}"
        )
        if "collector_answered" in result:
            console.print(
                f"  collector: {result['collector_answered']}/{result['collector_asked']} polls "
                f"answered, p50 {result['collector_p50_ms']} ms, max {result['collector_max_ms']} "
                f"ms, failures {result['collector_failed']}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
