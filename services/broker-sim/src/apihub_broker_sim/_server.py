"""Running the simulator: in the current event loop, as an anyio task, or in a thread.

All three bind a loopback socket first (port 0 picks a free one), so the URL is known
before uvicorn starts, and all three shut uvicorn down gracefully within a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Generator
from pathlib import Path
from types import TracebackType

import anyio
import uvicorn
from anyio.abc import TaskGroup, TaskStatus
from starlette.applications import Starlette

from ._app import create_app
from ._clock import SimClock
from ._config import SimConfig
from ._http import install_log_filter
from ._state import SimState

__all__ = ["SimServer", "ThreadedSimServer", "run_simulator"]

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0


class _Server(uvicorn.Server):
    """uvicorn without signal handlers: the host process (pytest, the CLI) owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Install nothing."""
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket's proto says TCP. With proto 0, Nagle plus delayed ACKs add ~40 ms to
    # every keep-alive answer.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _uvicorn(app: Starlette) -> _Server:
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        log_config=None,
        lifespan="off",
        http="h11",
        timeout_graceful_shutdown=2,
        date_header=False,  # the app sets Date from the simulated clock
    )
    install_log_filter()
    return _Server(config)


class _SimServerBase:
    """What every way of running the simulator shares: the app, its state and the socket."""

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: SimClock | None = None,
        state_file: Path | None = None,
    ) -> None:
        """Prepare (but do not start) a server on ``host:port``; ``state_file`` keeps its
        tokens and issuance windows across restarts."""
        self.config = config or SimConfig()
        self.app = create_app(self.config, clock, state_file=state_file)
        self.state: SimState = self.app.state.sim
        self.clock: SimClock = self.state.clock
        self.host = host
        self.port = port
        self.url = ""
        self._server: _Server | None = None
        self._sock: socket.socket | None = None


class SimServer(_SimServerBase):
    """The simulator on a real loopback socket, served by the current event loop.

    Use as ``async with SimServer(config) as sim:`` and point clients at ``sim.url``; KIS
    and Kiwoom share that base URL. ``sim.clock`` and ``sim.state`` give direct access to
    the clock and the recorder, tokens and faults.
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: SimClock | None = None,
        state_file: Path | None = None,
    ) -> None:
        """Prepare (but do not start) a server on ``host:port``."""
        super().__init__(config, host=host, port=port, clock=clock, state_file=state_file)
        self._group: TaskGroup | None = None
        self._serve_scope: anyio.CancelScope | None = None
        self._done = anyio.Event()

    async def __aenter__(self) -> SimServer:
        """Bind, start uvicorn and return once it is listening."""
        self._sock = _bind(self.host, self.port)
        self.url = _url(self.host, self._sock)
        self._server = _uvicorn(self.app)
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(self._serve)
        with anyio.move_on_after(_START_TIMEOUT_S):
            # uvicorn exposes readiness only as a flag, so poll it.
            while not self._server.started and not self._done.is_set():  # noqa: ASYNC110
                await anyio.sleep(0.01)
        if not self._server.started:
            await self._stop()
            raise RuntimeError("the simulator's server did not start")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Shut down gracefully, forcing it after a few seconds."""
        await self._stop()

    async def _serve(self) -> None:
        server, sock = self._server, self._sock
        if server is None or sock is None:
            return
        try:
            # Shielded so that cancelling the host task cannot skip uvicorn's shutdown,
            # which is what closes the listening socket and open connections.
            with anyio.CancelScope(shield=True) as scope:
                self._serve_scope = scope
                await server.serve(sockets=[sock])
        finally:
            self._done.set()

    async def _stop(self) -> None:
        server, group = self._server, self._group
        if server is None or group is None:
            return
        with anyio.CancelScope(shield=True):
            server.should_exit = True
            with anyio.move_on_after(_STOP_TIMEOUT_S):
                await self._done.wait()
            if not self._done.is_set():
                server.force_exit = True
                if self._serve_scope is not None:
                    self._serve_scope.cancel()
        # Outside the shield: a task group must be exited from its own cancel scope.
        await group.__aexit__(None, None, None)
        if self._sock is not None:
            self._sock.close()
        self._server = None
        self._group = None


async def run_simulator(
    config: SimConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; for ``url = await task_group.start(run_simulator, ...)``."""
    async with SimServer(config, host=host, port=port) as server:
        task_status.started(server.url)
        await anyio.sleep_forever()


class ThreadedSimServer(_SimServerBase):
    """The simulator in a background thread with its own event loop.

    For synchronous tests and session fixtures: ``with ThreadedSimServer() as sim:``.
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: SimClock | None = None,
        state_file: Path | None = None,
    ) -> None:
        """Prepare (but do not start) a server on ``host:port``."""
        super().__init__(config, host=host, port=port, clock=clock, state_file=state_file)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        """Start serving and block until the socket accepts connections."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._sock = _bind(self.host, self.port)
        self.url = _url(self.host, self._sock)
        self._server = _uvicorn(self.app)
        self._thread = threading.Thread(target=self._run, name="broker-sim", daemon=True)
        self._thread.start()
        ready = threading.Event()
        for _ in range(int(_START_TIMEOUT_S / 0.01)):
            if self._server.started or not self._thread.is_alive():
                ready.set()
                break
            ready.wait(0.01)
        if not self._server.started:
            self.stop()
            raise RuntimeError("the simulator did not start") from self._error

    def stop(self) -> None:
        """Stop gracefully, forcing it after a few seconds; safe to call twice."""
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(_STOP_TIMEOUT_S)
            if thread.is_alive():
                server.force_exit = True
                thread.join(_STOP_TIMEOUT_S)
        if self._sock is not None:
            self._sock.close()
        self._server = None
        self._thread = None

    def _run(self) -> None:
        server, sock = self._server, self._sock
        if server is None or sock is None:
            return
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as error:  # handed to start(), which re-raises it
            self._error = error

    def __enter__(self) -> ThreadedSimServer:
        """Start and return self."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop."""
        self.stop()
