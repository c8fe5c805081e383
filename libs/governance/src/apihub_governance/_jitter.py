"""The jitter estimator: how much spacing a run of permits needs beyond the window.

A sender that cannot see arrival times at the broker keeps every sliding window *at the broker*
within ``limit`` only if each run of ``limit`` permits spans at least ``window + J``, where ``J``
is the spread of the grant → arrival delays. We cannot see arrivals either, so we measure the
spread of what we can see: ``answered_at - requested_at`` (request to the limiter, grant, send,
broker, answer). That sum varies at least as much as its grant → arrival part, so its spread is
a conservative stand-in for ``J``.

The spread is ``max - min``, not a quantile spread: the bound is a worst-case bound, and the
calls a quantile leaves out are exactly the ones that arrive too close together and get
rejected. It is taken over the calls of the last ``horizon_s`` seconds (at most ``samples`` of
them, and never fewer than :data:`MIN_JITTER_SAMPLES` however old): only calls close in time can
meet in one window at the broker, so a slow drift of the delays (or the slow first calls of a
cold start, on fresh connections) must not widen the margin for long. Until
:data:`MIN_JITTER_SAMPLES` calls were seen, the margin is ``initial_ms`` or the spread seen so
far, whichever is larger, so a cold start slower than the guess is caught after one window.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from apihub_runtime import RateLimiterSettings

MIN_JITTER_SAMPLES: Final = 20
"""Below this many samples the spread alone means little: ``initial_ms`` is its floor."""


class JitterEstimator:
    """Spread of recent permit-to-answer times of one bucket.

    ``clock`` gives the time of a sample when :meth:`add` is not told it; it must be the clock
    of the ``at`` arguments (``anyio.current_time()`` is ``time.monotonic()`` on asyncio).
    """

    def __init__(
        self,
        *,
        samples: int,
        initial_ms: float,
        min_ms: float,
        max_ms: float,
        horizon_s: float = math.inf,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = max(1, samples)
        self._samples: deque[tuple[int, float]] = deque()  # (sequence number, time)
        # Monotonic queues of (sequence number, delay): the front is the window's max (min), so
        # the spread is O(1) per call instead of a scan of every sample on every permit.
        self._highs: deque[tuple[int, float]] = deque()
        self._lows: deque[tuple[int, float]] = deque()
        self._seq = 0
        self._initial_ms = initial_ms
        self._min_ms = min_ms
        self._max_ms = max(min_ms, max_ms)
        self._horizon_s = horizon_s
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: RateLimiterSettings) -> JitterEstimator:
        """An estimator tuned by ``[rate_limiter]``."""
        return cls(
            samples=settings.jitter_samples,
            initial_ms=settings.initial_margin_ms,
            min_ms=settings.min_margin_ms,
            max_ms=settings.max_margin_ms,
            horizon_s=settings.jitter_window_s,
        )

    def add(self, delay_ms: float, at: float | None = None) -> None:
        """Record one permit-to-answer time observed at ``at`` (default: now); nonsense
        (negative, NaN, infinite) is ignored."""
        if not (math.isfinite(delay_ms) and delay_ms >= 0):
            return
        self._seq += 1
        seq = self._seq
        self._samples.append((seq, self._clock() if at is None else at))
        while self._highs and self._highs[-1][1] <= delay_ms:
            self._highs.pop()
        self._highs.append((seq, delay_ms))
        while self._lows and self._lows[-1][1] >= delay_ms:
            self._lows.pop()
        self._lows.append((seq, delay_ms))
        if len(self._samples) > self._limit:
            self._drop_oldest()

    @property
    def count(self) -> int:
        """How many samples are held (at most ``samples``)."""
        return len(self._samples)

    @property
    def margin_ms(self) -> float:
        """The spacing margin, clamped to ``[min_ms, max_ms]`` (see the module docstring)."""
        self._forget(self._clock() - self._horizon_s)
        spread = self._highs[0][1] - self._lows[0][1] if self._samples else 0.0
        if len(self._samples) < MIN_JITTER_SAMPLES:
            spread = max(self._initial_ms, spread)
        return min(self._max_ms, max(self._min_ms, spread))

    def _forget(self, before: float) -> None:
        while len(self._samples) > MIN_JITTER_SAMPLES and self._samples[0][1] < before:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        seq, _at = self._samples.popleft()
        if self._highs and self._highs[0][0] <= seq:
            self._highs.popleft()
        if self._lows and self._lows[0][0] <= seq:
            self._lows.popleft()
