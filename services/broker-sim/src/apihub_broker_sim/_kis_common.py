"""What every KIS TR handler shares: the tr_id/token check, input errors, ``gt_uid``, the
ledger's account key and the answer to a book rejection.

Kept apart from ``_kis`` (quotations, OAuth, the cash order) and ``_kis_account`` (account
inquiries, modify/cancel, the holiday check) so neither imports the other's internals.

Book rejections answer HTTP 200 with ``rt_cd "1"``; every code below is this simulator's
choice (the KIS portal does not list the codes of these refusals):

==============  ============  ===========================================================
book reason     ``msg_cd``    when
==============  ============  ===========================================================
``cash``        ``APBK0952``  a buy (or a modify of one) needs more than the orderable cash
``quantity``    ``APBK0986``  a sell needs more than the orderable quantity
``not_found``   ``APBK0904``  ``ORGN_ODNO`` names no order of this account
``not_open``    ``APBK0963``  the original order has nothing left to modify or cancel
``too_large``   ``APBK0917``  ``ORD_QTY`` exceeds what is left of the original order
==============  ============  ===========================================================
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping
from datetime import date, datetime

from starlette.requests import Request
from starlette.responses import Response

from ._book import OrderRejected
from ._gateway import EGW00121, EGW00123, bearer_token
from ._http import kis_envelope_error
from ._recorder import CallContext
from ._state import SimState
from ._tokens import KIS, TokenState, secret_digest

__all__ = [
    "BRANCH",
    "CODE",
    "OK",
    "ORDER_OK",
    "REJECT_CODES",
    "InputError",
    "account_key",
    "authorize",
    "choice",
    "gt_uid",
    "input_error",
    "parse_day",
    "rejected",
    "require",
]

OK = {"rt_cd": "0", "msg_cd": "MCA00000", "msg1": "정상처리 되었습니다."}
ORDER_OK = {"rt_cd": "0", "msg_cd": "APBK0013", "msg1": "주문 전송 완료 되었습니다."}
CODE = re.compile(r"Q?(\d{6})")
BRANCH = "91252"
"""The ``KRX_FWDG_ORD_ORGNO`` (order branch) every simulated order is booked at."""

REJECT_CODES: Mapping[str, str] = {
    "cash": "APBK0952",
    "quantity": "APBK0986",
    "not_found": "APBK0904",
    "not_open": "APBK0963",
    "too_large": "APBK0917",
}
"""Book rejection reason -> ``msg_cd`` (all this simulator's choice; see the module doc)."""


class InputError(Exception):
    """A query or body field is missing (``missing``) or has a bad value."""

    def __init__(self, field: str, *, missing: bool = False) -> None:
        super().__init__(field)
        self.field = field
        self.missing = missing


def input_error(ctx: CallContext, error: InputError) -> Response:
    """The ``OPSQ2001`` answer naming the field."""
    if error.missing:
        text = f"ERROR : INPUT_FIELD_NAME {error.field}"
    else:
        text = f"ERROR INVALID {error.field}"
    return kis_envelope_error(ctx, 200, "OPSQ2001", text, rt_cd="2")


def rejected(ctx: CallContext, rejection: OrderRejected) -> Response:
    """The answer to an order the book refused (HTTP 200, ``rt_cd "1"``)."""
    return kis_envelope_error(ctx, 200, REJECT_CODES[rejection.reason], rejection.message)


def gt_uid(state: SimState) -> str:
    """A fresh global transaction id (32 hex digits)."""
    material = f"gt|{state.config.seed}|{state.next_serial()}"
    return hashlib.blake2b(material.encode(), digest_size=16).hexdigest()


def authorize(
    state: SimState, request: Request, ctx: CallContext, tr_ids: Collection[str]
) -> Response | None:
    """Check ``tr_id``, the bearer token and the appkey/appsecret headers."""
    if ctx.tr_id not in tr_ids:
        return kis_envelope_error(ctx, 500, "EGW00101", "유효하지 않은 요청입니다. (tr_id)")
    token_state, record = state.tokens.check(KIS, bearer_token(request))
    if token_state is TokenState.INVALID or record is None:
        return kis_envelope_error(ctx, 500, "EGW00121", EGW00121)
    if token_state is TokenState.EXPIRED:
        return kis_envelope_error(ctx, 500, "EGW00123", EGW00123)
    if not ctx.appkey:
        return kis_envelope_error(ctx, 500, "EGW00103", "유효하지 않은 AppKey입니다.")
    if ctx.appkey != record.appkey:
        return kis_envelope_error(ctx, 500, "EGW00121", EGW00121)
    if secret_digest(request.headers.get("appsecret", "")) != record.secret_digest:
        return kis_envelope_error(ctx, 500, "EGW00105", "유효하지 않은 AppSecret입니다.")
    return None


def require(
    params: Mapping[str, str], required: Collection[str], blank_ok: Collection[str] = ()
) -> None:
    """Raise for the first of ``required`` that is absent, or blank and not in ``blank_ok``."""
    for name in required:
        if name not in params or (not params[name] and name not in blank_ok):
            raise InputError(name, missing=True)


def parse_day(params: Mapping[str, str], name: str) -> date:
    """A ``YYYYMMDD`` field."""
    try:
        return datetime.strptime(params[name], "%Y%m%d").date()
    except ValueError:
        raise InputError(name) from None


def choice(params: Mapping[str, str], name: str, allowed: str) -> str:
    """A field whose (upper-cased) value must be one of the space-separated ``allowed``."""
    value = params[name].upper()
    if value not in allowed.split():
        raise InputError(name)
    return value


def account_key(fields: Mapping[str, str]) -> str:
    """The ledger's key of the account a KIS call names (``CANO``-``ACNT_PRDT_CD``)."""
    return f"KIS:{fields['CANO']}-{fields['ACNT_PRDT_CD']}"
