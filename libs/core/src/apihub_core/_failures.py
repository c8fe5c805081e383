"""The one place where a failure crosses between an exception and the wire.

:func:`error_for` turns what travels on a stream (an ``error_class``, a code, a message) into
the typed :class:`~apihub_core.HubError` a caller catches; :func:`failure_for` turns a raised
error back into the ``request.failed`` event that carries it. Every reader and writer of
failures (the client, the dispatcher, the token reader) goes through these two, so a failure
reads the same whichever side of the stream it is seen from.
"""

from __future__ import annotations

from ._errors import ErrorClass, HubError, UpstreamError, error_type_for
from ._events import RequestFailed, RequestSubmitted, now_ms


def hub_code(reason: str) -> str:
    """The ``APIHUB-*`` code of a hub-side reason (``too_many_deliveries`` →
    ``APIHUB-TOO-MANY-DELIVERIES``)."""
    return "APIHUB-" + reason.upper().replace("_", "-")


def error_for(
    error_class: ErrorClass,
    message: str,
    *,
    code: str = "",
    status: int | None = None,
    request_id: str | None = None,
    provider: str | None = None,
    tr_id: str | None = None,
) -> HubError:
    """The typed error a failure of ``error_class`` (and ``code``) stands for.

    A broker error keeps the broker's code and HTTP status as attributes; a hub error shows its
    ``APIHUB-*`` code in the message, since it has no attribute for it.
    """
    cls = error_type_for(error_class, code)
    if issubclass(cls, UpstreamError):
        return cls(
            message,
            code=code,
            status=status,
            request_id=request_id,
            provider=provider,
            tr_id=tr_id,
        )
    text = f"[{code}] {message}" if code else message
    return cls(text, request_id=request_id, provider=provider, tr_id=tr_id)


def wire_code(error: HubError) -> str:
    """The code ``error`` travels with: the broker's own, a narrower hub code, or
    ``APIHUB-<CLASS>``."""
    if isinstance(error, UpstreamError) and error.code:
        return error.code
    return error.wire_code or hub_code(error.error_class)


def failure_for(request: RequestSubmitted, error: HubError, *, attempts: int = 0) -> RequestFailed:
    """The ``request.failed`` event answering ``request`` with ``error``."""
    return RequestFailed(
        request_id=request.request_id,
        provider=request.provider,
        tr_id=request.tr_id,
        account=request.account,
        error_class=error.error_class,
        code=wire_code(error),
        message=error.message,
        status=error.status if isinstance(error, UpstreamError) else None,
        retryable=error.retryable,
        failed_at_ms=now_ms(),
        attempts=attempts,
        priority=request.priority,
        tags=request.tags,
    )


def raise_for_failure(event: RequestFailed) -> None:
    """Raise the typed :class:`~apihub_core.HubError` a ``RequestFailed`` event stands for."""
    raise error_for(
        event.error_class,
        event.message,
        code=event.code,
        status=event.status,
        request_id=event.request_id,
        provider=event.provider,
        tr_id=event.tr_id,
    )
