"""wait_until / async_wait_until are bounded and return the predicate's value."""

from __future__ import annotations

import itertools

import anyio
import anyio.lowlevel
import pytest

from apihub_testing import _wait, async_wait_until, wait_until


class FakeTime:
    """A ``time`` stand-in for :mod:`apihub_testing._wait`: ``sleep`` moves ``monotonic``."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_until_returns_the_truthy_value() -> None:
    counter = itertools.count()
    assert wait_until(lambda: next(counter) >= 3 and "done", interval=0.001) == "done"


def test_wait_until_times_out_with_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeTime()
    monkeypatch.setattr(_wait, "time", clock)
    asked_at: list[float] = []

    def never() -> bool:
        asked_at.append(clock.now)
        return False

    with pytest.raises(TimeoutError, match=r"never: condition not met within 2\.0s"):
        wait_until(never, timeout=2.0, interval=0.5)
    # Bounded: asked every interval until the deadline, once more at it, then it gave up.
    assert asked_at == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert clock.sleeps == [0.5] * 4


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
