"""``apihub``: run the hub, call through it, run single services."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import anyio
import typer
from rich.console import Console

from apihub_core import PRIORITIES, ConfigurationError, HubClient, HubError
from apihub_embedded import EmbeddedRedisError, RedisServerNotFound, discover_redis_url
from apihub_runtime import (
    Service,
    Settings,
    configure_logging,
    configure_tracing,
    load_settings,
    run_process,
    serve,
)

from ._hub import run_hub
from ._idle import Idle

app = typer.Typer(
    name="apihub",
    help="An event-sourced API hub on Redis Streams for the KIS and Kiwoom broker APIs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="apihub.toml to read (default: ./apihub.toml if present)."),
]
LogLevel = Annotated[str, typer.Option("--log-level", help="Logging level.")]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config_path=config)
    except ConfigurationError as exc:
        _fail(str(exc), code=2)


def _fail(message: str, *, code: int = 1) -> NoReturn:
    err.print(f"apihub: {message}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


def _redis_url_for_client(settings: Settings, explicit: str | None) -> str:
    url = explicit or settings.redis_url or discover_redis_url(settings.data_dir)
    if not url:
        _fail(
            f"no running hub found (no REDIS_URL, nothing advertised in {settings.data_dir}/): "
            "start one with `apihub up` or set REDIS_URL"
        )
    return url


@app.command()
def up(
    config: ConfigOption = None,
    sim_port: Annotated[int, typer.Option(help="Port of the embedded simulator (0 = any).")] = 0,
    sim: Annotated[
        bool,
        typer.Option(
            "--sim/--no-sim",
            help="Start the simulator even when no account needs it (demo accounts use it).",
        ),
    ] = False,
    log_level: LogLevel = "INFO",
) -> None:
    """Run the whole hub in one process: Redis, the broker simulator and every service.

    Redis is embedded unless REDIS_URL is set; the simulator runs when an account has no real
    credentials (or with --sim).

    Prints a line containing `ready` when calls can be made; SIGINT/SIGTERM drain and stop it.
    """
    configure_logging(log_level)
    configure_tracing("apihub")
    settings = _settings(config)
    if not settings.redis_url:
        running = discover_redis_url(settings.data_dir)
        if running:
            _fail(
                f"a hub is already running on {running} (data dir {settings.data_dir}/); "
                "stop it first, or set REDIS_URL to add services to it"
            )
    try:
        status = run_process(
            lambda: run_hub(settings, sim_port=sim_port, force_sim=sim, announce=_say),
            name="apihub",
        )
    except (RedisServerNotFound, EmbeddedRedisError) as exc:
        _fail(str(exc))
    raise typer.Exit(status)


def _say(line: str) -> None:
    print(line, flush=True)


def _parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(f"parameter {pair!r} is not KEY=VALUE", code=2)
        params[key] = value
    return params


@app.command()
def call(
    provider: Annotated[str, typer.Argument(help="KIS or KIWOOM.")],
    tr_id: Annotated[str, typer.Argument(help="The broker's TR id, e.g. FHKST01010100, ka10081.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="A request parameter KEY=VALUE.")
    ] = None,
    account: Annotated[str | None, typer.Option(help="Account name (default account).")] = None,
    priority: Annotated[str, typer.Option(help=f"One of {', '.join(PRIORITIES)}.")] = "interactive",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 10.0,
    cont: Annotated[bool, typer.Option("--cont", help="Ask for the next page.")] = False,
    next_key: Annotated[str, typer.Option(help="Kiwoom next-key of the next page.")] = "",
    redis_url: Annotated[
        str | None, typer.Option("--redis-url", help="Hub Redis (default: REDIS_URL or `up`'s).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Call the broker through the hub and print the response body as JSON on stdout.

    Example: apihub call KIS FHKST01010100 -p FID_COND_MRKT_DIV_CODE=J -p FID_INPUT_ISCD=005930
    """
    settings = _settings(config)
    url = _redis_url_for_client(settings, redis_url)
    params = _parse_params(param or [])

    async def run() -> Any:
        async with HubClient.from_url(url, namespace=settings.namespace) as hub:
            return await hub.execute(
                provider,
                tr_id,
                params,
                account=account,
                priority=priority,  # type: ignore[arg-type]
                timeout=timeout,
                cont=cont,
                next_key=next_key,
            )

    try:
        response = anyio.run(run)
    except HubError as exc:
        _fail(f"{exc.error_class}: {exc}")
    json.dump(response.body, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    if response.has_more:
        hint = f" --next-key {response.next_key}" if response.next_key else ""
        err.print(f"more pages: repeat with --cont{hint}", markup=False, soft_wrap=True)


@app.command("sim")
def sim_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 = any free port).")] = 8700,
    seed: Annotated[int, typer.Option(help="Market data seed.")] = 20250321,
    kis_rate_limit: Annotated[
        int | None,
        typer.Option(help="Calls per sliding second per KIS app key (EGW00201 beyond; 18 real)."),
    ] = None,
    kiwoom_rate_limit: Annotated[
        int | None,
        typer.Option(help="Calls per sliding second per Kiwoom app key and api-id (1700 beyond)."),
    ] = None,
    condition: Annotated[
        list[str] | None,
        typer.Option(
            help='A standing condition as JSON, e.g. \'{"latency": {"base_ms": 5, '
            '"jitter_ms": 30}}\' (repeatable; see the simulator README).'
        ),
    ] = None,
    log_level: LogLevel = "INFO",
) -> None:
    """Run the KIS + Kiwoom broker simulator alone (Ctrl-C to stop)."""
    configure_logging(log_level)
    from apihub_broker_sim import SimConfig, SimServer

    try:
        conditions = tuple(json.loads(text) for text in condition or ())
        config = SimConfig(
            seed=seed,
            kis_rate_limit_per_s=kis_rate_limit,
            kiwoom_rate_limit_per_s=kiwoom_rate_limit,
            conditions=conditions,
        )
    except ValueError as exc:
        _fail(f"bad simulator option: {exc}", code=2)

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
        discovered = discover_redis_url(settings.data_dir)
        if not discovered:
            _fail("set REDIS_URL (or start `apihub up`, whose Redis is then found)", code=2)
        settings = settings.with_redis_url(discovered)
    return settings


def _serve(run: Callable[[Settings], Awaitable[int]], settings: Settings, name: str) -> None:
    raise typer.Exit(run_process(lambda: run(settings), name=name))


@app.command()
def dispatcher(config: ConfigOption = None, log_level: LogLevel = "INFO") -> None:
    """Run one dispatcher (consumer-group member) against REDIS_URL until SIGINT/SIGTERM.

    Needs a token-keeper running against the same Redis (`apihub token-keeper`, or `apihub up`).
    """
    configure_logging(log_level)
    configure_tracing("apihub-dispatcher")
    from apihub_dispatcher import run_dispatcher

    _serve(run_dispatcher, _service_settings(config), "apihub dispatcher")


@app.command("token-keeper")
def token_keeper(config: ConfigOption = None, log_level: LogLevel = "INFO") -> None:
    """Run the token-keeper (one token per app key for the whole fleet) until SIGINT/SIGTERM."""
    configure_logging(log_level)
    configure_tracing("apihub-token-keeper")
    from apihub_token_keeper import run_token_keeper

    _serve(run_token_keeper, _service_settings(config), "apihub token-keeper")


def main() -> None:  # pragma: no cover - console-script shim
    """Console entry point."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
