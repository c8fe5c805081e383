"""Heal benchmark: a simulated session with faults, then the archive against the broker's truth.

Run from the repository root::

    uv run python ops/bench/heal.py                    # 20 symbols, 09:00-10:00 at 10x
    uv run python ops/bench/heal.py --rate 20 --minutes 45

What runs where, each in its own process: ``redis-server`` (embedded), the broker simulator
(``apihub sim --kis-rate-limit 18``, its clock starting at 09:00 KST of a trading day and running
``--rate`` times faster than real time; its quotas stay in real time), a token-keeper, two
dispatchers (the account's budget at 18/s), the archiver, the sentinel and the collector
(``python -m apihub_<service>``, configured by an ``apihub.toml`` this script writes). The
market clock the services follow is the simulator's, published as ``apihub up`` does.

The session (simulated minutes after 09:00):

* all along, 5 % of the minute-bar calls (``FHKST03010200``, the collector's poll and today's
  backfill) are answered HTTP 503 by the broker, a transient failure the dispatcher retries
  (``--error-action quote_refused``: a refusal it does not retry, so the poll fails at the
  collector and the bars it would have brought are the sentinel's to heal);
* minutes 10-20: the collector is SIGKILLed, and started again at minute 20;
* minutes 30-40: the broker refuses the quotations of three symbols (``quote_refused``);
* at ``--minutes`` the bars before ``--minutes - 5`` are compared with the broker's own answer
  (asked directly over HTTP, not through the hub), once the sentinel has no open gap left.

Printed: expected bars, bars missing or different from the broker's (loss, goal < 0.1 %), gaps
detected / healed / confirmed empty / still open, detection-to-heal time (p50 and max,
simulated and wall seconds; goal < 5 min), and the same for the refused symbols' gaps counted
from when the broker answered again, which is the part of their heal the hub controls: a gap of
a symbol the broker refuses cannot heal before the refusal ends.

The sentinel's real-time tunables (scan interval, retry backoff) are divided by ``--rate`` so
the simulated figures stand for a real session; the collector's cadence (150 s) and the
sentinel's grace (180 s) are market time already.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import anyio
import httpx
from _harness import (
    START_TIMEOUT_S,
    Child,
    child_env,
    console,
    fresh_app_key,
    percentile,
    start_hub,
    start_service,
    start_sim,
)

from apihub_archive import read_candles
from apihub_core import (
    GapBackfillFailed,
    GapConfirmedEmpty,
    GapDetected,
    GapHealed,
    Keys,
    RequestFailed,
    ResponseReceived,
    decode_gap_event,
    decode_outcome,
    redis_client,
)
from apihub_embedded import EmbeddedRedis
from apihub_marketdata import KST, krx_calendar, normalise
from apihub_runtime import MarketClock

LIMIT: Final = 18
DISPATCHERS: Final = 2
OPEN: Final = datetime(2026, 12, 2, 9, 0, tzinfo=KST)  # a Wednesday, a KRX trading day
SYMBOLS: Final = tuple(f"{200000 + n:06d}" for n in range(20))
REFUSED: Final = SYMBOLS[:3]
KILL_AT_MIN, RESTART_AT_MIN = 10, 20
REFUSE_FROM_MIN, REFUSE_UNTIL_MIN = 30, 40
ERROR_P: Final = 0.05
SWING_INTERVAL_S: Final = 150.0
GRACE_S: Final = 180.0
SCAN_INTERVAL_S: Final = 15.0
RETRY_BACKOFF_S: Final = (5.0, 30.0, 120.0, 600.0)
MARGIN_MIN: Final = 5
GOAL_LOSS: Final = 0.001
GOAL_HEAL_S: Final = 300.0
CHART_PATH: Final = "/uapi/domestic-stock/v1/quotations/inquire-time-itemchartprice"

Bar = tuple[int, int, int, int, int, int | None]


@dataclass
class Run:
    """What the session produced, gathered at the end."""

    rate: float
    clock: MarketClock
    expected: int = 0
    wrong: list[str] = field(default_factory=list)
    detected: dict[str, GapDetected] = field(default_factory=dict)
    healed: dict[str, GapHealed] = field(default_factory=dict)
    empty: dict[str, GapConfirmedEmpty] = field(default_factory=dict)
    gave_up: set[str] = field(default_factory=set)
    open_at_end: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    broker: dict[str, float] = field(default_factory=dict)


def write_config(path: Path, archive_dir: Path, rate: float) -> None:
    lines = [
        "[collector]",
        f"swing_interval_s = {SWING_INTERVAL_S}",
        "",
        "[[collector.watch]]",
        'provider = "KIS"',
        f"symbols = {json.dumps(list(SYMBOLS))}",
        'mode = "swing"',
        "",
        "[sentinel]",
        f"grace_s = {GRACE_S}",
        f"scan_interval_s = {SCAN_INTERVAL_S / rate}",
        f"retry_backoff_s = {json.dumps([s / rate for s in RETRY_BACKOFF_S])}",
        "lookback_days = 1",
        "check_daily = false",
        "",
        "[archive]",
        f"dir = {json.dumps(str(archive_dir))}",
        "",
    ]
    path.write_text("\n".join(lines))


def at(minute: float) -> datetime:
    return OPEN + timedelta(minutes=minute)


def wait_for_market(clock: MarketClock, minute: float, services: list[Child]) -> None:
    """Sleep until the market clock reaches ``minute`` after the open (every child alive)."""
    target = at(minute)
    while clock.now() < target:
        for child in services:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited:\n{child.log_tail()}")
        time.sleep(min(0.5, max(0.01, (target - clock.now()).total_seconds() / clock.rate)))


def sim_post(sim_url: str, path: str, body: dict[str, object]) -> None:
    httpx.post(f"{sim_url}{path}", json=body, timeout=10).raise_for_status()


async def truth(sim_url: str, symbol: str, before: datetime) -> dict[datetime, Bar]:
    """The broker's own minute bars of ``symbol`` before ``before``, asked directly over HTTP
    (its own app key, no hub), 30 at a time, paging back by the earliest bar's time."""
    bars: dict[datetime, Bar] = {}
    appkey, secret = fresh_app_key()
    async with httpx.AsyncClient(base_url=sim_url, timeout=10) as http:
        grant = {"grant_type": "client_credentials", "appkey": appkey, "appsecret": secret}
        token = (await http.post("/oauth2/tokenP", json=grant)).json()["access_token"]
        headers = {
            "authorization": f"Bearer {token}",
            "appkey": appkey,
            "appsecret": secret,
            "tr_id": "FHKST03010200",
            "custtype": "P",
        }
        hour = (before - timedelta(minutes=1)).strftime("%H%M%S")
        while True:
            params = {
                "FID_COND_MRKT_DIV_CODE": "J",
                "FID_INPUT_ISCD": symbol,
                "FID_INPUT_HOUR_1": hour,
                "FID_PW_DATA_INCU_YN": "N",
                "FID_ETC_CLS_CODE": "",
            }
            answer = await http.get(CHART_PATH, params=params, headers=headers)
            answer.raise_for_status()
            candles = normalise("KIS", "FHKST03010200", params, answer.content, lineage="truth")
            # Pages overlap by a row: an answer's oldest row has no traded value (a bar's value
            # is the difference to the row before it); the next page's newest row has it.
            rows = [c for c in candles.candles if c.ts < before]
            if not [c for c in rows if c.ts not in bars]:
                return bars
            for c in rows:
                if c.ts not in bars or bars[c.ts][5] is None:
                    bars[c.ts] = (c.open, c.high, c.low, c.close, c.volume, c.value)
            hour = min(c.ts for c in rows).strftime("%H%M%S")


