"""Appending the token-keeper's lifecycle events to the token stream."""

from __future__ import annotations

import redis.asyncio as aioredis

from apihub_core import TOKEN_STREAM_MAXLEN, Event, Keys, encode_entry


class TokenStream:
    """The token stream (``<ns>:tokens``) as the keeper writes it: never a token, never a key."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self._redis = redis
        self.name = keys.tokens

    async def append(self, event: Event) -> bytes:
        """``XADD`` one event (approximate ``MAXLEN``); returns its entry id."""
        entry_id = await self._redis.xadd(
            self.name, encode_entry(event), maxlen=TOKEN_STREAM_MAXLEN, approximate=True
        )
        return entry_id if isinstance(entry_id, bytes) else entry_id.encode()
