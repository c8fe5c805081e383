"""What every broker request goes through before and after its handler.

Order: identify the caller (appkey, tr_id / api-id, the symbol the call names) -> injected
latency -> outage -> armed fault -> error rate -> rate limit -> handler -> record.

The latency models the one-way trip to the broker, so everything after it happens at the
call's *arrival*: the rate window and the recorder's one-second windows count arrival
times. Those differ from the client's send times; that is what makes client-side limiting
hard, and what the latency conditions exist to reproduce.
An outage comes before armed faults so it does not consume them (a fault armed for "the
first call after the outage" still fires then). Injected answers come before rate limits
and validation so a test can force, say, ``EGW00121`` on a call whose token is fine.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._faults import FaultAction, symbol_key
from ._http import (
    KIWOOM_MEDIA_TYPE,
    DropConnectionResponse,
    json_response,
    kis_envelope_error,
    kis_token_error,
    kiwoom_error,
)
from ._recorder import CallContext
from ._state import SimState
from ._tokens import KIS, KIWOOM

__all__ = [
    "EGW00121",
    "EGW00123",
    "EGW00133",
    "Handler",
    "bearer_token",
    "broker_route",
    "kiwoom_1700",
    "kiwoom_8005",
    "kiwoom_no_stock",
    "read_json_object",
]

Handler = Callable[[Request, CallContext], Awaitable[Response]]


def bearer_token(request: Request) -> str:
    """The token of an ``authorization: Bearer <token>`` header ("" if absent or malformed)."""
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def read_json_object(request: Request) -> dict[str, object] | None:
    """The request body as a JSON object, or ``None`` if it is not one."""
    raw = await request.body()
    try:
        data = msgspec.json.decode(raw) if raw else {}
    except msgspec.DecodeError:
        return None
    return data if isinstance(data, dict) else None


def broker_route(
    state: SimState,
    provider: str,
    path: str,
    handler: Handler,
    methods: list[str],
    *,
    rate_limited: bool = True,
    quotation: bool = False,
) -> Route:
    """A Starlette route whose endpoint runs ``handler`` inside the common pipeline.

    ``quotation`` marks a market-data route (the ``quote_refused`` fault answers only those).
    """

    async def endpoint(request: Request) -> Response:
        ctx = CallContext(provider=provider, method=request.method, path=path, quotation=quotation)
        await _identify(state, request, ctx)
        ctx.latency_ms = state.conditions.latency_ms(ctx)
        if ctx.latency_ms:
            await anyio.sleep(ctx.latency_ms / 1000.0)
        arrived = time.monotonic()
        response = await _injected(state, ctx)
        if response is None and rate_limited:
            response = _rate_limit(state, ctx)
        if response is None:
            response = await handler(request, ctx)
            if ctx.fault == "drop_answer":
                ctx.error_code = "drop_answer"
                response = DropConnectionResponse()
        ctx.status = 0 if isinstance(response, DropConnectionResponse) else response.status_code
        state.recorder.record(ctx, state.clock.now(), arrived)
        return response

    return Route(path, endpoint, methods=methods)


_KIS_SYMBOL_FIELDS = ("FID_INPUT_ISCD", "PDNO")


async def _identify(state: SimState, request: Request, ctx: CallContext) -> None:
    headers = request.headers
    if ctx.provider == KIS:
        ctx.tr_id = headers.get("tr_id", "")
        ctx.appkey = headers.get("appkey", "")
    else:
        ctx.tr_id = headers.get("api-id", "")
        ctx.appkey = state.tokens.owner(bearer_token(request))
    body = await read_json_object(request) if request.method == "POST" else None
    if ctx.path.startswith("/oauth2/"):
        if body is not None and isinstance(body.get("appkey"), str):
            ctx.appkey = str(body["appkey"])
        return
    ctx.symbol = symbol_key(_symbol_field(ctx, request, body or {}))


def _symbol_field(ctx: CallContext, request: Request, body: dict[str, object]) -> str:
    """The raw symbol a call names: KIS ``FID_INPUT_ISCD``/``PDNO`` (query names compared
    case-insensitively, body keys upper-case as KIS wants them), Kiwoom ``stk_cd``."""
    if ctx.provider == KIS:
        query = {key.upper(): value for key, value in request.query_params.items()}
        for name in _KIS_SYMBOL_FIELDS:
            value = query.get(name, body.get(name))
            if isinstance(value, str) and value.strip():
                return value
        return ""
    value = body.get("stk_cd")
    return value if isinstance(value, str) else ""


async def _injected(state: SimState, ctx: CallContext) -> Response | None:
    """The answer of an outage, armed fault or error-rate hit (``None``: answer normally)."""
    action: FaultAction | None = state.conditions.outage_for(ctx)
    source = "outage"
    if action is None:
        fault = state.faults.take(ctx)
        action, source = (fault.action, "fault") if fault is not None else (None, "")
    if action is None:
        action, source = state.conditions.error_for(ctx), "error_rate"
    if action is None:
        return None
    ctx.fault = action.kind
    ctx.fault_source = source
    if action.delay_ms:
        await anyio.sleep(action.delay_ms / 1000.0)
    return _fault_response(state, action, ctx)


def _fault_response(state: SimState, fault: FaultAction, ctx: CallContext) -> Response | None:
    kind = fault.kind
    limit_status = state.config.kis_rate_limit_status
    if kind in ("delay", "drop_answer"):
        return None
    if kind == "reset":
        ctx.error_code = "reset"
        return DropConnectionResponse()
    if kind == "error":
        ctx.error_code = "fault"
        media = KIWOOM_MEDIA_TYPE if ctx.provider == KIWOOM else None
        status = fault.status or 500
        if media is None:
            return json_response(fault.body, status, fault.headers)
        return json_response(fault.body, status, fault.headers, media)
    if kind == "http_503":
        ctx.error_code = "http_503"
        html = b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
        return Response(html, fault.status or 503, fault.headers, "text/html")
    if kind == "egw00201":
        return kis_envelope_error(ctx, fault.status or limit_status, "EGW00201", _EGW00201)
    if kind == "egw00121":
        return kis_envelope_error(ctx, fault.status or 500, "EGW00121", EGW00121)
    if kind == "egw00123":
        return kis_envelope_error(ctx, fault.status or 500, "EGW00123", EGW00123)
    if kind == "egw00133":
        return kis_token_error(ctx, "EGW00133", EGW00133, fault.status or 403)
    if kind == "kiwoom_8005":
        return kiwoom_8005(ctx, fault.status or 200)
    if kind == "quote_refused":
        if ctx.provider == KIS:
            return kis_envelope_error(ctx, fault.status or 200, "MCA05918", _MCA05918)
        return kiwoom_no_stock(ctx, fault.status or 200)
    return kiwoom_1700(ctx, fault.status or state.config.kiwoom_rate_limit_status)


def _rate_limit(state: SimState, ctx: CallContext) -> Response | None:
    if ctx.path.startswith("/oauth2/"):
        return None
    if ctx.provider == KIS:
        if state.kis_limiter.allow(ctx.appkey):
            return None
        ctx.rate_limited = True
        return kis_envelope_error(ctx, state.config.kis_rate_limit_status, "EGW00201", _EGW00201)
    if state.kiwoom_limiter.allow((ctx.appkey, ctx.tr_id)):
        return None
    ctx.rate_limited = True
    return kiwoom_1700(ctx, state.config.kiwoom_rate_limit_status)


_EGW00201 = "초당 거래건수를 초과하였습니다."
EGW00121 = "유효하지 않은 token 입니다."
EGW00123 = "기간이 만료된 token 입니다."
EGW00133 = "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)"
_MCA05918 = "종목코드 오류입니다."


def kiwoom_8005(ctx: CallContext, status: int = 200) -> Response:
    """Kiwoom's invalid-token answer."""
    return kiwoom_error(ctx, 3, "인증에 실패했습니다", "8005", "Token이 유효하지 않습니다", status)


def kiwoom_no_stock(ctx: CallContext, status: int = 200) -> Response:
    """Kiwoom's answer for a code that names no stock: ``return_code`` 2, ``[1902]``."""
    detail = "종목 정보가 없습니다. 입력한 종목코드 값을 확인바랍니다."
    return kiwoom_error(ctx, 2, "입력 값 오류입니다", "1902", detail, status)


def kiwoom_1700(ctx: CallContext, status: int) -> Response:
    """Kiwoom's rate-limit answer, naming the api-id like the real one."""
    detail = f"허용된 요청 개수를 초과하였습니다. API ID={ctx.tr_id}"
    return kiwoom_error(ctx, 5, "허용된 요청 개수를 초과하였습니다", "1700", detail, status)
