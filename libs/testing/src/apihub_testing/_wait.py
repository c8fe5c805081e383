"""Bounded polling, so tests wait for a condition instead of sleeping for a guess."""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

import anyio

__all__ = ["async_wait_until", "wait_until"]

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.01,
    *,
    message: str | None = None,
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy.

    Returns that value. The predicate is always called at least once.

    Raises:
        TimeoutError: still falsy after ``timeout`` seconds; the message names the
            predicate (or is ``message``) and its last result.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(_timeout_message(predicate, timeout, result, message))
        time.sleep(interval)


async def async_wait_until(
    predicate: Callable[[], Awaitable[T]] | Callable[[], T],
    timeout: float = 10.0,  # noqa: ASYNC109 - mirrors wait_until; enforced by a cancel scope
    interval: float = 0.01,
    *,
    message: str | None = None,
) -> T:
    """Async :func:`wait_until`: ``predicate`` may be a plain or an async callable.

    Sleeps with ``anyio.sleep`` between calls, so the event loop keeps running the
    code under test. The deadline also bounds an async predicate that hangs.

    Raises:
        TimeoutError: still falsy after ``timeout`` seconds.
    """
    result: object = None
    with anyio.move_on_after(timeout):
        while True:
            outcome = predicate()
            result = await outcome if inspect.isawaitable(outcome) else outcome
            if result:
                return cast(T, result)
            await anyio.sleep(interval)
    # The loop only ends by returning, so reaching here means the scope timed out.
    raise TimeoutError(_timeout_message(predicate, timeout, result, message))


def _timeout_message(
    predicate: Callable[[], object], timeout: float, last: object, message: str | None
) -> str:
    what = message or getattr(predicate, "__qualname__", repr(predicate))
    return f"{what}: condition not met within {timeout}s (last result: {last!r})"
