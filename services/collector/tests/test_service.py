"""The collector as a process and its composition root: ``python -m apihub_collector`` runs
until SIGTERM and drains; what it refuses to start with; how it idles; Redis trouble is logged
and survived."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import anyio
import pytest
import redis.asyncio as aioredis

from apihub_collector import Collector, open_collector
from apihub_collector.__main__ import main
from apihub_core import ConfigurationError, HubClient, HubUnavailable, Keys, Provider
from apihub_dispatcher import Dispatcher
from apihub_marketdata import KST, TradingCalendar
from apihub_runtime import ExitCode, MarketClock, MarketSettings, Settings, WatchEntry
from apihub_testing import async_wait_until

StartCollector = Callable[..., AbstractAsyncContextManager[Collector]]
SCALP = (WatchEntry(provider=Provider.KIS, symbols=("005930",), mode="scalp"),)


def test_python_m_answers_help_and_refuses_options() -> None:
    with pytest.raises(SystemExit) as helped:
        main(["-h"])
    assert helped.value.code == 0
    with pytest.raises(SystemExit) as refused:
        main(["--bogus"])
    assert refused.value.code == ExitCode.USAGE


def test_the_process_idles_without_a_watchlist_and_drains_on_sigterm(
    redis_url: str, hub_namespace: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "APIHUB_NAMESPACE": hub_namespace,
        "APIHUB_DATA_DIR": str(tmp_path),
        # Real-looking credentials: no demo watchlist, so nothing is ever called.
        "APIHUB_KIS_APP_KEY": "k" * 36,
        "APIHUB_KIS_APP_SECRET": "s" * 180,
    }
    env.pop("APIHUB_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "apihub_collector"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "collector ready" in line:
                break
        assert "collector ready" in lines[-1], lines
        assert any("no watchlist" in line for line in lines), lines
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert "collector stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.mark.anyio
async def test_the_collector_needs_a_redis_url() -> None:
    with pytest.raises(ConfigurationError, match="needs REDIS_URL"):
        async with open_collector(Settings()):
            pass


@pytest.mark.anyio
async def test_a_bad_calendar_override_is_a_configuration_error(
    settings: Settings, tmp_path: Path
) -> None:
    broken = replace(settings, market=MarketSettings(calendar_override=tmp_path / "none.toml"))
    with pytest.raises(ConfigurationError, match=r"none\.toml"):
        async with open_collector(broken):
            pass


@pytest.mark.anyio
async def test_the_krx_calendar_is_the_default(settings: Settings) -> None:
    async with open_collector(settings) as collector:
        assert collector.name == "collector"
        assert [t.symbol for t in collector.targets["scalp"]] == ["005930"]


@pytest.mark.anyio
async def test_polling_needs_a_calendar(settings: Settings, aredis: aioredis.Redis) -> None:
    assert settings.redis_url
    async with HubClient.from_url(settings.redis_url, namespace=settings.namespace) as hub:
        collector = Collector(aredis, hub, settings, None)
        with pytest.raises(ConfigurationError, match="no trading calendar"):
            await collector.run()


@pytest.mark.anyio
async def test_an_unreadable_poll_record_stops_the_start(
    settings: Settings, calendar: TradingCalendar, aredis: aioredis.Redis
) -> None:
    async with open_collector(settings, calendar=calendar) as collector:
        await aredis.set(collector.polls_key, "not a hash")
        with pytest.raises(HubUnavailable, match="cannot read"):
            await collector.run()


@pytest.mark.anyio
async def test_real_accounts_without_a_watchlist_idle_with_one_line(
    settings: Settings,
    calendar: TradingCalendar,
    aredis: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "apihub.collector")
    real = {key: replace(account, demo=False) for key, account in settings.accounts.items()}
    async with (
        open_collector(replace(settings, accounts=real), calendar=calendar) as collector,
        anyio.create_task_group() as tg,
    ):
        await tg.start(collector.run)
        collector.stop()
    assert caplog.text.count("idle (nothing to collect: no watchlist (add [[collector.watch]]") == 1


@pytest.mark.anyio
async def test_kiwoom_scalp_symbols_are_left_out_and_said_so(
    start_collector: StartCollector,
    market_clock: Callable[[datetime], Awaitable[None]],
    aredis: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "apihub.collector")
    await market_clock(datetime(2025, 3, 23, 10, 0, tzinfo=KST))  # a Sunday: nothing asked
    watch = (*SCALP, WatchEntry(provider=Provider.KIWOOM, symbols=("000660",), mode="scalp"))
    async with start_collector(watch=watch) as collector:
        assert [t.key for t in collector.unsupported] == ["KIWOOM:000660"]
    assert "scalp mode reads KIS only for now; left out: KIWOOM:000660" in caplog.text


@pytest.mark.anyio
async def test_redis_trouble_is_logged_and_survived(
    hub: Dispatcher,
    start_collector: StartCollector,
    aredis: aioredis.Redis,
    keys: Keys,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "apihub.collector")
    # Keys of the wrong type make every write to them fail the way a lost Redis would.
    await aredis.delete(keys.market_clock)
    await aredis.set(keys.market_clock, "not a hash")
    await aredis.set(keys.collector, "not a stream")
    await aredis.set(f"{keys.namespace}:collector-counts:collector", "not a hash")

    def logged(text: str) -> Callable[[], bool]:
        return lambda: text in caplog.text

    async with start_collector(watch=SCALP, scalp_interval_s=0.05) as collector:
        await async_wait_until(logged("cannot read the market clock"), timeout=20)
        await aredis.delete(keys.market_clock)
        await MarketClock.anchored(datetime(2025, 3, 21, 10, 30, tzinfo=KST), frozen=True).publish(
            aredis, keys
        )
        await async_wait_until(logged("KIS:005930: Redis write failed"), timeout=20)
        await async_wait_until(logged("counters not updated"), timeout=20)
        assert "state not written" in caplog.text
        await aredis.delete(keys.collector, collector.counts_key)

        async def recorded() -> bool:
            return int(await aredis.hget(collector.counts_key, "snapshots") or 0) >= 1

        await async_wait_until(recorded, timeout=20)
    assert await aredis.xlen(keys.collector) >= 1
