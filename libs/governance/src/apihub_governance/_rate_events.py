"""The rate-limit event sink: events buffered in memory and written in batches.

A permit costs one round trip to the limiter Redis; writing its event there and then would double
that. So events are appended to a bounded in-memory buffer and ``run()`` writes them in pipelined
batches to the rate-limit stream (on the events Redis, which may be another server). What is left
at ``stop()`` is flushed once more; what cannot be written is logged, never raised.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Final

import anyio
import redis.asyncio as aioredis
from anyio.abc import TaskStatus
from redis.exceptions import RedisError

from apihub_core import RATE_LIMIT_STREAM_MAXLEN, RateLimitEvent, encode_entry

log = logging.getLogger("apihub.gatekeeper")

EVENT_FLUSH_INTERVAL_S: Final = 0.2
"""How long an event may sit in the buffer before ``run()`` writes it."""

EVENT_BATCH_MAX: Final = 500
"""Most events written in one pipeline."""

EVENT_BUFFER_MAX: Final = 20_000
"""Bound of the buffer; past it the oldest events are dropped (and counted) rather than letting an
unreachable events Redis grow memory without bound."""

EVENT_WRITE_TIMEOUT_S: Final = 2.0
"""Bound of one batch write."""


class RateEventSink:
    """Buffers rate-limit events and writes them to ``stream`` from :meth:`run`."""

    def __init__(
        self, redis: aioredis.Redis, stream: str, *, maxlen: int = RATE_LIMIT_STREAM_MAXLEN
    ) -> None:
        self._redis = redis
        self._stream = stream
        self._maxlen = maxlen
        self._buffer: deque[RateLimitEvent] = deque()
        self._pending = anyio.Event()
        self._stopping = False
        self.dropped = 0
        """Events lost to a full buffer or an unreachable events Redis at stop."""

    def emit(self, event: RateLimitEvent) -> None:
        """Queue one event; never blocks and never raises."""
        if len(self._buffer) >= EVENT_BUFFER_MAX:
            self._buffer.popleft()
            self.dropped += 1
        self._buffer.append(event)
        if len(self._buffer) >= EVENT_BATCH_MAX:
            self._pending.set()

    @property
    def buffered(self) -> int:
        """Events not written yet."""
        return len(self._buffer)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Write buffered events every :data:`EVENT_FLUSH_INTERVAL_S` until :meth:`stop`, then
        flush what is left."""
        task_status.started()
        try:
            while not self._stopping:
                with anyio.move_on_after(EVENT_FLUSH_INTERVAL_S):
                    await self._pending.wait()
                self._pending = anyio.Event()
                if not await self.flush():
                    # The events Redis is down: keep the events and try again later.
                    with anyio.move_on_after(EVENT_FLUSH_INTERVAL_S * 5):
                        await self._pending.wait()
        finally:
            with anyio.CancelScope(shield=True):
                await self._final_flush()

    def stop(self) -> None:
        """Make :meth:`run` flush what is left and return."""
        self._stopping = True
        self._pending.set()

    async def flush(self) -> bool:
        """Write everything buffered; ``False`` (events kept) if the events Redis failed."""
        while self._buffer:
            batch = [self._buffer[i] for i in range(min(EVENT_BATCH_MAX, len(self._buffer)))]
            try:
                with anyio.fail_after(EVENT_WRITE_TIMEOUT_S):
                    pipe = self._redis.pipeline(transaction=False)
                    for event in batch:
                        pipe.xadd(
                            self._stream,
                            encode_entry(event),
                            maxlen=self._maxlen,
                            approximate=True,
                        )
                    await pipe.execute()
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning(
                    "rate-limit events not written (%s): %d buffered",
                    type(exc).__name__,
                    len(self._buffer),
                )
                return False
            for _ in batch:
                self._buffer.popleft()
        return True

    async def _final_flush(self) -> None:
        if await self.flush():
            return
        # Nowhere to write them: the log is the last record (rejections matter most).
        for event in self._buffer:
            log.warning("rate-limit event not written: %r", event)
        self.dropped += len(self._buffer)
        self._buffer.clear()
