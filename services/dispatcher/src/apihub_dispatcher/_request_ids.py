"""Request ids are used once: a second request with an id already seen never calls the broker.

The first entry to claim a request id owns it (``HSETNX entry`` in one script, so two
dispatchers agree on who was first) together with a fingerprint of what it asks for. When the
owner's outcome is committed, the commit script notes its entry id on the response stream in the
same record (:attr:`apihub_runtime.Append.note`): no second round trip, and no copy of the
answer kept beside the one on the response stream. Another entry with the same id then gets,
without a broker call:

- the same content: the first one's answer, marked ``replay_of`` = the request id (waiting for
  it, within its own deadline, if the first is still running);
- different content, or the first one's answer trimmed from the response stream meanwhile: a
  refusal, ``request_id_reused``.

A redelivery of the owning entry itself (after a crash) is no repeat: it carries on (its outcome
was not committed, or it would not be redelivered).

Claims made while another is on its way go out together in one script call when it returns, so
under load the round trip is paid per batch, not per request.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final, cast

import anyio
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import TimeoutError as RedisTimeoutError

from apihub_core import DATA_FIELD, REQUEST_ID_TTL_S, Keys, Outcome, RequestSubmitted
from apihub_runtime import COMMIT_NOTE_FIELD

log = logging.getLogger("apihub.dispatcher.request_ids")

_POLL_START_S: Final = 0.02
_POLL_CAP_S: Final = 0.25
_MAX_BATCH: Final = 64
_CALL_TIMEOUT_S: Final = 10.0

_CLAIM_LUA: Final = f"""
local ttl = ARGV[1]
local out = {{}}
for n = 2, #KEYS do
  local record = KEYS[n]
  local entry, printed = ARGV[2 * n - 2], ARGV[2 * n - 1]
  if redis.call('HSETNX', record, 'entry', entry) == 1 then
    redis.call('HSET', record, 'fingerprint', printed)
    redis.call('EXPIRE', record, ttl)
  end
  local got = redis.call('HMGET', record, 'entry', 'fingerprint', '{COMMIT_NOTE_FIELD}')
  local answer = false
  if got[3] and got[1] ~= entry then
    local found = redis.call('XRANGE', KEYS[1], got[3], got[3])
    if found[1] then
      local fields = found[1][2]
      for f = 1, #fields, 2 do
        if fields[f] == '{DATA_FIELD}' then answer = fields[f + 1] end
      end
    end
  end
  out[n - 1] = {{got[1], got[2], got[3] or false, answer}}
