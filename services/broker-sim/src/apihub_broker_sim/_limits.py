"""Sliding one-second request limits, measured on the host's monotonic clock."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Hashable

__all__ = ["SlidingWindowLimiter"]


class SlidingWindowLimiter:
    """Allow at most ``limit`` calls per key in any window of ``window_s`` seconds.

    Rejected calls do not count, so a client that backs off gets through at the limit
    rate. Real time is used even when the simulated clock is frozen: pacing is physical.
    """

    def __init__(self, limit: int | None, window_s: float = 1.0) -> None:
        """``limit=None`` allows everything."""
        self._limit = limit
        self._window = window_s
        self._lock = threading.Lock()
        self._stamps: defaultdict[Hashable, deque[float]] = defaultdict(deque)

    def allow(self, key: Hashable) -> bool:
        """Count a call for ``key`` and say whether it is within the limit."""
        if self._limit is None:
            return True
        now = time.monotonic()
        with self._lock:
            stamps = self._stamps[key]
            while stamps and now - stamps[0] >= self._window:
                stamps.popleft()
            if len(stamps) >= self._limit:
                return False
            stamps.append(now)
            return True

    def reset(self) -> None:
        """Forget all history."""
        with self._lock:
            self._stamps.clear()
