"""``python -m apihub_broker_sim``: run the simulator in the foreground (for the demo)."""

from __future__ import annotations

import argparse
import math
from datetime import datetime

import uvicorn

from ._app import create_app
from ._config import SimConfig


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if not math.isfinite(rate) or rate <= 0:
        raise argparse.ArgumentTypeError(f"must be a number above 0, not {text!r}")
    return rate


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="apihub-broker-sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=SimConfig.seed)
    parser.add_argument("--start", help="initial simulated time, ISO 8601 (default: now)")
    parser.add_argument("--frozen", action="store_true", help="keep the clock at --start")
    parser.add_argument(
        "--clock-rate",
        type=_rate,
        default=1.0,
        help="simulated seconds per real second (e.g. 10 runs a session ten times faster)",
    )
    parser.add_argument("--kis-rate", type=int, default=None, help="KIS calls/s per appkey")
    parser.add_argument("--kiwoom-rate", type=int, default=None, help="Kiwoom calls/s per api-id")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="one-way base latency")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="uniform latency jitter")
    args = parser.parse_args(argv)
    # Same JSON shape as POST /__sim/conditions, so the admin API can list and remove it.
    latency = {"latency": {"base_ms": args.latency_ms, "jitter_ms": args.jitter_ms}}
    config = SimConfig(
        seed=args.seed,
        start_time=datetime.fromisoformat(args.start) if args.start else None,
        frozen=args.frozen,
        clock_rate=args.clock_rate,
        kis_rate_limit_per_s=args.kis_rate,
        kiwoom_rate_limit_per_s=args.kiwoom_rate,
        conditions=(latency,) if args.latency_ms or args.jitter_ms else (),
    )
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
