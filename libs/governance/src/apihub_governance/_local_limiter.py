"""A per-process limiter: what client libraries do, kept only to compare against.

Each process keeps its own in-memory sliding windows and so allows the full quota by itself: N
processes sharing one app key send up to N times the quota. It has the gatekeeper's shape, so the
quota benchmark can swap one for the other; it never talks to Redis and ignores priorities.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

import anyio
from anyio.abc import TaskStatus

from apihub_core import Priority, UpstreamRateLimited
from apihub_runtime import RateLimiterSettings

from ._buckets import Bucket, Permit
from ._gatekeeper import RATE_LIMIT_CODE


class LocalLimiter:
    """Sliding windows of exactly ``window_ms`` in this process's memory; FIFO among callers.

    Of ``settings`` only ``max_wait_s`` (a cap on every timeout) applies: there is no jitter
    margin, no penalty and no priority, as in a typical client library.
    """

    def __init__(self, settings: RateLimiterSettings | None = None) -> None:
        self._max_wait_s = (settings or RateLimiterSettings()).max_wait_s
        self._grants: dict[tuple[str, int], deque[float]] = {}
        self._lock = anyio.Lock()
        self._stopped = anyio.Event()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Nothing to do in the background; returns after :meth:`stop`."""
        task_status.started()
        await self._stopped.wait()

    def stop(self) -> None:
        """Make :meth:`run` return."""
        self._stopped.set()

    async def acquire(
        self,
        buckets: Sequence[Bucket],
        priority: Priority,
        *,
        timeout_s: float,
        request_id: str = "",
        cost: int = 1,
    ) -> Permit:
        """Wait until every window of every bucket has room for ``cost`` more calls.

        Raises:
            UpstreamRateLimited: code ``APIHUB-RATE-LIMIT``: no room within ``timeout_s``.
        """
        charged = tuple(buckets)
        timeout_s = min(timeout_s, self._max_wait_s)
        started = anyio.current_time()
        deadline = started + timeout_s
        with anyio.move_on_after(timeout_s):
            async with self._lock:
                while True:
                    now = anyio.current_time() * 1000
                    wait_ms = max((self._wait_ms(b, cost, now) for b in charged), default=0.0)
                    if wait_ms <= 0:
                        for bucket in charged:
                            for window in bucket.windows:
                                grants = self._grants.setdefault(
                                    (bucket.name, window.window_ms), deque()
                                )
                                grants.extend([now] * cost)
                        return Permit(
                            charged,
                            time.time() * 1000,
                            now - started * 1000,
                            0.0,
                            anyio.current_time(),
                        )
                    if now / 1000 + wait_ms / 1000 > deadline:
                        break
                    await anyio.sleep(wait_ms / 1000)
        name = charged[0].name if charged else "?"
        raise UpstreamRateLimited(
            f"no local rate-limit permit for {name} within {timeout_s:.3f} s",
            code=RATE_LIMIT_CODE,
            request_id=request_id or None,
        )

    def observe(self, permit: Permit, answered_at: float) -> None:
        """Client libraries measure nothing; neither does this."""

    async def upstream_limited(self, permit: Permit, *, code: str, request_id: str = "") -> None:
        """Client libraries do not adapt; neither does this (the caller's retry backs off)."""

    def _wait_ms(self, bucket: Bucket, cost: int, now: float) -> float:
        wait = 0.0
        for window in bucket.windows:
            grants = self._grants.get((bucket.name, window.window_ms))
            if not grants:
                continue
            while grants and grants[0] <= now - window.window_ms:
                grants.popleft()
            excess = len(grants) + cost - window.limit
            if excess > 0:
                wait = max(wait, grants[excess - 1] + window.window_ms - now)
        return wait
