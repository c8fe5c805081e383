"""How long a request may still take: its ``deadline_ms`` read without trusting the producer's
clock.

A producer's clock may be minutes off the hub's. What it means by ``deadline_ms`` is a budget:
``deadline_ms - submitted_at_ms``, both read on its own clock, so their difference is right
whatever its offset. The budget starts when Redis accepted the entry: the millisecond part of
the entry id (``XADD *``), stamped by the Redis server's clock. Time already spent is the hub's
clock now minus that instant; only the hub's own clocks (Redis and the dispatcher's host) are
compared. A request without ``submitted_at_ms`` has only the absolute ``deadline_ms``, which is
compared with the dispatcher's clock. Without ``deadline_ms``, or past ``max_request_s`` from
now, ``max_request_s`` bounds it.
"""

from __future__ import annotations

from apihub_core import RequestSubmitted


def arrival_ms(entry_id: str) -> int | None:
    """The Redis server time (Unix ms) at which the entry was added: its id's first part."""
    head, _, _ = entry_id.partition("-")
    return int(head) if head.isdigit() else None


def seconds_left(
    request: RequestSubmitted,
    *,
    entry_id: str,
    now_ms: int,
    max_request_s: float,
) -> float:
    """Seconds the request may still take (≤ ``max_request_s``; ≤ 0: its deadline passed)."""
    if request.deadline_ms is None:
        return max_request_s
    arrived = arrival_ms(entry_id)
    if request.submitted_at_ms > 0 and arrived is not None:
        budget_ms = request.deadline_ms - request.submitted_at_ms
        left_ms = budget_ms - max(0, now_ms - arrived)
    else:
        left_ms = request.deadline_ms - now_ms
    return min(left_ms / 1000, max_request_s)
