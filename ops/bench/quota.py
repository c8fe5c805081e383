"""Quota benchmark: the whole fleet at the broker's limit, and nothing beyond it.

Run from the repository root::

    uv run python ops/bench/quota.py                  # J = 30 ms, 60 s per phase
    uv run python ops/bench/quota.py --jitter-ms 50 --duration 60
    uv run python ops/bench/quota.py --quick          # 15 s per phase, a smoke run

Two phases against one simulated KIS app key with an 18/s sliding-window limit (EGW00201
beyond it, counted at *arrival*) and a one-way latency of ``base + U(0, J)`` ms applied before
the window, in separate processes:

1. **hub**: ``redis-server``, one token-keeper, 2 dispatcher processes and 4 producer
   processes (``HubClient``, ``--in-flight`` calls each) on one namespace. The gatekeeper is
   the only thing that knows the limit.
2. **per-process**: 4 processes calling the simulator directly, each with its own in-memory
   limiter set to the full quota (what client libraries do), sharing one token.

Printed: EGW00201 answers (the simulator's own count), utilisation = accepted calls per second
/ limit over the steady state (the first ``--warmup`` seconds excluded: an empty window admits
a burst), the bound ``0.98 x 1000 / (1000 + J)``, the maximum number of arrivals the simulator
saw in any 1-s window, and the gatekeeper's upstream-miss events.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import anyio
import httpx
import redis
from _harness import (
    PARAMS,
    TR_ID,
    Child,
    child_env,
    console,
    fresh_app_key,
    start_hub,
    start_sim,
)

from apihub_brokers import KisClient, lookup_tr, make_http_client
from apihub_core import (
    HubClient,
    HubError,
    Keys,
    Provider,
    RateLimitWaited,
    UpstreamRateLimited,
    UpstreamRateLimitHit,
    decode_any,
)
from apihub_embedded import EmbeddedRedis
from apihub_governance import LocalLimiter, buckets_for
from apihub_runtime import AccessToken, AccountConfig, AccountRate, RateLimiterSettings, Secret

LIMIT: Final = 18  # KIS real, per app key per sliding second (KIS portal notice, 2026-04-20)
BASE_LATENCY_MS: Final = 5
PRODUCERS: Final = 4
DISPATCHERS: Final = 2
UTILISATION_FACTOR: Final = 0.98
ENV_KEY: Final = "QUOTA_BENCH_APP_KEY"
ENV_SECRET: Final = "QUOTA_BENCH_APP_SECRET"  # noqa: S105 - a variable name
ENV_TOKEN: Final = "QUOTA_BENCH_TOKEN"  # noqa: S105 - a variable name


@dataclass
class Tally:
    """What one load process saw: completion times (wall clock, s) of accepted calls."""

    done_at: list[float]
    rate_limited: int = 0
    errors: int = 0
    first_error: str = ""

    async def count(self, call: Awaitable[object]) -> None:
        """Await one call and count how it ended."""
        try:
            await call
        except UpstreamRateLimited as exc:
            self.rate_limited += 1
            self.first_error = self.first_error or str(exc)
        except HubError as exc:
            self.errors += 1
            self.first_error = self.first_error or str(exc)
        else:
            self.done_at.append(time.time())


# -- the load processes ------------------------------------------------------------------------


async def _hub_load(args: argparse.Namespace) -> Tally:
    tally = Tally(done_at=[])
    stop_at = args.start_at + args.duration
    async with HubClient.from_url(args.redis_url, namespace=args.namespace) as hub:

        async def worker() -> None:
            while time.time() < stop_at:
                await tally.count(hub.execute(Provider.KIS, TR_ID, PARAMS, timeout=60))

        await anyio.sleep(max(0.0, args.start_at - time.time()))
        async with anyio.create_task_group() as tg:
            for _ in range(args.in_flight):
                tg.start_soon(worker)
    return tally


async def _direct_load(args: argparse.Namespace) -> Tally:
    tally = Tally(done_at=[])
    stop_at = args.start_at + args.duration
    # Credentials travel in the environment, never on a command line others can read.
    account = _account(args.sim_url, os.environ[ENV_KEY], os.environ[ENV_SECRET])
    token = AccessToken(
        Secret(os.environ[ENV_TOKEN]), expires_at=datetime.fromisoformat(args.expires)
    )
    spec = lookup_tr(Provider.KIS, TR_ID)
    assert spec is not None
    limiter = LocalLimiter(RateLimiterSettings())
    buckets = buckets_for(account, TR_ID)
    async with make_http_client("aiohttp", max_connections=64, timeout=30) as http:
        kis = KisClient(http)

        async def worker() -> None:
            while time.time() < stop_at:
                permit = await limiter.acquire(buckets, "interactive", timeout_s=60)
                try:
                    await tally.count(
                        kis.call(spec, PARAMS, account=account, token=token, timeout=30)
                    )
                finally:
                    limiter.observe(permit, anyio.current_time())

        await anyio.sleep(max(0.0, args.start_at - time.time()))
        async with anyio.create_task_group() as tg:
            for _ in range(args.in_flight):
                tg.start_soon(worker)
    return tally


def load_main(args: argparse.Namespace) -> int:
    """A load process: run until ``start_at + duration``, then write its tally as JSON."""
    tally = anyio.run(_hub_load if args.role == "producer" else _direct_load, args)
    Path(args.out).write_text(json.dumps(asdict(tally)), encoding="utf-8")
    return 0


# -- orchestration -----------------------------------------------------------------------------


def _account(sim_url: str, app_key: str, app_secret: str) -> AccountConfig:
    return AccountConfig(
        provider=Provider.KIS,
        name="default",
        app_key=Secret(app_key),
        app_secret=Secret(app_secret),
        base_url=sim_url,
        rate=AccountRate(per_second=LIMIT),
    )


def _load_processes(
    role: str,
    count: int,
    workdir: Path,
    args: argparse.Namespace,
    extra: list[str],
    env: dict[str, str] | None = None,
) -> tuple[float, list[tuple[Child, Path]]]:
    start_at = time.time() + 3.0  # every process starts its clock together, after imports
    children = []
    for n in range(count):
        out = workdir / f"{role}-{n}.json"
        argv = [
            sys.executable,
            __file__,
            "--role",
            role,
            "--duration",
            str(args.duration),
            "--in-flight",
            str(args.in_flight),
            "--start-at",
            str(start_at),
            "--out",
            str(out),
            *extra,
        ]
        log = workdir / f"{role}-{n}.log"
        children.append((Child(f"{role}-{n}", argv, child_env(env or {}), log), out))
    return start_at, children


def _collect(children: list[tuple[Child, Path]], timeout: float) -> list[Tally]:
    tallies = []
    for child, out in children:
        child.proc.wait(timeout=timeout)
        if not out.exists():
            raise RuntimeError(f"{child.name} wrote no result:\n{child.log_tail()}")
        tallies.append(Tally(**json.loads(out.read_text(encoding="utf-8"))))
    return tallies


def _steady_rate(tallies: list[Tally], start_at: float, duration: float, warmup: float) -> float:
    times = sorted(t for tally in tallies for t in tally.done_at)
    lo, hi = start_at + warmup, start_at + duration
    inside = [t for t in times if lo <= t < hi]
    return len(inside) / (hi - lo)


def _sim_stats(sim_url: str) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{sim_url}/__sim/stats", timeout=10).json()
    return stats


def _kis_sum(by_key: dict[str, int]) -> int:
    return sum(v for k, v in by_key.items() if k.startswith("KIS"))


def _kis_max(by_key: dict[str, int]) -> int:
    return max((v for k, v in by_key.items() if k.startswith("KIS")), default=0)


def run_hub_phase(
    args: argparse.Namespace, workdir: Path, redis_url: str, sim_url: str
) -> dict[str, Any]:
    """Phase 1: producers → streams → 2 dispatchers (one gatekeeper budget) → simulator."""
    httpx.post(f"{sim_url}/__sim/reset", timeout=10).raise_for_status()
    namespace = f"quota-{secrets.token_hex(4)}"
    app_key, app_secret = fresh_app_key()
    keys = Keys(namespace)
    env = child_env(
        {
            "REDIS_URL": redis_url,
            "APIHUB_NAMESPACE": namespace,
            "APIHUB_KIS_BASE_URL": sim_url,
            "APIHUB_KIS_APP_KEY": app_key,
            "APIHUB_KIS_APP_SECRET": app_secret,
            "APIHUB_KIS_RATE_PER_S": str(LIMIT),
            "APIHUB_DATA_DIR": str(workdir / "data"),
        }
    )
    services = start_hub(workdir, redis_url, namespace, env, DISPATCHERS)
    try:
        start_at, loads = _load_processes(
            "producer",
            PRODUCERS,
            workdir,
            args,
            ["--redis-url", redis_url, "--namespace", namespace],
        )
        tallies = _collect(loads, timeout=args.duration + 120)
    finally:
        for child in reversed(services):
            child.stop()
    stats = _sim_stats(sim_url)
    with redis.Redis.from_url(redis_url) as client:
        hits = [decode_any(fields) for _, fields in client.xrange(keys.rate_limits)]
    misses = [event for event in hits if isinstance(event, UpstreamRateLimitHit)]
    margins = sorted(e.margin_ms for e in hits if isinstance(e, RateLimitWaited))
    label = "hub (2 dispatchers, shared gatekeeper)"
    summary = _summary(label, args, tallies, stats, start_at, len(misses))
    summary["margin_ms_p50_max"] = (
        [round(margins[len(margins) // 2], 1), round(margins[-1], 1)] if margins else []
    )
    summary["misses_at_s"] = [round(e.at_ms / 1000 - start_at, 2) for e in misses]
    return summary


def run_local_phase(args: argparse.Namespace, workdir: Path, sim_url: str) -> dict[str, Any]:
    """Phase 2: 4 processes, each limiting itself to the full quota, calling directly."""
    httpx.post(f"{sim_url}/__sim/reset", timeout=10).raise_for_status()
    app_key, app_secret = fresh_app_key()
    account = _account(sim_url, app_key, app_secret)

    async def issue() -> AccessToken:
        async with KisClient() as kis:
            return await kis.issue_token(account)

    token = anyio.run(issue)
    start_at, loads = _load_processes(
        "direct",
        PRODUCERS,
        workdir,
        args,
        ["--sim-url", sim_url, "--expires", token.expires_at.isoformat()],
        {ENV_KEY: app_key, ENV_SECRET: app_secret, ENV_TOKEN: token.value.reveal()},
    )
    tallies = _collect(loads, timeout=args.duration + 120)
    return _summary(
        "per-process limiters (4 x 18/s)", args, tallies, _sim_stats(sim_url), start_at, 0
    )


def _summary(
    label: str,
    args: argparse.Namespace,
    tallies: list[Tally],
    stats: dict[str, Any],
    start_at: float,
    misses: int,
) -> dict[str, Any]:
    rate = _steady_rate(tallies, start_at, args.duration, args.warmup)
    return {
        "phase": label,
        "egw00201": _kis_sum(stats.get("rate_limit_rejections_by_key", {})),
        "accepted": sum(len(t.done_at) for t in tallies),
        "accepted_per_s": round(rate, 3),
        "utilisation": round(rate / LIMIT, 4),
        "max_in_any_1s": _kis_max(stats.get("max_calls_in_any_1s_window_by_key", {})),
        "limiter_misses": misses,
        "other_errors": sum(t.errors for t in tallies),
        "first_error": next((t.first_error for t in tallies if t.first_error), ""),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments; run as the orchestrator or as one load process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jitter-ms", type=int, default=30, help="J: one-way jitter U(0, J)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds left out of the rate")
    parser.add_argument("--in-flight", type=int, default=8, help="calls in flight per process")
    parser.add_argument("--quick", action="store_true", help="15 s per phase")
    parser.add_argument("--skip-local", action="store_true", help="only the hub phase")
    parser.add_argument("--json", type=Path, help="also write the results here")
    # Internal: the load processes.
    parser.add_argument(
        "--role", choices=["orchestrator", "producer", "direct"], default="orchestrator"
    )
    for name in ("--start-at",):
        parser.add_argument(name, type=float, default=0.0)
    for name in ("--out", "--redis-url", "--namespace", "--sim-url", "--expires"):
        parser.add_argument(name, default="")
    args = parser.parse_args(argv)
    if args.role != "orchestrator":
        return load_main(args)
    if args.quick:
        args.duration = 15.0
    bound = UTILISATION_FACTOR * 1000 / (1000 + args.jitter_ms)
    console.print(
        f"[bold]quota[/]: KIS limit {LIMIT}/s per app key, latency {BASE_LATENCY_MS} ms + "
        f"U(0, {args.jitter_ms}) ms, {args.duration:.0f} s per phase, warm-up {args.warmup:.0f} s"
    )
    latency = json.dumps({"latency": {"base_ms": BASE_LATENCY_MS, "jitter_ms": args.jitter_ms}})
    results = []
    with tempfile.TemporaryDirectory(prefix="apihub-quota-") as tmp:
        workdir = Path(tmp)
        sim, sim_url = start_sim(
            workdir, "quota", "--kis-rate-limit", str(LIMIT), "--condition", latency
        )
        try:
            with EmbeddedRedis(workdir / "redis", appendonly=False) as server:
                results.append(run_hub_phase(args, workdir, server.url, sim_url))
                console.print(results[-1])
                if not args.skip_local:
                    results.append(run_local_phase(args, workdir, sim_url))
                    console.print(results[-1])
        finally:
            sim.stop()
    hub = results[0]
    console.print()
    console.print(f"J = {args.jitter_ms} ms; bound 0.98 x 1000/(1000+J) = {bound:.4f}")
    ok_zero = hub["egw00201"] == 0
    ok_util = hub["utilisation"] >= bound
    console.print(
        f"hub: EGW00201 = {hub['egw00201']} ({'PASS' if ok_zero else 'MISS'}), utilisation = "
        f"{hub['utilisation']:.4f} ({'PASS' if ok_util else 'MISS'} vs {bound:.4f}), "
        f"max arrivals in any 1 s = {hub['max_in_any_1s']}, "
        f"limiter misses = {hub['limiter_misses']}"
    )
    if len(results) > 1:
        local = results[1]
        console.print(
            f"per-process: EGW00201 = {local['egw00201']} for {local['accepted']} accepted "
            f"({local['accepted_per_s']:.2f}/s), max arrivals in any 1 s = {local['max_in_any_1s']}"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"jitter_ms": args.jitter_ms, "bound": bound, "results": results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