async def gather(
    run: Run, redis_url: str, keys: Keys, sim_url: str, archive_dir: Path, cut: datetime
) -> None:
    redis = redis_client(redis_url, max_connections=4)
    try:
        for _, fields in await redis.xrange(keys.gaps):
            event = decode_gap_event(fields)
            if isinstance(event, GapDetected):
                run.detected[event.gap_id] = event
            elif isinstance(event, GapHealed):
                run.healed[event.gap_id] = event
            elif isinstance(event, GapConfirmedEmpty):
                run.empty[event.gap_id] = event
            elif isinstance(event, GapBackfillFailed) and event.gave_up:
                run.gave_up.add(event.gap_id)
        run.open_at_end = int(await redis.zcard(keys.open_gaps))
        for _, fields in await redis.xrange(keys.responses):
            outcome = decode_outcome(fields)
            if isinstance(outcome, ResponseReceived | RequestFailed):
                kind = "answered" if isinstance(outcome, ResponseReceived) else "failed"
                run.outcomes[f"{outcome.priority} {kind}"] += 1
    finally:
        await redis.aclose()
    expected = [bar for bar in krx_calendar().expected_minutes(OPEN.date()) if bar < cut]
    for symbol in SYMBOLS:
        broker = await truth(sim_url, symbol, cut)
        stored = {
            c.ts: (c.open, c.high, c.low, c.close, c.volume, c.value)
            for c in read_candles(archive_dir, "KIS", symbol, "1m", OPEN, cut)
        }
        for bar in expected:
            run.expected += 1
            if stored.get(bar) != broker.get(bar):
                run.wrong.append(f"{symbol} {bar:%H:%M}: {stored.get(bar)} vs {broker.get(bar)}")


