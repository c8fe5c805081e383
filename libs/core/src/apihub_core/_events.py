"""Event vocabulary v1: every message that travels on an apihub stream.

Events are frozen, tagged ``msgspec.Struct``\\ s. The tag (``type``) names the event on the wire;
``schema`` is the version of the vocabulary the writer used. The schema only evolves by appending
fields with defaults, so an older reader decodes a newer event (unknown fields are ignored) and a
newer reader decodes an older one (missing fields take their defaults).
"""

from __future__ import annotations

import time
from typing import Any, Final

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


class RequestSubmitted(Event, frozen=True, kw_only=True, tag="request.submitted"):
    """A caller asks for one broker call. Appended to the request stream by any producer.

    ``params`` are the broker's own parameter names with string values (KIS query or body keys,
    Kiwoom body keys). ``reply_to`` is the caller's reply stream; without it the outcome is only
    appended to the response stream. ``deadline_ms`` is absolute (Unix ms); past it the hub answers
    ``timeout`` instead of calling the broker.
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


class ResponseReceived(Event, frozen=True, kw_only=True, tag="response.received"):
    """The broker answered successfully. ``body`` is the broker's JSON exactly as received.

    ``headers`` keeps only the headers that matter to a caller (KIS ``tr_id``/``tr_cont``/
    ``gt_uid``; Kiwoom ``api-id``/``cont-yn``/``next-key``). ``has_more``/``next_key`` say whether
    and how to ask for the next page.
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


class RequestFailed(Event, frozen=True, kw_only=True, tag="request.failed"):
    """The request ended without a successful answer.

    ``error_class`` classifies it (see ``apihub_core.ErrorClass``); ``code`` and ``message`` are
    the broker's own when the broker answered, else an ``APIHUB-*`` code of the hub.
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


AnyEvent = RequestSubmitted | ResponseReceived | RequestFailed | DeadLettered
"""Every event type of vocabulary v1."""

Outcome = ResponseReceived | RequestFailed
"""What a caller receives on its reply stream."""


def event_type_name(event: Event) -> str:
    """The wire tag of ``event`` (``request.submitted`` …)."""
    tag: Any = type(event).__struct_config__.tag
    return str(tag)
