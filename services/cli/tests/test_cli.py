"""The `apihub` command line, run as a user runs it: real processes, real Redis, the simulator."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from apihub_cli import app
from apihub_runtime import ExitCode
from apihub_testing import wait_until

PRICE_ARGS = ["-p", "FID_COND_MRKT_DIV_CODE=J", "-p", "FID_INPUT_ISCD=005930"]


def _clean_env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("APIHUB_") and k not in {"REDIS_URL", "REDIS_URL_GATEKEEPER"}
    }
    env["APIHUB_DATA_DIR"] = str(data_dir)
    return env


def _apihub(
    *args: str, env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "apihub_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Hub:
    """`apihub up` in a child process, with its stdout lines readable."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "apihub_cli", "up", "--log-level", "WARNING"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, word: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"apihub up exited before {word!r}: {self.output}")
            self.output.append(line)
            if word in line:
                return line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "hubdata"


@pytest.fixture
def running_hub(data_dir: Path) -> Iterator[Hub]:
    hub = Hub(_clean_env(data_dir))
    try:
        hub.wait_for("ready")
        yield hub
    finally:
        hub.stop()


def _redis_pid(data_dir: Path) -> int:
    return int(json.loads((data_dir / "hub.json").read_text())["pid"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_call_and_graceful_stop(running_hub: Hub, data_dir: Path) -> None:
    redis_pid = _redis_pid(data_dir)
    assert _alive(redis_pid)

    result = _apihub("call", "KIS", "FHKST01010100", *PRICE_ARGS, env=running_hub.env)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["rt_cd"] == "0"
    assert body["output"]["stck_shrn_iscd"] == "005930"

    kiwoom = _apihub(
        "call",
        "KIWOOM",
        "ka10081",
        "-p",
        "stk_cd=005930",
        "-p",
        "base_dt=20250321",
        "-p",
        "upd_stkpc_tp=1",
        env=running_hub.env,
    )
    assert kiwoom.returncode == 0, kiwoom.stderr
    assert json.loads(kiwoom.stdout)["stk_dt_pole_chart_qry"]

    running_hub.proc.send_signal(signal.SIGTERM)
    # A drained stop exits 0 (a forced one 128 + signal) and says nothing was left pending.
    assert running_hub.proc.wait(timeout=15) == 0
    stopped = running_hub.wait_for("stopped")
    assert "in-flight requests finished" in stopped, stopped
    assert running_hub.proc.stderr is not None
    stderr = running_hub.proc.stderr.read()
    assert "received SIGTERM: draining" in stderr, stderr
    assert "forcing the stop" not in stderr
    assert not (data_dir / "hub.json").exists()
    wait_until(
        lambda: not _alive(redis_pid), timeout=10, message="the embedded redis-server is gone"
    )
    assert list(data_dir.rglob("*.aof")), "Redis persisted with AOF in the data directory"


def test_a_killed_hub_leaves_no_redis_behind(running_hub: Hub, data_dir: Path) -> None:
    redis_pid = _redis_pid(data_dir)
    running_hub.proc.kill()
    running_hub.proc.wait(timeout=10)
    # The kernel (PR_SET_PDEATHSIG) tells redis its parent died; it shuts down by itself.
    wait_until(lambda: not _alive(redis_pid), timeout=10, message="redis-server outlived its hub")
    # The stale discovery file does not block the next start.
    result = _apihub("call", "KIS", "FHKST01010100", *PRICE_ARGS, env=running_hub.env)
    assert result.returncode == ExitCode.HUB_UNAVAILABLE == 24
    assert "no running hub" in result.stderr


def test_call_errors_exit_non_zero_with_one_line(running_hub: Hub) -> None:
    result = _apihub("call", "KIS", "NOPE0000", env=running_hub.env)
    assert result.returncode == ExitCode.INVALID == 10
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("apihub: invalid:")
    assert "unknown_tr" in lines[0]


def test_call_bad_parameter_syntax(running_hub: Hub) -> None:
    result = _apihub("call", "KIS", "FHKST01010100", "-p", "novalue", env=running_hub.env)
    assert result.returncode == 2
    assert "KEY=VALUE" in result.stderr


def test_second_up_on_the_same_data_dir_is_refused(running_hub: Hub) -> None:
    result = _apihub("up", env=running_hub.env)
    assert result.returncode == ExitCode.CONFIGURATION == 3
    assert "already running" in result.stderr


def test_call_without_a_hub_says_how_to_start_one(data_dir: Path) -> None:
    result = _apihub("call", "KIS", "FHKST01010100", *PRICE_ARGS, env=_clean_env(data_dir))
    assert result.returncode == ExitCode.HUB_UNAVAILABLE
    assert "apihub up" in result.stderr


def test_bad_config_is_reported(tmp_path: Path, data_dir: Path) -> None:
    config = tmp_path / "apihub.toml"
    config.write_text("[accounts.kis.main]\napp_key = 'oops'\n")
    result = _apihub("call", "KIS", "X", "--config", str(config), env=_clean_env(data_dir))
    assert result.returncode == ExitCode.CONFIGURATION
    assert "must not hold credentials" in result.stderr


COMMANDS = [
    [],
    ["up"],
    ["call"],
    ["sim"],
    ["dispatcher"],
    ["token-keeper"],
    ["config"],
    ["config", "check"],
]


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("command", COMMANDS)
def test_help_everywhere(command: list[str], flag: str) -> None:
    result = CliRunner().invoke(app, [*command, flag])
    assert result.exit_code == 0
    assert "Usage" in result.output
    # Meaningful metavars (KEY=VALUE, SECONDS, FILE) or none for flags, never Python types.
    assert re.search(r"<[a-z\[\]|]+>", result.output) is None, result.output
    assert re.search(r"--help\s+-h\s", result.output), "-h is listed with --help"


def test_call_help_shows_meaningful_metavars() -> None:
    result = CliRunner().invoke(app, ["call", "-h"])
    for metavar in ("PROVIDER", "TR_ID", "KEY=VALUE", "SECONDS", "FILE", "--allow-unknown-params"):
        assert metavar in result.output


def test_version() -> None:
    result = _apihub("--version", env=os.environ.copy())
    assert result.returncode == 0
    assert re.fullmatch(r"apihub \d+\.\d+\.\d+\S*\n", result.stdout), result.stdout


def test_sim_runs_alone_until_signalled(data_dir: Path) -> None:
    latency = '{"latency": {"base_ms": 1, "jitter_ms": 2}}'
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "apihub_cli", "sim", "--port", "0"),
            *("--kis-rate-limit", "18", "--kiwoom-rate-limit", "2", "--condition", latency),
        ],
        env=_clean_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "ready at http://127.0.0.1:" in line
        url = line.split("ready at ")[1].split()[0]
        token = httpx.post(
            f"{url}/oauth2/token",
            json={"grant_type": "client_credentials", "appkey": "k" * 20, "secretkey": "s" * 20},
            timeout=10,
        )
        assert token.json()["return_code"] == 0
        conditions = httpx.get(f"{url}/__sim/conditions", timeout=10).json()
        assert conditions["latency"][0]["jitter_ms"] == 2, "--condition was armed"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert "stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("command", ["dispatcher", "token-keeper"])
def test_services_without_redis_say_what_to_set(data_dir: Path, command: str) -> None:
    result = _apihub(command, env=_clean_env(data_dir))
    assert result.returncode == ExitCode.HUB_UNAVAILABLE
    assert "REDIS_URL" in result.stderr


def test_a_malformed_sim_condition_is_refused(data_dir: Path) -> None:
    result = _apihub("sim", "--port", "0", "--condition", "{not json", env=_clean_env(data_dir))
    assert result.returncode == 2
    assert "bad simulator option" in result.stderr
