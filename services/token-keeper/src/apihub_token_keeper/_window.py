"""The fleet-wide issuance window of one app key: at most one token call per window.

KIS answers a second ``tokenP`` within a minute with ``EGW00133`` ("1분당 1회", as the error
text and the README of koreainvestment/open-trading-api say) and every issuance sends the user a
KakaoTalk alert; Kiwoom revokes the previous token on every issuance (one active token per app
key, as third-party clients measured). So before any token call the issuer takes
``<ns>:token-issue-window:<p>:<a>`` with ``SET NX PX window``: whoever holds it may call,
everyone else waits for its ``PTTL``.

The window is reserved *before* the call and restarted for a full window once the broker
answered (:meth:`IssueWindow.restart`). The broker starts its own window when the call
*arrives*, which is after our reservation; restarting it at the answer puts our window's end
after the broker's, whatever the network latency was.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Final

import anyio
import redis.asyncio as aioredis

log = logging.getLogger("apihub.token_keeper.window")

MARGIN_MS: Final = 100
"""Added to every window: clock granularity (Redis counts whole milliseconds) must never make
our window end before the broker's."""

_MIN_POLL_S: Final = 0.01


class WindowBusy(TimeoutError):
    """The window stayed taken longer than it can (someone keeps re-arming it)."""


class IssueWindow:
    """One app key's issuance window in Redis."""

    def __init__(self, redis: aioredis.Redis, key: str, window_s: float) -> None:
        self._redis = redis
        self.key = key
        self.window_ms = int(window_s * 1000) + MARGIN_MS

    async def reserve(
        self,
        owner: str,
        *,
        on_wait: Callable[[float], Awaitable[None]] | None = None,
        waiting: Callable[[], AbstractContextManager[None]] = nullcontext,
    ) -> float:
        """Take the window, waiting for it to expire if it is taken; returns the seconds waited.

        ``on_wait`` is awaited with the seconds to wait each time the window is found taken
        (the keeper announces the delay, so callers can decide whether to wait for it).
        Bounded: a window lasts ``window_ms``, so waiting longer than two windows means it is
        being re-armed, and :class:`WindowBusy` is raised instead of waiting forever. Each wait
        runs inside ``waiting()`` (a delivery's ``releasable``: a drain need not wait for it).
        """
        started = anyio.current_time()
        try:
            with anyio.fail_after(2 * self.window_ms / 1000 + 1):
                while not await self._redis.set(self.key, owner, nx=True, px=self.window_ms):
                    pttl = int(await self._redis.pttl(self.key))
                    # -2: expired between SET and PTTL; -1: someone set it without expiry
                    # (never us) - wait a full window rather than spin.
                    wait_s = (
                        pttl / 1000 if pttl >= 0 else (self.window_ms / 1000 if pttl == -1 else 0)
                    )
                    log.info("issuance window %s is taken; waiting %.2f s", self.key, wait_s)
                    if on_wait is not None and wait_s > 0:
                        await on_wait(wait_s)
                    with waiting():
                        await anyio.sleep(max(wait_s, _MIN_POLL_S))
        except TimeoutError:
            raise WindowBusy(f"issuance window {self.key} stayed taken") from None
        return anyio.current_time() - started

    async def restart(self, owner: str) -> None:
        """Start a full window from now (after an answer, or after ``EGW00133``)."""
        await self._redis.set(self.key, owner, px=self.window_ms)

    async def remaining_ms(self) -> int:
        """Milliseconds until the window opens again (0 when it is open)."""
        return max(0, int(await self._redis.pttl(self.key)))
