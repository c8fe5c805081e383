"""The dispatcher: request stream → validate → token → broker call → outcome, acknowledged
atomically with the events it writes."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from typing import Final, Protocol

import anyio
import msgspec
import redis.asyncio as aioredis
from anyio.abc import TaskStatus
from opentelemetry.trace import SpanKind, StatusCode
from redis.exceptions import RedisError

from apihub_brokers import BrokerClient, BrokerReply
from apihub_core import (
    DEAD_LETTER_MAXLEN,
    ORDER_MARKER_TTL_S,
    REPLY_MAXLEN,
    REPLY_TTL_S,
    RESPONSE_STREAM_MAXLEN,
    CircuitOpen,
    EntryDecodeError,
    ErrorClass,
    HubError,
    Keys,
    Outcome,
    Priority,
    Provider,
    RequestFailed,
    RequestSubmitted,
    ResponseReceived,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTransient,
    decode_request,
    encode_entry,
    extract_trace,
    now_ms,
    tracer,
)
from apihub_governance import Admission, Bucket, CircuitBreaker, Gatekeeper, Permit, buckets_for
from apihub_governance import Outcome as BreakerOutcome
from apihub_runtime import (
    AccessToken,
    Append,
    Committer,
    Delivery,
    Settings,
    StreamConsumer,
    TokenSource,
    consumer_name,
    dead_letter_event,
)

from ._idempotency import IdempotencyLedger, replay
from ._validation import Rejection, ValidRequest, entry_size, validate

log = logging.getLogger("apihub.dispatcher")

MAX_ATTEMPTS: Final = 3
BACKOFF_BASE_S: Final = 0.05
BACKOFF_CAP_S: Final = 2.0
FINISH_TIMEOUT_S: Final = 5.0
MAX_BREAKER_WAITS: Final = 3
"""A request with no deadline waits for at most this many probe slots before failing."""


class _Partial(msgspec.Struct):
    """Whatever identifying fields can be read from an entry that failed to decode."""

    request_id: str | None = None
    provider: str = ""
    tr_id: str = ""
    reply_to: str | None = None


def _partial(fields: Mapping[bytes, bytes]) -> _Partial:
    try:
        return msgspec.json.decode(fields.get(b"data", b""), type=_Partial)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _Partial()


def _hub_code(reason: str) -> str:
    return "APIHUB-" + reason.upper().replace("_", "-")


class Companion(Protocol):
    """A background task that lives as long as the dispatcher (started before it consumes,
    stopped after it drained)."""

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until :meth:`stop`, signalling readiness through ``task_status``."""
        ...

    def stop(self) -> None:
        """Finish (flushing what is buffered) and return from :meth:`run`."""
        ...


