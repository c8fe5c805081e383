"""apihub governance: the fleet-wide rate limiter (gatekeeper) and the shared circuit breaker."""

__all__: list[str] = []
