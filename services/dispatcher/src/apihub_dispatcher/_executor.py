"""The governed path of one request: token → permit → breaker → broker call, until
:func:`~apihub_dispatcher._decisions.decide` says to answer.

One deadline scope per request: the request's deadline (or ``max_request_s`` when it has none)
bounds every wait inside it, and the time left is read from the scope, never recomputed. The
waits before a call are :meth:`~apihub_runtime.Delivery.releasable`: a drain lets go of a
request that is only waiting, and its entry goes back to the group untouched. The order marker
is set just before an order leaves for the broker, after every wait, so only a request that may
really have reached the broker is ever reported ``outcome_unknown``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import anyio
import msgspec
import redis.asyncio as aioredis
from opentelemetry.trace import SpanKind, StatusCode
from redis.exceptions import RedisError

from apihub_brokers import BrokerClient, BrokerReply
from apihub_core import (
    ORDER_MARKER_TTL_S,
    CircuitOpen,
    HubError,
    Keys,
    Outcome,
    Priority,
    Provider,
    RequestSubmitted,
    RequestTimeout,
    ResponseReceived,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTransient,
    failure_for,
    now_ms,
    start_span,
)
from apihub_governance import Admission, Bucket, CircuitBreaker, Gatekeeper, Permit, buckets_for
from apihub_governance import Outcome as BreakerOutcome
from apihub_runtime import AccessToken, Delivery, Settings, TokenSource

from ._deadline import seconds_left
from ._decisions import (
    Answer,
    Attempt,
    AwaitProbe,
    Decision,
    GiveUp,
    Requeue,
    Retry,
    RetryPolicy,
    Tally,
    decide,
)
from ._validation import ValidRequest

log = logging.getLogger("apihub.dispatcher")

_WAITING_FOR: Final = {
    "start": "before dispatch",
    "token": "while waiting for a token from the token-keeper",
    "permit": "while waiting for a rate-limit permit",
    "breaker": "while asking the circuit breaker",
    "call": "while the broker was being called",
    "backoff": "while waiting to retry",
    "probe": "while waiting for the circuit breaker's probe",
}


@dataclass(eq=False)
class _Run:
    """The state of one request's way through the governed path."""

    valid: ValidRequest
    once: bool
    tally: Tally = field(default_factory=Tally)
    stage: str = "start"
    in_call: bool = False
    marked: bool = False
    reply: BrokerReply | None = None
    started: float = 0.0


