"""A Redis lock with fencing tokens, for work only one process may do at a time.

Acquisition is ``SET key owner NX PX ttl`` plus ``INCR`` of a fence counter, in one script so a
holder always has a fence number strictly greater than every earlier holder's. Release deletes
the key only if it still holds our random owner value (compare-and-delete), so a holder whose
lease ran out can never release its successor's lock. The fence number is what makes a stale
holder harmless: whatever it writes carries its (smaller) fence, and the store refuses writes
older than what it has (see :class:`~apihub_runtime.TokenStore`).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Final

import redis.asyncio as aioredis

log = logging.getLogger("apihub.lock")

_ACQUIRE_LUA: Final = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local fence = redis.call('INCR', KEYS[2])
  local floor = tonumber(ARGV[3])
  if fence <= floor then
    -- The counter is behind what it guards (it was lost or reset): never hand out a fence
    -- that the store would refuse.
    fence = floor + 1
    redis.call('SET', KEYS[2], fence)
  end
  return fence
end
redis.call('HINCRBY', KEYS[3], KEYS[1], 1)
return 0
"""

_RELEASE_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_EXTEND_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Lease:
    """A held lock: the owner value proves it is ours, the fence orders it among all holders."""

    key: str
    owner: str
    fence: int


class FencedLock:
    """One named lock. ``contention_key`` is a hash counting failed acquisitions per lock."""

    def __init__(
        self, redis: aioredis.Redis, key: str, fence_key: str, contention_key: str
    ) -> None:
        self._redis = redis
        self.key = key
        self._fence_key = fence_key
        self._contention_key = contention_key
        self._acquire = redis.register_script(_ACQUIRE_LUA)
        self._release = redis.register_script(_RELEASE_LUA)
        self._extend = redis.register_script(_EXTEND_LUA)

    async def try_acquire(self, ttl_ms: int, *, above: int = 0) -> Lease | None:
        """The lease if the lock was free, else ``None`` (and the contention is counted).

        The fence is greater than every earlier holder's and than ``above`` (the fence of what
        the lock guards, e.g. the stored token), even if the fence counter was lost.
        """
        owner = secrets.token_hex(16)
        fence = int(
            await self._acquire(
                keys=[self.key, self._fence_key, self._contention_key],
                args=[owner, ttl_ms, above],
            )
        )
        if fence == 0:
            log.info("lock %s is held by another process", self.key)
            return None
        return Lease(self.key, owner, fence)

    async def release(self, lease: Lease) -> bool:
        """Delete the lock if ``lease`` still holds it; ``False`` if it had expired or moved on."""
        released = bool(await self._release(keys=[lease.key], args=[lease.owner]))
        if not released:
            log.warning("lock %s was no longer ours at release (fence %d)", lease.key, lease.fence)
        return released

    async def extend(self, lease: Lease, ttl_ms: int) -> bool:
        """Push the expiry of a lease we still hold; ``False`` if it is no longer ours."""
        return bool(await self._extend(keys=[lease.key], args=[lease.owner, ttl_ms]))

    async def contention(self) -> int:
        """How many acquisitions of this lock failed because it was held."""
        count = await self._redis.hget(self._contention_key, self.key)
        return int(count or 0)
