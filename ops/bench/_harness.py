"""What the benchmarks share: child processes, the simulator, Redis readiness, percentiles.

Every benchmark runs its parts in separate processes (a ``Child`` each, output in a log file),
so no component borrows another's event loop or CPU accounting.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import signal
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

import httpx
import redis
from rich.console import Console

from apihub_core import DISPATCHER_GROUP, TOKEN_KEEPER_GROUP, Keys

TR_ID: Final = "FHKST01010100"
"""The TR every benchmark calls: KIS current price, cheap for the simulator and the hub alike."""
PARAMS: Final = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}

READY_RE: Final = re.compile(r"ready at (\S+)")
START_TIMEOUT_S: Final = 60.0
NAGLE_STALL_MS: Final = 20.0

console = Console(highlight=False, width=max(132, Console().width))


def percentile(samples: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default) of ``samples``; NaN when empty."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# -- processes -------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads), from ``/proc``."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = raw.rpartition(")")[2].split()
    # After "pid (comm)": state is field 3, utime 14, stime 15 (proc(5)).
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


class Child:
    """A child process started by the bench, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C at the terminal reaches only the bench, whose finally
                # blocks then stop the children in order.
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the child is still running."""
        return self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the child's output."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no output)"

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (the dispatcher drains on it), SIGKILL after ``timeout``; always reaped.

        Not SIGINT: a child of a shell without job control inherits SIGINT ignored.
        """
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait()


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The bench's environment without apihub/Redis settings, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("APIHUB_") and not key.startswith("REDIS_URL")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def wait_for_ready_line(child: Child, deadline: float) -> str | None:
    while time.monotonic() < deadline:
        match = READY_RE.search(child.log_tail(20_000))
        if match:
            return match.group(1)
        if not child.alive():
            return None
        time.sleep(0.05)
    return None


def start_sim(workdir: Path, tag: str, *options: str) -> tuple[Child, str]:
    """Start ``apihub sim`` (unthrottled unless ``options`` say otherwise, e.g.
    ``--kis-rate-limit 18``) on a free port; return it and its base URL. Warns if keep-alive
    answers stall (a lost ``TCP_NODELAY`` costs ~40 ms each)."""
    argv = [sys.executable, *("-m", "apihub_cli", "sim", "--port", "0", "--log-level", "WARNING")]
    argv += options
    child = Child(f"sim-{tag}", argv, child_env({}), workdir / f"sim-{tag}.log")
    url = wait_for_ready_line(child, time.monotonic() + START_TIMEOUT_S)
    if not url:
        child.stop()
        raise RuntimeError(f"the broker simulator did not start:\n{child.log_tail()}")
    url = url.rstrip("/")
    stall = keepalive_ms(url)
    if stall >= NAGLE_STALL_MS:
        console.print(f"  [red]the simulator answers keep-alive requests in {stall:.0f} ms[/]")
    return child, url


def keepalive_ms(url: str, requests: int = 8) -> float:
    """Median time of repeated requests on one kept-alive connection (an unknown path)."""
    times: list[float] = []
    with httpx.Client(timeout=5.0) as client:
        for _ in range(requests):
            t0 = time.perf_counter()
            client.get(f"{url}/apihub-bench-probe")
            times.append((time.perf_counter() - t0) * 1000.0)
    return percentile(times[2:], 50)


def start_service(
    module: str,
    name: str,
    env: dict[str, str],
    log_path: Path,
    redis_url: str,
    stream: str,
    group: str,
) -> Child:
    """Start ``python -m <module>`` and wait until its consumer group on ``stream`` exists."""
    child = Child(name, [sys.executable, "-m", module], env, log_path)
    try:
        wait_for_group(child, redis_url, stream, group)
    except BaseException:
        child.stop()
        raise
    return child


def wait_for_group(child: Child, redis_url: str, stream: str, group: str) -> None:
    """Block until ``group`` exists on ``stream`` (the services signal readiness right after
    creating it, reading from id 0, so nothing appended from then on is missed). Not "has a
    consumer": Redis 6.2 registers a consumer only once XREADGROUP returns something."""
    deadline = time.monotonic() + START_TIMEOUT_S
    with redis.Redis.from_url(redis_url) as client:
        while time.monotonic() < deadline:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited:\n{child.log_tail()}")
            with contextlib.suppress(redis.ResponseError):
                groups = client.xinfo_groups(stream)
                if any(g.get("name") in (group.encode(), group) for g in groups):
                    return
            time.sleep(0.05)
    raise RuntimeError(f"{child.name} did not join its group:\n{child.log_tail()}")


def fresh_app_key() -> tuple[str, str]:
    """A random KIS-shaped app key (36 chars) and secret (180 chars), never reused."""
    alphabet = string.ascii_letters + string.digits
    key = "PSBENCH" + "".join(secrets.choice(alphabet) for _ in range(29))
    secret = "".join(secrets.choice(alphabet + "+/") for _ in range(180))
    return key, secret


def start_hub(
    workdir: Path, redis_url: str, namespace: str, env: dict[str, str], dispatchers: int
) -> list[Child]:
    """A token-keeper and ``dispatchers`` dispatcher processes on ``namespace``, each ready
    (its consumer group exists); keeper first, so stop them in reverse."""
    children = [
        start_service(
            "apihub_token_keeper",
            "token-keeper",
            env,
            workdir / "keeper.log",
            redis_url,
            Keys(namespace).tokens,
            TOKEN_KEEPER_GROUP,
        )
    ]
    try:
        for n in range(dispatchers):
            children.append(
                start_service(
                    "apihub_dispatcher",
                    f"dispatcher-{n}",
                    env,
                    workdir / f"dispatcher-{n}.log",
                    redis_url,
                    Keys(namespace).requests,
                    DISPATCHER_GROUP,
                )
            )
    except BaseException:
        for child in reversed(children):
            child.stop()
        raise
    return children
