"""Redis restarted under a waiting caller (what a restart of ``apihub up`` does): the caller,
which keeps its client, is answered once the hub is back, and says so in two log lines."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest
import redis.asyncio as aioredis

from apihub_broker_sim import KIS_PRICE
from apihub_core import HubClient, Keys, Response
from apihub_dispatcher import open_dispatcher
from apihub_embedded import EmbeddedRedis
from apihub_runtime import load_settings
from apihub_testing import async_wait_until
from apihub_token_keeper import open_token_keeper

pytestmark = pytest.mark.anyio


async def test_a_caller_waiting_through_a_redis_restart_is_answered(
    tmp_path: Path, sim_url: str, hub_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="apihub.client")
    # Not tied to the starting thread: start() and stop() run in worker threads here.
    server = EmbeddedRedis(tmp_path / "redis", die_with_parent=False)
    url = server.start()
    keys = Keys(hub_namespace)
    answers: list[Response] = []
    try:
        settings = load_settings(
            env={
                "REDIS_URL": url,
                "APIHUB_NAMESPACE": hub_namespace,
                "APIHUB_DATA_DIR": str(tmp_path),
            }
        ).with_demo_base_url(sim_url)
        async with (
            HubClient.from_url(url, namespace=hub_namespace) as hub,
            aioredis.Redis.from_url(url) as probe,
            anyio.create_task_group() as tg,
        ):

            async def call() -> None:
                answers.append(await hub.execute("KIS", "FHKST01010100", KIS_PRICE, timeout=60))

            async def accepted() -> bool:
                return bool(await probe.xlen(keys.requests))

            tg.start_soon(call)
            # Accepted (on the stream, in the AOF) while no dispatcher runs; then Redis goes.
            await async_wait_until(accepted, timeout=10, message="the request never arrived")
            await anyio.to_thread.run_sync(server.stop)
            restarted = await anyio.to_thread.run_sync(server.start)
            assert restarted == url, "the restarted server took the port of last time"

            async with (
                open_token_keeper(settings) as keeper,
                open_dispatcher(settings) as dispatcher,
                anyio.create_task_group() as services,
            ):
                await services.start(keeper.run)
                await services.start(dispatcher.run)
                await async_wait_until(lambda: bool(answers), timeout=30, message="no answer")
                dispatcher.stop()
                keeper.stop()
    finally:
        server.stop()

    assert answers[0].status == 200
    assert answers[0].body["output"]["stck_prpr"]
    said = [r.getMessage() for r in caplog.records if r.name == "apihub.client"]
    # One line when Redis went and one when it was back, however many retries lay between.
    assert [m for m in said if "lost Redis" in m] == [
        "reply reader lost Redis (ConnectionError); retrying"
    ], said
    assert any(m.startswith("reply reader reached Redis again after") for m in said), said
