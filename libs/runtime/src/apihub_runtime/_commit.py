"""Append outcome events and acknowledge the source entry in one atomic step.

One Lua script instead of ``MULTI``/``EXEC``: no other client ever sees an entry's events without
its acknowledgement (a script runs atomically), and it is one command with one reply instead of a
transaction's five, which matters on the hot path of every request. Each entry's ``XACK`` comes
after its appends: if an append fails (say a key of the wrong type), that entry is not
acknowledged and stays pending, so an outcome is never acknowledged without its events; the
appends made before the error stay, which is why readers of the response stream deduplicate by
request id.

Commits made while another is on its way are sent together, in one script call, when it
returns: under load the round trip is paid per batch instead of per entry, and one entry's
failure never holds back the others in its batch. A lone commit goes out at once. A commit that
was sent is seen through even if its caller is cancelled meanwhile (other callers' commits ride
in the same call).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from apihub_core import DATA_FIELD, TYPE_FIELD, EntryFields

COMMIT_NOTE_FIELD: Final = "outcome"
"""The field of an :attr:`Append.note` hash that receives the appended entry's id."""

MAX_BATCH: Final = 64
"""Most entries committed by one script call."""

CALL_TIMEOUT_S: Final = 10.0
"""Bound of one commit script call."""

_COMMIT_LUA: Final = f"""
local group = ARGV[1]
local entries = tonumber(ARGV[2])
local at = 3
local key = 2
local out = {{}}
for e = 1, entries do
  local id = ARGV[at]
  local appends = tonumber(ARGV[at + 1])
  at = at + 2
  local failed = nil
  for n = 1, appends do
    local noted = tonumber(ARGV[at + 4])
    if not failed then
      local added = redis.pcall('XADD', KEYS[key], 'MAXLEN', '~', ARGV[at], '*',
                                '{TYPE_FIELD}', ARGV[at + 1], '{DATA_FIELD}', ARGV[at + 2])
      if type(added) == 'table' and added.err then
        failed = added.err
      else
        local ttl = tonumber(ARGV[at + 3])
        if ttl > 0 then redis.call('EXPIRE', KEYS[key], ttl) end
        if noted == 1 and redis.call('EXISTS', KEYS[key + 1]) == 1 then
          redis.call('HSET', KEYS[key + 1], '{COMMIT_NOTE_FIELD}', added)
        end
      end
    end
    at = at + 5
    key = key + 1 + noted
  end
  if failed then
    out[e] = failed
  else
    out[e] = redis.call('XACK', KEYS[1], group, id)
  end
end
return out
"""
"""KEYS: the source stream, then every append's stream in order (each followed by its ``note``
hash, if it has one). ARGV: group, entry count, then per entry: entry id, append count, and per
append: MAXLEN, type, data, TTL seconds, 1 if it has a note hash else 0. Returns per entry the
number acknowledged, or the error that stopped its appends."""


@dataclass(frozen=True, slots=True)
class Append:
    """One event to append: the stream, its approximate cap and an optional TTL (seconds).

    ``note``: the key of a hash that, if it exists, records the new entry's id under
    :data:`COMMIT_NOTE_FIELD`, in the same atomic step (an index from, say, a request id to its
    outcome, without a second round trip or a copy of the event)."""

    stream: str
    entry: EntryFields
    maxlen: int
    ttl_s: int = 0
    note: str = ""


@dataclass(eq=False)
class _Commit:
    source: str
    group: str
    entry_id: bytes
    appends: Sequence[Append]
    turn: anyio.Event = field(default_factory=anyio.Event)
    done: bool = False
    acked: int = 0
    error: BaseException | None = None


class Committer:
    """Runs the commit script; ``XACK`` of an entry happens only together with its appends."""

    def __init__(self, redis: aioredis.Redis, *, max_batch: int = MAX_BATCH) -> None:
        self._script: AsyncScript = redis.register_script(_COMMIT_LUA)
        self._max_batch = max(1, max_batch)
        self._queue: deque[_Commit] = deque()
        self._sending = False
        self.calls = 0
        """Script calls made (fewer than commits under load)."""

    async def commit(
        self, source_stream: str, group: str, entry_id: bytes, appends: Sequence[Append]
    ) -> int:
        """Append every event and acknowledge the entry; returns how many entries were acked.

        Raises what stopped it (``ResponseError`` for an append that failed, a connection
        error); the entry then stays pending.
        """
        item = _Commit(source_stream, group, entry_id, appends)
        self._queue.append(item)
        if self._sending:
            # Another commit is on its way: this one goes with the next batch, which this
            # caller may be handed to send itself.
            try:
                await item.turn.wait()
            except BaseException:
                self._withdraw(item)
                raise
        if not item.done:
            await self._send_batch()
        if item.error is not None:
            raise item.error
        return item.acked

    async def _send_batch(self) -> None:
        self._sending = True
        first = self._queue[0]
        batch: list[_Commit] = []
        while self._queue and len(batch) < self._max_batch:
            head = self._queue[0]
            if (head.source, head.group) != (first.source, first.group):
                break
            batch.append(self._queue.popleft())
        try:
            replies = await self._call_shielded(batch)
        except Exception as exc:
            for item in batch:
                item.error = exc
        else:
            for item, reply in zip(batch, replies, strict=True):
                if isinstance(reply, bytes | str):
                    text = reply.decode() if isinstance(reply, bytes) else reply
                    item.error = ResponseError(text)
                else:
                    item.acked = int(reply)
        finally:
            for item in batch:
                item.done = True
                item.turn.set()
            self._pass_turn()

    def _pass_turn(self) -> None:
        """Hand the sending of the next batch to the caller at the head of the queue."""
        if self._queue:
            self._sending = True
            self._queue[0].turn.set()
        else:
            self._sending = False

    def _withdraw(self, item: _Commit) -> None:
        """A waiting caller was cancelled: drop its commit, and pass its turn on if it had
        been handed one, so the commits behind it are not stranded."""
        if item.done:
            return
        handed = item.turn.is_set()
        if item in self._queue:
            self._queue.remove(item)
        if handed:
            self._pass_turn()

    async def _call_shielded(self, batch: list[_Commit]) -> list[Any]:
        # Shielded: the batch carries other callers' commits, which must not fail because this
        # caller was cancelled; bounded, so a hung connection cannot hold it forever.
        with anyio.CancelScope(shield=True) as scope:
            scope.deadline = anyio.current_time() + CALL_TIMEOUT_S
            return await self._call(batch)
        raise RedisTimeoutError(f"no answer to a commit within {CALL_TIMEOUT_S:g} s")

    async def _call(self, batch: list[_Commit]) -> list[Any]:
        first = batch[0]
        keys: list[str] = [first.source]
        args: list[bytes | str | int] = [first.group, len(batch)]
        for item in batch:
            args += [item.entry_id, len(item.appends)]
            for append in item.appends:
                keys.append(append.stream)
                if append.note:
                    keys.append(append.note)
                args += [
                    append.maxlen,
                    append.entry[TYPE_FIELD],
                    append.entry[DATA_FIELD],
                    append.ttl_s,
                    1 if append.note else 0,
                ]
        self.calls += 1
        replies: list[Any] = await self._script(keys=keys, args=args)
        return replies
