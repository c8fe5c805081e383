"""The exceptions apihub raises, one tree for every library and service.

::

    HubError                    base: request_id / provider / tr_id, never a secret
    ├── RequestInvalid          fatal      can never succeed as written (dead-lettered)
    ├── RequestTimeout          retryable  no answer within the caller's deadline
    ├── OutcomeUnknown          fatal      an order may have reached the broker: reconcile
    ├── HubUnavailable          retryable  Redis (the hub itself) could not be reached
    │   └── CircuitOpen         retryable  the broker endpoint's shared breaker is open
    ├── ConfigurationError      fatal      settings are missing or contradictory
    └── UpstreamError           the broker answered with an error (its code and message)
        ├── UpstreamTransient   retryable  network failure, timeout, 5xx without a code
        ├── UpstreamRateLimited retryable  EGW00201, Kiwoom 1700, HTTP 429
        ├── UpstreamAuthError   retryable  token rejected (EGW00121/EGW00123, Kiwoom 8005)
        └── UpstreamRejected    fatal      a business or validation rejection

``error_class`` names the same classification on the wire (``RequestFailed.error_class``), so a
producer in another language sees what a Python caller sees.
"""

from __future__ import annotations

from typing import ClassVar, Literal

ErrorClass = Literal[
    "invalid",
    "transient",
    "rate_limited",
    "auth",
    "permanent",
    "timeout",
    "outcome_unknown",
    "unavailable",
]
"""How a failed request is classified on the wire and in :class:`HubError`."""


class HubError(Exception):
    """Base class of every apihub error.

    The context (request id, provider, TR id) is kept in attributes and rendered into the message,
    so one log line is enough to find the request in the event log.
    """

    error_class: ClassVar[ErrorClass] = "permanent"
    retryable: ClassVar[bool] = False
    wire_code: ClassVar[str] = ""
    """The ``APIHUB-*`` code this error travels with, when it names a narrower type."""

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        provider: str | None = None,
        tr_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.provider = provider
        self.tr_id = tr_id

    def with_context(
        self,
        *,
        request_id: str | None = None,
        provider: str | None = None,
        tr_id: str | None = None,
    ) -> HubError:
        """Fill in context the raiser did not know (a broker client never knows the request id)."""
        self.request_id = self.request_id or request_id
        self.provider = self.provider or provider
        self.tr_id = self.tr_id or tr_id
        return self

    def __str__(self) -> str:
        context = [
            f"{name}={value}"
            for name, value in (
                ("request_id", self.request_id),
                ("provider", self.provider),
                ("tr_id", self.tr_id),
            )
            if value
        ]
        return f"{self.message} ({', '.join(context)})" if context else self.message


class RequestInvalid(HubError):
    """The request is malformed or names something apihub does not know; it was dead-lettered."""

    error_class = "invalid"


class RequestTimeout(HubError):
    """No answer arrived within the caller's deadline; the request may still be executed."""

    error_class = "timeout"
    retryable = True


class OutcomeUnknown(HubError):
    """A non-idempotent request (an order) may have reached the broker; it is never resent."""

    error_class = "outcome_unknown"


class HubUnavailable(HubError):
    """Redis, the hub's backbone, could not be reached."""

    error_class = "unavailable"
    retryable = True


class CircuitOpen(HubUnavailable):
    """The shared circuit breaker of this endpoint family is open: the broker is failing and
    the hub is not calling it until a probe succeeds. On the wire: ``unavailable`` with code
    ``APIHUB-CIRCUIT-OPEN``."""

    wire_code: ClassVar[str] = "APIHUB-CIRCUIT-OPEN"


class ConfigurationError(HubError):
    """Settings are missing or contradictory (raised at start-up, never per request)."""

    error_class = "invalid"


class UpstreamError(HubError):
    """The broker answered with an error; ``code`` and ``message`` are the broker's own."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        status: int | None = None,
        request_id: str | None = None,
        provider: str | None = None,
        tr_id: str | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id, provider=provider, tr_id=tr_id)
        self.code = code
        self.status = status

    def __str__(self) -> str:
        head = f"[{self.code}] " if self.code else ""
        status = f" HTTP {self.status}" if self.status is not None else ""
        return f"{head}{super().__str__()}{status}"


class UpstreamTransient(UpstreamError):
    """A network failure, a timeout talking to the broker, or a 5xx carrying no broker code."""

    error_class = "transient"
    retryable = True


class UpstreamRateLimited(UpstreamError):
    """The broker refused the call for exceeding its rate limit (EGW00201, 1700, HTTP 429)."""

    error_class = "rate_limited"
    retryable = True


class UpstreamAuthError(UpstreamError):
    """The broker rejected the credentials or the token (EGW00121, EGW00123, 8005, HTTP 401)."""

    error_class = "auth"
    retryable = True


class UpstreamRejected(UpstreamError):
    """The broker rejected the request on its merits (bad input, business rule); do not retry."""

    error_class = "permanent"


_BY_CLASS: dict[ErrorClass, type[HubError]] = {
    "invalid": RequestInvalid,
    "timeout": RequestTimeout,
    "outcome_unknown": OutcomeUnknown,
    "unavailable": HubUnavailable,
    "transient": UpstreamTransient,
    "rate_limited": UpstreamRateLimited,
    "auth": UpstreamAuthError,
    "permanent": UpstreamRejected,
}


_BY_CODE: dict[str, type[HubError]] = {CircuitOpen.wire_code: CircuitOpen}


def error_type_for(error_class: ErrorClass, code: str = "") -> type[HubError]:
    """The exception type a caller receives for a failure of ``error_class`` (and ``code``:
    some hub codes name a narrower type, e.g. ``APIHUB-CIRCUIT-OPEN`` → :class:`CircuitOpen`)."""
    narrower = _BY_CODE.get(code)
    if narrower is not None and issubclass(narrower, _BY_CLASS[error_class]):
        return narrower
    return _BY_CLASS[error_class]