class Executor:
    """Runs requests through the governed path; one per dispatcher process."""

    def __init__(
        self,
        redis: aioredis.Redis,
        settings: Settings,
        clients: Mapping[Provider, BrokerClient],
        tokens: TokenSource,
        gatekeeper: Gatekeeper,
        breaker: CircuitBreaker,
        *,
        member: str,
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._clients = clients
        self._tokens = tokens
        self._gatekeeper = gatekeeper
        self._breaker = breaker
        self._member = member
        self._keys = Keys(settings.namespace)
        self._tuning = settings.dispatcher
        self._policy = RetryPolicy(max_requeues=settings.rate_limiter.max_requeues)

    async def execute(self, valid: ValidRequest, delivery: Delivery) -> Outcome:
        """The outcome of ``valid``: a broker answer or a failure, never an exception (bar a
        drain's :class:`~apihub_runtime.DeliveryReleased` and cancellation)."""
        run = _Run(valid, once=valid.once, started=anyio.current_time())
        seconds = self.seconds_left(valid.request, delivery)
        if seconds <= 0:
            return self._conclude(
                run, Answer(RequestTimeout("the deadline passed before dispatch"))
            )
        with anyio.CancelScope(deadline=anyio.current_time() + seconds) as scope:
            return await self._attempts(run, delivery)
        # Only the deadline gets here: any other cancellation propagates.
        assert scope.cancelled_caught  # noqa: S101 - the scope's only way out without a return
        timeout = RequestTimeout(f"the deadline passed {_WAITING_FOR.get(run.stage, run.stage)}")
        attempt = Attempt(error=timeout, sent=run.in_call, deadline_passed=True)
        final = self._decide(run, attempt, time_left_s=0.0)
        assert isinstance(final, Answer | GiveUp)  # noqa: S101 - a passed deadline ends it
        return self._conclude(run, final)

    def seconds_left(self, request: RequestSubmitted, delivery: Delivery) -> float:
        """How long ``request`` may still take (see ``_deadline``: the producer's budget,
        counted from the entry's arrival on the hub's clocks, at most ``max_request_s``)."""
        return seconds_left(
            request,
            entry_id=delivery.id_text,
            now_ms=now_ms(),
            max_request_s=self._tuning.max_request_s,
        )

    async def _attempts(self, run: _Run, delivery: Delivery) -> Outcome:
        request = run.valid.request
        while True:
            attempt = await self._attempt(run, delivery)
            decision = self._decide(run, attempt, time_left_s=_time_left())
            if isinstance(decision, Answer | GiveUp):
                return self._conclude(run, decision)
            if isinstance(decision, Requeue):
                run.tally = _bump(run.tally, requeues=1)
                log.info(
                    "re-queueing %s %s after %s (%d)",
                    request.request_id,
                    request.tr_id,
                    _code(attempt.error),
                    run.tally.requeues,
                )
                continue
            if isinstance(decision, AwaitProbe):
                run.tally = _bump(run.tally, probe_waits=1)
                run.stage = "probe"
                wait_s = decision.delay_s
            else:
                assert isinstance(decision, Retry)  # noqa: S101 - the last kind left
                run.stage = "backoff"
                wait_s = decision.delay_s
                log.info(
                    "retrying %s %s after %s (attempt %d, %.0f ms)",
                    request.request_id,
                    request.tr_id,
                    attempt.error.error_class if attempt.error else "?",
                    run.tally.calls,
                    wait_s * 1000,
                )
            with delivery.releasable():
                await anyio.sleep(wait_s)

    def _decide(self, run: _Run, attempt: Attempt, *, time_left_s: float) -> Decision:
        return decide(
            attempt,
            run.tally,
            once=run.once,
            time_left_s=time_left_s,
            policy=self._policy,
            jitter=random.random(),  # noqa: S311 - spreading retries, not security
        )

    async def _attempt(self, run: _Run, delivery: Delivery) -> Attempt:
        valid = run.valid
        request, spec, account = valid.request, valid.spec, valid.account
        provider = valid.provider.value
        try:
            # Token first: a cold start may wait for the keeper, and a permit must be spent
            # right away to keep its place in the spacing. The breaker is asked last, so a
            # call admitted is a call sent now.
            with delivery.releasable():
                run.stage = "token"
                token = await self._tokens.get(account)
                run.stage = "permit"
                permit = await self._permit(valid, run)
                run.stage = "breaker"
                admission = await self._breaker.admit(provider, spec.family)
        except HubError as exc:
            return Attempt(error=exc)
        if not admission.allowed:
            # The permit is forfeited: waiting here would make it stale.
            state = admission.state.replace("_", "-")
            refused = CircuitOpen(
                f"the circuit of {provider} {spec.family} is {state}: the broker failed "
                f"repeatedly; next probe in {admission.retry_after_s:.1f} s",
                request_id=request.request_id,
                provider=provider,
                tr_id=request.tr_id,
            )
            return Attempt(error=refused, breaker_wait_s=admission.retry_after_s)
        # From here on the request may reach the broker: no more releasing it.
        if run.once and not run.marked:
            if not await self._mark_order_sent(request.request_id):
                return Attempt(sent_before=True)
            run.marked = True
        run.stage = "call"
        run.in_call = True
        run.tally = _bump(run.tally, calls=1)
        error: HubError | None = None
        try:
            run.reply = await self._call(valid, token, run.tally.calls)
        except HubError as exc:
            error = exc
        run.in_call = False
        if permit is not None:
            self._gatekeeper.observe(permit, anyio.current_time())
        await self._after_call(run, token, permit, admission, error)
        return Attempt(error=error, sent=True)

    async def _after_call(
        self,
        run: _Run,
        token: AccessToken,
        permit: Permit | None,
        admission: Admission,
        error: HubError | None,
    ) -> None:
        """Feed the outcome back: breaker, limiter, token source, order marker."""
        valid = run.valid
        verdict: BreakerOutcome = (
            "success"
            if error is None
            else "failure"
            if isinstance(error, UpstreamTransient)
            else "neutral"
        )
        await self._breaker.record(valid.provider.value, valid.spec.family, admission, verdict)
        if isinstance(error, UpstreamRateLimited) and permit is not None:
            # A limiter miss: the broker counted differently than we did; the budget backs off.
            await self._gatekeeper.upstream_limited(
                permit, code=error.code, request_id=valid.request.request_id
            )
        if isinstance(error, UpstreamAuthError):
            await self._tokens.invalidate(valid.account, token, code=error.code)
        if run.marked and isinstance(error, UpstreamRateLimited | UpstreamAuthError):
            # The broker's answer proves the order was not executed: a later delivery (after a
            # drain released this one) may send it, so the marker goes.
            try:
                await self._redis.delete(self._keys.order_sent(valid.request.request_id))
            except (RedisError, OSError) as exc:
                # Kept, it only makes a later delivery answer outcome_unknown: safe.
                log.warning("order marker of %s kept (%s)", valid.request.request_id, exc)
            else:
                run.marked = False

    async def _permit(self, valid: ValidRequest, run: _Run) -> Permit | None:
        limiter = self._settings.rate_limiter
        if not limiter.enabled:
            return None
        priority: Priority = "order" if valid.spec.is_order else valid.request.priority
        buckets: tuple[Bucket, ...] = buckets_for(valid.account, valid.request.tr_id)
        return await self._gatekeeper.acquire(
            buckets,
            priority,
            timeout_s=min(limiter.max_wait_s, _time_left()),
            request_id=valid.request.request_id,
        )

    async def _call(self, valid: ValidRequest, token: AccessToken, attempt: int) -> BrokerReply:
        request = valid.request
        client = self._clients[valid.provider]
        with start_span(
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
                    timeout=self._tuning.http_timeout_s,
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

    async def _mark_order_sent(self, request_id: str) -> bool:
        marked = await self._redis.set(
            self._keys.order_sent(request_id), self._member, nx=True, ex=ORDER_MARKER_TTL_S
        )
        return bool(marked)

    def _conclude(self, run: _Run, decision: Answer | GiveUp) -> Outcome:
        """The outcome event for a final decision (the one place outcomes are built)."""
        valid = run.valid
        request = valid.request
        error = decision.error
        if error is None:
            reply = run.reply
            assert reply is not None  # noqa: S101 - a success always has a reply
            return ResponseReceived(
                request_id=request.request_id,
                provider=valid.provider.value,
                tr_id=request.tr_id,
                account=valid.account.name,
                status=reply.status,
                headers=reply.headers,
                body=msgspec.Raw(reply.body),
                has_more=reply.has_more,
                next_key=reply.next_key,
                received_at_ms=now_ms(),
                elapsed_ms=(anyio.current_time() - run.started) * 1000,
                attempts=run.tally.calls,
                params=request.params,
                priority=request.priority,
                tags=request.tags,
            )
        error.with_context(
            request_id=request.request_id, provider=valid.provider.value, tr_id=request.tr_id
        )
        return failure_for(request, error, attempts=run.tally.calls)


def _time_left() -> float:
    """Seconds until the innermost deadline (the request's scope)."""
    return max(0.0, anyio.current_effective_deadline() - anyio.current_time())


def _bump(tally: Tally, *, calls: int = 0, requeues: int = 0, probe_waits: int = 0) -> Tally:
    return Tally(tally.calls + calls, tally.requeues + requeues, tally.probe_waits + probe_waits)


def _code(error: HubError | None) -> str:
    return error.code if isinstance(error, UpstreamError) else ""
