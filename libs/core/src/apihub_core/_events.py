"""Event vocabulary v1: every message that travels on an apihub stream.

Events are frozen, tagged ``msgspec.Struct``\\ s. The tag (``type``) names the event on the wire;
``schema`` is the version of the vocabulary the writer used. The schema only evolves by appending
fields with defaults, so an older reader decodes a newer event (unknown fields are ignored) and a
newer reader decodes an older one (missing fields take their defaults).
"""

from __future__ import annotations

import time
from typing import Any, Final, Literal

import msgspec

from ._errors import ErrorClass
from ._providers import Priority

SCHEMA_VERSION: Final = 1


def now_ms() -> int:
    """Wall-clock time in Unix milliseconds, the unit of every ``*_ms`` timestamp on the wire."""
    return time.time_ns() // 1_000_000


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every event; ``schema`` is the vocabulary version the writer used."""

    schema: int = SCHEMA_VERSION


class Passthrough(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How to call a TR the hub's catalog does not know: the caller names the HTTP method, the
    path and whether the TR is an order. ``kind`` has no default on purpose: an unknown TR is
    never assumed safe to retry. ``virtual_tr_id`` is the id to send on a virtual account
    (default: the provider's rule, KIS ``T…``/``J…``/``C…`` → ``V…``)."""

    method: Literal["GET", "POST"]
    path: str
    kind: Literal["query", "order"]
    virtual_tr_id: str = ""


class RequestSubmitted(Event, frozen=True, kw_only=True, tag="request.submitted"):
    """A caller asks for one broker call. Appended to the request stream by any producer.

    ``params`` are the broker's own parameter names with string values (KIS query or body keys,
    Kiwoom body keys). ``reply_to`` is the caller's reply stream; without it the outcome is only
    appended to the response stream. ``deadline_ms`` is absolute (Unix ms); past it the hub answers
    ``timeout`` instead of calling the broker. ``passthrough`` describes a TR the catalog does not
    know (ignored when it agrees with the catalog; refused when it contradicts it).
    ``tags`` are the caller's own labels (a backfill job or gap id, a strategy name): never sent
    to the broker, copied onto the outcome so a reader of the response stream can tell whose
    answer it is.
    """

    request_id: str
    provider: str
    tr_id: str
    params: dict[str, str] = {}
    account: str | None = None
    priority: Priority = "interactive"
    reply_to: str | None = None
    deadline_ms: int | None = None
    submitted_at_ms: int = 0
    cont: bool = False
    next_key: str = ""
    idempotency_key: str | None = None
    trace: dict[str, str] = {}
    passthrough: Passthrough | None = None
    tags: dict[str, str] = {}


class ResponseReceived(Event, frozen=True, kw_only=True, tag="response.received"):
    """The broker answered successfully. ``body`` is the broker's JSON exactly as received.

    ``replay_of`` is set when this answer was not fetched for this request but copied from the
    earlier request with the same idempotency key (its request id): one upstream call, one answer.

    ``headers`` keeps only the headers that matter to a caller (KIS ``tr_id``/``tr_cont``/
    ``gt_uid``; Kiwoom ``api-id``/``cont-yn``/``next-key``; the broker's ``date``). ``has_more``/
    ``next_key`` say whether and how to ask for the next page.

    ``params``, ``priority`` and ``tags`` repeat the request's, so the response stream alone is
    enough to project market data from (the archiver) and to tell a backfill's answer from a
    collector's.
    """

    request_id: str
    provider: str
    tr_id: str
    account: str
    status: int
    headers: dict[str, str] = {}
    body: msgspec.Raw = msgspec.Raw(b"null")
    has_more: bool = False
    next_key: str = ""
    received_at_ms: int = 0
    elapsed_ms: float = 0.0
    attempts: int = 1
    replay_of: str | None = None
    params: dict[str, str] = {}
    priority: Priority = "interactive"
    tags: dict[str, str] = {}


