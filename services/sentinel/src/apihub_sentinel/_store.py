"""Open gaps in Redis: one hash per gap, a due-time index, and per-series membership."""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

import msgspec
import redis.asyncio as aioredis

from apihub_core import Keys
from apihub_marketdata import Interval

GapState = Literal["open", "healed", "confirmed_empty", "gave_up"]

CLOSED_TTL_S: Final = 7 * 24 * 3600
"""How long a closed gap's record stays readable (``apihub gaps``)."""


class Gap(msgspec.Struct, kw_only=True):
    """One gap as the sentinel tracks it. ``requests`` maps request id → page chunk;
    ``answers`` counts, per bar (ISO), the broker answers for its page that lacked it."""

    gap_id: str
    provider: str
    symbol: str
    interval: Interval
    bars: list[datetime]
    detected_at_ms: int
    state: GapState = "open"
    attempt: int = 0
    requests: dict[str, str] = {}
    answers: dict[str, int] = {}
    empty: list[datetime] = []
    closed_at_ms: int = 0

    @property
    def first(self) -> datetime:
        """The gap's first bar."""
        return self.bars[0]

    @property
    def last(self) -> datetime:
        """The gap's last bar."""
        return self.bars[-1]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Gap)


class GapStore:
    """Load, save, schedule and close gaps."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def create(self, gap: Gap) -> bool:
        """Store a new gap, due at once; False if one with its id exists."""
        key = self._keys.gap(gap.gap_id)
        created = await self._redis.hsetnx(key, "record", _encoder.encode(gap))
        if not created:
            return False
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._keys.open_gaps, {gap.gap_id: 0})
            pipe.sadd(self._keys.series_gaps(gap.provider, gap.symbol, gap.interval), gap.gap_id)
            await pipe.execute()
        return True

    async def load(self, gap_id: str) -> Gap | None:
        """The gap, or ``None`` when unknown (or its record is unreadable)."""
        raw = await self._redis.hget(self._keys.gap(gap_id), "record")
        if raw is None:
            return None
        try:
            return _decoder.decode(raw)
        except msgspec.DecodeError:
            return None

    async def save(self, gap: Gap, *, due_ms: int | None = None) -> None:
        """Store ``gap``; ``due_ms`` reschedules it (when open)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._keys.gap(gap.gap_id), "record", _encoder.encode(gap))
            if due_ms is not None and gap.state == "open":
                pipe.zadd(self._keys.open_gaps, {gap.gap_id: due_ms})
            await pipe.execute()

    async def close(self, gap: Gap) -> None:
        """Store ``gap`` in its final state and take it out of the open indexes."""
        async with self._redis.pipeline(transaction=True) as pipe:
            key = self._keys.gap(gap.gap_id)
            pipe.hset(key, "record", _encoder.encode(gap))
            pipe.expire(key, CLOSED_TTL_S)
            pipe.zrem(self._keys.open_gaps, gap.gap_id)
            pipe.srem(self._keys.series_gaps(gap.provider, gap.symbol, gap.interval), gap.gap_id)
            await pipe.execute()

    async def due(self, now_ms: int, *, limit: int = 100) -> list[str]:
        """Ids of open gaps due by ``now_ms``, most overdue first."""
        ids = await self._redis.zrangebyscore(self._keys.open_gaps, 0, now_ms, start=0, num=limit)
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    async def of_series(self, provider: str, symbol: str, interval: str) -> list[str]:
        """Ids of the open gaps of one series."""
        ids = await self._redis.smembers(self._keys.series_gaps(provider, symbol, interval))
        return sorted(i.decode() if isinstance(i, bytes) else str(i) for i in ids)

    async def open_count(self) -> int:
        """How many gaps are open."""
        return int(await self._redis.zcard(self._keys.open_gaps))
