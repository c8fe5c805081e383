"""What a collector keeps in Redis besides its stream events, and reading it back.

Two hashes per collector ``<name>`` (``collector`` unless named otherwise), both under the
hub's namespace:

``<ns>:collector-counts:<name>``
    counters — ``calls`` (requests answered or failed), ``failures`` (calls that failed, at most
    one per symbol and cycle), ``swing_cycles``/``scalp_cycles`` (cycles run), ``skipped``
    (cycles skipped: ``skipped_overrun``/``skipped_budget_saturated`` by reason),
    ``snapshots`` (recorded), ``quarantines`` — and what it is doing: ``state`` (``in_session``,
    ``closed``, ``idle``, ``stopped``), ``detail`` and ``updated_at_ms``.
``<ns>:collector-polls:<name>``
    ``<provider>:<symbol>`` → the market time (Unix ms) of the symbol's last successful swing
    poll, so a restarted collector continues the window where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import redis.asyncio as aioredis

from apihub_core import Keys

COUNTERS: Final = (
    "swing_cycles",
    "scalp_cycles",
    "calls",
    "failures",
    "snapshots",
    "quarantines",
    "skipped",
)
"""The counters, in the order ``apihub collector status`` shows them."""


def counts_key(keys: Keys, name: str) -> str:
    """The counters and state of collector ``name``."""
    return f"{keys.namespace}:collector-counts:{name}"


def polls_key(keys: Keys, name: str) -> str:
    """The last successful swing poll per symbol of collector ``name``."""
    return f"{keys.namespace}:collector-polls:{name}"


@dataclass(frozen=True, slots=True)
class CollectorStatus:
    """One collector's counters (every field of its hash that is a number) and state."""

    name: str
    state: str = ""
    detail: str = ""
    updated_at_ms: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def read_status(redis: aioredis.Redis, keys: Keys) -> list[CollectorStatus]:
    """Every collector of the namespace that has reported, by name."""
    prefix = counts_key(keys, "")
    found = []
    async for raw in redis.scan_iter(match=f"{prefix}*", count=100):
        key = _text(raw)
        fields = {_text(k): _text(v) for k, v in (await redis.hgetall(key)).items()}
        counts = {name: int(value) for name, value in fields.items() if value.lstrip("-").isdigit()}
        updated = counts.pop("updated_at_ms", 0)
        found.append(
            CollectorStatus(
                name=key[len(prefix) :],
                state=fields.get("state", ""),
                detail=fields.get("detail", ""),
                updated_at_ms=updated,
                counts=counts,
            )
        )
    return sorted(found, key=lambda status: status.name)
