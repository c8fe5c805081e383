"""wait_until / async_wait_until are bounded and return the predicate's value."""

from __future__ import annotations

import itertools
import time

import anyio
import anyio.lowlevel
import pytest

from apihub_testing import async_wait_until, wait_until


def test_wait_until_returns_the_truthy_value() -> None:
    counter = itertools.count()
    assert wait_until(lambda: next(counter) >= 3 and "done", interval=0.001) == "done"


def test_wait_until_times_out_with_a_message() -> None:
    def never() -> bool:
        return False

    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"never: condition not met within 0\.05s"):
        wait_until(never, timeout=0.05)
    assert time.monotonic() - started < 2


def test_wait_until_uses_the_given_message() -> None:
    with pytest.raises(TimeoutError, match="the queue drains"):
        wait_until(lambda: 0, timeout=0.01, message="the queue drains")


@pytest.mark.anyio
async def test_async_wait_until_accepts_sync_and_async_predicates() -> None:
    counter = itertools.count()
    assert await async_wait_until(lambda: next(counter) >= 2, interval=0.001) is True

    async def ready() -> str:
        await anyio.lowlevel.checkpoint()
        return "ok"

    assert await async_wait_until(ready) == "ok"


@pytest.mark.anyio
async def test_async_wait_until_times_out() -> None:
    async def never() -> int:
        return 0

    with pytest.raises(TimeoutError, match=r"condition not met within 0\.05s \(last result: 0\)"):
        await async_wait_until(never, timeout=0.05)


@pytest.mark.anyio
async def test_async_wait_until_bounds_a_hanging_predicate() -> None:
    async def hangs() -> bool:
        await anyio.sleep_forever()
        return True

    with pytest.raises(TimeoutError):
        await async_wait_until(hangs, timeout=0.05)
