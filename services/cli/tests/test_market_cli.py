"""The market-data commands: usage errors in one line, status listings, and where `apihub up`
starts the simulated market."""

from __future__ import annotations

import json
import threading
from datetime import date, datetime
from pathlib import Path

import anyio
import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from typer.testing import CliRunner

from apihub_backfill import JobRecord, JobSpec
from apihub_cli import app
from apihub_cli._hub import market_start
from apihub_core import Keys
from apihub_marketdata import KST, krx_calendar
from apihub_runtime import ExitCode
from apihub_sentinel import Gap, GapStore

CAL = krx_calendar()


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    # In a thread of its own: the command runs its own event loop, like from a shell.
    box: list[tuple[int, str]] = []

    def invoke() -> None:
        result = CliRunner().invoke(app, list(args), env=env)
        box.append((result.exit_code, result.output))

    worker = threading.Thread(target=invoke)
    worker.start()
    worker.join(timeout=60)
    (outcome,) = box
    return outcome


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["backfill", "005930"], "--from is required"),
        (["backfill", "005930", "--from", "2026-13-01"], "is not a date"),
        (["backfill", "005930", "--from", "2026-12-01", "--interval", "5m"], "--interval"),
        (["backfill", "005930", "--from", "2026-12-02", "--to", "2026-12-01"], "after"),
        (["backfill", "005930", "--from", "2026-12-01", "--provider", "NOPE"], "unknown provider"),
        (["backfill", "005930", "--from", "2026-12-01", "--account", "x"], "not configured"),
        (["gaps", "--format", "xml"], "--format"),
        (["up", "--clock-rate", "0"], "--clock-rate"),
        (["up", "--market-time", "someday"], "--market-time"),
        (["sim", "--clock-rate", "-2"], "--clock-rate"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], says: str, tmp_path: Path) -> None:
    env = {"REDIS_URL": "redis://127.0.0.1:1/0", "APIHUB_DATA_DIR": str(tmp_path)}
    code, output = run(*args, env=env)
    assert code == ExitCode.USAGE, output
    assert says in output
    assert "Traceback" not in output


def test_without_a_hub_backfill_says_how_to_start_one(tmp_path: Path) -> None:
    code, output = run(
        "backfill", "status", env={"APIHUB_DATA_DIR": str(tmp_path), "REDIS_URL": ""}
    )
    assert code == ExitCode.HUB_UNAVAILABLE
    assert "apihub up" in output


def test_an_unreachable_redis_is_hub_unavailable(tmp_path: Path) -> None:
    env = {"REDIS_URL": "redis://127.0.0.1:1/0", "APIHUB_DATA_DIR": str(tmp_path)}
    for args in (["backfill", "status"], ["gaps"]):
        code, output = run(*args, env=env)
        assert code == ExitCode.HUB_UNAVAILABLE, output
        assert "Traceback" not in output


@pytest.fixture
def hub_env(redis_url: str, hub_namespace: str, tmp_path: Path) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "APIHUB_NAMESPACE": hub_namespace,
        "APIHUB_DATA_DIR": str(tmp_path),
        "COLUMNS": "200",
    }


