"""The dispatcher: request stream → validate → the governed path → outcome, acknowledged
atomically with the events it writes."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence

import anyio
import msgspec
import redis.asyncio as aioredis
from anyio.abc import TaskStatus
from opentelemetry.trace import SpanKind, StatusCode
from redis.exceptions import RedisError, ResponseError

from apihub_brokers import BrokerClient
from apihub_core import (
    DEAD_LETTER_MAXLEN,
    PRIORITIES,
    REPLY_MAXLEN,
    REPLY_TTL_S,
    RESPONSE_STREAM_MAXLEN,
    TYPE_FIELD,
    EntryDecodeError,
    Keys,
    Outcome,
    Priority,
    Provider,
    RequestFailed,
    RequestInvalid,
    RequestSubmitted,
    RequestTimeout,
    decode_request,
    encode_entry,
    extract_trace,
    failure_for,
    hub_code,
    now_ms,
    start_span,
)
from apihub_governance import CircuitBreaker, Gatekeeper
from apihub_runtime import (
    Append,
    Committer,
    Delivery,
    Service,
    Settings,
    StreamConsumer,
    TokenSource,
    consumer_name,
    dead_letter_event,
)

from ._executor import Executor
from ._idempotency import IdempotencyLedger, replay
from ._request_ids import RequestIdClaim, RequestIdLedger
from ._validation import Rejection, ValidRequest, entry_size, validate

log = logging.getLogger("apihub.dispatcher")

FINISH_TIMEOUT_S = 5.0
"""How long committing an outcome may keep retrying against a failing Redis."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Partial:
    """Whatever identifying fields can be read from an entry that failed to decode, as sent."""

    request_id: str | None = None
    provider: str = ""
    tr_id: str = ""
    reply_to: str | None = None
    account: str | None = None
    priority: Priority = "interactive"
    tags: dict[str, str] = dataclasses.field(default_factory=dict)


def _partial(fields: Mapping[bytes, bytes]) -> _Partial:
    # Field by field: one mistyped field must not hide the request id and reply stream.
    try:
        document = msgspec.json.decode(fields.get(b"data", b""))
    except msgspec.DecodeError:
        return _Partial()
    if not isinstance(document, dict):
        return _Partial()

    def text(name: str) -> str | None:
        value = document.get(name)
        return value if isinstance(value, str) else None

    priority = text("priority")
    tags = document.get("tags")
    return _Partial(
        request_id=text("request_id") or None,
        provider=text("provider") or "",
        tr_id=text("tr_id") or "",
        reply_to=text("reply_to"),
        account=text("account"),
        priority=priority if priority in PRIORITIES else "interactive",
        tags=(
            {k: v for k, v in tags.items() if isinstance(k, str) and isinstance(v, str)}
            if isinstance(tags, dict)
            else {}
        ),
    )


def _sent(request: RequestSubmitted, *, reply: bool = True) -> _Partial:
    return _Partial(
        request.request_id or None,
        request.provider,
        request.tr_id,
        request.reply_to if reply else None,
        request.account,
        request.priority,
        request.tags,
    )


def _canonical(valid: ValidRequest) -> ValidRequest:
    """The request as the hub resolved it: the provider's own spelling and the account that
    serves it (the default's name when none was named), echoed in every outcome."""
    request = msgspec.structs.replace(
        valid.request, provider=valid.provider.value, account=valid.account.name
    )
    return dataclasses.replace(valid, request=request)