end
return out
"""
"""KEYS: the response stream, then one record per claim. ARGV: record TTL, then per claim its
entry id and content fingerprint. Returns per claim: the owning entry, its fingerprint, the
response-stream id of its committed outcome (if any) and, for a repeat, that outcome's data
(if the stream still holds it)."""

_outcome_decoder: msgspec.json.Decoder[Outcome] = msgspec.json.Decoder(Outcome)


def content_fingerprint(request: RequestSubmitted) -> str:
    """What makes two requests with one id "the same": everything that reaches the broker or
    decides which call it is (provider, account, TR, parameters, paging, idempotency key,
    pass-through description) —
    not priority, deadline, reply stream or trace, which a retry may change."""
    parts: list[object] = [
        request.provider,
        request.account,
        request.tr_id,
        sorted(request.params.items()),
        request.cont,
        request.next_key,
        request.idempotency_key,
    ]
    if request.passthrough is not None:
        parts.append(request.passthrough)  # appended only when set: old fingerprints stand
    canonical = msgspec.json.encode(parts)
    return hashlib.sha256(canonical).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class RequestIdClaim:
    """Which entry first used a request id, and what became of it."""

    entry: str
    matches: bool
    answered_at_ms: int | None
    answer: Outcome | None

    def owned_by(self, entry_id: str) -> bool:
        """Whether ``entry_id`` is the entry that first used the id (not a repeat)."""
        return self.entry == entry_id


@dataclass(eq=False)
class _Pending:
    request_id: str
    entry_id: str
    printed: str
    turn: anyio.Event = field(default_factory=anyio.Event)
    done: bool = False
    reply: Any = None
    error: BaseException | None = None


class RequestIdLedger:
    """Claims request ids and waits for the answers of their first requests."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._claim = redis.register_script(_CLAIM_LUA)
        self._queue: deque[_Pending] = deque()
        self._sending = False
        self.calls = 0
        """Claim script calls made (fewer than claims under load)."""

    def note(self, request_id: str) -> str:
        """The record to name as the ``note`` of the owner's response-stream append."""
        return self._keys.request_record(request_id)

    async def claim(self, request: RequestSubmitted, entry_id: str) -> RequestIdClaim:
        """Claim ``request.request_id`` for ``entry_id`` (or learn which entry holds it)."""
        item = _Pending(request.request_id, entry_id, content_fingerprint(request))
        self._queue.append(item)
        if self._sending:
            try:
                await item.turn.wait()
            except BaseException:
                self._withdraw(item)
                raise
        if not item.done:
            await self._send_batch()
        if item.error is not None:
            raise item.error
        entry, stored, outcome_id, answer = item.reply
        return RequestIdClaim(
            entry=entry.decode(),
            matches=stored.decode() == item.printed,
            answered_at_ms=_id_ms(outcome_id) if outcome_id else None,
            answer=_outcome_decoder.decode(answer) if answer else None,
        )

    async def _send_batch(self) -> None:
        self._sending = True
        batch = [self._queue.popleft() for _ in range(min(_MAX_BATCH, len(self._queue)))]
        try:
            replies = await self._call_shielded(batch)
        except Exception as exc:
            for item in batch:
                item.error = exc
        else:
            for item, reply in zip(batch, replies, strict=True):
                item.reply = reply
        finally:
            for item in batch:
                item.done = True
                item.turn.set()
            self._pass_turn()

    async def _call_shielded(self, batch: list[_Pending]) -> list[Any]:
        # Shielded and bounded, as commits are: the batch carries other callers' claims.
        with anyio.CancelScope(shield=True) as scope:
            scope.deadline = anyio.current_time() + _CALL_TIMEOUT_S
            keys = [self._keys.responses, *(self.note(i.request_id) for i in batch)]
            args: list[str | int] = [REQUEST_ID_TTL_S]
            for item in batch:
                args += [item.entry_id, item.printed]
            self.calls += 1
            replies: list[Any] = await self._claim(keys=keys, args=args)
            return replies
        raise RedisTimeoutError(f"no answer to a claim within {_CALL_TIMEOUT_S:g} s")

    def _pass_turn(self) -> None:
        if self._queue:
            self._sending = True
            self._queue[0].turn.set()
        else:
            self._sending = False

    def _withdraw(self, item: _Pending) -> None:
        if item.done:
            return
        handed = item.turn.is_set()
        if item in self._queue:
            self._queue.remove(item)
        if handed:
            self._pass_turn()

    async def wait_for_answer(self, request: RequestSubmitted, budget_s: float) -> Outcome | None:
        """The first request's answer, or ``None`` if none came within ``budget_s``."""
        record = self._keys.request_record(request.request_id)
        delay = _POLL_START_S
        # Polling, as for idempotency keys: repeats are rare, the answer is one field away.
        with anyio.move_on_after(max(0.0, budget_s)):
            while True:
                outcome_id = await self._redis.hget(record, COMMIT_NOTE_FIELD)
                if outcome_id:
                    found = await self._redis.xrange(self._keys.responses, outcome_id, outcome_id)
                    if not found:
                        return None
                    fields = cast(dict[bytes, bytes], found[0][1])
                    return _outcome_decoder.decode(fields[DATA_FIELD.encode()])
                await anyio.sleep(delay)
                delay = min(delay * 2, _POLL_CAP_S)
        return None


def _id_ms(entry_id: bytes) -> int:
    """The millisecond part of a stream entry id: when the entry was appended."""
    return int(entry_id.split(b"-", 1)[0])
