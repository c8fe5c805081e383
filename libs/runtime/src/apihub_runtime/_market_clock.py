"""The market's clock: what time it is on the exchange the hub collects from.

In production that is the wall clock. Against the broker simulator it is the simulator's clock,
which can stand at any trading day (the demo runs at any hour) and run faster than real time
(benchmarks). Whoever drives the simulator (``apihub up``) publishes its clock as a hash at
``Keys.market_clock``: ``market_ms`` (market time at the anchor, Unix ms), ``wall_ms`` (wall
time at the anchor), ``rate`` (market seconds per wall second) and ``frozen``. Services read it
again at every cycle (one ``HGETALL``); without it they use the wall clock.

Market time paces what depends on the market (sessions, when a bar is due, a collector's
cadence); timeouts, retries and rate limits stay in real time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Final

import redis.asyncio as aioredis

from apihub_core import Keys

KST: Final = timezone(timedelta(hours=9), "KST")


@dataclass(frozen=True, slots=True)
class MarketClock:
    """A linear map from wall time to market time (the identity by default)."""

    market_ms: int = 0
    wall_ms: int = 0
    rate: float = 1.0
    frozen: bool = False
    simulated: bool = False

    @classmethod
    def wall(cls) -> MarketClock:
        """The wall clock: market time is real time."""
        return cls()

    @classmethod
    def anchored(
        cls,
        market: datetime,
        *,
        rate: float = 1.0,
        frozen: bool = False,
        wall_ms: int | None = None,
    ) -> MarketClock:
        """Market time ``market`` now (or at ``wall_ms``), running at ``rate``."""
        if rate <= 0:
            raise ValueError(f"a clock rate must be positive, not {rate}")
        return cls(
            market_ms=int(market.timestamp() * 1000),
            wall_ms=_wall_ms() if wall_ms is None else wall_ms,
            rate=rate,
            frozen=frozen,
            simulated=True,
        )

    def now(self) -> datetime:
        """Market time now, as an aware KST datetime."""
        return datetime.fromtimestamp(self.now_ms() / 1000, tz=KST)

    def now_ms(self) -> int:
        """Market time now, in Unix milliseconds."""
        if not self.simulated:
            return _wall_ms()
        if self.frozen:
            return self.market_ms
        return self.market_ms + int((_wall_ms() - self.wall_ms) * self.rate)

    def wall_seconds(self, market_seconds: float) -> float:
        """How long ``market_seconds`` of market time take in real time (a frozen clock never
        gets there: the answer is ``market_seconds``, so waits stay bounded)."""
        if not self.simulated or self.frozen:
            return market_seconds
        return market_seconds / self.rate

    async def publish(self, redis: aioredis.Redis, keys: Keys) -> None:
        """Make this the market clock of every service of the namespace."""
        if not self.simulated:
            await redis.delete(keys.market_clock)
            return
        await redis.hset(
            keys.market_clock,
            mapping={
                "market_ms": self.market_ms,
                "wall_ms": self.wall_ms,
                "rate": repr(self.rate),
                "frozen": int(self.frozen),
            },
        )

    @classmethod
    async def read(cls, redis: aioredis.Redis, keys: Keys) -> MarketClock:
        """The published market clock, or the wall clock when none is (or it is unreadable)."""
        raw = await redis.hgetall(keys.market_clock)
        if not raw:
            return cls.wall()
        fields = {
            (k.decode() if isinstance(k, bytes) else str(k)): (
                v.decode() if isinstance(v, bytes) else str(v)
            )
            for k, v in raw.items()
        }
        try:
            return cls(
                market_ms=int(fields["market_ms"]),
                wall_ms=int(fields["wall_ms"]),
                rate=float(fields.get("rate", "1")),
                frozen=fields.get("frozen", "0") == "1",
                simulated=True,
            )
        except (KeyError, ValueError):
            return cls.wall()


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000
