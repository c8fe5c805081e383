"""Process lifecycle: drain on SIGINT/SIGTERM and logging set-up."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterator

import anyio
import pytest

from apihub_runtime import configure_logging, stop_on_signal
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


@pytest.mark.anyio
@pytest.mark.usefixtures("restore_signal_handlers")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_stop_on_signal_calls_every_stop(
    signum: signal.Signals, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []
    before = signal.getsignal(signum)
    caplog.set_level(logging.INFO, logger="apihub.lifecycle")
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_on_signal, lambda: calls.append("a"), lambda: calls.append("b"))
            # The receiver is open once the loop has replaced the handler.
            await async_wait_until(lambda: signal.getsignal(signum) != before, timeout=WAIT)
            os.kill(os.getpid(), signum)
    assert calls == ["a", "b"]
    assert f"received {signum.name}: draining" in caplog.text


@pytest.mark.anyio
@pytest.mark.usefixtures("restore_signal_handlers")
async def test_stop_on_signal_does_nothing_until_a_signal_arrives() -> None:
    calls: list[str] = []
    before = signal.getsignal(signal.SIGTERM)
    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_on_signal, lambda: calls.append("stop"))
        await async_wait_until(lambda: signal.getsignal(signal.SIGTERM) != before, timeout=WAIT)
        tg.cancel_scope.cancel()
    assert calls == []


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
