"""Fixtures of the gatekeeper tests: gatekeepers on a real Redis, and their events read back.

Tests reach the helpers through the ``gatekeepers`` fixture only (nothing here is imported).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import anyio
import pytest
import redis.asyncio as aioredis

from apihub_core import AnyEvent, Keys, decode_any
from apihub_governance import Bucket, Gatekeeper, Window
from apihub_runtime import RateLimiterSettings

E = TypeVar("E")

OFFSETS = {"order": 0.0, "interactive": 500.0, "collector": 1000.0, "backfill": 3000.0}


class GatekeeperHarness:
    """What a gatekeeper test needs: gatekeepers on this test's namespace, each with its own
    Redis clients (as separate processes), and the namespace's keys and events."""

    def __init__(self, redis_url: str, aredis: aioredis.Redis, namespace: str) -> None:
        self.redis_url = redis_url
        self.redis = aredis
        self.keys = Keys(namespace)

    @staticmethod
    def settings(**overrides: Any) -> RateLimiterSettings:
        """Test tuning: a small fixed margin (no jitter samples yet), a generous max wait and no
        pacing (a window's permits may leave at once), so tests see the window rule alone;
        the pacing tests turn it on."""
        values: dict[str, Any] = {
            "initial_margin_ms": 10.0,
            "min_margin_ms": 1.0,
            "max_margin_ms": 500.0,
            "jitter_samples": 50,
            "penalty_ms": 100.0,
            "penalty_decay_s": 30.0,
            "priority_offsets_ms": dict(OFFSETS),
            "max_wait_s": 30.0,
            "pacing": 0.0,
        }
        values.update(overrides)
        return RateLimiterSettings(**values)

    @staticmethod
    def bucket(name: str = "KIS:main", *windows: Window) -> Bucket:
        """A KIS bucket with ``windows`` (default: 2 per 200 ms)."""
        return Bucket(name, "KIS", "main", windows or (Window(2, 200),))

    @staticmethod
    def closed_port() -> int:
        """A local TCP port nothing listens on."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    @asynccontextmanager
    async def gatekeeper(
        self,
        tuning: RateLimiterSettings | None = None,
        *,
        member: str = "d1",
        limiter_url: str | None = None,
    ) -> AsyncIterator[Gatekeeper]:
        """A gatekeeper whose ``run()`` goes on until the block ends (then events are flushed)."""
        limiter = aioredis.from_url(limiter_url or self.redis_url, socket_connect_timeout=1)
        events = aioredis.from_url(self.redis_url)
        gatekeeper = Gatekeeper(
            limiter, events, self.keys, tuning or self.settings(), member=member
        )
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(gatekeeper.run)
                try:
                    yield gatekeeper
                finally:
                    gatekeeper.stop()
        finally:
            await limiter.aclose()
            await events.aclose()

    async def events(self) -> list[AnyEvent]:
        """Every event on the rate-limit stream, decoded (as a reader in any language would)."""
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]], await self.redis.xrange(self.keys.rate_limits)
        )
        return [decode_any(fields) for _id, fields in entries]

    async def events_of(self, kind: type[E]) -> list[E]:
        """The events of one type, in stream order."""
        return [event for event in await self.events() if isinstance(event, kind)]

    def key(self, b: Bucket, suffix: str) -> str:
        """One of the bucket's Redis keys (``g``, ``q``, ``qi``, ``m``, ``p``)."""
        return f"{self.keys.rate_limit_prefix}{{{b.name}}}:{suffix}"

    async def server_ms(self) -> float:
        """The Redis server's clock, in ms."""
        seconds, micros = await self.redis.time()
        return seconds * 1000 + micros / 1000

    async def script_calls(self) -> int:
        """How many scripts the server has run so far (each is one ask for a permit)."""
        stats = await self.redis.info("commandstats")
        return int(stats.get("cmdstat_evalsha", {}).get("calls", 0)) + int(
            stats.get("cmdstat_eval", {}).get("calls", 0)
        )

    @staticmethod
    def max_in_window(grants: list[float], span_ms: float) -> int:
        """Most grants inside any half-open window ``(t - span, t]``."""
        ordered = sorted(grants)
        most = 0
        start = 0
        for end, at in enumerate(ordered):
            while ordered[start] <= at - span_ms + 1e-6:
                start += 1
            most = max(most, end - start + 1)
        return most


@pytest.fixture
def gatekeepers(redis_url: str, aredis: aioredis.Redis, hub_namespace: str) -> GatekeeperHarness:
    """A :class:`GatekeeperHarness` on this test's (flushed) Redis and namespace."""
    return GatekeeperHarness(redis_url, aredis, hub_namespace)
