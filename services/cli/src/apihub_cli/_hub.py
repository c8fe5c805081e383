"""``apihub up``: embedded Redis (when no ``REDIS_URL``), the simulator and every service (the
token-keeper, a dispatcher and the reconciler) in one process, drained on SIGINT/SIGTERM."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace

import anyio
from anyio.abc import TaskStatus

from apihub_broker_sim import SimConfig, SimServer
from apihub_core import masked_url
from apihub_dispatcher import Dispatcher, open_dispatcher
from apihub_embedded import EmbeddedRedis
from apihub_reconciler import Reconciler, open_reconciler
from apihub_runtime import Settings, serve
from apihub_token_keeper import TokenKeeper, open_token_keeper

log = logging.getLogger("apihub.up")

UP_SHUTDOWN_GRACE_S = 7.0
"""In-flight requests get this long at shutdown, so `apihub up` exits within 10 s."""

SIM_STATE_FILE = "sim-state.json"
"""The embedded simulator's tokens and issuance windows, in the data directory (digests only)."""


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
    ) -> None:
        self.settings = settings
        self._keeper = keeper
        self._dispatcher = dispatcher
        self._reconciler = reconciler

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run every service until :meth:`stop` and all have drained."""
        async with anyio.create_task_group() as services:
            await services.start(self._keeper.run)
            await services.start(self._dispatch)
            await services.start(self._reconciler.run)
            task_status.started()

    async def _dispatch(self, *, task_status: TaskStatus[None]) -> None:
        try:
            await self._dispatcher.run(task_status=task_status)
        finally:
            self._keeper.stop()

    def stop(self) -> None:
        """Drain the reconciler and the dispatcher (then the keeper)."""
        self._reconciler.stop()
        self._dispatcher.stop()


@asynccontextmanager
async def open_hub(
    settings: Settings,
    *,
    sim_port: int = 0,
    force_sim: bool = False,
    announce: Callable[[str], None] = print,
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
            if force_sim or needs_simulator(settings):
                # Its tokens live beside the hub's data, so a restarted hub keeps its token.
                simulator = SimServer(
                    SimConfig(), port=sim_port, state_file=settings.data_dir / SIM_STATE_FILE
                )
                sim = await stack.enter_async_context(simulator)
                settings = settings.with_demo_base_url(sim.url)
                announce(f"broker simulator (KIS + Kiwoom) at {sim.url}")
            grace = min(settings.dispatcher.shutdown_grace_s, UP_SHUTDOWN_GRACE_S)
            settings = replace(
                settings, dispatcher=replace(settings.dispatcher, shutdown_grace_s=grace)
            )
            keeper = await stack.enter_async_context(open_token_keeper(settings))
            dispatcher = await stack.enter_async_context(open_dispatcher(settings))
            reconciler = await stack.enter_async_context(open_reconciler(settings))
            yield Hub(settings, keeper, dispatcher, reconciler)
    finally:
        if embedded is not None:
            embedded.stop()


async def run_hub(
    settings: Settings,
    *,
    sim_port: int = 0,
    force_sim: bool = False,
    announce: Callable[[str], None] = print,
) -> int:
    """Start everything, announce ``ready``, run until a stop signal, drain; the exit status."""
    opened: list[Hub] = []

    @asynccontextmanager
    async def hub() -> AsyncIterator[Hub]:
        async with open_hub(
            settings, sim_port=sim_port, force_sim=force_sim, announce=announce
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
