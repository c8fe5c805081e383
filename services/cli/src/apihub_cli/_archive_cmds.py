"""``apihub archiver`` (the service) and ``apihub archive …`` (reading, exporting and rebuilding
the market-data archive). Reading works while the archiver runs: the archiver hands the
database over on request (``docs/market-data.md``)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import anyio
import msgspec
import typer
from redis.exceptions import RedisError
from rich import box
from rich.console import Console
from rich.table import Table

from apihub_archive import (
    EXPORT_TABLES,
    ArchiveBusy,
    ArchiveError,
    ArchiveQueryError,
    ArchiveReader,
    ArchiveStats,
)
from apihub_core import HubError, HubUnavailable, describe_redis_failure, masked_url, redis_client
from apihub_runtime import ExitCode, Settings, configure_logging, configure_tracing, exit_code_for

from ._help import CONTEXT_SETTINGS, Command, Group
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

archive_app = typer.Typer(
    name="archive",
    help="Query, export and rebuild the market-data archive (works while the archiver runs).",
    no_args_is_help=True,
    context_settings=CONTEXT_SETTINGS,
    cls=Group,
)
app.add_typer(archive_app)

FORMATS = ("table", "json")
TABLE_ROWS_MAX = 10_000
"""Rows a terminal table shows at most (JSON Lines has no limit)."""

_encoder = msgspec.json.Encoder(enc_hook=str)

ArchiveOption = Annotated[
    Path | None,
    typer.Option(
        "--archive",
        metavar="DIR",
        help="The archive directory (default: [archive] dir, else <data dir>/archive).",
    ),
]
WaitOption = Annotated[
    float | None,
    typer.Option(
        "--wait",
        metavar="SECONDS",
        help="How long to wait for the archiver to hand the database over "
        "(default: [archive] lock_wait_s).",
    ),
]
FormatOption = Annotated[
    str, typer.Option("--format", metavar="FORMAT", help="table, or json (JSON Lines).")
]


@app.command("archiver", cls=Command)
def archiver_command(config: ConfigOption = None, log_level: LogLevel = "INFO") -> None:
    """Run the archiver (market-data answers into the archive) until SIGINT/SIGTERM.

    Every market-data answer on the response stream goes into the archive (DuckDB + JSONL)
    and is announced on <ns>:archive. One archiver writes an archive; a second one on the
    same [archive] dir stands by.
    """
    settings = _service_settings(config)
    configure_logging(log_level)
    configure_tracing("apihub-archiver")
    from apihub_archiver import run_archiver

    _serve(run_archiver, settings, "apihub archiver")


def _archive_fail(exc: ArchiveError) -> NoReturn:
    if isinstance(exc, ArchiveQueryError):
        _fail(f"query refused: {exc}", code=ExitCode.USAGE)
    if isinstance(exc, ArchiveBusy):
        _fail(str(exc), code=ExitCode.TIMEOUT)
    _fail(str(exc), code=ExitCode.CONFIGURATION)


def _interrupted(message: str = "interrupted") -> NoReturn:
    """Ctrl-C: one line and the shell's status for SIGINT."""
    Console(stderr=True, highlight=False).print(f"apihub: {message}", markup=False)
    raise typer.Exit(128 + 2)


def _reader(settings: Settings, archive: Path | None, wait: float | None) -> ArchiveReader:
    config = settings.archive
    if wait is not None and wait < 0:
        _fail(f"--wait must be 0 seconds or more, not {wait}", code=ExitCode.USAGE)
    return ArchiveReader(
        archive or config.root(settings.data_dir),
        database=config.database,
        lock_wait_s=config.lock_wait_s if wait is None else wait,
    )


def _check_format(output: str) -> None:
    if output not in FORMATS:
        _fail(f"--format {output!r} is not one of {', '.join(FORMATS)}", code=ExitCode.USAGE)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


def _json_lines(columns: list[str], rows: Iterable[tuple[Any, ...]]) -> Iterator[bytes]:
    for row in rows:
        yield _encoder.encode(dict(zip(columns, row, strict=True))) + b"\n"


