"""``apihub``: run the hub, call through it, run single services."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import anyio
import msgspec
import typer
from redis.exceptions import RedisError
from rich import box
from rich.console import Console
from rich.table import Table

from apihub_brokers import Catalog, CatalogRow, catalog_markdown, catalog_rows, configured_catalog
from apihub_core import (
    PRIORITIES,
    ConfigurationError,
    HubClient,
    HubError,
    HubUnavailable,
    Keys,
    OrderReconciled,
    Passthrough,
    Provider,
    advertised_hub_url,
    describe_redis_failure,
    encode_event,
    masked_url,
    redis_client,
)
from apihub_embedded import EmbeddedRedisError, RedisServerNotFound
from apihub_runtime import (
    ExitCode,
    Service,
    Settings,
    configure_logging,
    configure_tracing,
    exit_code_for,
    load_settings,
    run_process,
    serve,
)

from ._config_report import config_file, environment, render, report
from ._failing import err, fail
from ._help import CONTEXT_SETTINGS, Command, Group
from ._idle import Idle
from ._params import ParamError, check_known, load_json, merge, parse_pairs

app = typer.Typer(
    name="apihub",
    help="An event-sourced API hub on Redis Streams for the KIS and Kiwoom broker APIs.\n\n"
    "Exit codes by outcome (docs/cli.md): 0 ok, 2 usage, 3 configuration; never retry: "
    "10 invalid, 11 rejected, 12 auth; retry later: 20 timeout, 21 rate-limited, "
    "22 upstream transient, 23 circuit open, 24 hub unavailable; 30 outcome unknown "
    "(reconcile); 1 an unexpected error.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT_SETTINGS,
    cls=Group,
)
config_app = typer.Typer(
    name="config",
    help="Inspect the configuration.",
    no_args_is_help=True,
    context_settings=CONTEXT_SETTINGS,
    cls=Group,
)
app.add_typer(config_app)
orders_app = typer.Typer(
    name="orders",
    help="Follow up orders whose outcome was unknown.",
    no_args_is_help=True,
    context_settings=CONTEXT_SETTINGS,
    cls=Group,
)
app.add_typer(orders_app)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(LOG_LEVELS)}")
    return value.upper()


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        metavar="FILE",
        help="apihub.toml to read (default: $APIHUB_CONFIG, else ./apihub.toml if present).",
    ),
]
LogLevel = Annotated[
    str,
    typer.Option(
        "--log-level",
        metavar="LEVEL",
        callback=_log_level,
        help=f"Logging level: {', '.join(LOG_LEVELS)}.",
    ),
]


def _version() -> str:
    for dist in ("apihub-cli", "apihub-workspace"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def _print_version(value: bool) -> None:
    if value:
        print(f"apihub {_version()}")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """An event-sourced API hub on Redis Streams for the KIS and Kiwoom broker APIs."""


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config_path=config)
    except ConfigurationError as exc:
        _fail(str(exc), code=ExitCode.CONFIGURATION)


def _fail(message: str, *, code: ExitCode) -> NoReturn:
    fail(message, code=code)


def _redis_url_for_client(settings: Settings, explicit: str | None) -> str:
    url = explicit or settings.redis_url or advertised_hub_url(settings.data_dir)
    if not url:
        _fail(
            f"no running hub found (no REDIS_URL, nothing advertised in {settings.data_dir}/): "
            "start one with `apihub up` or set REDIS_URL",
            code=ExitCode.HUB_UNAVAILABLE,
        )
    return url


@app.command(cls=Command)
def up(
    config: ConfigOption = None,
    sim_port: Annotated[
        int, typer.Option(metavar="PORT", help="Port of the embedded simulator (0 = any).")
    ] = 0,
    sim: Annotated[
        bool,
        typer.Option(
            "--sim/--no-sim",
            help="Start the simulator even when no account needs it (demo accounts use it).",
        ),
    ] = False,
    market_time: Annotated[
        str,
        typer.Option(
            metavar="WHEN",
            help="The simulator's market time: auto (real time while KRX is open, else a "
            "simulated trading day from 10:30), real, or an ISO time such as "
            "2026-12-02T09:00 (KST).",
        ),
    ] = "auto",
    clock_rate: Annotated[
        float,
        typer.Option(
            metavar="X",
            help="Simulated seconds per real second on the simulator (quotas stay real time).",
        ),
    ] = 1.0,
    log_level: LogLevel = "INFO",
) -> None:
    """Run the whole hub in one process: Redis, the broker simulator and every service.

    Redis is embedded unless REDIS_URL is set; the simulator runs when an account has no real
    credentials (or with --sim).

    Prints a line containing `ready` when calls can be made; SIGINT/SIGTERM drain and stop it.
    """
    settings = _settings(config)
    if not clock_rate > 0 or clock_rate > 1000:
        _fail(
            f"--clock-rate must be above 0 and at most 1000, not {clock_rate}", code=ExitCode.USAGE
        )
    if market_time not in ("auto", "real"):
        try:
            datetime.fromisoformat(market_time)
        except ValueError:
            _fail(
                f"--market-time {market_time!r} is not auto, real or an ISO time "
                "(e.g. 2026-12-02T09:00)",
                code=ExitCode.USAGE,
            )
    configure_logging(log_level)
    configure_tracing("apihub")
    if not settings.redis_url:
        running = advertised_hub_url(settings.data_dir)
        if running:
            _fail(
                f"a hub is already running on {masked_url(running)} (data dir "
                f"{settings.data_dir}/); stop it first, or set REDIS_URL to add services to it",
                code=ExitCode.CONFIGURATION,
            )
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _fail(
                f"data dir {settings.data_dir}: cannot create it: {exc.strerror or exc}",
                code=ExitCode.CONFIGURATION,
            )
    from ._hub import run_hub  # every service's imports: only `apihub up` pays for them

    try:
        status = run_process(
            lambda: run_hub(
                settings,
                sim_port=sim_port,
                force_sim=sim,
                announce=_say,
                market_time=market_time,
                clock_rate=clock_rate,
            ),
            name="apihub",
        )
    except RedisServerNotFound as exc:
        _fail(str(exc), code=ExitCode.CONFIGURATION)
    except EmbeddedRedisError as exc:
        _fail(str(exc), code=ExitCode.HUB_UNAVAILABLE)
    raise typer.Exit(status)


def _say(line: str) -> None:
    print(line, flush=True)


def _parse_params(
    pairs: list[str],
    params_json: list[str],
    catalog: Catalog,
    spec_of: tuple[Provider, str],
    allow_unknown: bool,
) -> dict[str, str]:
    try:
        collected = parse_pairs(pairs)
        for source in params_json:
            collected += load_json(source)
        params = merge(collected)
        spec = catalog.lookup(*spec_of)
        # A TR the catalog does not know is the hub's to refuse or pass through.
        if spec is not None and not allow_unknown:
            check_known(params, spec)
    except ParamError as exc:
        _fail(str(exc), code=ExitCode.USAGE)
    return params


def _passthrough(
    provider: Provider, method: str | None, path: str | None, kind: str | None
) -> Passthrough | None:
    if method is None and path is None and kind is None:
        return None
    if path is None or kind is None:
        _fail(
            "a pass-through call needs --path and --kind (query or order); --method defaults "
            "to GET on KIS and POST on Kiwoom",
            code=ExitCode.USAGE,
        )
    if kind not in ("query", "order"):
        _fail(f"--kind must be query or order, not {kind!r}", code=ExitCode.USAGE)
    verb = (method or ("GET" if provider is Provider.KIS else "POST")).upper()
    if verb not in ("GET", "POST"):
        _fail(f"--method must be GET or POST, not {method!r}", code=ExitCode.USAGE)
    return Passthrough(method=verb, path=path, kind=kind)  # type: ignore[arg-type]


@app.command(cls=Command)
def call(
    provider: Annotated[str, typer.Argument(metavar="PROVIDER", help="KIS or KIWOOM.")],
    tr_id: Annotated[
        str,
        typer.Argument(metavar="TR_ID", help="The broker's TR id, e.g. FHKST01010100, ka10081."),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="KEY=VALUE",
            help="A request parameter (repeatable; each name once).",
        ),
    ] = None,
    params_json: Annotated[
        list[str] | None,
        typer.Option(
            "--params-json",
            metavar="JSON|@FILE|-",
            help='Parameters as a JSON object of strings: \'{"K": "V"}\', @file.json, or - '
            "for stdin (combines with -p; each name once).",
        ),
    ] = None,
    allow_unknown_params: Annotated[
        bool,
        typer.Option(
            "--allow-unknown-params",
            help="Send parameters the TR's catalog entry does not list (refused otherwise).",
        ),
    ] = False,
    account: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Account name (default: the provider's default)."),
    ] = None,
    priority: Annotated[
        str, typer.Option(metavar="CLASS", help=f"One of {', '.join(PRIORITIES)}.")
    ] = "interactive",
    timeout: Annotated[
        float, typer.Option(metavar="SECONDS", help="Seconds to wait for the answer.")
    ] = 10.0,
    cont: Annotated[bool, typer.Option("--cont", help="Ask for the next page.")] = False,
    next_key: Annotated[
        str,
        typer.Option(
            metavar="KEY", help="The next_key the previous page printed (implies --cont)."
        ),
    ] = "",
    all_pages: Annotated[
        bool,
        typer.Option(
            "--all-pages",
            help="Follow the pages to the end; print one JSON body per line (JSON Lines).",
        ),
    ] = False,
    method: Annotated[
        str | None,
        typer.Option(
            metavar="GET|POST", help="Pass-through: the HTTP method of an uncatalogued TR."
        ),
    ] = None,
    path: Annotated[
        str | None,
        typer.Option(metavar="PATH", help="Pass-through: the URL path of an uncatalogued TR."),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            metavar="query|order",
            help="Pass-through: whether the TR has side effects (orders are never resent).",
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
    """Call the broker through the hub and print the response body as JSON on stdout.

    Example: apihub call KIS FHKST01010100 -p FID_COND_MRKT_DIV_CODE=J -p FID_INPUT_ISCD=005930

    A TR the catalog does not know goes through as a pass-through when --path and --kind are
    given (`apihub trs` lists the catalog).

    On error: one line on stderr and the exit code of its class (see `apihub --help`).
    """
    try:
        resolved = Provider.parse(provider)
    except ValueError as exc:
        _fail(str(exc), code=ExitCode.USAGE)
    if priority not in PRIORITIES:
        _fail(f"--priority {priority!r} is not one of {', '.join(PRIORITIES)}", code=ExitCode.USAGE)
    if not timeout > 0:
        _fail(f"--timeout must be more than 0 seconds, not {timeout}", code=ExitCode.USAGE)
    passthrough = _passthrough(resolved, method, path, kind)
    if all_pages and (cont or next_key):
        _fail("--all-pages starts at the first page: drop --cont/--next-key", code=ExitCode.USAGE)
    settings = _settings(config)
    params = _parse_params(
        param or [],
        params_json or [],
        configured_catalog(settings),
        (resolved, tr_id),
        allow_unknown_params or passthrough is not None,
    )
    # The outcome is the one line below; the client's own warnings (a retried read) are noise.
    configure_logging("ERROR")
    url = _redis_url_for_client(settings, redis_url)

    async def run() -> Any:
        try:
            hub = HubClient.from_url(url, namespace=settings.namespace)
        except ValueError as exc:  # redis-py's word on a malformed URL (it never echoes it)
            _fail(f"{masked_url(url)!r} is not a Redis URL: {exc}", code=ExitCode.USAGE)
        async with hub:
            if all_pages:
                async for page in hub.paginate(
                    resolved,
                    tr_id,
                    params,
                    account=account,
                    priority=priority,
                    timeout=timeout,
                    passthrough=passthrough,
                ):
                    json.dump(page.body, sys.stdout, ensure_ascii=False)
                    sys.stdout.write("\n")
                    sys.stdout.flush()
                return None
            return await hub.execute(
                resolved,
                tr_id,
                params,
                account=account,
                priority=priority,
                timeout=timeout,
                cont=cont or bool(next_key),
                next_key=next_key,
                passthrough=passthrough,
            )

    try:
        response = anyio.run(run)
    except HubError as exc:
        _fail(f"{exc.error_class}: {exc}", code=exit_code_for(exc))
    except KeyboardInterrupt:
        # The shell's convention for SIGINT; the request may still be executed and answered.
        err.print("apihub: interrupted (the request may still be executed)", markup=False)
        raise typer.Exit(128 + 2) from None
    if response is None:
        return
    json.dump(response.body, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    if response.has_more:
        hint = f" --next-key {response.next_key}" if response.next_key else " --cont"
        err.print(
            f"more pages: repeat with{hint} (or use --all-pages)", markup=False, soft_wrap=True
        )


TR_FORMATS = ("table", "json", "markdown")


@app.command("trs", cls=Command)
def trs_command(
    provider: Annotated[
        str | None, typer.Argument(metavar="[PROVIDER]", help="KIS or KIWOOM (default: both).")
    ] = None,
    output: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help=f"One of {', '.join(TR_FORMATS)}.")
    ] = "table",
    config: ConfigOption = None,
) -> None:
    """List the TRs this hub can call: the built-in catalog extended by apihub.toml."""
    if output not in TR_FORMATS:
        _fail(f"--format {output!r} is not one of {', '.join(TR_FORMATS)}", code=ExitCode.USAGE)
    wanted: Provider | None = None
    if provider is not None:
        try:
            wanted = Provider.parse(provider)
        except ValueError as exc:
            _fail(str(exc), code=ExitCode.USAGE)
    catalog = configured_catalog(_settings(config))
    if wanted is not None:
        catalog = Catalog(spec for spec in catalog if spec.provider is wanted)
    rows = catalog_rows(catalog)
    if output == "json":
        payload = [
            {
                **dataclasses.asdict(row),
                "required": list(row.required),
                "optional": list(row.optional),
            }
            for row in rows
        ]
        json.dump(payload, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    elif output == "markdown":
        sys.stdout.write(catalog_markdown(catalog))
    else:
        table = Table(*CatalogRow.HEADERS, box=box.SIMPLE, show_lines=False)
        for row in rows:
            table.add_row(*row.cells())
        # A pipe gets every column whole (grep-able); a terminal gets a table that fits it.
        width = None if sys.stdout.isatty() else 400
        Console(width=width).print(table)


@app.command("sim", cls=Command)
def sim_command(
    host: Annotated[str, typer.Option(metavar="HOST", help="Interface to listen on.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(metavar="PORT", help="Port (0 = any free port).")] = 8700,
    seed: Annotated[int, typer.Option(metavar="N", help="Market data seed.")] = 20250321,
    kis_rate_limit: Annotated[
        int | None,
        typer.Option(
            metavar="PER_S",
            help="Calls per sliding second per KIS app key (EGW00201 beyond; 18 real).",
        ),
    ] = None,
    kiwoom_rate_limit: Annotated[
        int | None,
        typer.Option(
            metavar="PER_S",
            help="Calls per sliding second per Kiwoom app key and api-id (1700 beyond).",
        ),
    ] = None,
    condition: Annotated[
        list[str] | None,
        typer.Option(
            metavar="JSON",
            help='A standing condition as JSON, e.g. \'{"latency": {"base_ms": 5, '
            '"jitter_ms": 30}}\' (repeatable; see the simulator README).',
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            metavar="WHEN", help="Simulated time to start at, ISO (KST without an offset)."
        ),
    ] = None,
    frozen: Annotated[
        bool, typer.Option("--frozen", help="Keep the clock still until it is set or advanced.")
    ] = False,
    clock_rate: Annotated[
        float,
        typer.Option(
            metavar="X", help="Simulated seconds per real second (rate limits stay real time)."
        ),
    ] = 1.0,
    log_level: LogLevel = "INFO",
) -> None:
    """Run the KIS + Kiwoom broker simulator alone (Ctrl-C to stop)."""
    configure_logging(log_level)
    from apihub_broker_sim import SimConfig, SimServer

    if not 0 < clock_rate <= 1000:
        _fail(
            f"--clock-rate must be above 0 and at most 1000, not {clock_rate}",
            code=ExitCode.USAGE,
        )
    try:
        conditions = tuple(json.loads(text) for text in condition or ())
        config = SimConfig(
            seed=seed,
            kis_rate_limit_per_s=kis_rate_limit,
            kiwoom_rate_limit_per_s=kiwoom_rate_limit,
            conditions=conditions,
            start_time=datetime.fromisoformat(start) if start else None,
            frozen=frozen,
            clock_rate=clock_rate,
        )
    except ValueError as exc:
        _fail(f"bad simulator option: {exc}", code=ExitCode.USAGE)

    @asynccontextmanager
    async def simulator() -> AsyncIterator[Service]:
        async with SimServer(config, host=host, port=port) as server:
            _say(f"broker simulator ready at {server.url} (KIS and Kiwoom paths; Ctrl-C to stop)")
            yield Idle()
        _say("broker simulator stopped")

    raise typer.Exit(run_process(lambda: serve(simulator(), name="apihub sim"), name="apihub sim"))


def _service_settings(config: Path | None) -> Settings:
    settings = _settings(config)
    if not settings.redis_url:
        discovered = advertised_hub_url(settings.data_dir)
        if not discovered:
            _fail(
                "no hub to join: set REDIS_URL (or start `apihub up`, whose Redis is then found)",
                code=ExitCode.HUB_UNAVAILABLE,
            )
        settings = settings.with_redis_url(discovered)
    return settings


def _serve(run: Callable[[Settings], Awaitable[int]], settings: Settings, name: str) -> None:
    raise typer.Exit(run_process(lambda: run(settings), name=name))


def _run_service(config: Path | None, log_level: str, name: str) -> None:
    """Run the service ``name`` (dispatcher, token-keeper, reconciler) until a stop signal."""
    settings = _service_settings(config)
    configure_logging(log_level)
    configure_tracing(f"apihub-{name}")
    # Imported here: `apihub call` should not pay for every service's imports.
    if name == "dispatcher":
        from apihub_dispatcher import run_dispatcher as run
    elif name == "token-keeper":
        from apihub_token_keeper import run_token_keeper as run
    else:
        from apihub_reconciler import run_reconciler as run
    _serve(run, settings, f"apihub {name}")


@app.command(cls=Command)
def dispatcher(config: ConfigOption = None, log_level: LogLevel = "INFO") -> None:
    """Run one dispatcher (consumer-group member) against REDIS_URL until SIGINT/SIGTERM.

    Needs a token-keeper running against the same Redis (`apihub token-keeper`, or `apihub up`).
    """
    _run_service(config, log_level, "dispatcher")


@app.command("token-keeper", cls=Command)
def token_keeper(config: ConfigOption = None, log_level: LogLevel = "INFO") -> None:
    """Run the token-keeper (one token per app key for the whole fleet) until SIGINT/SIGTERM."""
    _run_service(config, log_level, "token-keeper")


@app.command("reconciler", cls=Command)
def reconciler_command(config: ConfigOption = None, log_level: LogLevel = "INFO") -> None:
    """Run the reconciler (follows up outcome_unknown orders) until SIGINT/SIGTERM."""
    _run_service(config, log_level, "reconciler")


@orders_app.command("reconcile", cls=Command)
def orders_reconcile(
    request_id: Annotated[
        str, typer.Argument(metavar="REQUEST_ID", help="The request id of the order.")
    ],
    timeout: Annotated[
        float, typer.Option(metavar="SECONDS", help="Seconds to wait for each inquiry page.")
    ] = 15.0,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url", metavar="URL", help="Hub Redis (default: REDIS_URL, else `up`'s)."
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Ask the broker what became of an order (never resending it) and print order.reconciled.

    The verdict is also appended to <ns>:orders. Exit 0 when it is found or not found, 30
    (outcome unknown) when it is ambiguous; other errors as `apihub --help` lists.
    """
    if not timeout > 0:
        _fail(f"--timeout must be more than 0 seconds, not {timeout}", code=ExitCode.USAGE)
    configure_logging("ERROR")
    settings = _settings(config)
    url = _redis_url_for_client(settings, redis_url)
    from apihub_reconciler import load_order_request, reconcile

    async def run() -> OrderReconciled:
        try:
            redis = redis_client(url, max_connections=4)
            hub = HubClient.from_url(url, namespace=settings.namespace)
        except ValueError as exc:
            _fail(f"{masked_url(url)!r} is not a Redis URL: {exc}", code=ExitCode.USAGE)
        try:
            async with hub:
                keys = Keys(settings.namespace)
                order = await load_order_request(redis, keys, request_id)
                return await reconcile(
                    hub, redis, settings, order, trigger="manual", inquiry_timeout_s=timeout
                )
        except RedisError as exc:
            raise HubUnavailable(
                f"Redis at {masked_url(url)}: {describe_redis_failure(exc)}"
            ) from None
        finally:
            await redis.aclose()

    try:
        event = anyio.run(run)
    except HubError as exc:
        _fail(f"{exc.error_class}: {exc}", code=exit_code_for(exc))
    except KeyboardInterrupt:
        err.print("apihub: interrupted", markup=False)
        raise typer.Exit(128 + 2) from None
    sys.stdout.write(msgspec.json.format(encode_event(event), indent=2).decode() + "\n")
    if event.status == "ambiguous":
        raise typer.Exit(ExitCode.OUTCOME_UNKNOWN)


@config_app.command("check", cls=Command)
def config_check(
    config: ConfigOption = None,
    output: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help="text or json.")
    ] = "text",
) -> None:
    """Check the configuration (environment + apihub.toml) and print what it resolves to.

    Credentials show as the app key's fingerprint only; a Redis password is masked.

    Exit code 0 when the configuration is valid, 3 (configuration) otherwise.
    """
    if output not in ("text", "json"):
        _fail(f"--format {output!r} is not one of text, json", code=ExitCode.USAGE)
    env = environment()
    settings = _settings(config)
    try:
        data = report(settings, config_file(config, env), env)
    except ConfigurationError as exc:
        _fail(str(exc), code=ExitCode.CONFIGURATION)
    if output == "json":
        json.dump({"valid": True, **data}, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return
    for line in render(data):
        print(line)
    print("configuration is valid")


# Commands defined in their own modules register on ``app`` when imported.
from . import (  # noqa: E402, F401
    _backfill_cmds,
    _collector_cmds,
    _gap_cmds,
    _market_cmds,
)


def main() -> None:  # pragma: no cover - console-script shim
    """Console entry point."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()


# ``apihub archive …`` and ``apihub archiver`` register on ``app`` when imported.
from . import _archive_cmds  # noqa: E402, F401
