"""Idempotency keys: two requests with the same key get one upstream call and the same answer.

The first request to claim a key owns it (``HSETNX owner``) and executes; its outcome is stored
in the same hash before it is committed. A later request with the key executes nothing: it waits
for the owner's answer and receives a copy addressed to itself (``replay_of`` = the owner's
request id). The key is scoped to (provider, account) and bound to a fingerprint of the TR and
parameters, so reusing a key for a different request is refused instead of silently answered
with someone else's result.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Final

import anyio
import msgspec
import redis.asyncio as aioredis

from apihub_core import IDEMPOTENCY_TTL_S, Keys, Outcome, RequestSubmitted, encode_event

log = logging.getLogger("apihub.dispatcher.idempotency")

_POLL_START_S: Final = 0.02
_POLL_CAP_S: Final = 0.25

_CLAIM_LUA: Final = """
redis.call('HSETNX', KEYS[1], 'owner', ARGV[1])
redis.call('HSETNX', KEYS[1], 'fingerprint', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return redis.call('HMGET', KEYS[1], 'owner', 'fingerprint', 'answer')
"""

_outcome_decoder: msgspec.json.Decoder[Outcome] = msgspec.json.Decoder(Outcome)


@dataclass(frozen=True, slots=True)
class Claim:
    """Who owns an idempotency key, and its answer if the owner already has one."""

    owner: str
    matches: bool
    answer: Outcome | None

    def owned_by(self, request_id: str) -> bool:
        """Whether ``request_id`` is the request that executes for this key."""
        return self.owner == request_id


def fingerprint(request: RequestSubmitted) -> str:
    """What makes two requests "the same" for an idempotency key: TR and parameters, and the
    page asked for (``cont``/``next_key``) when it is not the first."""
    content: list[object] = [request.tr_id, sorted(request.params.items())]
    if request.cont or request.next_key:
        # Only then: a first-page request keeps the fingerprint keys stored before had.
        content += [request.cont, request.next_key]
    return hashlib.sha256(msgspec.json.encode(content)).hexdigest()[:32]


class IdempotencyLedger:
    """Claims keys, records answers and waits for them, in one hash per key."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._claim = redis.register_script(_CLAIM_LUA)

    def _key(self, provider: str, account: str, request: RequestSubmitted) -> str:
        assert request.idempotency_key is not None  # noqa: S101 - callers check
        return self._keys.idempotency(provider, account, request.idempotency_key)

    async def claim(self, provider: str, account: str, request: RequestSubmitted) -> Claim:
        """Claim the request's key (or learn who holds it)."""
        owner, print_, answer = await self._claim(
            keys=[self._key(provider, account, request)],
            args=[request.request_id, fingerprint(request), IDEMPOTENCY_TTL_S],
        )
        return Claim(
            owner=owner.decode(),
            matches=print_.decode() == fingerprint(request),
            answer=_outcome_decoder.decode(answer) if answer else None,
        )

    async def record(
        self, provider: str, account: str, request: RequestSubmitted, outcome: Outcome
    ) -> None:
        """Store the owner's answer for the duplicates waiting on it."""
        await self._redis.hset(
            self._key(provider, account, request), "answer", encode_event(outcome)
        )

    async def wait_for_answer(
        self, provider: str, account: str, request: RequestSubmitted, budget_s: float
    ) -> Outcome | None:
        """The owner's answer, or ``None`` if none came within ``budget_s`` (the time left
        before this request's own deadline)."""
        key = self._key(provider, account, request)
        budget = max(0.0, budget_s)
        delay = _POLL_START_S
        # Polling, not a stream read: duplicates are rare and the answer is a hash field, so a
        # few cheap HGETs beat keeping a reader per waiting duplicate.
        with anyio.move_on_after(budget):
            while True:
                raw = await self._redis.hget(key, "answer")
                if raw:
                    return _outcome_decoder.decode(raw)
                await anyio.sleep(delay)
                delay = min(delay * 2, _POLL_CAP_S)
        return None


def replay(outcome: Outcome, request: RequestSubmitted) -> Outcome:
    """The owner's answer, addressed to ``request`` and marked as a replay."""
    return msgspec.structs.replace(
        outcome, request_id=request.request_id, replay_of=outcome.request_id
    )
