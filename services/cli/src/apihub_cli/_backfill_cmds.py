"""``apihub backfill``: fetch history through the hub, resumably, with a progress bar."""

from __future__ import annotations

import sys
from datetime import date, datetime
from typing import Annotated

import anyio
import redis.asyncio as aioredis
import typer
from redis.exceptions import RedisError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from apihub_backfill import (
    BackfillError,
    BackfillJob,
    JobRecord,
    JobSpec,
    eta_seconds,
    list_jobs,
    symbols_of,
)
from apihub_backfill import (
    Progress as JobProgress,
)
from apihub_core import (
    HubClient,
    HubError,
    HubUnavailable,
    Keys,
    Provider,
    describe_redis_failure,
    masked_url,
    redis_client,
)
from apihub_marketdata import MarketDataError, krx_calendar
from apihub_runtime import ExitCode, MarketClock, Settings, exit_code_for

from ._help import Command
from ._redis_job import redis_job
from .main import ConfigOption, _fail, _redis_url_for_client, _settings, app

out = Console(highlight=False)


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"{option} {value!r} is not a date (YYYY-MM-DD)", code=ExitCode.USAGE)


@app.command("backfill", cls=Command)
def backfill(
    symbols: Annotated[
        list[str],
        typer.Argument(metavar="SYMBOL", help="Six-digit codes (or `status` to list jobs)."),
    ],
    first: Annotated[
        str | None, typer.Option("--from", metavar="DATE", help="First day, YYYY-MM-DD.")
    ] = None,
    last: Annotated[
        str | None,
        typer.Option("--to", metavar="DATE", help="Last day, YYYY-MM-DD (default: --from)."),
    ] = None,
    interval: Annotated[
        str, typer.Option(metavar="INTERVAL", help="1m (minute bars) or 1d (daily bars).")
    ] = "1m",
    provider: Annotated[str, typer.Option(metavar="PROVIDER", help="KIS or KIWOOM.")] = "KIS",
    account: Annotated[
        str | None, typer.Option(metavar="NAME", help="Account to use (default: the default).")
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url", metavar="URL", help="Hub Redis (default: REDIS_URL, else `up`'s)."
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Fetch SYMBOL's bars from --from to --to through the hub, at backfill priority.

    Running the same command again resumes the job: finished pages are not fetched again, and
    pages the sentinel is fetching are waited for, not asked twice. The bars reach the archive
    through the archiver. `apihub backfill status` lists jobs. Exit 0 when every page was
    fetched, 11 when some were refused (the job says which), others as `apihub --help` lists.
    """
    settings = _settings(config)
    url = _redis_url_for_client(settings, redis_url)
    if symbols == ["status"]:
        _status(url, settings)
        return
    if first is None:
        _fail("--from is required (or `apihub backfill status`)", code=ExitCode.USAGE)
    if interval not in ("1m", "1d"):
        _fail(f"--interval {interval!r} is not one of 1m, 1d", code=ExitCode.USAGE)
    try:
        spec = JobSpec(
            provider=Provider.parse(provider).value,
            symbols=symbols_of(symbols),
            interval=interval,  # type: ignore[arg-type]
            first=_day(first, "--from"),
            last=_day(last or first, "--to"),
            account=account,
        )
        rate = settings.account(Provider.parse(provider), account).rate.per_second or 0
    except (BackfillError, ValueError) as exc:
        _fail(str(exc), code=ExitCode.USAGE)
    except KeyError:
        _fail(f"account {account!r} of {provider} is not configured", code=ExitCode.USAGE)
    try:
        record = anyio.run(_run_job, url, settings, spec, float(rate))
    except HubError as exc:
        _fail(f"{exc.error_class}: {exc}", code=exit_code_for(exc))
    except MarketDataError as exc:
        _fail(str(exc), code=ExitCode.CONFIGURATION)
    except KeyboardInterrupt:
        Console(stderr=True).print(
            f"apihub: interrupted; run the same command again to resume {spec.job_id}",
            markup=False,
        )
        raise typer.Exit(128 + 2) from None
    out.print(
        f"{record.job_id}: {record.status}: {record.done}/{record.total} pages"
        f" ({record.deduplicated} already fetched by others, {record.failed} failed)"
    )
    if record.message:
        out.print(record.message, markup=False)
    if record.status != "done":
        raise typer.Exit(ExitCode.REJECTED)


async def _run_job(url: str, settings: Settings, spec: JobSpec, rate: float) -> JobRecord:
    keys = Keys(settings.namespace)
    redis = redis_client(url, max_connections=settings.backfill.max_in_flight + 8)
    try:
        async with HubClient.from_url(
            url, namespace=settings.namespace, max_connections=settings.backfill.max_in_flight + 4
        ) as hub:
            clock = await MarketClock.read(redis, keys)
            calendar = krx_calendar(settings.market.calendar_override)
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[eta]}"),
            )
            with Progress(*columns, console=out, transient=not sys.stdout.isatty()) as bar:
                task = bar.add_task(spec.job_id, total=None, eta="")

                def show(progress: JobProgress) -> None:
                    left = progress.total - progress.done - progress.failed
                    eta = eta_seconds(left, rate)
                    bar.update(
                        task,
                        total=progress.total,
                        completed=progress.done,
                        eta=f"ETA {eta:.0f}s at {rate:g}/s" if eta != float("inf") else "",
                    )

                job = BackfillJob(
                    hub,
                    redis,
                    keys,
                    spec,
                    calendar=calendar,
                    today=clock.now().date(),
                    now=clock.now,
                    max_in_flight=settings.backfill.max_in_flight,
                    request_timeout_s=settings.backfill.request_timeout_s,
                    chunk_ttl_s=settings.backfill.chunk_ttl_s,
                    on_progress=show,
                )
                return await job.run()
    except RedisError as exc:
        raise HubUnavailable(f"Redis at {masked_url(url)}: {describe_redis_failure(exc)}") from None
    finally:
        await redis.aclose()


def _status(url: str, settings: Settings) -> None:
    async def read(redis: aioredis.Redis) -> list[JobRecord]:
        return await list_jobs(redis, Keys(settings.namespace))

    jobs = redis_job(url, read)
    if not jobs:
        out.print("no backfill jobs")
        return
    table = Table("provider", "symbols", "interval", "range", "status", "pages", "updated")
    table.add_column("job", no_wrap=True)
    for job in jobs:
        spec = job.spec
        table.add_row(
            spec.provider,
            ",".join(spec.symbols)[:40],
            spec.interval,
            f"{spec.first} … {spec.last}",
            job.status,
            f"{job.done}/{job.total}" + (f" ({job.failed} failed)" if job.failed else ""),
            datetime.fromtimestamp(job.updated_at_ms / 1000).strftime("%Y-%m-%d %H:%M:%S"),
            job.job_id,
        )
    out.print(table)
