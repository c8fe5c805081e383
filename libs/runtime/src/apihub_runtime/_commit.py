"""Append outcome events and acknowledge the source entry in one atomic step.

One Lua script instead of ``MULTI``/``EXEC``: no other client ever sees the events without the
acknowledgement (a script runs atomically), and it is one command with one reply instead of a
transaction's five, which matters on the hot path of every request. The ``XACK`` comes last: if
an append fails (say a key of the wrong type), the script stops there and the entry stays
pending, so an outcome is never acknowledged without its events; the appends made before the
error stay, which is why readers of the response stream deduplicate by request id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from apihub_core import DATA_FIELD, TYPE_FIELD, EntryFields

_COMMIT_LUA: Final = f"""
local appends = tonumber(ARGV[3])
local at = 4
for n = 1, appends do
  local key = KEYS[n + 1]
  redis.call('XADD', key, 'MAXLEN', '~', ARGV[at], '*',
             '{TYPE_FIELD}', ARGV[at + 1], '{DATA_FIELD}', ARGV[at + 2])
  local ttl = tonumber(ARGV[at + 3])
  if ttl > 0 then redis.call('EXPIRE', key, ttl) end
  at = at + 4
end
return redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
"""


@dataclass(frozen=True, slots=True)
class Append:
    """One event to append: the stream, its approximate cap and an optional TTL (seconds)."""

    stream: str
    entry: EntryFields
    maxlen: int
    ttl_s: int = 0


class Committer:
    """Runs the commit script; ``XACK`` of ``entry_id`` happens only together with the appends."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._script: AsyncScript = redis.register_script(_COMMIT_LUA)

    async def commit(
        self, source_stream: str, group: str, entry_id: bytes, appends: Sequence[Append]
    ) -> int:
        """Append every event and acknowledge the entry; returns how many entries were acked."""
        keys: list[str] = [source_stream]
        args: list[bytes | str | int] = [group, entry_id, len(appends)]
        for append in appends:
            keys.append(append.stream)
            args += [
                append.maxlen,
                append.entry[TYPE_FIELD],
                append.entry[DATA_FIELD],
                append.ttl_s,
            ]
        acked = await self._script(keys=keys, args=args)
        return int(acked)
