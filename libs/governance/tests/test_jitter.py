"""The jitter estimator: the spacing margin from permit-to-answer times."""

from __future__ import annotations

import math

import pytest

from apihub_core import RateLimiterSettings
from apihub_governance import JitterEstimator
from apihub_governance._jitter import MIN_JITTER_SAMPLES


def _estimator(samples: int = 50) -> JitterEstimator:
    return JitterEstimator(samples=samples, initial_ms=50.0, min_ms=2.0, max_ms=1000.0)


def test_the_initial_margin_holds_until_enough_samples() -> None:
    estimator = _estimator()
    for i in range(MIN_JITTER_SAMPLES - 1):
        estimator.add(10.0 + 30 * i)
        assert estimator.margin_ms == 50.0
    estimator.add(10.0)
    assert estimator.count == MIN_JITTER_SAMPLES
    assert estimator.margin_ms == pytest.approx(30.0 * (MIN_JITTER_SAMPLES - 2))


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
