"""The Kiwoom REST API look-alike: OAuth, ka10001, the three chart TRs and cash orders.

Every answer is HTTP 200 unless rate limited. Errors carry a small ``return_code`` and the
real code in ``return_msg`` brackets (as third-party captures show): auth failures use 3
(``8005``, ``8001``, ...), rate limits 5 (``1700``), and request errors 2* (``1501``,
``1504``, ``1505``, ``1511``, ``1517``, ``1902``). (* the category number for request errors is this
simulator's choice; no source confirms one.)

Paging: a chart answer with more rows sets ``cont-yn: Y`` and an opaque ``next-key``; the
same request sent again with ``cont-yn: Y`` and that ``next-key`` continues. The key encodes
the position of the next row, so paging is stateless and deterministic.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._gateway import bearer_token, broker_route, kiwoom_8005, read_json_object
from ._http import KIWOOM_MEDIA_TYPE, json_response, kiwoom_error
from ._krx import SESSION_CLOSE_S, SESSION_OPEN_S
from ._market import Bar, aggregate
from ._quotes import (
    change_sign,
    close_extremes,
    fundamentals,
    hhmmss,
    pct,
    signed,
    snapshot,
    vs_base,
    ymd,
)
from ._recorder import CallContext
from ._state import OrderRecord, SimState
from ._tokens import KIWOOM, TokenState

__all__ = ["API_IDS", "routes"]

_OK_MSG = "정상적으로 처리되었습니다"
_CODE = re.compile(r"(\d{6})(?:_(?:NX|AL))?")
_MINUTE_SCOPES = frozenset({1, 3, 5, 10, 15, 30, 45, 60})
_TICK_SCOPES = frozenset({1, 3, 5, 10, 30})

API_IDS: Mapping[str, frozenset[str]] = {
    "/api/dostk/stkinfo": frozenset({"ka10001"}),
    "/api/dostk/chart": frozenset({"ka10079", "ka10080", "ka10081"}),
    "/api/dostk/ordr": frozenset({"kt10000", "kt10001"}),
}
"""URI -> the api-ids it serves."""
_KNOWN_IDS = frozenset().union(*API_IDS.values()) | {"au10001", "au10002"}


class _BadInput(Exception):
    """A request field is malformed (``1517``) or names no stock (``1902``)."""

    def __init__(self, field: str, code: str = "1517") -> None:
        super().__init__(field)
        self.field = field
        self.code = code


def _request_error(ctx: CallContext, code: str, detail: str) -> Response:
    return kiwoom_error(ctx, 2, "입력 값 오류입니다", code, detail)


def _auth_error(ctx: CallContext, code: str, detail: str) -> Response:
    return kiwoom_error(ctx, 3, "인증에 실패했습니다", code, detail)


def _ok(api_id: str, payload: Mapping[str, Any], next_key: str | None = None) -> Response:
    headers = {"api-id": api_id, "cont-yn": "Y" if next_key else "N", "next-key": next_key or ""}
    body = {**payload, "return_code": 0, "return_msg": _OK_MSG}
    return json_response(body, headers=headers, media_type=KIWOOM_MEDIA_TYPE)


# --- OAuth ---------------------------------------------------------------------------------


def _check_app(
    state: SimState, ctx: CallContext, appkey: object, secret: object
) -> Response | tuple[str, str]:
    """Validate an appkey/secret pair from a body; returns an error or the pair."""
    if not isinstance(appkey, str) or not appkey or not isinstance(secret, str) or not secret:
        return _auth_error(
            ctx, "8020", "입력파라미터로 appkey 또는 secretkey가 들어오지 않았습니다."
        )
    configured = state.app_secret(appkey)
    if configured == "":
        return _auth_error(ctx, "8001", "App Key와 Secret Key 검증에 실패했습니다.")
    if configured is not None and configured != secret:
        return _auth_error(ctx, "8002", "App Key와 Secret Key 검증에 실패했습니다.")
    return appkey, secret


async def _token(state: SimState, request: Request, ctx: CallContext) -> Response:
    ctx.tr_id = ctx.tr_id or "au10001"
    body = await read_json_object(request)
    if body is None:
        return _request_error(ctx, "1517", "입력 값 형식 오류입니다")
    grant = body.get("grant_type")
    if not grant:
        return _auth_error(ctx, "8011", "grant_type이 들어오지 않았습니다.")
    if grant != "client_credentials":
        return _auth_error(ctx, "8012", "grant_type 값이 잘못되었습니다.")
    checked = _check_app(state, ctx, body.get("appkey"), body.get("secretkey"))
    if isinstance(checked, Response):
        return checked
    appkey, secret = checked
    record = state.tokens.kiwoom_issue(appkey, secret)
    state.recorder.token_issued(KIWOOM, appkey)
    payload = {
        "expires_dt": record.expires_at.strftime("%Y%m%d%H%M%S"),
        "token_type": "Bearer",
        "token": record.token,
    }
    return _ok("au10001", payload)


async def _revoke(state: SimState, request: Request, ctx: CallContext) -> Response:
    ctx.tr_id = ctx.tr_id or "au10002"
    body = await read_json_object(request) or {}
    appkey, secret, token = body.get("appkey"), body.get("secretkey"), body.get("token")
    checked = _check_app(state, ctx, appkey, secret)
    if isinstance(checked, Response):
        return checked
    if not isinstance(token, str) or not state.tokens.revoke_token(KIWOOM, checked[0], token):
        return _auth_error(ctx, "8015", "토큰 폐기에 실패했습니다.")
    return _ok("au10002", {})


# --- data TRs ------------------------------------------------------------------------------

Page = tuple[dict[str, Any], str | None]
Builder = Callable[[SimState, dict[str, str], datetime, str | None], Page]


@dataclass(frozen=True)
class _TR:
    api_id: str
    required: tuple[str, ...]
    build: Builder


def _code(body: Mapping[str, str]) -> str:
    match = _CODE.fullmatch(body["stk_cd"].strip())
    if match is None:
        raise _BadInput("stk_cd", "1902")
    return match.group(1)


def _int_choice(body: Mapping[str, str], name: str, allowed: frozenset[int]) -> int:
    raw = body[name]
    if not raw.isdigit() or int(raw) not in allowed:
        raise _BadInput(name)
    return int(raw)


def _day(raw: str, name: str) -> date:
    try:
        return datetime.strptime(raw, "%Y%m%d").date()
    except ValueError:
        raise _BadInput(name) from None


def _encode_key(api_id: str, code: str, cursor: str) -> str:
    return base64.urlsafe_b64encode(f"{api_id}:{code}:{cursor}".encode()).decode().rstrip("=")


def _decode_key(api_id: str, code: str, key: str | None) -> str | None:
    if key is None:
        return None
    try:
        text = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _BadInput("next-key") from None
    prefix = f"{api_id}:{code}:"
    if not text.startswith(prefix):
        raise _BadInput("next-key")
    return text[len(prefix) :]


def _page(
    api_id: str, code: str, rows: Iterator[tuple[str, dict[str, str]]], size: int, after: str | None
) -> tuple[list[dict[str, str]], str | None]:
    """Take ``size`` rows starting at cursor ``after``; rows come with their cursor."""
    if after is not None:
        # Cursors sort like the rows (newest first), so skip everything newer.
        rows = itertools.dropwhile(lambda item: item[0] > after, rows)
    taken = list(itertools.islice(rows, size + 1))
    more = taken[size][0] if len(taken) > size else None
    next_key = _encode_key(api_id, code, more) if more is not None else None
    return [row for _, row in taken[:size]], next_key


def _stkinfo(state: SimState, body: dict[str, str], now: datetime, key: str | None) -> Page:
    code = _code(body)
    market = state.market
    snap = snapshot(market, code, now)
    info, bar, base, price = snap.info, snap.bar, snap.base, snap.price
    fund = fundamentals(info)
    year = close_extremes(market, code, snap, snap.day.replace(month=1, day=1))
    d250 = close_extremes(market, code, snap, date.fromordinal(snap.day.toordinal() - 365))
    shares = info.listed_shares
    payload = {
        "stk_cd": code,
        "stk_nm": info.name,
        "setl_mm": fund.fiscal_month,
        "fav": str(info.par_value),
        "cap": str(shares * info.par_value // 100_000_000),
        "flo_stk": str(shares // 1000),
        "crd_rt": signed(f"{fund.loan_pct:.2f}"),
        "oyr_hgst": vs_base(year.high, base),
        "oyr_lwst": vs_base(year.low, base),
        "mac": str(price * shares // 100_000_000),
        "mac_wght": "",
        "for_exh_rt": signed(f"{fund.foreign_pct:.2f}"),
        "repl_pric": str(base * 8 // 10),
        "per": f"{price / fund.eps:.2f}",
        "eps": str(fund.eps),
        "roe": f"{fund.eps * 100.0 / fund.bps:.1f}",
        "pbr": f"{price / fund.bps:.2f}",
        "ev": f"{price / fund.eps * 0.6:.2f}",
        "bps": str(fund.bps),
        "sale_amt": str(fund.eps * shares // 100_000_000 * 8),
        "bus_pro": str(fund.eps * shares // 100_000_000 * 13 // 10),
        "cup_nga": str(fund.eps * shares // 100_000_000),
        "250hgst": vs_base(d250.high, base),
        "250lwst": vs_base(d250.low, base),
        "high_pric": vs_base(bar.high, base),
        "open_pric": vs_base(bar.open, base),
        "low_pric": vs_base(bar.low, base),
        "upl_pric": vs_base(snap.upper, base),
        "lst_pric": vs_base(snap.lower, base),
        "base_pric": str(base),
        "exp_cntr_pric": "0",
        "exp_cntr_qty": "0",
        "250hgst_pric_dt": ymd(d250.high_day),
        "250hgst_pric_pre_rt": signed(pct(price - d250.high, d250.high)),
        "250lwst_pric_dt": ymd(d250.low_day),
        "250lwst_pric_pre_rt": signed(pct(price - d250.low, d250.low)),
        "cur_prc": vs_base(price, base),
        "pre_sig": snap.sign,
        "pred_pre": signed(snap.change),
        "flu_rt": signed(snap.rate),
        "trde_qty": str(bar.volume),
        "trde_pre": signed(pct(bar.volume - snap.prev_bar.volume, snap.prev_bar.volume)),
        "fav_unit": "원",
        "dstr_stk": str(shares * 7 // 10 // 1000),
        "dstr_rt": "70.00",
    }
    return payload, None


def _daily(state: SimState, body: dict[str, str], now: datetime, key: str | None) -> Page:
    code = _code(body)
    newest = _day(body["base_dt"], "base_dt")
    if body["upd_stkpc_tp"] not in ("0", "1"):
        raise _BadInput("upd_stkpc_tp")
    cursor = _decode_key("ka10081", code, key)
    if cursor is not None:
        newest = _day(cursor, "next-key")
    market = state.market
    shares = market.symbol(code).listed_shares

    def rows() -> Iterator[tuple[str, dict[str, str]]]:
        for bar in market.iter_daily_desc(code, newest, date.min, now):
            before = market.prev_close(code, bar.day)
            yield (
                ymd(bar.day),
                {
                    "cur_prc": str(bar.close),
                    "trde_qty": str(bar.volume),
                    "trde_prica": str((bar.value + 500_000) // 1_000_000),
                    "dt": ymd(bar.day),
                    "open_pric": str(bar.open),
                    "high_pric": str(bar.high),
                    "low_pric": str(bar.low),
                    "pred_pre": signed(bar.close - before),
                    "pred_pre_sig": change_sign(bar.close, before),
                    "trde_tern_rt": signed(pct(bar.volume, shares)),
                },
            )

    page, next_key = _page("ka10081", code, rows(), state.config.kiwoom_page_rows_daily, None)
    return {"stk_cd": code, "stk_dt_pole_chart_qry": page}, next_key


def _intraday_days(state: SimState, newest: date, now: datetime) -> list[tuple[date, int]]:
    """The trading days ka10080/ka10079 serve, newest first, each with its cutoff second."""
    market = state.market
    session_day, cutoff = market.session(now)
    newest = min(newest, session_day)
    days = itertools.islice(
        market.trading_days_desc(newest, market.first_day(now)),
        state.config.kiwoom_intraday_history_days,
    )
    return [(day, cutoff if day == session_day else SESSION_CLOSE_S) for day in days]


def _bar_row(bar: Bar, base: int, stamp: str) -> dict[str, str]:
    return {
        "cur_prc": vs_base(bar.close, base),
        "trde_qty": str(bar.volume),
        "cntr_tm": stamp,
        "open_pric": vs_base(bar.open, base),
        "high_pric": vs_base(bar.high, base),
        "low_pric": vs_base(bar.low, base),
        "acc_trde_qty": str(bar.cum_volume),
        "pred_pre": signed(bar.close - base),
        "pred_pre_sig": change_sign(bar.close, base),
    }


def _minute(state: SimState, body: dict[str, str], now: datetime, key: str | None) -> Page:
    code = _code(body)
    scope = _int_choice(body, "tic_scope", _MINUTE_SCOPES)
    if body["upd_stkpc_tp"] not in ("0", "1"):
        raise _BadInput("upd_stkpc_tp")
    base_dt = body.get("base_dt", "")
    newest = _day(base_dt, "base_dt") if base_dt else now.date()
    cursor = _decode_key("ka10080", code, key)
    market = state.market

    def rows() -> Iterator[tuple[str, dict[str, str]]]:
        for day, cutoff in _intraday_days(state, newest, now):
            tape = market.tape(code, day)
            groups: dict[int, list[Bar]] = {}
            for bar in tape.minute_bars_until(cutoff):
                groups.setdefault((bar.start_s - SESSION_OPEN_S) // (60 * scope), []).append(bar)
            for index in sorted(groups, reverse=True):
                start = SESSION_OPEN_S + index * 60 * scope
                stamp = ymd(day) + hhmmss(start)
                yield stamp, _bar_row(aggregate(groups[index]), tape.prev_close, stamp)

    size = state.config.kiwoom_page_rows_minute
    page, next_key = _page("ka10080", code, rows(), size, cursor)
    return {"stk_cd": code, "stk_min_pole_chart_qry": page}, next_key


def _tick(state: SimState, body: dict[str, str], now: datetime, key: str | None) -> Page:
    code = _code(body)
    scope = _int_choice(body, "tic_scope", _TICK_SCOPES)
    if body["upd_stkpc_tp"] not in ("0", "1"):
        raise _BadInput("upd_stkpc_tp")
    cursor = _decode_key("ka10079", code, key)
    market = state.market
    days = _intraday_days(state, now.date(), now)
    last_tic_cnt = 0
    if days:
        newest_day, newest_cutoff = days[0]
        newest_count = market.tape(code, newest_day).tick_count(newest_cutoff)
        last_tic_cnt = (newest_count - 1) % scope + 1

    def rows() -> Iterator[tuple[str, dict[str, str]]]:
        for day, cutoff in days:
            tape = market.tape(code, day)
            count = tape.tick_count(cutoff)
            base = tape.prev_close
            for group in range((count - 1) // scope, -1, -1):
                first, end = group * scope, min(count, (group + 1) * scope)
                prices = tape.prices[first:end]
                close = prices[-1]
                yield (
                    f"{ymd(day)}{group:06d}",
                    {
                        "cur_prc": vs_base(close, base),
                        "trde_qty": str(sum(tape.volumes[first:end])),
                        "cntr_tm": ymd(day) + hhmmss(tape.secs[end - 1]),
                        "open_pric": vs_base(prices[0], base),
                        "high_pric": vs_base(max(prices), base),
                        "low_pric": vs_base(min(prices), base),
                        "pred_pre": signed(close - base),
                        "pred_pre_sig": change_sign(close, base),
                    },
                )

    size = state.config.kiwoom_page_rows_tick
    page, next_key = _page("ka10079", code, rows(), size, cursor)
    payload = {"stk_cd": code, "last_tic_cnt": str(last_tic_cnt), "stk_tic_chart_qry": page}
    return payload, next_key


_TRS = {
    tr.api_id: tr
    for tr in (
        _TR("ka10001", ("stk_cd",), _stkinfo),
        _TR("ka10081", ("stk_cd", "base_dt", "upd_stkpc_tp"), _daily),
        _TR("ka10080", ("stk_cd", "tic_scope", "upd_stkpc_tp"), _minute),
        _TR("ka10079", ("stk_cd", "tic_scope", "upd_stkpc_tp"), _tick),
    )
}


def _check_call(state: SimState, request: Request, ctx: CallContext, path: str) -> Response | None:
    """api-id first (1501/1505/1504), then the token (8005)."""
    if not ctx.tr_id:
        return _request_error(ctx, "1501", "API ID가 Null이거나 값이 없습니다")
    if ctx.tr_id not in _KNOWN_IDS:
        return _request_error(ctx, "1505", "해당 API ID는 존재하지 않습니다")
    if ctx.tr_id not in API_IDS[path]:
        return _request_error(ctx, "1504", "해당 URI에서는 지원하는 API ID가 아닙니다")
    token_state, _ = state.tokens.check(KIWOOM, bearer_token(request))
    if token_state is not TokenState.VALID:
        return kiwoom_8005(ctx)
    return None


def _required(
    ctx: CallContext, body: Mapping[str, object], names: tuple[str, ...]
) -> Response | None:
    for name in names:
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            detail = f"필수 입력 값에 값이 존재하지 않습니다. 필수입력 파라미터={name}"
            return _request_error(ctx, "1511", detail)
    return None


async def _data(state: SimState, path: str, request: Request, ctx: CallContext) -> Response:
    problem = _check_call(state, request, ctx, path)
    if problem is not None:
        return problem
    body = await read_json_object(request)
    if body is None:
        return _request_error(ctx, "1517", "입력 값 형식 오류입니다")
    tr = _TRS[ctx.tr_id]
    problem = _required(ctx, body, tr.required)
    if problem is not None:
        return problem
    fields = {k: v for k, v in body.items() if isinstance(v, str)}
    headers = request.headers
    key = headers.get("next-key") if headers.get("cont-yn", "").upper() == "Y" else None
    now = state.clock.now()
    try:
        payload, next_key = await anyio.to_thread.run_sync(
            tr.build, state, fields, now, key or None
        )
    except _BadInput as error:
        if error.code == "1902":
            return _request_error(
                ctx, "1902", "종목 정보가 없습니다. 입력한 종목코드 값을 확인바랍니다."
            )
        return _request_error(ctx, "1517", f"입력 값 형식 오류입니다. 파라미터={error.field}")
    return _ok(ctx.tr_id, payload, next_key)


async def _order(state: SimState, request: Request, ctx: CallContext) -> Response:
    path = "/api/dostk/ordr"
    problem = _check_call(state, request, ctx, path)
    if problem is not None:
        return problem
    body = await read_json_object(request)
    if body is None:
        return _request_error(ctx, "1517", "입력 값 형식 오류입니다")
    problem = _required(ctx, body, ("dmst_stex_tp", "stk_cd", "ord_qty", "trde_tp"))
    if problem is not None:
        return problem
    fields = {k: v for k, v in body.items() if isinstance(v, str)}
    match = _CODE.fullmatch(fields["stk_cd"])
    if match is None:
        return _request_error(
            ctx, "1902", "종목 정보가 없습니다. 입력한 종목코드 값을 확인바랍니다."
        )
    if not fields["ord_qty"].isdigit() or int(fields["ord_qty"]) <= 0:
        return _request_error(ctx, "1517", "입력 값 형식 오류입니다. 파라미터=ord_qty")
    order_no = f"{state.next_serial():07d}"
    state.add_order(
        OrderRecord(
            provider=KIWOOM,
            tr_id=ctx.tr_id,
            side="buy" if ctx.tr_id == "kt10000" else "sell",
            symbol=match.group(1),
            quantity=fields["ord_qty"],
            price=fields.get("ord_uv", ""),
            order_no=order_no,
            time=state.clock.now().isoformat(),
        )
    )
    return _ok(ctx.tr_id, {"ord_no": order_no, "dmst_stex_tp": fields["dmst_stex_tp"]})


def routes(state: SimState) -> list[Route]:
    """Every Kiwoom route of the simulator."""
    return [
        broker_route(state, KIWOOM, "/oauth2/token", partial(_token, state), ["POST"]),
        broker_route(state, KIWOOM, "/oauth2/revoke", partial(_revoke, state), ["POST"]),
        broker_route(state, KIWOOM, "/api/dostk/ordr", partial(_order, state), ["POST"]),
        *(
            broker_route(state, KIWOOM, path, partial(_data, state, path), ["POST"])
            for path in ("/api/dostk/stkinfo", "/api/dostk/chart")
        ),
    ]
