"""Claims on pages in flight: one asker per page at a time, fleet-wide.

A claim is a Redis string at ``Keys.market_chunk(...)`` set with ``NX PX``: its value is the
owner (a gap id, a backfill job id). When the owner's call succeeds on a page whose bars had
all ended, the value becomes ``done:<request id>`` for ``done_ttl_ms``: anyone else who needs
that page then knows its bars are on their way into the archive and does not ask again. A page
that was still forming (today's last page) or whose call failed is simply released. Changing
or dropping a claim is compare-and-set in a script, so an owner whose claim expired can never
drop someone else's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import redis.asyncio as aioredis

from apihub_core import Keys

from ._pages import Page

DONE_PREFIX: Final = "done:"

_SWAP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[2] == '' then
    return redis.call('DEL', KEYS[1])
  end
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a page: an owner still asking, or ``done`` with the request that fetched it."""

    owner: str
    done: bool
    request_id: str = ""


class PageClaims:
    """Claims on pages under one namespace."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._swap = redis.register_script(_SWAP)

    def key(self, page: Page) -> str:
        """The claim key of ``page``."""
        return self._keys.market_chunk(page.provider, page.symbol, page.interval, page.chunk)

    async def claim(self, page: Page, owner: str, *, ttl_ms: int) -> Holder | None:
        """Claim ``page`` for ``owner``: ``None`` when it is ours now (or was already), else who
        holds it."""
        key = self.key(page)
        if await self._redis.set(key, owner, nx=True, px=ttl_ms):
            return None
        holder = await self.holder(page)
        if holder is not None and holder.owner == owner and not holder.done:
            await self._redis.pexpire(key, ttl_ms)
            return None
        return holder

    async def holder(self, page: Page) -> Holder | None:
        """Who holds ``page`` now, if anyone."""
        raw = await self._redis.get(self.key(page))
        if raw is None:
            return None
        value = raw.decode() if isinstance(raw, bytes) else str(raw)
        if value.startswith(DONE_PREFIX):
            return Holder(owner="", done=True, request_id=value[len(DONE_PREFIX) :])
        return Holder(owner=value, done=False)

    async def complete(self, page: Page, owner: str, request_id: str, *, done_ttl_ms: int) -> bool:
        """Mark ``page`` fetched by ``owner`` (``request_id``); False if the claim was lost."""
        swapped = await self._swap(
            keys=[self.key(page)], args=[owner, DONE_PREFIX + request_id, done_ttl_ms]
        )
        return bool(swapped)

    async def release(self, page: Page, owner: str) -> bool:
        """Give ``page`` back (the call failed, or the page was still forming)."""
        return bool(await self._swap(keys=[self.key(page)], args=[owner, "", 0]))
