"""``apihub up``: embedded Redis (when no ``REDIS_URL``), the simulator and every service (the
token-keeper and a dispatcher) in one process, drained on SIGINT/SIGTERM."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import replace

import anyio
from anyio.abc import TaskStatus

from apihub_broker_sim import SimConfig, SimServer
from apihub_dispatcher import open_dispatcher
from apihub_embedded import EmbeddedRedis
from apihub_runtime import Settings, stop_on_signal
from apihub_token_keeper import open_token_keeper

log = logging.getLogger("apihub.up")

UP_SHUTDOWN_GRACE_S = 7.0
"""In-flight requests get this long at shutdown, so `apihub up` exits within 10 s."""


def needs_simulator(settings: Settings) -> bool:
    """Whether any account runs on demo credentials with no broker URL of its own."""
    return any(acc.demo and not acc.base_url for acc in settings.accounts.values())


async def run_hub(
    settings: Settings,
    *,
    sim_port: int = 0,
    force_sim: bool = False,
    announce: Callable[[str], None] = print,
    ready: Callable[[Settings], None] | None = None,
) -> None:
    """Start everything, announce ``ready``, run until a stop signal, then drain and return."""
    embedded: EmbeddedRedis | None = None
    if not settings.redis_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        embedded = EmbeddedRedis(settings.data_dir, advertise=True)
        # Started from this (the main) thread: the server is tied to the starting thread's
        # life, and worker threads come and go.
        url = embedded.start()
        settings = settings.with_redis_url(url)
        announce(f"embedded redis-server at {url} (AOF in {settings.data_dir}/)")
    try:
        async with AsyncExitStack() as stack:
            if force_sim or needs_simulator(settings):
                sim = await stack.enter_async_context(SimServer(SimConfig(), port=sim_port))
                settings = settings.with_demo_base_url(sim.url)
                announce(f"broker simulator (KIS + Kiwoom) at {sim.url}")
            grace = min(settings.dispatcher.shutdown_grace_s, UP_SHUTDOWN_GRACE_S)
            settings = replace(
                settings, dispatcher=replace(settings.dispatcher, shutdown_grace_s=grace)
            )
            keeper = await stack.enter_async_context(open_token_keeper(settings))
            dispatcher = await stack.enter_async_context(open_dispatcher(settings))

            async def dispatch(*, task_status: TaskStatus[None]) -> None:
                # The keeper outlives the dispatcher's drain: in-flight requests may still
                # need a token.
                try:
                    await dispatcher.run(task_status=task_status)
                finally:
                    keeper.stop()

            async with anyio.create_task_group() as signals:
                signals.start_soon(stop_on_signal, dispatcher.stop)
                # The inner group ends when every service has drained after stop().
                async with anyio.create_task_group() as services:
                    await services.start(keeper.run)
                    await services.start(dispatch)
                    announce(
                        f"apihub ready: redis={settings.redis_url} "
                        f"namespace={settings.namespace} (Ctrl-C to stop)"
                    )
                    if ready is not None:
                        ready(settings)
                signals.cancel_scope.cancel()
        announce("apihub stopped: in-flight requests finished")
    finally:
        if embedded is not None:
            embedded.stop()