class RequestFailed(Event, frozen=True, kw_only=True, tag="request.failed"):
    """The request ended without a successful answer.

    ``error_class`` classifies it (see ``apihub_core.ErrorClass``); ``code`` and ``message`` are
    the broker's own when the broker answered, else an ``APIHUB-*`` code of the hub.
    ``priority`` and ``tags`` repeat the request's.
    """

    request_id: str
    provider: str
    tr_id: str
    account: str | None = None
    error_class: ErrorClass
    code: str = ""
    message: str = ""
    status: int | None = None
    retryable: bool = False
    failed_at_ms: int = 0
    attempts: int = 0
    replay_of: str | None = None
    priority: Priority = "interactive"
    tags: dict[str, str] = {}


class OrderReconciled(Event, frozen=True, kw_only=True, tag="order.reconciled"):
    """What the broker's own order inquiries showed of an order whose outcome was unknown.

    ``status``: ``found`` (``order_no`` is the broker's number), ``not_found`` or ``ambiguous``
    (``candidates`` lists the rows that could be it). ``inquiries`` names the TRs asked;
    ``trigger`` is ``auto`` (the reconciler, after an ``outcome_unknown``) or ``manual``
    (``apihub orders reconcile``). The order itself is never sent again.
    """

    request_id: str
    provider: str
    tr_id: str
    account: str | None = None
    status: Literal["found", "not_found", "ambiguous"]
    order_no: str = ""
    candidates: list[dict[str, str]] = []
    detail: str = ""
    inquiries: list[str] = []
    trigger: Literal["auto", "manual"] = "auto"
    checks: int = 1
    reconciled_at_ms: int = 0


class DeadLettered(Event, frozen=True, kw_only=True, tag="request.dead_lettered"):
    """An entry no consumer could process. ``fields`` is the original entry, truncated and with
    credential-like fields redacted; ``reason`` is a stable machine-readable word."""

    source_stream: str
    entry_id: str
    reason: str
    detail: str = ""
    request_id: str | None = None
    group: str = ""
    deliveries: int = 0
    fields: dict[str, str] = {}
    dead_lettered_at_ms: int = 0


# -- the token stream (``Keys.tokens``) ---------------------------------------------------------
# Never the token itself: only which (provider, account), its fence number and its lifetime.


class TokenRequested(Event, frozen=True, kw_only=True, tag="token.requested"):
    """A dispatcher found no usable token for an account and asks the token-keeper for one."""

    provider: str
    account: str
    requested_by: str = ""
    requested_at_ms: int = 0


class TokenInvalidated(Event, frozen=True, kw_only=True, tag="token.invalidated"):
    """The broker rejected the token written under ``fence`` (EGW00121/EGW00123, Kiwoom
    8005/8031/8103, HTTP 401). Written by whoever saw it; the token-keeper replaces the token once
    per fence however many report it."""

    provider: str
    account: str
    fence: int
    code: str = ""
    reported_by: str = ""
    reported_at_ms: int = 0


class _TokenStored(Event, frozen=True, kw_only=True):
    """What the token-keeper announces when it stored a token (never the token itself)."""

    provider: str
    account: str
    fence: int
    expires_at_ms: int
    issued_at_ms: int
    reason: str = ""
    replaces_fence: int | None = None


class TokenIssued(_TokenStored, frozen=True, kw_only=True, tag="token.issued"):
    """The token-keeper stored a token for an account that had none (or none still valid).

    ``replaces_fence`` is the fence of the token it replaced, if any; ``reason`` says why it
    was issued (``requested``, ``expiring``, ``invalidated``, ``startup``).
    """

    reason: str = "requested"


class TokenRefreshed(_TokenStored, frozen=True, kw_only=True, tag="token.refreshed"):
    """The token-keeper replaced a stored token (before expiry, or after an invalidation)."""

    reason: str = "expiring"


