"""What every Kiwoom TR handler shares: the api-id table, answers, errors, paging keys.

``_kiwoom`` (OAuth, quotes, charts, orders) and ``_kiwoom_account`` (the account, order-book
and modify/cancel TRs) both build on this module, so neither imports the other's internals.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from ._book import OrderRejected
from ._gateway import bearer_token, kiwoom_8005, kiwoom_no_stock, read_json_object
from ._http import KIWOOM_MEDIA_TYPE, json_response, kiwoom_error
from ._recorder import CallContext
from ._state import SimState
from ._tokens import KIWOOM, TokenState

__all__ = [
    "API_IDS",
    "CODE",
    "OK_MSG",
    "REJECTION_CODES",
    "BadInput",
    "MissingInput",
    "Page",
    "QueryBuilder",
    "account_number",
    "answer_query",
    "bad_input_error",
    "book_account",
    "check_call",
    "continuation_key",
    "decode_key",
    "encode_key",
    "missing_error",
    "ok",
    "page",
    "parse_code",
    "rejected",
    "rejection",
    "request_error",
    "required",
]

Page = tuple[dict[str, Any], str | None]
"""A TR's payload and the ``next-key`` of the following page (``None``: the last page)."""

QueryBuilder = Callable[[dict[str, str], datetime, str | None], Page]
"""Builds one page of a query TR from its string body fields, the simulated now and the
``next-key`` asked for."""

OK_MSG = "정상적으로 처리되었습니다"
CODE = re.compile(r"(\d{6})(?:_(?:NX|AL))?")
"""A six-digit code, optionally with the ``_NX`` (NXT) or ``_AL`` (SOR) suffix."""

API_IDS: Mapping[str, frozenset[str]] = {
    "/api/dostk/stkinfo": frozenset({"ka10001"}),
    "/api/dostk/chart": frozenset({"ka10079", "ka10080", "ka10081"}),
    "/api/dostk/mrkcond": frozenset({"ka10004"}),
    "/api/dostk/ordr": frozenset({"kt10000", "kt10001", "kt10002", "kt10003"}),
    "/api/dostk/acnt": frozenset({"kt00018", "kt00004", "ka10075", "ka10076"}),
}
"""URI -> the api-ids it serves."""
_KNOWN_IDS = frozenset().union(*API_IDS.values()) | {"au10001", "au10002"}

REJECTION_CODES: Mapping[str, str] = {
    "cash": "9101",
    "quantity": "9102",
    "not_found": "9103",
    "not_open": "9104",
    "too_large": "9105",
    "symbol": "9106",
}
"""The simulator's bracket codes for orders the ledger refuses (no public source gives
Kiwoom's own; see ``_kiwoom_account``)."""
_REJECTED_RETURN_CODE = 20
"""The ``return_code`` captured answers carry for order-desk refusals."""


class BadInput(Exception):
    """A request field is malformed (``1517``) or names no stock (``1902``)."""

    def __init__(self, field: str, code: str = "1517") -> None:
        super().__init__(field)
        self.field = field
        self.code = code


class MissingInput(Exception):
    """A field that the request's other fields make required is absent (``1511``)."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def parse_code(raw: str) -> str:
    """The six-digit code of a ``stk_cd`` (suffixes dropped); ``1902`` if it names none."""
    match = CODE.fullmatch(raw.strip())
    if match is None:
        raise BadInput("stk_cd", "1902")
    return match.group(1)


def request_error(ctx: CallContext, code: str, detail: str) -> Response:
    """A request error: ``return_code`` 2 with the code in brackets."""
    return kiwoom_error(ctx, 2, "입력 값 오류입니다", code, detail)


def missing_error(ctx: CallContext, field: str) -> Response:
    """``1511`` naming the missing field, as the real service words it."""
    detail = f"필수 입력 값에 값이 존재하지 않습니다. 필수입력 파라미터={field}"
    return request_error(ctx, "1511", detail)


def bad_input_error(ctx: CallContext, error: BadInput) -> Response:
    """``1902`` for an unknown stock, else ``1517`` naming the field."""
    if error.code == "1902":
        return kiwoom_no_stock(ctx)
    return request_error(ctx, "1517", f"입력 값 형식 오류입니다. 파라미터={error.field}")


def rejected(ctx: CallContext, reason: str, message: str) -> Response:
    """An order the ledger refuses, with the simulator's code for ``reason``."""
    code = REJECTION_CODES[reason]
    return kiwoom_error(ctx, _REJECTED_RETURN_CODE, "주문이 거부되었습니다", code, message)


def rejection(ctx: CallContext, error: OrderRejected) -> Response:
    """:func:`rejected` for a :class:`OrderRejected` from the book."""
    return rejected(ctx, error.reason, error.message)


