"""Response builders for both brokers' wire formats, and the connection-drop response."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import msgspec
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ._recorder import CallContext

__all__ = [
    "KIS_MEDIA_TYPE",
    "KIWOOM_MEDIA_TYPE",
    "DropConnection",
    "DropConnectionResponse",
    "install_log_filter",
    "json_response",
    "kis_envelope_error",
    "kis_token_error",
    "kiwoom_error",
]

KIS_MEDIA_TYPE = "application/json; charset=utf-8"
KIWOOM_MEDIA_TYPE = "application/json;charset=UTF-8"

_encoder = msgspec.json.Encoder()


def json_response(
    payload: Any,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    media_type: str = KIS_MEDIA_TYPE,
) -> Response:
    """Serialise ``payload`` as compact UTF-8 JSON, keeping the key order given."""
    return Response(_encoder.encode(payload), status, dict(headers or {}), media_type)


def kis_envelope_error(
    ctx: CallContext, status: int, msg_cd: str, msg1: str, rt_cd: str = "1"
) -> Response:
    """A KIS ``rt_cd``/``msg_cd``/``msg1`` error (gateway errors use HTTP 500)."""
    ctx.error_code = msg_cd
    body = {"rt_cd": rt_cd, "msg_cd": msg_cd, "msg1": msg1}
    headers = {"tr_id": ctx.tr_id, "tr_cont": "", "gt_uid": ""}
    return json_response(body, status, headers)


def kis_token_error(ctx: CallContext, code: str, description: str, status: int = 403) -> Response:
    """A KIS OAuth-endpoint error: ``error_code``/``error_description``, HTTP 403."""
    ctx.error_code = code
    return json_response({"error_code": code, "error_description": description}, status)


def kiwoom_error(
    ctx: CallContext,
    return_code: int,
    summary: str,
    code: str,
    detail: str,
    status: int = 200,
) -> Response:
    """A Kiwoom error: a small ``return_code`` with the real code in ``return_msg`` brackets."""
    ctx.error_code = code
    body = {"return_code": return_code, "return_msg": f"{summary}[{code}:{detail}]"}
    headers = {"api-id": ctx.tr_id, "cont-yn": "N", "next-key": ""}
    return json_response(body, status, headers, KIWOOM_MEDIA_TYPE)


class DropConnection(Exception):
    """Raised after the response has started so uvicorn closes the socket mid-answer."""


class DropConnectionResponse(Response):
    """Starts an answer, then aborts it, which clients see as a transport error.

    uvicorn closes the transport when an app raises after starting the response; raising
    before would make it send a tidy 500 instead, which is not a dropped connection.
    """

    def __init__(self) -> None:
        """An empty 200 that never completes."""
        super().__init__(b"", 200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the status line and headers with a promised body, then abort."""
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )
        raise DropConnection


class _DropFilter(logging.Filter):
    """Keeps the deliberate ``reset`` faults out of uvicorn's error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DropConnection)


_FILTER = _DropFilter()


def install_log_filter() -> None:
    """Silence uvicorn's traceback for injected connection resets (idempotent)."""
    logger = logging.getLogger("uvicorn.error")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
