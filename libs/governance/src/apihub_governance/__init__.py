"""apihub governance: the fleet-wide rate limiter (gatekeeper) and the shared circuit breaker."""

from ._breaker import Admission, CircuitBreaker, Outcome
from ._buckets import Bucket, Permit, Window, buckets_for
from ._gatekeeper import RATE_LIMIT_CODE, Gatekeeper
from ._jitter import JitterEstimator
from ._local_limiter import LocalLimiter

__all__ = [
    "RATE_LIMIT_CODE",
    "Admission",
    "Bucket",
    "CircuitBreaker",
    "Gatekeeper",
    "JitterEstimator",
    "LocalLimiter",
    "Outcome",
    "Permit",
    "Window",
    "buckets_for",
]