def session(args: argparse.Namespace, workdir: Path) -> Run:
    sim, sim_url = start_sim(
        workdir,
        "heal",
        *("--kis-rate-limit", str(LIMIT), "--start", OPEN.isoformat(), "--frozen"),
    )
    children: list[Child] = []
    try:
        with EmbeddedRedis(workdir / "redis", appendonly=False) as server:
            namespace = f"heal-{secrets.token_hex(4)}"
            keys = Keys(namespace)
            archive_dir = workdir / "archive"
            config = workdir / "apihub.toml"
            write_config(config, archive_dir, args.rate)
            app_key, app_secret = fresh_app_key()
            env = child_env(
                {
                    "REDIS_URL": server.url,
                    "APIHUB_NAMESPACE": namespace,
                    "APIHUB_CONFIG": str(config),
                    "APIHUB_KIS_BASE_URL": sim_url,
                    "APIHUB_KIS_APP_KEY": app_key,
                    "APIHUB_KIS_APP_SECRET": app_secret,
                    "APIHUB_KIS_RATE_PER_S": str(LIMIT),
                    "APIHUB_DATA_DIR": str(workdir / "data"),
                }
            )
            frozen = MarketClock.anchored(OPEN, frozen=True)
            anyio.run(publish, server.url, keys, frozen)
            children += start_hub(workdir, server.url, namespace, env, DISPATCHERS)
            children.append(
                start_service(
                    "apihub_archiver",
                    "archiver",
                    env,
                    workdir / "archiver.log",
                    server.url,
                    keys.responses,
                    "archiver",
                )
            )
            children.append(
                start_service(
                    "apihub_sentinel",
                    "sentinel",
                    env,
                    workdir / "sentinel.log",
                    server.url,
                    keys.responses,
                    "sentinel",
                )
            )
            sim_post(
                sim_url,
                "/__sim/conditions",
                {
                    "error_rate": {
                        "p": ERROR_P,
                        "tr_ids": ["FHKST03010200"],
                        "action": args.error_action,
                    }
                },
            )
            sim_post(
                sim_url,
                "/__sim/conditions",
                {
                    "outage": {
                        "symbols": list(REFUSED),
                        "from": at(REFUSE_FROM_MIN).isoformat(),
                        "until": at(REFUSE_UNTIL_MIN).isoformat(),
                        "action": "quote_refused",
                    }
                },
            )
            # The clock starts: the simulator's and the one the services follow, one anchor.
            clock = MarketClock.anchored(OPEN, rate=args.rate)
            running = {"now": OPEN.isoformat(), "frozen": False, "rate": args.rate}
            sim_post(sim_url, "/__sim/clock", running)
            anyio.run(publish, server.url, keys, clock)
            run = Run(rate=args.rate, clock=clock)

            def collector() -> Child:
                return Child(
                    "collector",
                    [sys.executable, "-m", "apihub_collector"],
                    env,
                    workdir / "collector.log",
                )

            children.append(collector())
            step = "the collector runs"
            console.print(
                f"  09:00 {step} ({args.rate:g}x: a simulated minute is {60 / args.rate:.1f} s)"
            )
            wait_for_market(clock, KILL_AT_MIN, children)
            killed = children.pop()
            killed.proc.kill()
            killed.proc.wait()
            console.print(f"  {at(KILL_AT_MIN):%H:%M} collector SIGKILLed")
            wait_for_market(clock, RESTART_AT_MIN, children)
            children.append(collector())
            console.print(f"  {at(RESTART_AT_MIN):%H:%M} collector started again")
            wait_for_market(clock, REFUSE_FROM_MIN, children)
            console.print(f"  {at(REFUSE_FROM_MIN):%H:%M} the broker refuses {', '.join(REFUSED)}")
            wait_for_market(clock, REFUSE_UNTIL_MIN, children)
            console.print(f"  {at(REFUSE_UNTIL_MIN):%H:%M} the refusal ends")
            wait_for_market(clock, args.minutes, children)
            settled = anyio.run(settle, server.url, keys, args.settle_s)
            console.print(
                f"  {clock.now():%H:%M} measuring"
                + ("" if settled else f" (gaps still open after {args.settle_s:g} s)")
            )
            cut = at(args.minutes - MARGIN_MIN)
            # The services stop first (Redis still up, so they drain cleanly); the archive is
            # read after, with the archiver's buffered writes flushed.
            stop_all(children)
            run.broker = broker_figures(sim_url)
            # The truth is asked without the faults (the 5 % error rate would answer it too).
            httpx.delete(f"{sim_url}/__sim/conditions", timeout=10).raise_for_status()
            anyio.run(gather, run, server.url, keys, sim_url, archive_dir, cut)
            return run
    finally:
        stop_all(children)
        sim.stop()


