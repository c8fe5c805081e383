"""Breaker benchmark: a 60 s upstream outage costs at most 5 calls plus one probe per 30 s.

Run from the repository root::

    uv run python ops/bench/breaker.py                 # 10 s healthy, 60 s outage, 10 s after
    uv run python ops/bench/breaker.py --outage 30 --quick

In separate processes: ``redis-server``, the simulator, one token-keeper, 2 dispatchers (the
default breaker: open after 5 consecutive transient failures, half-open after 30 s, one probe)
and 2 load processes keeping ``--in-flight`` KIS quote calls each in flight with a 2 s deadline.
After the healthy phase the simulator starts an outage (every KIS call answered with a bare
HTTP 503) for ``--outage`` seconds. The simulator counts the calls that arrived during the
outage; the bound is ``5 + ceil(outage / 30)`` (the threshold, plus one probe per open period).
Printed: that count, the bound, the breaker's state changes with their times, and how the
callers were answered (successes, ``CircuitOpen``, other errors) per phase.
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
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

from apihub_core import BreakerStateChanged, HubClient, HubError, Keys, Provider, decode_any
from apihub_embedded import EmbeddedRedis

THRESHOLD: Final = 5
OPEN_S: Final = 30.0
LOADS: Final = 2
DISPATCHERS: Final = 2
ERROR_PAUSE_S: Final = 0.05  # a caller that got an error does not spin


@dataclass
class Tally:
    """How one load process's calls were answered, per second since the start."""

    answers: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, second: int, kind: str) -> None:
        """Count one answer of ``kind`` in ``second``."""
        bucket = self.answers.setdefault(str(second), {})
        bucket[kind] = bucket.get(kind, 0) + 1


async def _load(args: argparse.Namespace) -> Tally:
    tally = Tally()
    stop_at = args.start_at + args.total
    async with HubClient.from_url(args.redis_url, namespace=args.namespace) as hub:

        async def worker() -> None:
            while time.time() < stop_at:
                try:
                    await hub.execute(Provider.KIS, TR_ID, PARAMS, timeout=2.0)
                except HubError as exc:
                    tally.add(int(time.time() - args.start_at), type(exc).__name__)
                    await anyio.sleep(ERROR_PAUSE_S)
                else:
                    tally.add(int(time.time() - args.start_at), "ok")

        await anyio.sleep(max(0.0, args.start_at - time.time()))
        async with anyio.create_task_group() as tg:
            for _ in range(args.in_flight):
                tg.start_soon(worker)
    return tally


