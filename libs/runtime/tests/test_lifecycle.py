"""Process lifecycle: stop signals, the drain they start, process exit, logging set-up."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest
from anyio.abc import TaskStatus

from apihub_core import (
    CircuitOpen,
    ConfigurationError,
    HubUnavailable,
    OutcomeUnknown,
    UpstreamRateLimited,
)
from apihub_runtime import ExitCode, StopSignals, configure_logging, run_process, serve
from apihub_runtime._lifecycle import STOP_SIGNALS
from apihub_testing import async_wait_until

WAIT = 10


@pytest.fixture
def restore_signal_handlers() -> Iterator[None]:
    saved = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def test_stop_signals_are_sigint_and_sigterm() -> None:
    assert set(STOP_SIGNALS) == {signal.SIGINT, signal.SIGTERM}


class Clock:
    """A hand-moved clock for StopSignals' force window."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_signals(clock: Clock) -> tuple[StopSignals, list[str]]:
    calls: list[str] = []
    signals = StopSignals(
        "svc",
        on_drain=lambda: calls.append("drain"),
        on_force=lambda: calls.append("force"),
        clock=clock,
    )
    return signals, calls


def test_the_first_signal_drains_and_a_repeat_is_absorbed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    signals, calls = make_signals(Clock())
    caplog.set_level(logging.WARNING, logger="apihub.lifecycle")
    signals.handle(signal.SIGINT)
    signals.handle(signal.SIGINT)
    assert calls == ["drain"]
    assert signals.draining
    assert signals.forced_by is None
    assert signals.exit_status == 0
    assert "received SIGINT: draining" in caplog.text
    assert "received SIGINT: already draining" in caplog.text


def test_a_third_signal_within_the_window_forces_the_stop() -> None:
    clock = Clock()
    signals, calls = make_signals(clock)
    signals.handle(signal.SIGTERM)
    clock.now += 0.2  # uv's forwarded duplicate
    signals.handle(signal.SIGTERM)
    clock.now += 2.0
    signals.handle(signal.SIGTERM)
    signals.handle(signal.SIGTERM)
    assert calls == ["drain", "force"]
    assert signals.forced_by is signal.SIGTERM
    assert signals.exit_status == 128 + signal.SIGTERM


def test_signals_spread_wider_than_the_window_never_force() -> None:
    clock = Clock()
    signals, calls = make_signals(clock)
    for _ in range(6):
        signals.handle(signal.SIGINT)
        clock.now += 3.0  # three signals always span more than the 5 s window
    assert calls == ["drain"]
    assert signals.exit_status == 0


@pytest.mark.anyio
@pytest.mark.usefixtures("restore_signal_handlers")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_watch_receives_real_signals(signum: signal.Signals) -> None:
    signals, calls = make_signals(Clock())
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            await tg.start(signals.watch)
            os.kill(os.getpid(), signum)
            await async_wait_until(lambda: calls, timeout=WAIT)
            tg.cancel_scope.cancel()
    assert calls == ["drain"]


class FakeService:
    """A service that works until stopped; ``hang`` makes its drain never finish."""

    def __init__(self, *, hang: bool = False) -> None:
        self.hang = hang
        self.events: list[str] = []
        self._stop = anyio.Event()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self.events.append("run")
        task_status.started()
        try:
            await self._stop.wait()
            if self.hang:
                await anyio.Event().wait()
            self.events.append("drained")
        except anyio.get_cancelled_exc_class():
            self.events.append("cancelled")
            raise

    def stop(self) -> None:
        self.events.append("stop")
        self._stop.set()


@contextlib.asynccontextmanager
async def opened(service: FakeService) -> AsyncIterator[FakeService]:
    service.events.append("open")
    try:
        yield service
    finally:
        service.events.append("close")


async def _signal_when(predicate: object, signum: signal.Signals, times: int = 1) -> None:
    await async_wait_until(predicate, timeout=WAIT)  # type: ignore[arg-type]
    for _ in range(times):
        os.kill(os.getpid(), signum)


@pytest.mark.anyio
@pytest.mark.usefixtures("restore_signal_handlers")
async def test_serve_drains_on_two_signals_and_exits_zero() -> None:
    service = FakeService()
    ready: list[str] = []
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_signal_when, lambda: ready, signal.SIGINT, 2)
            status = await serve(opened(service), name="svc", on_ready=lambda: ready.append("r"))
    assert status == 0
    assert service.events == ["open", "run", "stop", "drained", "close"]


