"""Request ids are used once: a second request with an id already seen never calls the broker.

The first entry to claim a request id owns it (``HSETNX entry`` in one script, so two
dispatchers agree on who was first) together with a fingerprint of what it asks for. Its outcome
is kept for a while (``REQUEST_ANSWER_TTL_S``) before it is committed. Another entry with the same
id then gets, without a broker call:

- the same content: the first one's answer, marked ``replay_of`` = the request id (waiting for
  it, within its own deadline, if the first is still running);
- different content, or the first one's answer no longer kept: a refusal,
  ``request_id_reused``.

A redelivery of the owning entry itself (after a crash) is no repeat: it carries on, and if the
answer was already recorded it is committed again instead of being fetched again.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Final

import anyio
import msgspec
import redis.asyncio as aioredis

from apihub_core import (
    REQUEST_ANSWER_TTL_S,
    REQUEST_ID_TTL_S,
    Keys,
    Outcome,
    RequestSubmitted,
    encode_event,
    now_ms,
)

log = logging.getLogger("apihub.dispatcher.request_ids")

_POLL_START_S: Final = 0.02
_POLL_CAP_S: Final = 0.25

_CLAIM_LUA: Final = """
if redis.call('HSETNX', KEYS[1], 'entry', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'fingerprint', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
local record = redis.call('HMGET', KEYS[1], 'entry', 'fingerprint', 'answered_at_ms')
return {record[1], record[2], record[3], redis.call('GET', KEYS[2])}
"""
"""KEYS: the record, the answer. ARGV: entry id, fingerprint, record TTL. Returns the owning
entry, its fingerprint, when it was answered and its answer (if still kept)."""

_RECORD_LUA: Final = """
if redis.call('HGET', KEYS[1], 'entry') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('HSET', KEYS[1], 'answered_at_ms', ARGV[4])
return 1
"""
"""KEYS: the record, the answer. ARGV: entry id, outcome JSON, answer TTL, now (ms)."""

_outcome_decoder: msgspec.json.Decoder[Outcome] = msgspec.json.Decoder(Outcome)


def content_fingerprint(request: RequestSubmitted) -> str:
    """What makes two requests with one id "the same": everything that reaches the broker or
    decides which call it is (provider, account, TR, parameters, paging, idempotency key) —
    not priority, deadline, reply stream or trace, which a retry may change."""
    canonical = msgspec.json.encode(
        [
            request.provider,
            request.account,
            request.tr_id,
            sorted(request.params.items()),
            request.cont,
            request.next_key,
            request.idempotency_key,
        ]
    )
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


class RequestIdLedger:
    """Claims request ids, keeps their answers and waits for them."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._claim = redis.register_script(_CLAIM_LUA)
        self._record = redis.register_script(_RECORD_LUA)

    def _names(self, request_id: str) -> list[str]:
        return [self._keys.request_record(request_id), self._keys.request_answer(request_id)]

    async def claim(self, request: RequestSubmitted, entry_id: str) -> RequestIdClaim:
        """Claim ``request.request_id`` for ``entry_id`` (or learn which entry holds it)."""
        printed = content_fingerprint(request)
        entry, stored, answered, answer = await self._claim(
            keys=self._names(request.request_id), args=[entry_id, printed, REQUEST_ID_TTL_S]
        )
        return RequestIdClaim(
            entry=entry.decode(),
            matches=stored.decode() == printed,
            answered_at_ms=int(answered) if answered else None,
            answer=_outcome_decoder.decode(answer) if answer else None,
        )

    async def record(self, request: RequestSubmitted, entry_id: str, outcome: Outcome) -> None:
        """Keep the owner's answer for repeats of its id (before it is committed)."""
        await self._record(
            keys=self._names(request.request_id),
            args=[entry_id, encode_event(outcome), REQUEST_ANSWER_TTL_S, now_ms()],
        )

    async def wait_for_answer(self, request: RequestSubmitted, budget_s: float) -> Outcome | None:
        """The first request's answer, or ``None`` if none came within ``budget_s``."""
        key = self._keys.request_answer(request.request_id)
        delay = _POLL_START_S
        # Polling, as for idempotency keys: repeats are rare, the answer is one key.
        with anyio.move_on_after(max(0.0, budget_s)):
            while True:
                raw = await self._redis.get(key)
                if raw:
                    return _outcome_decoder.decode(raw)
                await anyio.sleep(delay)
                delay = min(delay * 2, _POLL_CAP_S)
        return None
