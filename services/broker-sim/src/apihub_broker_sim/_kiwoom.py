"""The Kiwoom REST API look-alike: OAuth, ka10001, the three chart TRs and cash orders.

The account TRs (kt00018, ka10075, ka10076), the order book (ka10004) and modify / cancel
(kt10002, kt10003) live in ``_kiwoom_account``; the plumbing both share in ``_kiwoom_common``.

Every answer is HTTP 200 unless rate limited. Errors carry a small ``return_code`` and the
real code in ``return_msg`` brackets (as third-party captures show): auth failures use 3
(``8005``, ``8001``, ...), rate limits 5 (``1700``), and request errors 2* (``1501``,
``1504``, ``1505``, ``1511``, ``1517``, ``1902``). (* the category number for request errors is this
simulator's choice; no source confirms one.) Orders the account ledger refuses answer with
``return_code`` 20 and a ``91xx`` code (see ``_kiwoom_account``).

Paging: a chart answer with more rows sets ``cont-yn: Y`` and an opaque ``next-key``; the
same request sent again with ``cont-yn: Y`` and that ``next-key`` continues. The key encodes
the position of the next row, so paging is stateless and deterministic.

Orders (kt10000 buy, kt10001 sell) are booked in the account ledger (``state.book``, keyed
by the token's app key) and fill against the tape: ``trde_tp`` 3 / 13 / 23 (시장가 and its
IOC / FOK forms) is a market order, every other type a limit order at ``ord_uv`` (the
ledger models neither IOC / FOK nor the special limit types).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._book import OrderRejected, Side
from ._gateway import broker_route, read_json_object
from ._http import kiwoom_error
from ._kiwoom_account import ACCOUNT_PATH, account_inquiry, amend, orderbook
from ._kiwoom_common import (
    API_IDS,
    CODE,
    BadInput,
    Page,
    QueryBuilder,
    answer_query,
    bad_input_error,
    book_account,
    check_call,
    decode_key,
    ok,
    page,
    parse_code,
    rejection,
    request_error,
    required,
)
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
from ._tokens import KIWOOM

__all__ = ["API_IDS", "routes"]

_MINUTE_SCOPES = frozenset({1, 3, 5, 10, 15, 30, 45, 60})
_TICK_SCOPES = frozenset({1, 3, 5, 10, 30})
_ORDER_PATH = "/api/dostk/ordr"
_EXCHANGES = frozenset({"KRX", "NXT", "SOR"})
_ORDER_TYPES = frozenset(
    {"0", "3", "5", "6", "7", "10", "13", "16", "20", "23", "26", "28", "29", "30", "31"}
    | {"61", "62", "81"}
)
"""``trde_tp`` values of the Kiwoom REST API guide (https://openapi.kiwoom.com)."""
_MARKET_TYPES = frozenset({"3", "13", "23"})


def _auth_error(ctx: CallContext, code: str, detail: str) -> Response:
    return kiwoom_error(ctx, 3, "인증에 실패했습니다", code, detail)


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
        return request_error(ctx, "1517", "입력 값 형식 오류입니다")
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
    return ok("au10001", payload)


async def _revoke(state: SimState, request: Request, ctx: CallContext) -> Response:
    ctx.tr_id = ctx.tr_id or "au10002"
    body = await read_json_object(request) or {}
    appkey, secret, token = body.get("appkey"), body.get("secretkey"), body.get("token")
    checked = _check_app(state, ctx, appkey, secret)
    if isinstance(checked, Response):
        return checked
    if not isinstance(token, str) or not state.tokens.revoke_token(KIWOOM, checked[0], token):
        return _auth_error(ctx, "8015", "토큰 폐기에 실패했습니다.")
    return ok("au10002", {})


# --- data TRs ------------------------------------------------------------------------------

Builder = Callable[[SimState, dict[str, str], datetime, str | None], Page]


@dataclass(frozen=True)
class _TR:
    api_id: str
    required: tuple[str, ...]
    build: Builder


def _code(body: Mapping[str, str]) -> str:
    return parse_code(body["stk_cd"])


def _int_choice(body: Mapping[str, str], name: str, allowed: frozenset[int]) -> int:
    raw = body[name]
    if not raw.isdigit() or int(raw) not in allowed:
        raise BadInput(name)
    return int(raw)


def _day(raw: str, name: str) -> date:
    try:
        return datetime.strptime(raw, "%Y%m%d").date()
    except ValueError:
        raise BadInput(name) from None


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
        raise BadInput("upd_stkpc_tp")
    cursor = decode_key("ka10081", code, key)
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

    served, next_key = page("ka10081", code, rows(), state.config.kiwoom_page_rows_daily, None)
    return {"stk_cd": code, "stk_dt_pole_chart_qry": served}, next_key


def _intraday_days(state: SimState, newest: date, now: datetime) -> list[tuple[date, int]]:
    """The trading days ka10080/ka10079 serve, newest first, each with its cutoff second."""
    market = state.market
    session_day, cutoff = market.session(now)
    newest = min(newest, session_day)
    days = itertools.islice(
        market.trading_days_desc(newest, market.first_day(now)),
        state.config.kiwoom_intraday_history_days,
    )
    return [(day, cutoff if day == session_day else market.close_s(day)) for day in days]


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
        raise BadInput("upd_stkpc_tp")
    base_dt = body.get("base_dt", "")
    newest = _day(base_dt, "base_dt") if base_dt else now.date()
    cursor = decode_key("ka10080", code, key)
    market = state.market

    def rows() -> Iterator[tuple[str, dict[str, str]]]:
        for day, cutoff in _intraday_days(state, newest, now):
            tape = market.tape(code, day)
            opens = tape.hours.open_s  # N-minute bars count from the day's open
            groups: dict[int, list[Bar]] = {}
            for bar in tape.minute_bars_until(cutoff):
                groups.setdefault((bar.start_s - opens) // (60 * scope), []).append(bar)
            for index in sorted(groups, reverse=True):
                start = opens + index * 60 * scope
                stamp = ymd(day) + hhmmss(start)
                yield stamp, _bar_row(aggregate(groups[index]), tape.prev_close, stamp)

    size = state.config.kiwoom_page_rows_minute
    served, next_key = page("ka10080", code, rows(), size, cursor)
    return {"stk_cd": code, "stk_min_pole_chart_qry": served}, next_key


def _tick(state: SimState, body: dict[str, str], now: datetime, key: str | None) -> Page:
    code = _code(body)
    scope = _int_choice(body, "tic_scope", _TICK_SCOPES)
    if body["upd_stkpc_tp"] not in ("0", "1"):
        raise BadInput("upd_stkpc_tp")
    cursor = decode_key("ka10079", code, key)
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
    served, next_key = page("ka10079", code, rows(), size, cursor)
    payload = {"stk_cd": code, "last_tic_cnt": str(last_tic_cnt), "stk_tic_chart_qry": served}
    return payload, next_key


_TRS = {
    tr.api_id: tr
    for tr in (
        _TR("ka10001", ("stk_cd",), _stkinfo),
        _TR("ka10081", ("stk_cd", "base_dt", "upd_stkpc_tp"), _daily),
        _TR("ka10080", ("stk_cd", "tic_scope", "upd_stkpc_tp"), _minute),
        _TR("ka10079", ("stk_cd", "tic_scope", "upd_stkpc_tp"), _tick),
        _TR("ka10004", ("stk_cd",), orderbook),
    )
}


async def _data(state: SimState, path: str, request: Request, ctx: CallContext) -> Response:
    def lookup(api_id: str) -> tuple[tuple[str, ...], QueryBuilder]:
        tr = _TRS[api_id]
        return tr.required, partial(tr.build, state)

    return await answer_query(state, request, ctx, path, lookup)


def _order_price(fields: dict[str, str], market_order: bool) -> int | None:
    """The limit price of a new order (0 for a market order); ``None`` if it is unusable."""
    raw = fields.get("ord_uv", "").strip()
    if market_order:
        return 0 if not raw or raw.isdigit() else None
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


async def _order(state: SimState, request: Request, ctx: CallContext) -> Response:
    problem = check_call(state, request, ctx, _ORDER_PATH)
    if problem is not None:
        return problem
    body = await read_json_object(request)
    if body is None:
        return request_error(ctx, "1517", "입력 값 형식 오류입니다")
    if ctx.tr_id in ("kt10002", "kt10003"):
        return await anyio.to_thread.run_sync(amend, state, ctx, body)
    problem = required(ctx, body, ("dmst_stex_tp", "stk_cd", "ord_qty", "trde_tp"))
    if problem is not None:
        return problem
    fields = {k: v.strip() for k, v in body.items() if isinstance(v, str)}
    match = CODE.fullmatch(fields["stk_cd"])
    if match is None:
        return bad_input_error(ctx, BadInput("stk_cd", "1902"))
    if not fields["ord_qty"].isdigit() or int(fields["ord_qty"]) <= 0:
        return bad_input_error(ctx, BadInput("ord_qty"))
    for name, allowed in (("dmst_stex_tp", _EXCHANGES), ("trde_tp", _ORDER_TYPES)):
        if fields[name] not in allowed:
            return bad_input_error(ctx, BadInput(name))
    market_order = fields["trde_tp"] in _MARKET_TYPES
    price = _order_price(fields, market_order)
    if price is None:
        return bad_input_error(ctx, BadInput("ord_uv"))
    side: Side = "buy" if ctx.tr_id == "kt10000" else "sell"
    order_no = f"{state.next_serial():07d}"
    place = partial(
        state.book.place,
        book_account(ctx.appkey),
        order_no,
        tr_id=ctx.tr_id,
        side=side,
        symbol=match.group(1),
        quantity=int(fields["ord_qty"]),
        price=price,
        market_order=market_order,
        exchange=fields["dmst_stex_tp"],
    )
    try:
        await anyio.to_thread.run_sync(place)
    except OrderRejected as error:
        return rejection(ctx, error)
    state.add_order(
        OrderRecord(
            provider=KIWOOM,
            tr_id=ctx.tr_id,
            side=side,
            symbol=match.group(1),
            quantity=fields["ord_qty"],
            price=fields.get("ord_uv", ""),
            order_no=order_no,
            time=state.clock.now().isoformat(),
        )
    )
    return ok(ctx.tr_id, {"ord_no": order_no, "dmst_stex_tp": fields["dmst_stex_tp"]})


def routes(state: SimState) -> list[Route]:
    """Every Kiwoom route of the simulator."""
    return [
        broker_route(state, KIWOOM, "/oauth2/token", partial(_token, state), ["POST"]),
        broker_route(state, KIWOOM, "/oauth2/revoke", partial(_revoke, state), ["POST"]),
        broker_route(state, KIWOOM, _ORDER_PATH, partial(_order, state), ["POST"]),
        broker_route(state, KIWOOM, ACCOUNT_PATH, partial(account_inquiry, state), ["POST"]),
        *(
            broker_route(state, KIWOOM, path, partial(_data, state, path), ["POST"], quotation=True)
            for path in ("/api/dostk/stkinfo", "/api/dostk/chart", "/api/dostk/mrkcond")
        ),
    ]