@pytest.mark.anyio
@pytest.mark.usefixtures("restore_signal_handlers")
async def test_serve_forced_by_three_signals_cancels_the_drain() -> None:
    service = FakeService(hang=True)
    ready: list[str] = []
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_signal_when, lambda: ready, signal.SIGTERM, 3)
            status = await serve(opened(service), name="svc", on_ready=lambda: ready.append("r"))
    assert status == 128 + signal.SIGTERM
    assert service.events == ["open", "run", "stop", "cancelled", "close"]


@pytest.mark.anyio
@pytest.mark.usefixtures("restore_signal_handlers")
async def test_a_signal_during_start_up_cancels_the_start_up() -> None:
    entered = anyio.Event()

    @contextlib.asynccontextmanager
    async def slow_to_open() -> AsyncIterator[FakeService]:
        entered.set()
        await anyio.Event().wait()  # never ready
        yield FakeService()  # pragma: no cover - never reached

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_signal_when, entered.is_set, signal.SIGINT)
            status = await serve(slow_to_open(), name="svc")
    assert status == 0


def test_run_process_returns_the_status_and_ignores_late_signals(
    restore_signal_handlers: None,
) -> None:
    async def main() -> int:
        return 7

    assert run_process(main, name="svc") == 7
    assert all(signal.getsignal(s) is signal.SIG_IGN for s in STOP_SIGNALS)


@pytest.mark.usefixtures("restore_signal_handlers")
@pytest.mark.parametrize(
    ("error", "status", "line"),
    [
        (ConfigurationError("REDIS_URL is not a URL"), 3, "svc: REDIS_URL is not a URL\n"),
        (HubUnavailable("Redis unreachable"), 24, "svc: unavailable: Redis unreachable\n"),
        (CircuitOpen("breaker open"), 23, "svc: unavailable: breaker open\n"),
        (
            UpstreamRateLimited("too fast", code="EGW00201"),
            21,
            "svc: rate_limited: [EGW00201] too fast\n",
        ),
        (OutcomeUnknown("order may have left"), 30, "svc: outcome_unknown: order may have left\n"),
    ],
)
def test_run_process_turns_errors_into_one_line(
    error: Exception, status: int, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def main() -> int:
        raise error

    assert run_process(main, name="svc") == ExitCode(status) == status
    assert capsys.readouterr().err == line


@pytest.mark.usefixtures("restore_signal_handlers")
def test_a_ctrl_c_outside_serve_is_exit_130_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def main() -> int:
        raise KeyboardInterrupt

    assert run_process(main, name="svc") == 130
    assert capsys.readouterr().err == ""


@contextlib.contextmanager
def bare_root_logger() -> Iterator[logging.Logger]:
    """The root logger without pytest's capture handlers, restored afterwards.

    ``logging.basicConfig`` does nothing while the root logger has handlers, and pytest attaches
    its capture handlers for the test body, so they are taken off inside the test itself.
    """
    root = logging.getLogger()
    saved_handlers = root.handlers[:]
    saved_level = root.level
    httpx_level = logging.getLogger("httpx").level
    for handler in saved_handlers:
        root.removeHandler(handler)
    try:
        yield root
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
            handler.close()
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
        logging.getLogger("httpx").setLevel(httpx_level)


def test_configure_logging_sets_level_and_one_line_format() -> None:
    with bare_root_logger() as root:
        configure_logging("debug")
        level = root.level
        handlers = root.handlers[:]
        formatter = handlers[0].formatter if handlers else None
    assert level == logging.DEBUG
    assert len(handlers) == 1
    assert isinstance(handlers[0], logging.StreamHandler)
    assert formatter is not None
    record = logging.LogRecord("apihub.x", logging.WARNING, __file__, 1, "hello %s", ("w",), None)
    line = formatter.format(record)
    assert line.endswith("WARNING apihub.x: hello w")
    assert "\n" not in line


def test_configure_logging_defaults_to_info_and_quietens_httpx() -> None:
    with bare_root_logger() as root:
        configure_logging()
        level = root.level
        httpx_level = logging.getLogger("httpx").level
    assert level == logging.INFO
    assert httpx_level == logging.WARNING
