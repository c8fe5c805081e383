"""``apihub collector`` (the service) and ``apihub collector status`` (what it has done)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import redis.asyncio as aioredis
import typer
from rich.console import Console
from rich.table import Table

from apihub_core import Keys
from apihub_runtime import ExitCode, configure_logging, configure_tracing

from ._help import CONTEXT_SETTINGS, Command, Group
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

collector_app = typer.Typer(
    name="collector",
    help="Run the collector (the watchlist's minute bars and current prices, polled through "
    "the hub in the KRX session), or show what it has done with `apihub collector status`.",
    invoke_without_command=True,
    context_settings=CONTEXT_SETTINGS,
    cls=Group,
)
app.add_typer(collector_app)


@collector_app.callback()
def collector_command(
    ctx: typer.Context, config: ConfigOption = None, log_level: LogLevel = "INFO"
) -> None:
    """Run the collector until SIGINT/SIGTERM (`apihub collector status`: its counters).

    It watches [[collector.watch]] in apihub.toml, or a demo list on the simulator; it polls
    only on trading days inside the session and skips a cycle rather than pile requests up.
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = _service_settings(config)
    configure_logging(log_level)
    configure_tracing("apihub-collector")
    from apihub_collector import run_collector

    _serve(run_collector, settings, "apihub collector")


def _when(ms: int) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone().isoformat(timespec="seconds")


@collector_app.command("status", cls=Command)
def collector_status(
    output: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help="table or json.")
    ] = "table",
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url", metavar="URL", help="Hub Redis (default: REDIS_URL, else `up`'s)."
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Print every collector's state and counters.

    Counters: cycles run (swing, scalp) and skipped, calls and failed calls, snapshots
    recorded and quarantined (docs/market-data.md).
    """
    if output not in ("table", "json"):
        _fail(f"--format {output!r} is not one of table, json", code=ExitCode.USAGE)
    settings = _settings(config)
    url = _redis_url_for_client(settings, redis_url)
    from apihub_collector import COUNTERS, CollectorStatus, read_status

    async def run(redis: aioredis.Redis) -> list[CollectorStatus]:
        return await read_status(redis, Keys(settings.namespace))

    found = redis_job(url, run)
    if output == "json":
        rows: list[dict[str, Any]] = [
            {
                "name": s.name,
                "state": s.state,
                "detail": s.detail,
                "updated_at": _when(s.updated_at_ms),
                **{name: s.counts.get(name, 0) for name in COUNTERS},
                **{k: v for k, v in sorted(s.counts.items()) if k not in COUNTERS},
            }
            for s in found
        ]
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return
    if not found:
        out.print("no collector has reported on this hub yet (start one: `apihub collector`)")
        return
    for number, s in enumerate(found):
        if number:
            out.print()
        table = Table.grid(padding=(0, 2))
        table.add_row(f"collector {s.name}", f"{s.state} ({s.detail})" if s.detail else s.state)
        table.add_row("  since", _when(s.updated_at_ms))
        for name in COUNTERS:
            table.add_row(f"  {name}", str(s.counts.get(name, 0)))
        for name, value in sorted(s.counts.items()):
            if name not in COUNTERS:
                table.add_row(f"  {name}", str(value))
        out.print(table)
