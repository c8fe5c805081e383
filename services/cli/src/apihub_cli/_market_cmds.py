"""``apihub market``: see the archive fill, break the simulated feed, watch it heal.

``status`` summarises the archive and the gaps; ``break`` and ``clear`` arm and remove
conditions on the simulator ``apihub up`` embeds (its URL is advertised at
``<ns>:simulator``), for demos and drills. Against a real broker there is nothing to break.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from apihub_core import Keys
from apihub_runtime import ExitCode

from ._help import CONTEXT_SETTINGS, Command, Group
from ._redis_job import redis_job
from .main import ConfigOption, _fail, _redis_url_for_client, _settings, app

market_app = typer.Typer(
    name="market",
    help="See the archive fill, break the simulated feed and watch it heal.",
    no_args_is_help=True,
    context_settings=CONTEXT_SETTINGS,
    cls=Group,
)
app.add_typer(market_app)
out = Console(highlight=False)

RedisUrl = Annotated[
    str | None,
    typer.Option("--redis-url", metavar="URL", help="Hub Redis (default: REDIS_URL, else `up`'s)."),
]


def _simulator(url: str, keys: Keys) -> str:
    async def read(redis: Any) -> str | None:
        raw = await redis.get(keys.simulator)
        return raw.decode() if isinstance(raw, bytes) else raw

    sim = redis_job(url, read)
    if not sim:
        _fail(
            "this hub has no simulator to break (`apihub up` with demo credentials embeds one)",
            code=ExitCode.CONFIGURATION,
        )
    return str(sim)


def _admin(sim: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    try:
        response = httpx.request(method, f"{sim}{path}", json=body, timeout=10.0)
    except httpx.HTTPError as exc:
        _fail(f"the simulator at {sim} did not answer: {exc}", code=ExitCode.HUB_UNAVAILABLE)
    if response.status_code >= 400:
        _fail(f"the simulator refused it: {response.text[:300]}", code=ExitCode.USAGE)
    return response.json()


@market_app.command("break", cls=Command)
def market_break(
    symbols: Annotated[list[str], typer.Argument(metavar="SYMBOL", help="Six-digit codes.")],
    minutes: Annotated[
        float, typer.Option(metavar="MINUTES", help="How long, in simulated minutes.")
    ] = 10.0,
    redis_url: RedisUrl = None,
    config: ConfigOption = None,
) -> None:
    """Make the simulator refuse SYMBOL's quotations for MINUTES (simulated): the archive
    misses those bars, the sentinel finds the gap and heals it once the outage ends."""
    if not 0 < minutes <= 24 * 60:
        _fail(f"--minutes must be above 0 and at most a day, not {minutes:g}", code=ExitCode.USAGE)
    settings = _settings(config)
    url = _redis_url_for_client(settings, redis_url)
    sim = _simulator(url, Keys(settings.namespace))
    spec = {
        "outage": {
            "symbols": list(symbols),
            "for_s": minutes * 60,
            "action": "quote_refused",
        }
    }
    made = _admin(sim, "POST", "/__sim/conditions", spec)
    out.print(
        f"the simulator refuses quotations for {', '.join(symbols)} for {minutes:g} simulated "
        f"minutes (condition {made.get('id')}); follow the healing with `apihub gaps`"
    )


@market_app.command("clear", cls=Command)
def market_clear(redis_url: RedisUrl = None, config: ConfigOption = None) -> None:
    """Remove every condition armed on the simulator (outages end at once)."""
    settings = _settings(config)
    url = _redis_url_for_client(settings, redis_url)
    sim = _simulator(url, Keys(settings.namespace))
    _admin(sim, "DELETE", "/__sim/conditions")
    out.print("the simulator's conditions are cleared")


@market_app.command("status", cls=Command)
def market_status(redis_url: RedisUrl = None, config: ConfigOption = None) -> None:
    """The market clock, the open gaps and what the archive announced."""
    settings = _settings(config)
    url = _redis_url_for_client(settings, redis_url)
    keys = Keys(settings.namespace)

    async def read(redis: Any) -> dict[str, Any]:
        from apihub_runtime import MarketClock

        clock = await MarketClock.read(redis, keys)
        return {
            "market_time": clock.now().strftime("%Y-%m-%d %H:%M:%S KST"),
            "clock": f"simulated x{clock.rate:g}" if clock.simulated else "wall clock",
            "open_gaps": int(await redis.zcard(keys.open_gaps)),
            "archive_events": int(await redis.xlen(keys.archive)),
            "gap_events": int(await redis.xlen(keys.gaps)),
        }

    facts = redis_job(url, read)
    for name, value in facts.items():
        sys.stdout.write(f"{name.replace('_', ' ')}: {value}\n")