async def test_status_lists_jobs_and_gaps(
    aredis: aioredis.Redis, hub_env: dict[str, str], hub_namespace: str
) -> None:
    assert run("backfill", "status", env=hub_env) == (0, "no backfill jobs\n")
    assert run("gaps", env=hub_env) == (0, "no open gaps\n")
    keys = Keys(hub_namespace)
    spec = JobSpec(
        provider="KIS", symbols=("005930",), first=date(2026, 12, 1), last=date(2026, 12, 1)
    )
    record = JobRecord(
        job_id=spec.job_id, spec=spec, status="done", total=4, done=4, updated_at_ms=1
    )

    await aredis.hset(keys.backfill_job(spec.job_id), "record", msgspec.json.encode(record))
    await aredis.zadd(keys.backfill_jobs, {spec.job_id: 1})
    bars = [datetime(2026, 12, 1, 9, m, tzinfo=KST) for m in (1, 2)]
    await GapStore(aredis, keys).create(
        Gap(
            gap_id="KIS:005930:1m:202612010901:1",
            provider="KIS",
            symbol="005930",
            interval="1m",
            bars=bars,
            detected_at_ms=1,
        )
    )
    code, output = run("backfill", "status", env=hub_env)
    assert code == 0
    assert spec.job_id in output
    assert "4/4" in output
    code, output = run("gaps", "--format", "json", env=hub_env)
    assert code == 0
    (row,) = [json.loads(line) for line in output.splitlines()]
    assert (row["symbol"], row["missing"], row["first"]) == ("005930", 2, bars[0].isoformat())
    code, output = run("gaps", env=hub_env)
    assert "KIS:005930:1m" in output


def test_the_demo_market_is_real_time_while_krx_is_open() -> None:
    open_now = datetime(2026, 12, 2, 11, 0, tzinfo=KST)
    assert market_start("auto", CAL, open_now) is None
    assert market_start("real", CAL, open_now) is None


def test_the_demo_market_is_a_recent_trading_day_when_krx_is_closed() -> None:
    evening = datetime(2026, 12, 2, 20, 0, tzinfo=KST)  # Wednesday after the close
    assert market_start("auto", CAL, evening) == datetime(2026, 12, 2, 10, 30, tzinfo=KST)
    early = datetime(2026, 12, 3, 7, 0, tzinfo=KST)  # Thursday before the open
    assert market_start("auto", CAL, early) == datetime(2026, 12, 2, 10, 30, tzinfo=KST)
    sunday = datetime(2026, 12, 6, 12, 0, tzinfo=KST)
    assert market_start("auto", CAL, sunday) == datetime(2026, 12, 4, 10, 30, tzinfo=KST)
    # The year's first session opens at 10:00: the demo starts half an hour into it.
    first = datetime(2026, 1, 2, 20, 0, tzinfo=KST)
    assert market_start("auto", CAL, first) == datetime(2026, 1, 2, 10, 30, tzinfo=KST)


def test_an_iso_market_time_is_kst_unless_it_says_otherwise() -> None:
    now = datetime(2026, 12, 2, 20, 0, tzinfo=KST)
    assert market_start("2026-12-01T09:05", CAL, now) == datetime(2026, 12, 1, 9, 5, tzinfo=KST)
    assert market_start("2026-12-01T00:05+00:00", CAL, now) == datetime(
        2026, 12, 1, 9, 5, tzinfo=KST
    )
    with pytest.raises(ValueError, match="market-time"):
        market_start("soon", CAL, now)


def test_break_and_clear_reach_the_hubs_simulator(
    redis_url: str, hub_env: dict[str, str], hub_namespace: str, sim_url: str
) -> None:
    keys = Keys(hub_namespace)
    code, output = run("market", "break", "005930", env=hub_env)
    assert code == ExitCode.CONFIGURATION
    assert "no simulator" in output

    async def advertise() -> None:
        redis = aioredis.Redis.from_url(redis_url)
        try:
            await redis.set(keys.simulator, sim_url)
        finally:
            await redis.aclose()

    anyio.run(advertise)
    code, output = run("market", "break", "005930", "000660", "--minutes", "3", env=hub_env)
    assert code == 0, output
    (outage,) = httpx.get(f"{sim_url}/__sim/conditions", timeout=10).json()["outage"]
    assert sorted(outage["symbols"]) == ["000660", "005930"]
    assert run("market", "break", "005930", "--minutes", "0", env=hub_env)[0] == ExitCode.USAGE
    code, output = run("market", "status", env=hub_env)
    assert code == 0
    assert "open gaps: 0" in output
    assert "wall clock" in output
    assert run("market", "clear", env=hub_env)[0] == 0
    assert httpx.get(f"{sim_url}/__sim/conditions", timeout=10).json()["outage"] == []
