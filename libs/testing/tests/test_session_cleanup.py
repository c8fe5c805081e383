"""The session Redis is stopped even when tests fail or the interpreter just exits.

Each test runs a separate Python process (a real pytest session, or a bare script)
that starts a redis-server through the plugin's machinery and reports its pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from apihub_testing import wait_until

INNER_TEST = """
import redis


def test_records_the_pid_and_fails(redis_server, redis_url):
    assert redis_server.kind == "binary"
    with redis.Redis.from_url(redis_url) as client:
        pid = client.info("server")["process_id"]
    with open({pid_file!r}, "w") as fh:
        fh.write(str(pid))
    raise AssertionError("deliberate failure")
"""

ATEXIT_SCRIPT = """
import sys
from pathlib import Path

import redis

from apihub_testing._redis import running_redis

# Entered and never exited: only the atexit hook (or GC at shutdown) can stop it.
context = running_redis(Path(sys.argv[1]))
server = context.__enter__()
with redis.Redis.from_url(server.url) as client:
    print(client.info("server")["process_id"], flush=True)
"""


def _alive(pid: int) -> bool:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat_line.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _expect_exit(pid: int) -> None:
    """Wait for ``pid`` to exit; if it does not, kill it, so a failing test leaks no server."""
    try:
        wait_until(lambda: not _alive(pid), timeout=10, message=f"redis-server {pid} to exit")
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("APIHUB_TEST_REDIS_URL", None)
    env["APIHUB_TEST_DOCKER"] = "0"  # force the redis-server child process
    return env


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_redis_is_stopped_after_a_failing_session(tmp_path: Path) -> None:
    pid_file = tmp_path / "redis.pid.txt"
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(textwrap.dedent(INNER_TEST.format(pid_file=str(pid_file))))

    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "apihub_testing.plugin",
            "--rootdir",
            str(tmp_path),
            str(test_file),
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=20,  # well inside the per-test timeout, so a hang fails here
        check=False,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed" in result.stdout
    _expect_exit(int(pid_file.read_text()))


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_redis_is_stopped_at_interpreter_exit(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", ATEXIT_SCRIPT, str(tmp_path / "data")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=20,  # well inside the per-test timeout, so a hang fails here
        check=False,
    )

    assert result.returncode == 0, result.stderr
    _expect_exit(int(result.stdout.strip()))