def _orchestrate(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    sim, sim_url = start_sim(workdir, "breaker")
    children: list[Child] = [sim]
    try:
        with EmbeddedRedis(workdir / "redis", appendonly=False) as server:
            namespace = f"breaker-{secrets.token_hex(4)}"
            keys = Keys(namespace)
            app_key, app_secret = fresh_app_key()
            env = child_env(
                {
                    "REDIS_URL": server.url,
                    "APIHUB_NAMESPACE": namespace,
                    "APIHUB_KIS_BASE_URL": sim_url,
                    "APIHUB_KIS_APP_KEY": app_key,
                    "APIHUB_KIS_APP_SECRET": app_secret,
                    "APIHUB_DATA_DIR": str(workdir / "data"),
                }
            )
            children += start_hub(workdir, server.url, namespace, env, DISPATCHERS)
            start_at = time.time() + 3.0
            loads = []
            for n in range(LOADS):
                out = workdir / f"load-{n}.json"
                argv = [
                    sys.executable,
                    __file__,
                    "--role",
                    "load",
                    "--start-at",
                    str(start_at),
                    "--total",
                    str(args.total),
                    "--in-flight",
                    str(args.in_flight),
                    "--redis-url",
                    server.url,
                    "--namespace",
                    namespace,
                    "--out",
                    str(out),
                ]
                loads.append(
                    (Child(f"load-{n}", argv, child_env({}), workdir / f"load-{n}.log"), out)
                )
            # The outage starts after the healthy phase, on the simulator's own clock.
            time.sleep(max(0.0, start_at + args.healthy - time.time()))
            outage_started = time.time()
            httpx.post(
                f"{sim_url}/__sim/conditions",
                json={
                    "outage": {
                        "duration_s": args.outage,
                        "action": "http_503",
                        "match": {"provider": "KIS"},
                    }
                },
                timeout=10,
            ).raise_for_status()
            tallies = []
            for child, out in loads:
                child.proc.wait(timeout=args.total + 120)
                tallies.append(Tally(**json.loads(out.read_text(encoding="utf-8"))))
            stats = httpx.get(f"{sim_url}/__sim/stats", timeout=10).json()
            with redis.Redis.from_url(server.url) as client:
                changes = [decode_any(fields) for _, fields in client.xrange(keys.breakers)]
            for child in reversed(children[1:]):
                child.stop()
            del children[1:]
    finally:
        for child in children:
            child.stop()
    transitions = [
        {
            "t_s": round(c.at_ms / 1000 - outage_started, 2),
            "change": f"{c.from_state} -> {c.to_state}",
            "reason": c.reason,
        }
        for c in changes
        if isinstance(c, BreakerStateChanged)
    ]
    answers: dict[str, Counter[str]] = {
        "healthy": Counter(),
        "outage": Counter(),
        "after": Counter(),
    }
    for tally in tallies:
        for second, kinds in tally.answers.items():
            phase = _phase(int(second), args)
            answers[phase].update(kinds)
    return {
        "outage_s": args.outage,
        "outage_calls": int(stats.get("outage_calls", -1)),
        "bound": THRESHOLD + math.ceil(args.outage / OPEN_S),
        "transitions": transitions,
        "answers": {phase: dict(counts) for phase, counts in answers.items()},
    }


def _phase(second: int, args: argparse.Namespace) -> str:
    if second < args.healthy:
        return "healthy"
    if second < args.healthy + args.outage:
        return "outage"
    return "after"


def main(argv: list[str] | None = None) -> int:
    """Parse arguments; run as the orchestrator or as one load process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--healthy", type=float, default=10.0, help="seconds before the outage")
    parser.add_argument("--outage", type=float, default=60.0, help="seconds of outage")
    parser.add_argument("--after", type=float, default=10.0, help="seconds after the outage")
    parser.add_argument("--in-flight", type=int, default=8, help="calls in flight per process")
    parser.add_argument("--quick", action="store_true", help="5 s healthy, 30 s outage, 5 s after")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--role", choices=["orchestrator", "load"], default="orchestrator")
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--total", type=float, default=0.0)
    for name in ("--redis-url", "--namespace", "--out"):
        parser.add_argument(name, default="")
    args = parser.parse_args(argv)
    if args.role == "load":
        tally = anyio.run(_load, args)
        Path(args.out).write_text(json.dumps(asdict(tally)), encoding="utf-8")
        return 0
    if args.quick:
        args.healthy, args.outage, args.after = 5.0, 30.0, 5.0
    args.total = args.healthy + args.outage + args.after
    console.print(
        f"[bold]breaker[/]: {args.healthy:.0f} s healthy, {args.outage:.0f} s outage (HTTP 503), "
        f"{args.after:.0f} s after; threshold {THRESHOLD}, open {OPEN_S:.0f} s"
    )
    with tempfile.TemporaryDirectory(prefix="apihub-breaker-") as tmp:
        result = _orchestrate(args, Path(tmp))
    for transition in result["transitions"]:
        console.print(
            f"  t = {transition['t_s']:7.2f} s  {transition['change']:22s} {transition['reason']}"
        )
    for phase, counts in result["answers"].items():
        console.print(f"  {phase:8s} answers: {counts}")
    ok = 0 <= result["outage_calls"] <= result["bound"]
    console.print(
        f"upstream calls during the {args.outage:.0f} s outage: {result['outage_calls']} "
        f"(bound {result['bound']} = {THRESHOLD} + one probe per {OPEN_S:.0f} s: "
        f"{'PASS' if ok else 'MISS'})"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
