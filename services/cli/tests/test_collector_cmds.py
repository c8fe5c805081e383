"""``apihub collector`` runs the collector service; ``apihub collector status`` prints what
every collector of the hub has counted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from apihub_cli import app
from apihub_runtime import ExitCode


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("APIHUB_") and k not in {"REDIS_URL", "REDIS_URL_GATEKEEPER"}
    }
    return {**env, "APIHUB_DATA_DIR": str(tmp_path / "hubdata"), **extra}


@pytest.mark.parametrize("command", [["collector"], ["collector", "status"]])
def test_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "-h"])
    assert result.exit_code == 0
    assert "Usage" in result.output
    assert "<" not in result.output.replace("<ns>", "")


def test_status_prints_every_collectors_counters(redis_url: str, hub_namespace: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        client.hset(
            f"{hub_namespace}:collector-counts:collector",
            mapping={
                "state": "in_session",
                "detail": "session 2025-03-21",
                "updated_at_ms": 1742520600000,
                "swing_cycles": 3,
                "calls": 15,
                "snapshots": 40,
                "skipped": 2,
                "skipped_overrun": 2,
            },
        )
    env = {"APIHUB_NAMESPACE": hub_namespace}
    table = CliRunner().invoke(app, ["collector", "status", "--redis-url", redis_url], env=env)
    assert table.exit_code == 0, table.output
    assert "in_session" in table.output
    assert "40" in table.output
    raw = CliRunner().invoke(
        app, ["collector", "status", "--redis-url", redis_url, "--format", "json"], env=env
    )
    assert raw.exit_code == 0, raw.output
    (row,) = json.loads(raw.output)
    assert row["name"] == "collector"
    assert (row["state"], row["swing_cycles"], row["scalp_cycles"], row["calls"]) == (
        "in_session",
        3,
        0,
        15,
    )
    assert row["skipped_overrun"] == 2
    assert row["updated_at"].startswith("2025-03-")


def test_status_without_collectors(redis_url: str, hub_namespace: str) -> None:
    env = {"APIHUB_NAMESPACE": hub_namespace}
    result = CliRunner().invoke(app, ["collector", "status", "--redis-url", redis_url], env=env)
    assert result.exit_code == 0
    assert "no collector has reported" in result.output
    raw = CliRunner().invoke(
        app, ["collector", "status", "--redis-url", redis_url, "--format", "json"], env=env
    )
    assert json.loads(raw.output) == []


def test_status_refuses_a_bad_format_and_reports_a_missing_hub(tmp_path: Path) -> None:
    bad = CliRunner().invoke(app, ["collector", "status", "--format", "xml"])
    assert bad.exit_code == ExitCode.USAGE
    gone = CliRunner().invoke(app, ["collector", "status", "--redis-url", "redis://127.0.0.1:1/0"])
    assert gone.exit_code == ExitCode.HUB_UNAVAILABLE
    malformed = CliRunner().invoke(app, ["collector", "status", "--redis-url", "http://x"])
    assert malformed.exit_code == ExitCode.USAGE


def test_the_collector_runs_until_sigterm(
    redis_url: str, hub_namespace: str, tmp_path: Path
) -> None:
    # Real-looking credentials and no watchlist: it idles, and calls nothing.
    env = _env(
        tmp_path,
        REDIS_URL=redis_url,
        APIHUB_NAMESPACE=hub_namespace,
        APIHUB_KIS_APP_KEY="k" * 36,
        APIHUB_KIS_APP_SECRET="s" * 180,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "apihub_cli", "collector"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:  # ends at EOF if the process dies
            lines.append(line)
            if "collector ready" in line:
                break
        assert "collector ready" in lines[-1], lines
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert "collector stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


def test_the_collector_needs_a_hub(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "apihub_cli", "collector"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == ExitCode.HUB_UNAVAILABLE
    assert "no hub to join" in result.stderr
