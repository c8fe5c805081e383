"""The hub under its own load, and stopping under load: real Redis, the real simulator, real
processes and signals. Every accepted request is answered exactly once, and successfully.

- one client, 300 calls at once (redis-py's default pool used to fail 101 of 200);
- a backlog of 600 requests waiting before any dispatcher runs, with a stale token in Redis
  and the token-keeper made to wait out an issuance window first;
- ``apihub up`` stopped by two SIGINTs 200 ms apart under a queued load, then started again;
- the same through ``uv run`` in a terminal (a pseudo-terminal and a real Ctrl-C).
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import termios
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import anyio
import httpx
import pytest
import redis.asyncio as aioredis

from apihub_broker_sim import KIS_PRICE
from apihub_core import (
    HubClient,
    Keys,
    ResponseReceived,
    TokenDeferred,
    decode_outcome,
    decode_token_event,
)
from apihub_dispatcher import open_dispatcher
from apihub_runtime import Secret, Settings, StoredToken, TokenStore, load_token_key
from apihub_testing import async_wait_until, wait_until
from apihub_token_keeper import open_token_keeper

REPO = Path(__file__).resolve().parents[2]


async def _outcomes(redis: aioredis.Redis, keys: Keys) -> Counter[str]:
    """How many outcomes the response stream holds per request id (must be one each)."""
    counts: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for _id, fields in await redis.xrange(keys.responses):
        outcome = decode_outcome(fields)
        counts[outcome.request_id] += 1
        kinds[type(outcome).__name__] += 1
    assert set(kinds) <= {ResponseReceived.__name__}, f"failures on the response stream: {kinds}"
    return counts


async def _call_all(hub: HubClient, n: int, *, wait_s: float, into: list[str]) -> None:
    """``n`` concurrent current-price calls, each allowed ``wait_s``; every one must answer
    200. Their request ids are appended to ``into`` as the answers come."""

    async def one() -> None:
        response = await hub.execute("KIS", "FHKST01010100", KIS_PRICE, timeout=wait_s)
        assert response.status == 200
        assert response.body["rt_cd"] == "0"
        into.append(response.request_id)

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)


@pytest.mark.anyio
@pytest.mark.timeout(60)
@pytest.mark.usefixtures("dispatcher")
async def test_one_client_with_300_calls_at_once(
    hub: HubClient, redis: aioredis.Redis, keys: Keys
) -> None:
    ids: list[str] = []
    await _call_all(hub, 300, wait_s=45, into=ids)
    assert len(set(ids)) == 300
    outcomes = await _outcomes(redis, keys)
    assert set(outcomes) == set(ids)
    assert set(outcomes.values()) == {1}


@pytest.mark.anyio
@pytest.mark.timeout(90)
async def test_a_backlog_of_600_with_a_stale_token_is_answered(
    hub: HubClient,
    settings: Settings,
    redis: aioredis.Redis,
    keys: Keys,
    sim_admin: httpx.AsyncClient,
) -> None:
    # A token the broker no longer honours, and a keeper that must first wait out the app key's
    # issuance window (as after a restart within a minute of the last issuance).
    store = TokenStore(redis, load_token_key(settings.data_dir))
    expires = datetime.now(UTC) + timedelta(hours=6)
    await store.put(
        keys.token("KIS", "default"),
        StoredToken(Secret("stale-" + "x" * 80), int(expires.timestamp() * 1000), 0, fence=1),
    )
    await redis.set(keys.token_issue_window("KIS", "default"), "earlier-issuance", px=3_000)

    ids: list[str] = []
    with anyio.fail_after(80):
        async with anyio.create_task_group() as callers:
            callers.start_soon(partial(_call_all, hub, 600, wait_s=75, into=ids))

            async def all_queued() -> bool:
                return await redis.xlen(keys.requests) == 600

            await async_wait_until(all_queued, timeout=30)
            async with (
                open_token_keeper(settings) as keeper,
                open_dispatcher(settings) as dispatcher,
                anyio.create_task_group() as services,
            ):
                await services.start(keeper.run)
                await services.start(dispatcher.run)
                await async_wait_until(lambda: len(ids) == 600, timeout=70)
                dispatcher.stop()
                keeper.stop()

    outcomes = await _outcomes(redis, keys)
    assert set(outcomes) == set(ids)
    assert set(outcomes.values()) == {1}
    stats = (await sim_admin.get("/__sim/stats")).json()
    assert sum(stats["token_issuances"]["KIS"].values()) == 1, "one new token for the backlog"
    tokens = [decode_token_event(f) for _id, f in await redis.xrange(keys.tokens)]
    assert any(isinstance(e, TokenDeferred) for e in tokens), "the keeper said it waited"


# -- stopping `apihub up` under load -----------------------------------------------------------


class ApihubUp:
    """``apihub up`` as a child process (its log in a file), against the test's Redis and the
    session simulator, so a restart finds the same Redis, tokens and broker."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, **popen: object) -> None:
        self.log = log
        self._log_file = log.open("ab")
        self.proc = subprocess.Popen(
            argv, env=env, stdout=self._log_file, stderr=subprocess.STDOUT, **popen
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        wait_until(
            lambda: "apihub ready" in self.text() or self.proc.poll() is not None,
            timeout=timeout,
            message="apihub up never got ready",
        )
        assert self.proc.poll() is None, self.text()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._log_file.close()


@pytest.fixture
def up_env(redis_url: str, sim_url: str, hub_namespace: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "APIHUB_CONFIG"}}
    # The load is the callers' own: the services that make calls of their own (the sentinel's
    # backfills, the collector's polls) are off, so "nothing left pending" means the load.
    config = tmp_path / "apihub.toml"
    config.write_text("[sentinel]\nenabled = false\n\n[collector]\nenabled = false\n")
    env.update(
        {
            "APIHUB_CONFIG": str(config),
            "REDIS_URL": redis_url,
            "APIHUB_NAMESPACE": hub_namespace,
            "APIHUB_DATA_DIR": str(tmp_path / "hub"),
            "APIHUB_KIS_BASE_URL": sim_url,
            "APIHUB_KIWOOM_BASE_URL": sim_url,
            # A queue builds up: 40 calls a second, so most of the load waits for permits.
            "APIHUB_KIS_RATE_PER_S": "40",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


StartUp = Callable[[str], ApihubUp]


@pytest.fixture
def start_up(up_env: dict[str, str], tmp_path: Path) -> Iterator[StartUp]:
    """``start_up(name)``: ``apihub up`` started and ready; every one is killed at teardown."""
    started: list[ApihubUp] = []

    def start(name: str) -> ApihubUp:
        argv = [sys.executable, "-m", "apihub_cli", "up", "--log-level", "INFO"]
        hub = ApihubUp(argv, up_env, tmp_path / f"{name}.log")
        started.append(hub)
        hub.wait_ready()
        return hub

    yield start
    for hub in started:
        hub.close()


@pytest.mark.anyio
@pytest.mark.timeout(120)
async def test_two_sigints_under_load_then_a_restart_answer_everything_once(
    start_up: StartUp,
    redis_url: str,
    hub_namespace: str,
    redis: aioredis.Redis,
    sim_admin: httpx.AsyncClient,
) -> None:
    keys = Keys(hub_namespace)
    # Each call spends 0.8 s at the broker, so the drain has calls to finish when the signals
    # come, and more wait behind them for permits.
    slow = {
        "match": {"tr_id": "FHKST01010100"},
        "count": -1,
        "action": {"kind": "delay", "delay_ms": 800},
    }
    (await sim_admin.post("/__sim/faults", json=slow)).raise_for_status()
    first = start_up("first")
    ids: list[str] = []
    async with (
        HubClient.from_url(redis_url, namespace=hub_namespace) as hub,
        anyio.create_task_group() as callers,
    ):
        callers.start_soon(partial(_call_all, hub, 200, wait_s=90, into=ids))
        await async_wait_until(lambda: len(ids) >= 20, timeout=30)
        # A terminal's Ctrl-C under `uv run` reaches the hub twice, ~200 ms apart.
        first.proc.send_signal(signal.SIGINT)
        await anyio.sleep(0.2)  # the gap between the two signals is the scenario itself
        first.proc.send_signal(signal.SIGINT)
        status = await anyio.to_thread.run_sync(lambda: first.proc.wait(timeout=20))
        log = first.text()
        assert status == 0, log
        assert len(ids) < 200, "the stop came while requests were still queued"
        second = start_up("second")
        await async_wait_until(lambda: len(ids) == 200, timeout=60)
        second.proc.send_signal(signal.SIGTERM)
        assert await anyio.to_thread.run_sync(lambda: second.proc.wait(timeout=20)) == 0

    assert "Traceback" not in log
    assert "received SIGINT: draining" in log
    assert "received SIGINT: already draining" in log
    # The dispatcher's own drain line (the reconciler and the token-keeper report theirs too).
    (drained,) = [
        line for line in log.splitlines() if "dispatcher-" in line and "drained: " in line
    ]
    assert " 0 cancelled;" in drained, "nothing had to be cancelled: the drain finished its calls"
    finished = int(drained.split("drained: ")[1].split(" finished")[0])
    assert finished > 0, "calls at the broker when the signals came were seen through"
    assert "apihub stopped: in-flight requests finished" in log
    left = int(drained.split(" entries left pending")[0].rsplit("; ", 1)[1])
    assert left > 0, "requests still waiting were handed back to the group"
    outcomes = await _outcomes(redis, keys)
    assert set(outcomes) == set(ids)
    assert set(outcomes.values()) == {1}, "every request was answered exactly once"
    assert (await redis.xpending(keys.requests, "dispatcher"))["pending"] == 0


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.fail("this test runs `uv run apihub up`: uv must be on PATH (`uv run pytest`)")
    return uv


@pytest.mark.timeout(120)
def test_ctrl_c_through_uv_run_in_a_terminal_drains_and_exits_zero(
    up_env: dict[str, str], tmp_path: Path
) -> None:
    master, terminal = pty.openpty()

    def controlling_terminal() -> None:
        # A session of its own with the pty as its terminal: ^C reaches uv and the hub alike.
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    argv = [_uv(), "run", "--frozen", "apihub", "up", "--log-level", "INFO"]
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env=up_env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        preexec_fn=controlling_terminal,
    )
    os.close(terminal)
    screen = bytearray()
    try:
        _read_until(master, screen, b"Ctrl-C to stop", timeout=90)
        os.write(master, b"\x03")  # the terminal's interrupt character
        status = proc.wait(timeout=20)
        _read_until(master, screen, b"", timeout=1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)
    text = screen.decode(errors="replace")
    assert status == 0, text
    assert "received SIGINT: draining" in text
    assert "apihub stopped: in-flight requests finished" in text
    assert "Traceback" not in text
    assert "KeyboardInterrupt" not in text


def _read_until(master: int, screen: bytearray, marker: bytes, *, timeout: float) -> None:
    """Read the terminal into ``screen`` until ``marker`` shows (or, for ``b""``, until the
    other side is closed or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker and marker in screen:
            return
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every process holding the terminal has exited
                break
            if not chunk:
                break
            screen.extend(chunk)
    if marker and marker not in screen:
        raise AssertionError(f"{marker!r} never appeared: {screen.decode(errors='replace')}")