def _print_table(columns: list[str], rows: Iterable[tuple[Any, ...]], console: Console) -> int:
    table = Table(*columns, box=box.SIMPLE_HEAD, show_lines=False)
    shown = 0
    for row in rows:
        if shown == TABLE_ROWS_MAX:
            console.print(table)
            return shown + 1
        table.add_row(*(_cell(value) for value in row))
        shown += 1
    console.print(table)
    return shown


@archive_app.command("query", cls=Command)
def archive_query(
    sql: Annotated[str, typer.Argument(metavar="SQL", help="One SQL statement (DuckDB dialect).")],
    output: FormatOption = "table",
    archive: ArchiveOption = None,
    wait: WaitOption = None,
    config: ConfigOption = None,
) -> None:
    """Run a read-only SQL query on the archive (a table, or JSON Lines with --format json).

    Example: apihub archive query "SELECT symbol, count(*) FROM candles GROUP BY ALL"

    Tables: candles, candle_revisions, ticks, snapshots, quarantine, archive_sources,
    archive_files, schema_version (docs/market-data.md). ts is the KST wall time.
    """
    _check_format(output)
    settings = _settings(config)
    reader = _reader(settings, archive, wait)
    try:
        with reader:
            columns, rows = reader.stream(sql)
            if output == "json":
                stdout = sys.stdout.buffer
                for line in _json_lines(columns, rows):
                    stdout.write(line)
                stdout.flush()
                return
            width = None if sys.stdout.isatty() else 400
            console = Console(width=width, highlight=False)
            shown = _print_table(columns, rows, console)
            if shown > TABLE_ROWS_MAX:
                Console(stderr=True, highlight=False).print(
                    f"(first {TABLE_ROWS_MAX} rows shown; add a LIMIT, or use --format json)",
                    markup=False,
                )
    except ArchiveError as exc:
        _archive_fail(exc)
    except KeyboardInterrupt:
        _interrupted()
    except BrokenPipeError:  # `| head`: the reader is gone, and that is fine
        sys.stderr.close()


@archive_app.command("export", cls=Command)
def archive_export(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="Where to write <table>.parquet files.")
    ],
    output: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help="The file format: parquet.")
    ] = "parquet",
    tables: Annotated[
        str,
        typer.Option("--tables", metavar="T1,T2", help="Tables to export (comma-separated)."),
    ] = ",".join(EXPORT_TABLES),
    archive: ArchiveOption = None,
    wait: WaitOption = None,
    config: ConfigOption = None,
) -> None:
    """Export archive tables to Parquet files (one per table, in primary-key order)."""
    if output != "parquet":
        _fail(f"--format {output!r} is not supported (parquet)", code=ExitCode.USAGE)
    names = [name.strip() for name in tables.split(",") if name.strip()]
    if not names:
        _fail("--tables names no table", code=ExitCode.USAGE)
    settings = _settings(config)
    reader = _reader(settings, archive, wait)
    try:
        with reader:
            written = reader.export_parquet(directory, names)
    except ArchiveError as exc:
        _archive_fail(exc)
    except KeyboardInterrupt:
        _interrupted()
    for path in written:
        print(path)


@archive_app.command("stats", cls=Command)
def archive_stats(
    output: FormatOption = "table",
    archive: ArchiveOption = None,
    wait: WaitOption = None,
    config: ConfigOption = None,
) -> None:
    """Show what the archive holds.

    Rows per table, bars per provider and interval, quarantined answers by reason, JSONL
    files.
    """
    _check_format(output)
    settings = _settings(config)
    reader = _reader(settings, archive, wait)
    try:
        with reader:
            stats = reader.stats()
    except ArchiveError as exc:
        _archive_fail(exc)
    except KeyboardInterrupt:
        _interrupted()
    if output == "json":
        sys.stdout.buffer.write(_encoder.encode(_stats_document(reader.root, stats)) + b"\n")
        return
    _print_stats(reader.root, stats)


