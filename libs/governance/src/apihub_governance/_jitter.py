"""The jitter estimator: how much spacing a run of permits needs beyond the window.

A sender that cannot see arrival times at the broker keeps every sliding window *at the broker*
within ``limit`` only if each run of ``limit`` permits spans at least ``window + J``, where ``J``
is the spread of the grant → arrival delays. We cannot see arrivals either, so we measure the
spread of what we can see: ``answered_at - requested_at`` (request to the limiter, grant, send,
broker, answer). That sum varies at least as much as its grant → arrival part, so its spread is
a conservative stand-in for ``J``.

The spread is ``max - min`` over the last ``samples`` calls, not a quantile spread: the bound is
a worst-case bound, and the calls a quantile leaves out are exactly the ones that arrive too
close together and get rejected. The price of an outlier (one slow answer) is a wider margin
until it ages out of the sample window, e.g. 200 samples ≈ 11 s at 18 calls/s.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final

from apihub_core import RateLimiterSettings

MIN_JITTER_SAMPLES: Final = 20
"""Below this many samples the spread means little: ``initial_margin_ms`` is used instead."""


class JitterEstimator:
    """Spread of permit-to-answer times over the last ``samples`` calls of one bucket."""

    def __init__(self, *, samples: int, initial_ms: float, min_ms: float, max_ms: float) -> None:
        self._samples: deque[float] = deque(maxlen=max(1, samples))
        self._initial_ms = initial_ms
        self._min_ms = min_ms
        self._max_ms = max(min_ms, max_ms)
        self._margin: float | None = None

    @classmethod
    def from_settings(cls, settings: RateLimiterSettings) -> JitterEstimator:
        """An estimator tuned by ``[rate_limiter]``."""
        return cls(
            samples=settings.jitter_samples,
            initial_ms=settings.initial_margin_ms,
            min_ms=settings.min_margin_ms,
            max_ms=settings.max_margin_ms,
        )

    def add(self, delay_ms: float) -> None:
        """Record one permit-to-answer time; nonsense (negative, NaN, infinite) is ignored."""
        if math.isfinite(delay_ms) and delay_ms >= 0:
            self._samples.append(delay_ms)
            self._margin = None

    @property
    def count(self) -> int:
        """How many samples are held (at most ``samples``)."""
        return len(self._samples)

    @property
    def margin_ms(self) -> float:
        """The spacing margin: ``initial_ms`` while fewer than :data:`MIN_JITTER_SAMPLES` exist,
        else ``max - min`` of the samples, clamped to ``[min_ms, max_ms]``."""
        if len(self._samples) < MIN_JITTER_SAMPLES:
            return self._initial_ms
        if self._margin is None:
            spread = max(self._samples) - min(self._samples)
            self._margin = min(self._max_ms, max(self._min_ms, spread))
        return self._margin
