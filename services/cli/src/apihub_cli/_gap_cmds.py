"""``apihub sentinel`` (the service) and ``apihub gaps`` (what it is healing)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Annotated

import redis.asyncio as aioredis
import typer
from rich.console import Console
from rich.table import Table

from apihub_core import (
    Keys,
)
from apihub_runtime import ExitCode, configure_logging, configure_tracing

from ._help import Command
from ._redis_job import redis_job
from .main import (
    ConfigOption,
    LogLevel,
    _fail,
    _redis_url_for_client,
    _serve,
    _service_settings,
    _settings,
    app,
)

out = Console(highlight=False)


@app.command("sentinel", cls=Command)
def sentinel_command(config: ConfigOption = None, log_level: LogLevel = "INFO") -> None:
    """Run one sentinel replica (finds missing bars, heals them) until SIGINT/SIGTERM.

    It keeps the watchlist's series complete ([[collector.watch]] in apihub.toml, or the demo
    list on the simulator); replicas may run side by side.
    """
    settings = _service_settings(config)
    configure_logging(log_level)
    configure_tracing("apihub-sentinel")
    from apihub_sentinel import run_sentinel

    _serve(run_sentinel, settings, "apihub sentinel")


@app.command("gaps", cls=Command)
def gaps_command(
    output: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help="table or json (JSON Lines).")
    ] = "table",
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url", metavar="URL", help="Hub Redis (default: REDIS_URL, else `up`'s)."
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """List the open gaps the sentinel is healing (their lifecycle is on the gaps stream)."""
    if output not in ("table", "json"):
        _fail(f"--format {output!r} is not one of table, json", code=ExitCode.USAGE)
    settings = _settings(config)
    url = _redis_url_for_client(settings, redis_url)
    from apihub_sentinel import Gap, GapStore

    async def read(redis: aioredis.Redis) -> list[Gap]:
        store = GapStore(redis, Keys(settings.namespace))
        found = [await store.load(gid) for gid in await store.due(2**62, limit=1000)]
        return [gap for gap in found if gap is not None]

    gaps = redis_job(url, read)
    if output == "json":
        for gap in gaps:
            row = {
                "gap_id": gap.gap_id,
                "provider": gap.provider,
                "symbol": gap.symbol,
                "interval": gap.interval,
                "first": gap.first.isoformat(),
                "last": gap.last.isoformat(),
                "missing": len(gap.bars),
                "attempt": gap.attempt,
                "in_flight": len(gap.requests),
            }
            sys.stdout.write(json.dumps(row) + "\n")
        return
    if not gaps:
        out.print("no open gaps")
        return
    table = Table("bars", "first", "last", "attempt", "in flight", "detected")
    table.add_column("gap", no_wrap=True)
    for gap in gaps:
        table.add_row(
            str(len(gap.bars)),
            gap.first.strftime("%Y-%m-%d %H:%M"),
            gap.last.strftime("%H:%M"),
            str(gap.attempt),
            str(len(gap.requests)),
            datetime.fromtimestamp(gap.detected_at_ms / 1000).strftime("%H:%M:%S"),
            gap.gap_id,
        )
    out.print(table)