class Dispatcher:
    """Consumes the request stream as one member of the dispatcher consumer group."""

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
        companions: Sequence[Companion] = (),
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._clients = clients
        self._tokens = tokens
        self._gatekeeper = gatekeeper
        self._breaker = breaker
        self.keys = Keys(settings.namespace)
        self._committer = Committer(redis)
        self._ledger = IdempotencyLedger(redis, self.keys)
        self._companions = tuple(companions)
        tuning = settings.dispatcher
        self._tuning = tuning
        self.consumer = StreamConsumer(
            redis,
            stream=self.keys.requests,
            group=tuning.group,
            consumer=consumer or consumer_name("dispatcher"),
            handler=self._handle,
            on_poison=self._poison,
            concurrency=tuning.concurrency,
            read_count=tuning.read_count,
            block_ms=tuning.block_ms,
            reclaim_idle_ms=tuning.reclaim_idle_ms,
            reclaim_interval_s=tuning.reclaim_interval_s,
            max_deliveries=tuning.max_deliveries,
            shutdown_grace_s=tuning.shutdown_grace_s,
        )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Consume until :meth:`stop`; readiness is signalled once the group exists.

        The companions (the gatekeeper's event flusher, the token watcher) start first and stop
        only after the last in-flight request has finished, so nothing they hold is lost.
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
        """Stop taking new requests; in-flight ones finish (bounded by the shutdown grace)."""
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
            request = decode_request(delivery.fields)
        except EntryDecodeError as exc:
            await self._reject(delivery, exc.reason, exc.detail, _partial(delivery.fields))
            return
        try:
            valid = validate(request, self._settings, self.keys)
        except Rejection as exc:
            partial = _Partial(
                request.request_id or None,
                request.provider,
                request.tr_id,
                request.reply_to if exc.reason != "bad_reply_to" else None,
            )
            await self._reject(delivery, exc.reason, exc.detail, partial)
            return
        with tracer.start_as_current_span(
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
            outcome = await self._execute(valid)
            if isinstance(outcome, RequestFailed):
                span.set_attribute("apihub.error_class", outcome.error_class)
                span.set_status(StatusCode.ERROR, outcome.error_class)
            await self._finish(delivery, request, outcome)

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

    async def _execute(self, valid: ValidRequest) -> Outcome:
        request = valid.request
        if request.deadline_ms is not None and now_ms() >= request.deadline_ms:
            return self._failed(
                request, "timeout", "APIHUB-DEADLINE", "the deadline passed before dispatch", 0
            )
        if request.idempotency_key:
            return await self._execute_once(valid)
        return await self._execute_governed(valid)

    async def _execute_once(self, valid: ValidRequest) -> Outcome:
        """One upstream call per idempotency key; duplicates get the owner's answer."""
        request, provider, account = valid.request, valid.provider.value, valid.account.name
        claim = await self._ledger.claim(provider, account, request)
        if not claim.matches:
            return self._failed(
                request,
                "invalid",
                "APIHUB-IDEMPOTENCY-MISMATCH",
                f"idempotency key {request.idempotency_key!r} was first used by request "
                f"{claim.owner} with a different TR or parameters",
                0,
            )
        if claim.owned_by(request.request_id):
            if claim.answer is not None:
                return claim.answer  # a redelivery after the answer was recorded
            outcome = await self._execute_governed(valid)
            await self._ledger.record(provider, account, request, outcome)
            return outcome
        answer = claim.answer or await self._ledger.wait_for_answer(provider, account, request)
        if answer is None:
            return self._failed(
                request,
                "timeout",
                "APIHUB-DEADLINE",
                f"request {claim.owner} with the same idempotency key has not been answered "
                "yet; this request did not call the broker",
                0,
            )
        return replay(answer, request)

    async def _execute_governed(self, valid: ValidRequest) -> Outcome:
        """Token → breaker → rate-limit permit → call, with retries that stay within the
        caller's deadline and never resend an order that may have reached the broker."""
        request, spec, account = valid.request, valid.spec, valid.account
        # Orders, and any TR the operator declared non-idempotent, are sent at most once.
        once = spec.is_order or request.tr_id in self._tuning.non_idempotent_trs
        if once and not await self._mark_order_sent(request):
            return self._failed(
                request,
                "outcome_unknown",
                "APIHUB-OUTCOME-UNKNOWN",
                "this order was already handed to the broker by an earlier delivery; it is not "
                "sent again. Reconcile with the broker's order list using this request id",
                0,
            )
        client = self._clients[valid.provider]
        priority: Priority = "order" if spec.is_order else request.priority
        buckets = buckets_for(account, request.tr_id)
        attempts = 0
        requeues = 0
        breaker_waits = 0
        while True:
            token: AccessToken | None = None
            permit: Permit | None = None
            called = False
            started = anyio.current_time()
            try:
                # Token first: it may take a while (a cold start waits for the keeper), and a
                # permit must be spent right away to keep its place in the spacing. The breaker
                # is asked last, so a call admitted is a call sent now.
                token = await self._tokens.get(account)
                permit = await self._permit(valid, buckets, priority)
                admission = await self._breaker.admit(valid.provider.value, spec.family)
                if not admission.allowed:
                    # The permit is forfeited: waiting here would make it stale.
                    breaker_waits += 1
                    await self._wait_for_probe(valid, admission, breaker_waits)
                    continue
                called = True
                attempts += 1
                try:
                    reply = await self._call(valid, client, token, attempts)
                finally:
                    if permit is not None:
                        self._gatekeeper.observe(permit, anyio.current_time())
            except HubError as exc:
                error: HubError = exc
            else:
                await self._breaker.record(valid.provider.value, spec.family, admission, "success")
                return ResponseReceived(
                    request_id=request.request_id,
                    provider=valid.provider.value,
                    tr_id=request.tr_id,
                    account=account.name,
                    status=reply.status,
                    headers=reply.headers,
                    body=msgspec.Raw(reply.body),
                    has_more=reply.has_more,
                    next_key=reply.next_key,
                    received_at_ms=now_ms(),
                    elapsed_ms=(anyio.current_time() - started) * 1000,
                    attempts=attempts,
                )
            if not called:
                # Stopped before the broker: no token, circuit open, or no permit in time.
                # Each of those already waited as long as the deadline allowed.
                return self._failed_from(request, error, attempts)
            verdict: BreakerOutcome = (
                "failure" if isinstance(error, UpstreamTransient) else "neutral"
            )
            await self._breaker.record(valid.provider.value, spec.family, admission, verdict)
            if isinstance(error, UpstreamRateLimited):
                # A limiter miss: the broker counted differently than we did. Nothing was
                # executed, so the request goes back in line (orders too) and the budget
                # backs off.
                if permit is not None:
                    await self._gatekeeper.upstream_limited(
                        permit, code=error.code, request_id=request.request_id
                    )
                requeues += 1
                if requeues <= self._settings.rate_limiter.max_requeues and self._time_left(
                    request
                ):
                    log.info(
                        "re-queueing %s %s after %s (%d)",
                        request.request_id,
                        request.tr_id,
                        error.code,
                        requeues,
                    )
                    continue
                return self._failed_from(request, error, attempts)
            if isinstance(error, UpstreamAuthError) and token is not None:
                await self._tokens.invalidate(account, token, code=error.code)
            if once and isinstance(error, UpstreamTransient):
                # A network failure or timeout after sending: the broker may have the order.
                return self._failed(
                    request,
                    "outcome_unknown",
                    error.code or "APIHUB-OUTCOME-UNKNOWN",
                    f"the order may have reached the broker ({error.message}); it is not "
                    "resent. Reconcile with the broker's order list",
                    attempts,
                )
            # An order is retried only after an answer proving it was not executed (a
            # rejected token); anything else about an order is reported as is.
            retry = error.retryable and (not once or isinstance(error, UpstreamAuthError))
            # Re-queued rate misses do not use up the retry budget; ``attempts`` still counts
            # every call that reached the broker.
            tries = attempts - requeues
            delay = self._backoff(tries, request)
            if not retry or tries >= MAX_ATTEMPTS or delay is None:
                return self._failed_from(request, error, attempts)
            log.info(
                "retrying %s %s after %s (attempt %d, %.0f ms)",
                request.request_id,
                request.tr_id,
                error.error_class,
                attempts,
                delay * 1000,
            )
            await anyio.sleep(delay)

    def _time_left(self, request: RequestSubmitted) -> bool:
        return request.deadline_ms is None or now_ms() < request.deadline_ms

    def _remaining_s(self, request: RequestSubmitted, cap: float) -> float:
        if request.deadline_ms is None:
            return cap
        return max(0.0, min(cap, (request.deadline_ms - now_ms()) / 1000))

    async def _wait_for_probe(self, valid: ValidRequest, admission: Admission, waits: int) -> None:
        """Sleep until the breaker may admit a probe, or raise :class:`CircuitOpen` when that is
        past the caller's deadline (or it has waited enough). Only one caller wins the probe;
        the rest come back here."""
        provider, family = valid.provider.value, valid.spec.family
        remaining = self._remaining_s(valid.request, self._settings.breaker.open_s)
        if admission.retry_after_s >= remaining or waits > MAX_BREAKER_WAITS:
            raise CircuitOpen(
                f"the circuit of {provider} {family} is {admission.state.replace('_', '-')}: "
                f"the broker failed repeatedly; next probe in {admission.retry_after_s:.1f} s",
                request_id=valid.request.request_id,
                provider=provider,
                tr_id=valid.request.tr_id,
            )
        await anyio.sleep(max(admission.retry_after_s, 0.01))

    async def _permit(
        self, valid: ValidRequest, buckets: tuple[Bucket, ...], priority: Priority
    ) -> Permit | None:
        if not self._settings.rate_limiter.enabled:
            return None
        timeout = self._remaining_s(valid.request, self._settings.rate_limiter.max_wait_s)
        return await self._gatekeeper.acquire(
            buckets, priority, timeout_s=timeout, request_id=valid.request.request_id
        )

    async def _call(
        self, valid: ValidRequest, client: BrokerClient, token: AccessToken, attempt: int
    ) -> BrokerReply:
        request = valid.request
        with tracer.start_as_current_span(
            f"{valid.provider.value} {request.tr_id}",
            kind=SpanKind.CLIENT,
            attributes={"apihub.attempt": attempt, "http.request.method": valid.spec.method},
        ) as span:
            try:
                reply = await client.call(
                    valid.spec,
                    request.params,
                    account=valid.account,
                    token=token,
                    cont=request.cont,
                    next_key=request.next_key,
                    timeout=self._call_timeout(request),
                )
            except UpstreamError as exc:
                span.set_attribute("apihub.error_class", exc.error_class)
                if exc.code:
                    span.set_attribute("apihub.broker_code", exc.code)
                if exc.status is not None:
                    span.set_attribute("http.response.status_code", exc.status)
                span.set_status(StatusCode.ERROR, exc.error_class)
                raise
            span.set_attribute("http.response.status_code", reply.status)
            return reply

    def _call_timeout(self, request: RequestSubmitted) -> float:
        limit = self._tuning.http_timeout_s
        if request.deadline_ms is None:
            return limit
        return max(0.001, min(limit, (request.deadline_ms - now_ms()) / 1000))

    def _backoff(self, attempts: int, request: RequestSubmitted) -> float | None:
        # Full jitter (AWS architecture blog): spreads retries of many dispatchers apart.
        delay = random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempts))  # noqa: S311
        if request.deadline_ms is not None and now_ms() + delay * 1000 >= request.deadline_ms:
            return None
        return delay

    async def _mark_order_sent(self, request: RequestSubmitted) -> bool:
        marked = await self._redis.set(
            self.keys.order_sent(request.request_id),
            self.consumer.consumer,
            nx=True,
            ex=ORDER_MARKER_TTL_S,
        )
        return bool(marked)

    def _failed(
        self,
        request: RequestSubmitted,
        error_class: ErrorClass,
        code: str,
        message: str,
        attempts: int,
        *,
        status: int | None = None,
        retryable: bool = False,
    ) -> RequestFailed:
        return RequestFailed(
            request_id=request.request_id,
            provider=request.provider,
            tr_id=request.tr_id,
            account=request.account,
            error_class=error_class,
            code=code,
            message=message,
            status=status,
            retryable=retryable,
            failed_at_ms=now_ms(),
            attempts=attempts,
        )

    def _failed_from(
        self, request: RequestSubmitted, error: HubError, attempts: int
    ) -> RequestFailed:
        status = error.status if isinstance(error, UpstreamError) else None
        code = error.code if isinstance(error, UpstreamError) else error.wire_code
        return self._failed(
            request,
            error.error_class,
            code or _hub_code(error.error_class),
            error.message,
            attempts,
            status=status,
            retryable=error.retryable,
        )

    # -- writing outcomes ------------------------------------------------------------------

    async def _finish(
        self, delivery: Delivery, request: RequestSubmitted, outcome: Outcome
    ) -> None:
        entry = encode_entry(outcome)
        appends = [Append(self.keys.responses, entry, RESPONSE_STREAM_MAXLEN)]
        if request.reply_to:
            appends.append(Append(request.reply_to, entry, REPLY_MAXLEN, REPLY_TTL_S))
        await self._commit(delivery, appends)

    async def _reject(
        self, delivery: Delivery, reason: str, detail: str, partial: _Partial
    ) -> None:
        log.warning(
            "dead-lettering %s (%s): %s", delivery.id_text, reason, detail.splitlines()[0][:200]
        )
        letter = encode_entry(
            dead_letter_event(
                source_stream=delivery.stream,
                entry_id=delivery.id_text,
                fields=delivery.fields,
                reason=reason,
                detail=detail,
                request_id=partial.request_id,
                group=self._tuning.group,
                deliveries=delivery.deliveries,
            )
        )
        failure = None
        if partial.request_id:
            failure = encode_entry(
                RequestFailed(
                    request_id=partial.request_id,
                    provider=partial.provider,
                    tr_id=partial.tr_id,
                    error_class="invalid",
                    code=_hub_code(reason),
                    message=f"{reason}: {detail}"[:1000],
                    failed_at_ms=now_ms(),
                )
            )
        appends = [Append(self.keys.dead_letter, letter, DEAD_LETTER_MAXLEN)]
        if failure is not None:
            appends.append(Append(self.keys.responses, failure, RESPONSE_STREAM_MAXLEN))
            if partial.reply_to and self.keys.is_reply_stream(partial.reply_to):
                appends.append(Append(partial.reply_to, failure, REPLY_MAXLEN, REPLY_TTL_S))
        await self._commit(delivery, appends)

    async def _commit(self, delivery: Delivery, appends: list[Append]) -> None:
        # Shielded: once the broker answered, a shutdown must not lose the answer between the
        # events and the XACK. The commit script makes them one step: all land, or the entry
        # stays pending and is reclaimed.
        with anyio.CancelScope(shield=True), anyio.fail_after(FINISH_TIMEOUT_S):
            backoff = 0.05
            while True:
                try:
                    await self._committer.commit(
                        delivery.stream, self._tuning.group, delivery.entry_id, appends
                    )
                except (RedisError, OSError) as exc:
                    log.warning("commit of %s failed (%s); retrying", delivery.id_text, exc)
                    await anyio.sleep(backoff)
                    backoff = min(backoff * 2, 1.0)
                else:
                    return
