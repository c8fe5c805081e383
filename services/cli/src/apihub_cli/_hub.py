"""``apihub up``: embedded Redis (when no ``REDIS_URL``), the simulator and every service (the
token-keeper, a dispatcher, the reconciler, and the market-data services: archiver, sentinel,
collector) in one process, drained on SIGINT/SIGTERM.

Against the simulator the market runs on the simulator's clock, published for every service
(``MarketClock``). By default (``market_time="auto"``) that is real time while KRX is open and,
the rest of the time, a simulated trading day from 10:30, so the demo works at any hour.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from datetime import datetime, time, timedelta
from typing import Protocol

import anyio
from anyio.abc import TaskStatus

from apihub_archiver import open_archiver
from apihub_broker_sim import SimClock, SimConfig, SimServer
from apihub_collector import open_collector
from apihub_core import Keys, masked_url, redis_client
from apihub_dispatcher import Dispatcher, open_dispatcher
from apihub_embedded import EmbeddedRedis
from apihub_marketdata import KST, TradingCalendar, krx_calendar
from apihub_reconciler import Reconciler, open_reconciler
from apihub_runtime import MarketClock, Settings, serve
from apihub_sentinel import open_sentinel
from apihub_token_keeper import TokenKeeper, open_token_keeper

log = logging.getLogger("apihub.up")

UP_SHUTDOWN_GRACE_S = 7.0
"""In-flight requests get this long at shutdown, so `apihub up` exits within 10 s."""

SIM_STATE_FILE = "sim-state.json"
"""The embedded simulator's tokens and issuance windows, in the data directory (digests only)."""


DEMO_START: time = time(10, 30)
"""Where a simulated trading day starts when the real market is closed: the collector finds
an hour and a half of bars, the sentinel heals the morning and the days before."""

CLOCK_PUBLISH_S = 1.0


class _Runnable(Protocol):
    async def run(self, *, task_status: TaskStatus[None] = ...) -> None: ...

    def stop(self) -> None: ...


def market_start(market_time: str, calendar: TradingCalendar, now: datetime) -> datetime | None:
    """Where the simulator's clock starts: ``None`` for real time.

    ``auto`` is real time while KRX is open and otherwise the latest trading day (today if it
    has one) at :data:`DEMO_START`; ``real`` is real time; anything else is an ISO time (KST
    when it has no offset)."""
    if market_time == "real":
        return None
    if market_time == "auto":
        if calendar.is_open(now):
            return None
        day = now.date()
        if not calendar.is_trading_day(day) or now.time() < DEMO_START:
            day = calendar.previous_trading_day(day)
        session = calendar.session(day)
        start = datetime.combine(day, DEMO_START, tzinfo=KST)
        return max(start, session.open + timedelta(minutes=30)) if session else start
    try:
        when = datetime.fromisoformat(market_time)
    except ValueError:
        raise ValueError(
            f"--market-time {market_time!r} is not auto, real or an ISO time"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=KST)


def needs_simulator(settings: Settings) -> bool:
    """Whether any account runs on demo credentials with no broker URL of its own."""
    return any(acc.demo and not acc.base_url for acc in settings.accounts.values())


class Hub:
    """Every service of ``apihub up`` as one :class:`~apihub_runtime.Service`.

    The reconciler and the dispatcher drain first (the reconciler's follow-ups are only
    inquiries and waits, released at once); the token-keeper stops only after the dispatcher,
    because requests still in flight may need a token.
    """

    def __init__(
        self,
        settings: Settings,
        keeper: TokenKeeper,
        dispatcher: Dispatcher,
        reconciler: Reconciler,
        market: Sequence[_Runnable] = (),
        clock: SimClock | None = None,
        sim_url: str | None = None,
    ) -> None:
        self.settings = settings
        self._keeper = keeper
        self._dispatcher = dispatcher
        self._reconciler = reconciler
        self._market = tuple(market)
        self._clock = clock
        self.sim_url = sim_url
        self._stopping = anyio.Event()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run every service until :meth:`stop` and all have drained."""
        async with anyio.create_task_group() as services:
            if self._clock is not None:
                await services.start(self._publish_clock, self._clock)
            await self._advertise_simulator()
            await services.start(self._keeper.run)
            await services.start(self._dispatch)
            await services.start(self._reconciler.run)
            for service in self._market:
                await services.start(service.run)
            task_status.started()

    async def _advertise_simulator(self) -> None:
        assert self.settings.redis_url is not None  # noqa: S101 - open_hub sets it
        redis = redis_client(self.settings.redis_url, max_connections=1)
        keys = Keys(self.settings.namespace)
        try:
            if self.sim_url:
                await redis.set(keys.simulator, self.sim_url)
            else:
                await redis.delete(keys.simulator)
        finally:
            await redis.aclose()

    async def _publish_clock(
        self, clock: SimClock, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Keep the simulator's clock published as the market clock (the admin API can move
        it at any time)."""
        assert self.settings.redis_url is not None  # noqa: S101 - open_hub sets it
        redis = redis_client(self.settings.redis_url, max_connections=2)
        keys = Keys(self.settings.namespace)
        try:
            last: tuple[float, bool, int] | None = None
            started = False
            while not self._stopping.is_set():
                now = clock.now()
                current = MarketClock.anchored(now, rate=clock.rate, frozen=clock.frozen)
                shape = (current.rate, current.frozen, current.market_ms - current.wall_ms)
                # Republished when the rate, the freeze or the offset (beyond 50 ms) changed.
                if last is None or shape[:2] != last[:2] or abs(shape[2] - last[2]) > 50:
                    await current.publish(redis, keys)
                    last = shape
                if not started:
                    started = True
                    task_status.started()
                with anyio.move_on_after(CLOCK_PUBLISH_S):
                    await self._stopping.wait()
        finally:
            with anyio.CancelScope(shield=True):
                await redis.aclose()

    async def _dispatch(self, *, task_status: TaskStatus[None]) -> None:
        try:
            await self._dispatcher.run(task_status=task_status)
        finally:
            self._keeper.stop()

    def stop(self) -> None:
        """Drain the market services, the reconciler and the dispatcher (then the keeper)."""
        self._stopping.set()
        for service in self._market:
            service.stop()
        self._reconciler.stop()
        self._dispatcher.stop()