class Dispatcher:
    """Consumes the request stream as one member of the dispatcher consumer group.

    ``companions`` are background services (the gatekeeper's event flusher, the token
    watcher) that start before it consumes and stop only after it drained.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        settings: Settings,
        clients: Mapping[Provider, BrokerClient],
        tokens: TokenSource,
        gatekeeper: Gatekeeper,
        breaker: CircuitBreaker,
        *,
        consumer: str | None = None,
        companions: Sequence[Service] = (),
    ) -> None:
        self._redis = redis
        self._settings = settings
        self.keys = Keys(settings.namespace)
        self._committer = Committer(redis)
        self._ledger = IdempotencyLedger(redis, self.keys)
        self._request_ids = RequestIdLedger(redis, self.keys)
        self._companions = tuple(companions)
        tuning = settings.dispatcher
        self._tuning = tuning
        member = consumer or consumer_name("dispatcher")
        self._executor = Executor(
            redis, settings, clients, tokens, gatekeeper, breaker, member=member
        )
        self.consumer = StreamConsumer(
            redis,
            stream=self.keys.requests,
            group=tuning.group,
            consumer=member,
            handler=self._handle,
            on_poison=self._poison,
            concurrency=tuning.concurrency,
            read_count=tuning.read_count,
            block_ms=tuning.block_ms,
            reclaim_idle_ms=tuning.reclaim_idle_ms,
            reclaim_interval_s=tuning.reclaim_interval_s,
            max_deliveries=tuning.max_deliveries,
            shutdown_grace_s=tuning.shutdown_grace_s,
            progress_key=self.keys.group_progress(self.keys.requests, tuning.group),
            members_key=self.keys.group_members(self.keys.requests, tuning.group),
        )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Consume until :meth:`stop`; readiness is signalled once the group exists.

        The companions start first and stop only after the last in-flight request has
        finished, so nothing they hold is lost.
        """
        async with anyio.create_task_group() as tg:
            for companion in self._companions:
                await tg.start(companion.run)
            try:
                await self.consumer.run(task_status=task_status)
            finally:
                for companion in reversed(self._companions):
                    companion.stop()

    def stop(self) -> None:
        """Stop taking requests and drain: waiting requests go back to the group at once,
        calls at the broker finish (bounded by the shutdown grace)."""
        self.consumer.stop()

    # -- one entry -------------------------------------------------------------------------

    async def _handle(self, delivery: Delivery) -> None:
        size = entry_size(delivery.fields)
        if size > self._tuning.max_entry_bytes:
            await self._reject(
                delivery,
                "oversized",
                f"entry is {size} bytes; the limit is {self._tuning.max_entry_bytes}",
                _partial(delivery.fields),
            )
            return
        try:
            request = decode_request(delivery.fields, strict=True)
        except EntryDecodeError as exc:
            await self._reject(delivery, exc.reason, exc.detail, _partial(delivery.fields))
            return
        try:
            valid = validate(request, self._settings, self.keys)
        except Rejection as exc:
            partial = _sent(request, reply=exc.reason != "bad_reply_to")
            await self._reject(delivery, exc.reason, exc.detail, partial)
            return
        valid = _canonical(valid)
        request = valid.request
        claim = await self._request_ids.claim(request, delivery.id_text)
        if not claim.owned_by(delivery.id_text):
            await self._answer_repeat(delivery, valid, claim)
            return
        with start_span(
            f"apihub.dispatch {request.tr_id}",
            context=extract_trace(request.trace),
            kind=SpanKind.CONSUMER,
            attributes={
                "apihub.request_id": request.request_id,
                "apihub.provider": valid.provider.value,
                "apihub.tr_id": request.tr_id,
                "apihub.account": valid.account.name,
                "apihub.entry_id": delivery.id_text,
                "apihub.reclaimed": delivery.reclaimed,
            },
        ) as span:
            outcome = await self._execute(valid, delivery)
            if isinstance(outcome, RequestFailed):
                span.set_attribute("apihub.error_class", outcome.error_class)
                span.set_status(StatusCode.ERROR, outcome.error_class)
            await self._finish(delivery, request, outcome)

    async def _answer_repeat(
        self, delivery: Delivery, valid: ValidRequest, claim: RequestIdClaim
    ) -> None:
        """Another entry already used this request id: its answer, or a refusal; never a call.

        Nothing is written to the response stream, where the id stands for the first request.
        """
        request = valid.request
        first = f"request_id {request.request_id!r} was first used by entry {claim.entry}"
        if not claim.matches:
            await self._reject(
                delivery,
                "request_id_reused",
                f"{first} for a different request (provider, account, TR, parameters, page or "
                "idempotency key differ); this one was not executed: use a new request_id",
                _sent(request),
                audit=False,
            )
            return
        answer = claim.answer
        if answer is None and claim.answered_at_ms is None:
            with delivery.releasable():
                answer = await self._request_ids.wait_for_answer(
                    request, self._executor.seconds_left(request, delivery)
                )
        if answer is not None:
            outcome = replay(answer, request)
        elif claim.answered_at_ms is not None:
            await self._reject(
                delivery,
                "request_id_reused",
                f"{first} and answered at {claim.answered_at_ms} (Unix ms); its answer is no "
                f"longer on {self.keys.responses} (trimmed): use a new request_id to call "
                "again",
                _sent(request),
                audit=False,
            )
            return
        else:
            outcome = failure_for(
                request,
                RequestTimeout(
                    f"{first}, which has not been answered yet; this request did not call the "
                    "broker and its answer will be the first one's"
                ),
            )
        appends = []
        if request.reply_to:
            appends.append(
                Append(request.reply_to, encode_entry(outcome), REPLY_MAXLEN, REPLY_TTL_S)
            )
        await self._commit(delivery, appends, request.request_id)

    async def _poison(self, delivery: Delivery) -> None:
        if not delivery.fields:
            # Trimmed or deleted while pending: nothing to answer, only the pending slot to free.
            await self._redis.xack(self.keys.requests, self._tuning.group, delivery.entry_id)
            return
        await self._reject(
            delivery,
            "too_many_deliveries",
            f"delivered {delivery.deliveries} times without completing "
            f"(limit {self._tuning.max_deliveries})",
            _partial(delivery.fields),
        )

    async def _execute(self, valid: ValidRequest, delivery: Delivery) -> Outcome:
        if valid.request.idempotency_key:
            return await self._execute_once(valid, delivery)
        return await self._executor.execute(valid, delivery)

    async def _execute_once(self, valid: ValidRequest, delivery: Delivery) -> Outcome:
        """One upstream call per idempotency key; duplicates get the owner's answer."""
        request, provider, account = valid.request, valid.provider.value, valid.account.name
        claim = await self._ledger.claim(provider, account, request)
        if not claim.matches:
            mismatch = failure_for(
                request,
                RequestInvalid(
                    f"idempotency key {request.idempotency_key!r} was first used by request "
                    f"{claim.owner} with a different TR or parameters"
                ),
            )
            return msgspec.structs.replace(mismatch, code="APIHUB-IDEMPOTENCY-MISMATCH")
        if claim.owned_by(request.request_id):
            if claim.answer is not None:
                return claim.answer  # a redelivery after the answer was recorded
            outcome = await self._executor.execute(valid, delivery)
            await self._ledger.record(provider, account, request, outcome)
            return outcome
        answer = claim.answer
        if answer is None:
            with delivery.releasable():
                answer = await self._ledger.wait_for_answer(
                    provider, account, request, self._executor.seconds_left(request, delivery)
                )
        if answer is None:
            return failure_for(
                request,
                RequestTimeout(
                    f"request {claim.owner} with the same idempotency key has not been "
                    "answered yet; this request did not call the broker"
                ),
            )
        return replay(answer, request)

    # -- writing outcomes ------------------------------------------------------------------

    async def _finish(
        self, delivery: Delivery, request: RequestSubmitted, outcome: Outcome
    ) -> None:
        entry = encode_entry(outcome)
        # The reply stream first: if it cannot be written, nothing else was appended yet.
        appends = []
        if request.reply_to:
            appends.append(Append(request.reply_to, entry, REPLY_MAXLEN, REPLY_TTL_S))
        # The request id's record learns where its answer is, in the same atomic commit.
        note = self._request_ids.note(request.request_id)
        appends.append(Append(self.keys.responses, entry, RESPONSE_STREAM_MAXLEN, note=note))
        await self._commit(delivery, appends, request.request_id)

    async def _reject(
        self,
        delivery: Delivery,
        reason: str,
        detail: str,
        partial: _Partial,
        *,
        audit: bool = True,
    ) -> None:
        """Dead-letter the entry; a caller with a readable request id gets ``request.failed``
        on its reply stream and (``audit``) on the response stream."""
        log.warning(
            "dead-lettering %s (%s): %s", delivery.id_text, reason, detail.splitlines()[0][:200]
        )
        appends = []
        if partial.request_id:
            failure = encode_entry(
                RequestFailed(
                    request_id=partial.request_id,
                    provider=partial.provider,
                    tr_id=partial.tr_id,
                    account=partial.account,
                    error_class="invalid",
                    code=hub_code(reason),
                    message=f"{reason}: {detail}"[:1000],
                    failed_at_ms=now_ms(),
                    priority=partial.priority,
                    tags=partial.tags,
                )
            )
            if partial.reply_to and self.keys.is_reply_stream(partial.reply_to):
                appends.append(Append(partial.reply_to, failure, REPLY_MAXLEN, REPLY_TTL_S))
            if audit:
                appends.append(Append(self.keys.responses, failure, RESPONSE_STREAM_MAXLEN))
        appends.append(self._letter(delivery, reason, detail, partial.request_id))
        await self._commit(delivery, appends, partial.request_id)

    def _letter(
        self, delivery: Delivery, reason: str, detail: str, request_id: str | None
    ) -> Append:
        letter = dead_letter_event(
            source_stream=delivery.stream,
            entry_id=delivery.id_text,
            fields=delivery.fields,
            reason=reason,
            detail=detail,
            request_id=request_id,
            group=self._tuning.group,
            deliveries=delivery.deliveries,
        )
        return Append(self.keys.dead_letter, encode_entry(letter), DEAD_LETTER_MAXLEN)

    async def _unwritable_reply(
        self, delivery: Delivery, appends: list[Append], request_id: str | None
    ) -> list[Append] | None:
        """The appends to commit instead when a reply stream cannot be written (a key of
        another type): without it, plus a dead letter saying so; ``None`` if that is not it."""
        replies = [a for a in appends if a.stream.startswith(self.keys.reply_prefix)]
        if not replies:
            return None
        stream = replies[0].stream
        try:
            found = await self._redis.type(stream)
            kind = found.decode() if isinstance(found, bytes) else str(found)
        except (RedisError, OSError):
            kind = "key of another type"
        if kind in ("stream", "none"):
            return None
        tag = replies[0].entry[TYPE_FIELD]
        event = tag.decode() if isinstance(tag, bytes) else str(tag)
        rest = [a for a in appends if not a.stream.startswith(self.keys.reply_prefix)]
        where = (
            f"; it is on {self.keys.responses}"
            if any(a.stream == self.keys.responses for a in rest)
            else ""
        )
        detail = (
            f"reply_to {stream!r} is a Redis {kind}, not a stream, so the answer ({event}) "
            f"could not be written there{where}"
        )
        log.warning("reply stream of %s unwritable: %s", delivery.id_text, detail)
        return [*rest, self._letter(delivery, "bad_reply_to", detail, request_id)]

    async def _commit(
        self, delivery: Delivery, appends: list[Append], request_id: str | None = None
    ) -> None:
        # Shielded: once the broker answered, a shutdown must not lose the answer between the
        # events and the XACK. The commit script makes them one step: all land, or the entry
        # stays pending and is reclaimed.
        with anyio.CancelScope(shield=True) as scope:
            scope.deadline = anyio.current_time() + FINISH_TIMEOUT_S
            backoff = 0.05
            while True:
                try:
                    await self._committer.commit(
                        delivery.stream, self._tuning.group, delivery.entry_id, appends
                    )
                except ResponseError as exc:
                    instead = (
                        await self._unwritable_reply(delivery, appends, request_id)
                        if "WRONGTYPE" in str(exc)
                        else None
                    )
                    if instead is None:
                        log.warning("commit of %s failed (%s); retrying", delivery.id_text, exc)
                        await anyio.sleep(backoff)
                        backoff = min(backoff * 2, 1.0)
                    else:
                        appends = instead
                except (RedisError, OSError) as exc:
                    log.warning("commit of %s failed (%s); retrying", delivery.id_text, exc)
                    await anyio.sleep(backoff)
                    backoff = min(backoff * 2, 1.0)
                else:
                    return
        # Out of time: the entry stays pending and is reclaimed (and answered) later.
        raise TimeoutError(f"commit of {delivery.id_text} did not land in {FINISH_TIMEOUT_S:g} s")