def broker_figures(sim_url: str) -> dict[str, float]:
    """What the broker saw: minute-bar calls, the faults it answered, EGW00201."""
    stats = httpx.get(f"{sim_url}/__sim/stats", timeout=30).json()
    query = {"tr_id": "FHKST03010200", "limit": 1_000_000}
    calls = httpx.get(f"{sim_url}/__sim/calls", params=query, timeout=30).json()
    calls = calls["calls"] if isinstance(calls, dict) else calls
    faults = stats.get("faults_by_source", {})
    minute = len(calls)
    return {
        "minute_calls": minute,
        "error_rate": faults.get("error_rate", 0),
        "error_rate_pct": round(100 * faults.get("error_rate", 0) / minute, 2) if minute else 0,
        "outage": faults.get("outage", 0),
        "egw00201": stats.get("rate_limit_rejections", 0),
    }


def stop_all(children: list[Child]) -> None:
    while children:
        children.pop().stop()


async def publish(redis_url: str, keys: Keys, clock: MarketClock) -> None:
    redis = redis_client(redis_url, max_connections=2)
    try:
        await clock.publish(redis, keys)
    finally:
        await redis.aclose()


async def settle(redis_url: str, keys: Keys, limit_s: float) -> bool:
    """Wait (at most ``limit_s``) until the sentinel has no open gap."""
    redis = redis_client(redis_url, max_connections=2)
    try:
        with anyio.move_on_after(limit_s):
            while True:
                if not await redis.zcard(keys.open_gaps):
                    return True
                await anyio.sleep(0.5)
        return False
    finally:
        await redis.aclose()


