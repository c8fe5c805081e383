"""Per-bar bitmaps in Redis: the sentinel's coverage, confirmed-empty and pending sets.

One key per day of minute bars (bit = minute of the day) or per year of daily bars (bit = day
of the year): a day of one symbol is 180 bytes, read with one ``GET``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime

import redis.asyncio as aioredis

KeyFor = Callable[[str, str, str, str], str]
"""(provider, symbol, interval, bucket) → key."""


def slot(interval: str, bar: datetime) -> tuple[str, int]:
    """The bucket and bit of ``bar`` (its start, KST)."""
    if interval == "1m":
        return bar.strftime("%Y%m%d"), bar.hour * 60 + bar.minute
    return str(bar.year), bar.timetuple().tm_yday - 1


def _by_bucket(interval: str, bars: Iterable[datetime]) -> dict[str, list[tuple[datetime, int]]]:
    grouped: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for bar in bars:
        bucket, bit = slot(interval, bar)
        grouped[bucket].append((bar, bit))
    return grouped


def _bit(raw: bytes, bit: int) -> bool:
    byte = bit // 8
    return byte < len(raw) and bool(raw[byte] >> (7 - bit % 8) & 1)


class Bitmaps:
    """One kind of bitmap over every series."""

    def __init__(self, redis: aioredis.Redis, key_for: KeyFor, *, ttl_s: int) -> None:
        self._redis = redis
        self._key_for = key_for
        self._ttl_s = ttl_s

    async def mark(
        self,
        provider: str,
        symbol: str,
        interval: str,
        bars: Iterable[datetime],
        *,
        on: bool = True,
    ) -> None:
        """Set (or clear) the bits of ``bars``."""
        grouped = _by_bucket(interval, bars)
        if not grouped:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for bucket, items in grouped.items():
                key = self._key_for(provider, symbol, interval, bucket)
                for _, bit in items:
                    pipe.setbit(key, bit, 1 if on else 0)
                pipe.expire(key, self._ttl_s)
            await pipe.execute()

    async def which(
        self, provider: str, symbol: str, interval: str, bars: Iterable[datetime]
    ) -> set[datetime]:
        """The subset of ``bars`` whose bit is set."""
        grouped = _by_bucket(interval, bars)
        if not grouped:
            return set()
        buckets = list(grouped)
        raws = await self._redis.mget(
            [self._key_for(provider, symbol, interval, bucket) for bucket in buckets]
        )
        found: set[datetime] = set()
        for bucket, raw in zip(buckets, raws, strict=True):
            if not raw:
                continue
            if isinstance(raw, str):
                raw = raw.encode("latin-1")
            found.update(bar for bar, bit in grouped[bucket] if _bit(raw, bit))
        return found