@asynccontextmanager
async def open_hub(
    settings: Settings,
    *,
    sim_port: int = 0,
    force_sim: bool = False,
    announce: Callable[[str], None] = print,
    market_time: str = "auto",
    clock_rate: float = 1.0,
    market: bool = True,
) -> AsyncIterator[Hub]:
    """Start Redis (embedded unless ``settings.redis_url``), the simulator when an account
    needs it, and the services; everything started is stopped on exit."""
    embedded: EmbeddedRedis | None = None
    if not settings.redis_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        embedded = EmbeddedRedis(settings.data_dir, advertise=True)
        # Started from this (the main) thread: the server is tied to the starting thread's
        # life, and worker threads come and go.
        url = embedded.start()
        settings = settings.with_redis_url(url)
        announce(f"embedded redis-server at {masked_url(url)} (AOF in {settings.data_dir}/)")
    try:
        async with AsyncExitStack() as stack:
            sim_clock: SimClock | None = None
            sim_url: str | None = None
            if force_sim or needs_simulator(settings):
                calendar = krx_calendar(settings.market.calendar_override)
                start = market_start(market_time, calendar, datetime.now(KST))
                # Its tokens live beside the hub's data, so a restarted hub keeps its token.
                simulator = SimServer(
                    SimConfig(), port=sim_port, state_file=settings.data_dir / SIM_STATE_FILE
                )
                sim = await stack.enter_async_context(simulator)
                if start is not None:
                    sim.clock.set(start, frozen=False)
                if clock_rate != 1.0:
                    sim.clock.set_rate(clock_rate)
                sim_clock = sim.clock
                sim_url = str(sim.url).rstrip("/")
                settings = settings.with_demo_base_url(sim.url)
                announce(f"broker simulator (KIS + Kiwoom) at {sim.url}")
                if start is not None or clock_rate != 1.0:
                    announce(
                        f"simulated market time {sim.clock.now():%Y-%m-%d %H:%M} KST"
                        f" at {clock_rate:g}x (the real market is closed; --market-time real"
                        " follows the wall clock)"
                    )
            grace = min(settings.dispatcher.shutdown_grace_s, UP_SHUTDOWN_GRACE_S)
            settings = replace(
                settings, dispatcher=replace(settings.dispatcher, shutdown_grace_s=grace)
            )
            keeper = await stack.enter_async_context(open_token_keeper(settings))
            dispatcher = await stack.enter_async_context(open_dispatcher(settings))
            reconciler = await stack.enter_async_context(open_reconciler(settings))
            services: list[_Runnable] = []
            if market:
                if sim_clock is None:
                    # No simulator: the market is the real one, on the wall clock.
                    await _forget_market_clock(settings)
                if settings.archive.enabled:
                    services.append(await stack.enter_async_context(open_archiver(settings)))
                if settings.sentinel.enabled:
                    services.append(await stack.enter_async_context(open_sentinel(settings)))
                if settings.collector.enabled:
                    collector = open_collector(settings, drain_grace_s=2.0)
                    services.append(await stack.enter_async_context(collector))
            yield Hub(settings, keeper, dispatcher, reconciler, services, sim_clock, sim_url)
    finally:
        if embedded is not None:
            embedded.stop()


async def _forget_market_clock(settings: Settings) -> None:
    assert settings.redis_url is not None  # noqa: S101 - open_hub sets it
    redis = redis_client(settings.redis_url, max_connections=1)
    try:
        await MarketClock.wall().publish(redis, Keys(settings.namespace))
    finally:
        await redis.aclose()


async def run_hub(
    settings: Settings,
    *,
    sim_port: int = 0,
    force_sim: bool = False,
    announce: Callable[[str], None] = print,
    market_time: str = "auto",
    clock_rate: float = 1.0,
) -> int:
    """Start everything, announce ``ready``, run until a stop signal, drain; the exit status."""
    opened: list[Hub] = []

    @asynccontextmanager
    async def hub() -> AsyncIterator[Hub]:
        async with open_hub(
            settings,
            sim_port=sim_port,
            force_sim=force_sim,
            announce=announce,
            market_time=market_time,
            clock_rate=clock_rate,
        ) as running:
            opened.append(running)
            yield running

    def ready() -> None:
        resolved = opened[0].settings
        announced.append(True)
        announce(
            f"apihub ready: redis={masked_url(resolved.redis_url or '')} "
            f"namespace={resolved.namespace} (Ctrl-C to stop)"
        )

    announced: list[bool] = []
    status = await serve(hub(), name="apihub", on_ready=ready)
    if status:
        announce("apihub stopped (forced: requests it held stay pending for the next start)")
    elif announced:
        announce("apihub stopped: in-flight requests finished")
    else:
        announce("apihub stopped before it was ready")
    return status