def report(run: Run) -> bool:
    clock = run.clock

    def market(wall_ms: int) -> datetime:
        return OPEN + timedelta(seconds=(wall_ms - clock.wall_ms) / 1000 * clock.rate)

    refused_end = at(REFUSE_UNTIL_MIN)
    # A gap of a refused symbol opened before the refusal ended cannot heal before it ends:
    # those are shown apart, from detection and from the end of the refusal.
    refused: list[tuple[float, float]] = []
    other: list[float] = []
    for gap_id, healed in run.healed.items():
        detected = run.detected.get(gap_id)
        heal_s = healed.heal_ms / 1000 * run.rate
        if healed.symbol in REFUSED and detected and market(detected.detected_at_ms) < refused_end:
            back = max(market(detected.detected_at_ms), refused_end)
            refused.append((heal_s, (market(healed.healed_at_ms) - back).total_seconds()))
        else:
            other.append(heal_s)
    every = other + [h for h, _ in refused]
    loss = len(run.wrong) / run.expected if run.expected else float("nan")
    unhealed = len(run.detected) - len(run.healed) - len(set(run.empty) - set(run.healed))
    loss_ok = loss < GOAL_LOSS
    heal_ok = unhealed == 0 and max(every, default=0.0) < GOAL_HEAL_S

    def spread(samples: list[float]) -> dict[str, float]:
        return {
            "n": len(samples),
            "p50_sim_s": round(percentile(samples, 50), 1),
            "max_sim_s": round(max(samples, default=0.0), 1),
            "p50_wall_s": round(percentile(samples, 50) / run.rate, 2),
            "max_wall_s": round(max(samples, default=0.0) / run.rate, 2),
        }

    summary = {
        "rate": run.rate,
        "expected_bars": run.expected,
        "wrong_or_missing": len(run.wrong),
        "loss_pct": round(loss * 100, 4),
        "gaps_detected": len(run.detected),
        "gaps_healed": len(run.healed),
        "gaps_confirmed_empty": len(run.empty),
        "gaps_given_up": len(run.gave_up),
        "gaps_open_at_end": run.open_at_end,
        "heal_all": spread(every),
        "heal_other": spread(other),
        "heal_refused_from_detection": spread([h for h, _ in refused]),
        "heal_refused_from_refusal_end": spread([b for _, b in refused]),
        "hub_outcomes": dict(sorted(run.outcomes.items())),
        "broker": run.broker,
    }
    console.print(json.dumps(summary))
    for line in run.wrong[:10]:
        console.print(f"  wrong: {line}")
    broker = run.broker
    console.print(
        f"broker: {broker.get('minute_calls')} minute-bar calls, {broker.get('error_rate')} "
        f"failed by the error rate ({broker.get('error_rate_pct')} %), "
        f"{broker.get('outage')} refused, {broker.get('egw00201')} EGW00201; collector polls "
        f"answered {run.outcomes['collector answered']}, failed {run.outcomes['collector failed']}"
    )
    console.print(
        f"loss {len(run.wrong)}/{run.expected} bars = {loss * 100:.3f} % "
        f"({'PASS' if loss_ok else 'MISS'} vs < {GOAL_LOSS * 100:g} %)"
    )
    console.print(
        f"heal: {len(run.healed)}/{len(run.detected)} gaps healed ({len(run.empty)} confirmed "
        f"empty, {len(run.gave_up)} given up, {unhealed} not healed); detection to heal, "
        f"simulated (wall at {run.rate:g}x):"
    )
    for name, key in (
        ("every gap", "heal_all"),
        ("  the kill and the error rate", "heal_other"),
        ("  the refused symbols", "heal_refused_from_detection"),
        ("  the same, from the refusal's end", "heal_refused_from_refusal_end"),
    ):
        row = summary[key]
        assert isinstance(row, dict)
        console.print(
            f"  {name}: {row['n']} gaps, p50 {row['p50_sim_s']} s ({row['p50_wall_s']} s), "
            f"max {row['max_sim_s']} s ({row['max_wall_s']} s)"
        )
    console.print(f"  {'PASS' if heal_ok else 'MISS'}: every gap < {GOAL_HEAL_S:g} s")
    return loss_ok and heal_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=10.0, help="simulated s per real s (10)")
    parser.add_argument(
        "--minutes", type=int, default=60, help="simulated minutes of the session (60)"
    )
    parser.add_argument(
        "--settle-s", type=float, default=300.0, help="real s to wait for open gaps (300)"
    )
    parser.add_argument(
        "--error-action",
        choices=("http_503", "quote_refused"),
        default="http_503",
        help="what the 5 %% of minute-bar calls get: http_503 (transient: the dispatcher's "
        "retry absorbs it) or quote_refused (the poll fails at the collector)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args()
    if args.minutes < REFUSE_UNTIL_MIN + MARGIN_MIN + 5:
        parser.error(f"--minutes must be at least {REFUSE_UNTIL_MIN + MARGIN_MIN + 5}")
    console.print(
        f"[bold]heal[/]: {len(SYMBOLS)} swing symbols, {OPEN:%Y-%m-%d} 09:00-"
        f"{at(args.minutes):%H:%M} simulated at {args.rate:g}x, one KIS account at {LIMIT}/s"
    )
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if args.keep:
            workdir = Path(tempfile.mkdtemp(prefix="apihub-heal-"))
            console.print(f"  work directory: {workdir}")
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="apihub-heal-")))
        run = session(args, workdir)
    ok = report(run)
    console.print(
        f"  ({time.monotonic() - started:.0f} s wall in all; start-up bound "
        f"{START_TIMEOUT_S:g} s per process)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
