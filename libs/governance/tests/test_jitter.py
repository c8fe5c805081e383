"""The jitter estimator: the spacing margin from permit-to-answer times."""

from __future__ import annotations

import math
import random

import pytest

from apihub_governance import JitterEstimator
from apihub_governance._jitter import MIN_JITTER_SAMPLES
from apihub_runtime import RateLimiterSettings


def _estimator(samples: int = 50) -> JitterEstimator:
    return JitterEstimator(samples=samples, initial_ms=50.0, min_ms=2.0, max_ms=1000.0)


def test_the_initial_margin_holds_until_enough_samples() -> None:
    estimator = _estimator()
    for _ in range(MIN_JITTER_SAMPLES - 1):
        estimator.add(10.0)
        assert estimator.margin_ms == 50.0, "a guess, not the spread of a handful of calls"
    estimator.add(30.0)
    assert estimator.count == MIN_JITTER_SAMPLES
    assert estimator.margin_ms == pytest.approx(20.0)


def test_a_cold_start_wider_than_the_guess_widens_the_margin_at_once() -> None:
    estimator = _estimator()
    for delay in (140.0, 60.0, 15.0):  # the first calls of a cold process
        estimator.add(delay)
    assert estimator.margin_ms == pytest.approx(125.0)


def test_old_samples_age_out_but_a_minimum_stays() -> None:
    now = [0.0]
    estimator = JitterEstimator(
        samples=200,
        initial_ms=50.0,
        min_ms=2.0,
        max_ms=1000.0,
        horizon_s=5.0,
        clock=lambda: now[0],
    )
    estimator.add(300.0, at=0.0)  # a slow first call
    for i in range(40):
        estimator.add(20.0 + i % 10, at=0.1 * i)
    assert estimator.margin_ms == pytest.approx(280.0)
    now[0] = 5.05  # the slow call is older than the horizon
    assert estimator.margin_ms == pytest.approx(9.0)
    now[0] = 1000.0  # everything is old: the newest MIN_JITTER_SAMPLES still count
    assert estimator.margin_ms == pytest.approx(9.0)
    assert estimator.count == MIN_JITTER_SAMPLES


def test_the_margin_is_the_spread_of_the_recent_samples() -> None:
    estimator = _estimator(samples=30)
    estimator.add(500.0)  # one slow answer...
    for _ in range(29):
        estimator.add(80.0)
    assert estimator.margin_ms == pytest.approx(420.0)
    estimator.add(85.0)  # ...ages out of the last 30 calls
    assert estimator.margin_ms == pytest.approx(5.0)


def test_the_margin_is_clamped_and_nonsense_is_ignored() -> None:
    estimator = _estimator()
    for _ in range(MIN_JITTER_SAMPLES):
        estimator.add(100.0)
    assert estimator.margin_ms == 2.0, "the floor"
    for bad in (-5.0, math.nan, math.inf):
        estimator.add(bad)
    assert estimator.count == MIN_JITTER_SAMPLES
    estimator.add(5000.0)
    assert estimator.margin_ms == 1000.0, "the ceiling"


def test_from_settings() -> None:
    tuning = RateLimiterSettings(initial_margin_ms=77.0, jitter_samples=25)
    estimator = JitterEstimator.from_settings(tuning)
    assert estimator.margin_ms == 77.0
    for i in range(40):
        estimator.add(float(i))
    assert estimator.count == 25
    assert estimator.margin_ms == 24.0


def test_the_running_spread_equals_a_full_scan() -> None:
    # The estimator keeps its max and min incrementally; compare with the plain definition
    # (max - min over the kept window) at every step of a long seeded sequence.
    rng = random.Random(20251202)
    now = [0.0]
    estimator = JitterEstimator(
        samples=50, initial_ms=0.0, min_ms=0.0, max_ms=1e9, horizon_s=2.0, clock=lambda: now[0]
    )
    kept: list[tuple[float, float]] = []
    for _ in range(5_000):
        now[0] += rng.uniform(0.0, 0.2)
        delay = rng.choice([rng.uniform(0, 50), rng.uniform(0, 5), 10.0])
        estimator.add(delay)
        kept.append((now[0], delay))
        kept = kept[-50:]
        while len(kept) > MIN_JITTER_SAMPLES and kept[0][0] < now[0] - 2.0:
            kept.pop(0)
        delays = [d for _, d in kept]
        expected = max(delays) - min(delays)
        if len(delays) < MIN_JITTER_SAMPLES:
            expected = max(0.0, expected)
        assert estimator.margin_ms == pytest.approx(expected)
        assert estimator.count == len(kept)