class TokenDeferred(Event, frozen=True, kw_only=True, tag="token.deferred"):
    """The token-keeper will issue a token for an account, but not before ``not_before_ms``
    (Unix ms): the app key's issuance window is taken (KIS allows one issuance a minute).
    Waiting callers whose deadline comes first can give up at once instead of waiting in vain.
    """

    provider: str
    account: str
    not_before_ms: int
    reason: str = "issue_window"
    at_ms: int = 0


class TokenFailed(Event, frozen=True, kw_only=True, tag="token.failed"):
    """An issuance attempt failed. ``retry_in_ms`` is when the token-keeper tries again
    (``None``: it gave up until asked again)."""

    provider: str
    account: str
    error_class: ErrorClass
    code: str = ""
    message: str = ""
    attempt: int = 1
    retry_in_ms: int | None = None
    failed_at_ms: int = 0


# -- the rate-limit stream (``Keys.rate_limits``) ------------------------------------------------


class RateLimitWaited(Event, frozen=True, kw_only=True, tag="rate_limit.waited"):
    """A request waited for a permit. ``reason`` is what held it back: ``per_second``,
    ``per_minute`` (a window was full), ``priority`` (a higher class went first) or
    ``backoff`` (the budget is backing off after an upstream rate error)."""

    bucket: str
    provider: str
    account: str
    request_id: str = ""
    priority: Priority = "interactive"
    reason: str
    waited_ms: float
    margin_ms: float = 0.0
    at_ms: int = 0


class RateLimitRejected(Event, frozen=True, kw_only=True, tag="rate_limit.rejected"):
    """A request got no permit: ``deadline`` (none within its deadline) or ``unavailable``
    (the limiter's Redis could not be reached, so the limiter failed closed)."""

    bucket: str
    provider: str
    account: str
    request_id: str = ""
    priority: Priority = "interactive"
    reason: str
    waited_ms: float = 0.0
    at_ms: int = 0


class UpstreamRateLimitHit(Event, frozen=True, kw_only=True, tag="rate_limit.upstream"):
    """The broker answered a permitted call with a rate error (EGW00201, Kiwoom 1700, HTTP 429):
    a limiter miss. The budget backs off by ``penalty_ms`` of extra spacing and recovers."""

    bucket: str
    provider: str
    account: str
    request_id: str = ""
    code: str = ""
    penalty_ms: float = 0.0
    at_ms: int = 0


# -- the breaker stream (``Keys.breakers``) ------------------------------------------------------

BreakerState = Literal["closed", "open", "half_open"]


class BreakerStateChanged(Event, frozen=True, kw_only=True, tag="breaker.state_changed"):
    """The shared circuit breaker of (provider, endpoint family) changed state."""

    provider: str
    family: str
    from_state: BreakerState
    to_state: BreakerState
    reason: str = ""
    failures: int = 0
    at_ms: int = 0


TokenEvent = (
    TokenRequested | TokenInvalidated | TokenIssued | TokenRefreshed | TokenDeferred | TokenFailed
)
"""Every event of the token stream."""

RateLimitEvent = RateLimitWaited | RateLimitRejected | UpstreamRateLimitHit
"""Every event of the rate-limit stream."""

AnyEvent = (
    RequestSubmitted
    | ResponseReceived
    | RequestFailed
    | DeadLettered
    | TokenRequested
    | TokenInvalidated
    | TokenIssued
    | TokenRefreshed
    | TokenDeferred
    | TokenFailed
    | RateLimitWaited
    | RateLimitRejected
    | UpstreamRateLimitHit
    | BreakerStateChanged
    | OrderReconciled
)
"""Every event type of vocabulary v1."""

Outcome = ResponseReceived | RequestFailed
"""What a caller receives on its reply stream."""


def event_type_name(event: Event) -> str:
    """The wire tag of ``event`` (``request.submitted`` …)."""
    tag: Any = type(event).__struct_config__.tag
    return str(tag)