def _stats_document(root: Path, stats: ArchiveStats) -> dict[str, Any]:
    return {
        "archive": str(root),
        "tables": stats.tables,
        "candles": [
            {
                "provider": provider,
                "interval": interval,
                "symbols": symbols,
                "bars": bars,
                "first": first,
                "last": last,
                "revised": revised,
            }
            for provider, interval, symbols, bars, first, last, revised in stats.candles
        ],
        "quarantine": stats.quarantine,
        "jsonl_files": stats.files,
        "jsonl_bytes": stats.file_bytes,
        "newest_day": stats.newest_day,
    }


def _print_stats(root: Path, stats: ArchiveStats) -> None:
    console = Console(width=None if sys.stdout.isatty() else 400, highlight=False)
    console.print(f"archive {root}", markup=False)
    tables = Table("table", "rows", box=box.SIMPLE_HEAD)
    for name, count in stats.tables.items():
        tables.add_row(name, str(count))
    console.print(tables)
    if stats.candles:
        headers = ("provider", "interval", "symbols", "bars", "first", "last", "revised")
        bars = Table(*headers, box=box.SIMPLE_HEAD)
        for row in stats.candles:
            bars.add_row(*(_cell(value) for value in row))
        console.print(bars)
    if stats.quarantine:
        reasons = Table("quarantined because", "answers", box=box.SIMPLE_HEAD)
        for reason, count in stats.quarantine.items():
            reasons.add_row(reason, str(count))
        console.print(reasons)
    newest = f", newest day {stats.newest_day}" if stats.newest_day else ""
    console.print(
        f"JSONL: {stats.files} files, {stats.file_bytes:,} bytes uncompressed{newest}",
        markup=False,
    )


@archive_app.command("rebuild", cls=Command)
def archive_rebuild(
    into: Annotated[
        Path | None,
        typer.Option(
            "--into",
            metavar="DIR",
            help="An empty directory to rebuild into (default: the configured archive, "
            "which must then be empty).",
        ),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url", metavar="URL", help="Hub Redis (default: REDIS_URL, else `up`'s)."
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Rebuild the archive from the event log (the response stream), into an empty directory.

    The stream is replayed in order, giving byte for byte the JSONL files the archiver would
    have written. The stream holds only the most recent answers (RESPONSE_STREAM_MAXLEN);
    older ones cannot be replayed. No archive.* events are appended.
    """
    settings = _settings(config)
    from apihub_archiver import RebuildReport, holds_archive, rebuild_archive

    target = into or settings.archive.root(settings.data_dir)
    if holds_archive(target, settings.archive.database):
        _fail(
            f"{target} already holds an archive: rebuild into an empty directory (--into DIR), "
            "or remove it first with the archiver stopped",
            code=ExitCode.USAGE,
        )
    url = _redis_url_for_client(settings, redis_url)
    configure_logging("ERROR")
    err = Console(stderr=True, highlight=False)
    last_note = [time.monotonic()]

    def progress(report: RebuildReport) -> None:
        now = time.monotonic()
        if now - last_note[0] >= 2.0:
            last_note[0] = now
            err.print(
                f"… {report.entries:,} entries replayed ({report.candles_inserted:,} bars)",
                markup=False,
            )

    async def run() -> RebuildReport:
        try:
            redis = redis_client(url, max_connections=4)
        except ValueError as exc:
            _fail(f"{masked_url(url)!r} is not a Redis URL: {exc}", code=ExitCode.USAGE)
        try:
            return await rebuild_archive(redis, settings, target, progress=progress)
        except RedisError as exc:
            raise HubUnavailable(
                f"Redis at {masked_url(url)}: {describe_redis_failure(exc)}"
            ) from None
        finally:
            await redis.aclose()

    try:
        report = anyio.run(run)
    except ArchiveError as exc:
        _archive_fail(exc)
    except HubError as exc:
        _fail(f"{exc.error_class}: {exc}", code=exit_code_for(exc))
    except KeyboardInterrupt:
        _interrupted("interrupted (the partial archive is consistent; remove it to start over)")
    print(
        f"rebuilt {report.root} from {report.entries:,} entries: {report.stored:,} stored, "
        f"{report.quarantined:,} quarantined, {report.candles_inserted:,} bars "
        f"({report.candles_revised:,} revised), {report.lines:,} JSONL lines in "
        f"{report.seconds:.1f} s"
    )