def ok(api_id: str, payload: Mapping[str, Any], next_key: str | None = None) -> Response:
    """A success: the payload, ``return_code`` 0, and the paging headers."""
    headers = {"api-id": api_id, "cont-yn": "Y" if next_key else "N", "next-key": next_key or ""}
    body = {**payload, "return_code": 0, "return_msg": OK_MSG}
    return json_response(body, headers=headers, media_type=KIWOOM_MEDIA_TYPE)


def check_call(state: SimState, request: Request, ctx: CallContext, path: str) -> Response | None:
    """api-id first (1501/1505/1504), then the token (8005)."""
    if not ctx.tr_id:
        return request_error(ctx, "1501", "API ID가 Null이거나 값이 없습니다")
    if ctx.tr_id not in _KNOWN_IDS:
        return request_error(ctx, "1505", "해당 API ID는 존재하지 않습니다")
    if ctx.tr_id not in API_IDS[path]:
        return request_error(ctx, "1504", "해당 URI에서는 지원하는 API ID가 아닙니다")
    token_state, _ = state.tokens.check(KIWOOM, bearer_token(request))
    if token_state is not TokenState.VALID:
        return kiwoom_8005(ctx)
    return None


def required(
    ctx: CallContext, body: Mapping[str, object], names: tuple[str, ...]
) -> Response | None:
    """``1511`` for the first of ``names`` that is absent, not a string or blank."""
    for name in names:
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            return missing_error(ctx, name)
    return None


def continuation_key(request: Request) -> str | None:
    """The request's ``next-key`` when it asks for a continuation (``cont-yn: Y``)."""
    headers = request.headers
    if headers.get("cont-yn", "").upper() != "Y":
        return None
    return headers.get("next-key") or None


def book_account(appkey: str) -> str:
    """The ledger key of an app key: a Kiwoom token belongs to one app key, one account."""
    return f"KIWOOM:{appkey}"


def account_number(appkey: str) -> str:
    """A stable ten-digit account number for an app key (ka10075 prints one per row)."""
    digest = hashlib.blake2b(f"kiwoom-account|{appkey}".encode(), digest_size=8).digest()
    return f"{int.from_bytes(digest, 'big') % 10**10:010d}"


def encode_key(api_id: str, scope: str, cursor: str) -> str:
    """An opaque ``next-key``: the api-id, the query it belongs to and the next row's cursor."""
    return base64.urlsafe_b64encode(f"{api_id}:{scope}:{cursor}".encode()).decode().rstrip("=")


def decode_key(api_id: str, scope: str, key: str | None) -> str | None:
    """The cursor inside ``key`` (``None`` without one); ``1517`` if it is not this query's."""
    if key is None:
        return None
    try:
        text = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadInput("next-key") from None
    prefix = f"{api_id}:{scope}:"
    if not text.startswith(prefix):
        raise BadInput("next-key")
    return text[len(prefix) :]


def page(
    api_id: str,
    scope: str,
    rows: Iterator[tuple[str, dict[str, str]]],
    size: int,
    after: str | None,
    *,
    descending: bool = True,
) -> tuple[list[dict[str, str]], str | None]:
    """Take ``size`` rows starting at cursor ``after``; rows come with their cursor.

    Cursors sort like the rows (newest first unless ``descending`` is false), and a page
    resumes at the first row not before the cursor, so a row that appears or goes between
    two pages shifts nothing else: every row present throughout is served exactly once.
    """
    if after is not None:
        cursor = after
        if descending:
            rows = itertools.dropwhile(lambda item: item[0] > cursor, rows)
        else:
            rows = itertools.dropwhile(lambda item: item[0] < cursor, rows)
    taken = list(itertools.islice(rows, size + 1))
    more = taken[size][0] if len(taken) > size else None
    next_key = encode_key(api_id, scope, more) if more is not None else None
    return [row for _, row in taken[:size]], next_key


async def answer_query(
    state: SimState,
    request: Request,
    ctx: CallContext,
    path: str,
    lookup: Callable[[str], tuple[tuple[str, ...], QueryBuilder]],
) -> Response:
    """The common answer of a Kiwoom query TR on ``path``: check the call, read the body,
    check the fields ``lookup(api_id)`` requires and build the page off the event loop."""
    problem = check_call(state, request, ctx, path)
    if problem is not None:
        return problem
    body = await read_json_object(request)
    if body is None:
        return request_error(ctx, "1517", "입력 값 형식 오류입니다")
    names, build = lookup(ctx.tr_id)
    problem = required(ctx, body, names)
    if problem is not None:
        return problem
    fields = {k: v for k, v in body.items() if isinstance(v, str)}
    try:
        payload, next_key = await anyio.to_thread.run_sync(
            build, fields, state.clock.now(), continuation_key(request)
        )
    except BadInput as error:
        return bad_input_error(ctx, error)
    except MissingInput as error:
        return missing_error(ctx, error.field)
    return ok(ctx.tr_id, payload, next_key)
