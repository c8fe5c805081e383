"""Kiwoom account TRs over the ledger: balance, open orders, fills, modify, cancel, order book.

All answer from ``state.book`` (the caller's account is its token's app key) and the tape, so
an order placed with kt10000 shows in ka10075 while it rests, in ka10076 once it fills and in
kt00018 as a holding, at the prices of the market data TRs.

==========  ====================  =========================================================
``kt00018``  ``/api/dostk/acnt``   계좌평가잔고내역: totals and one row per held symbol
``kt00004``  ``/api/dostk/acnt``   계좌평가현황: deposit and holdings (not in apihub's catalog)
``ka10075``  ``/api/dostk/acnt``   미체결: orders with a remainder that can still fill
``ka10076``  ``/api/dostk/acnt``   체결: today's filled orders, newest first
``ka10004``  ``/api/dostk/mrkcond``  주식호가: ten levels a side (``_depth``)
``kt10002``  ``/api/dostk/ordr``   정정: move (part of) an open remainder to a new price
``kt10003``  ``/api/dostk/ordr``   취소: take (part of) an open remainder off
==========  ====================  =========================================================

Formats follow the Kiwoom REST API guide (https://openapi.kiwoom.com, as mirrored by the
Kiwoom-Securities/Kiwoom-REST-API repository): kt00018 amounts and quantities are signed,
left zero-padded 15-character strings (``"000000017598258"``, ``"-00000000196888"``; the sign
takes the first place), ``cur_prc`` and ``pred_close_pric`` 12 characters, rates two
decimals with a bare ``-`` for negatives (``"-52.71"``); its ``stk_cd`` carries the ``A``
prefix. ``evltv_prft`` is the value minus the cost minus both commissions and the tax, as
the guide's example adds up; the commissions are the fee rate on cost and on value rounded
down to 10 won, the tax the sell tax on value. ``poss_rt`` is the row's share of the total
cost. ka10075 / ka10076 print plain numbers, six-digit codes, HHMMSS times and seven-digit
order numbers (``orig_ord_no`` ``"0000000"`` without one); kt10002 / kt10003 answer the
moved quantity as 12 zero-padded digits (``"000000000001"``).

Simulator choices (no public source settles them):

- order numbers match numerically, so ``"00024"`` and ``"0000024"`` name the same order;
- an order the ledger refuses answers ``return_code`` 20 (the category captured answers of
  the order desk carry) with one of this simulator's codes in the brackets: ``9101`` not
  enough orderable cash, ``9102`` not enough orderable shares, ``9103`` no such original
  order, ``9104`` the original has nothing open (filled, expired or cancelled), ``9105`` the
  quantity exceeds the open remainder, ``9106`` ``stk_cd`` is not the original's symbol;
- kt00018 lists symbols with shares (not today's sold-out ones) in code order; ``qry_tp``
  1 and 2 (합산 / 개별) and both exchanges show the same rows (no credit, one venue book);
- ka10075 lists newest first; ka10076 ``qry_tp`` 1 means "one symbol" (``stk_cd`` then
  required), as the guide describes it, and ``ord_no`` keeps rows whose order number is
  lower (older) than it;
- all three page by ``SimConfig.kiwoom_page_rows_orders`` rows with ``cont-yn`` /
  ``next-key`` (the key names the next row, so rows that appear or go between pages do
  not shift the others).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial

from starlette.requests import Request
from starlette.responses import Response

from ._book import COMMISSION_BP, SELL_TAX_BP, BookOrder, Holding, OrderRejected
from ._clock import KST
from ._depth import Depth, depth
from ._kiwoom_common import (
    BadInput,
    MissingInput,
    Page,
    QueryBuilder,
    account_number,
    answer_query,
    bad_input_error,
    book_account,
    decode_key,
    ok,
    page,
    parse_code,
    rejected,
    rejection,
    required,
)
from ._quotes import Snapshot, hhmmss, pct, signed, snapshot, vs_base
from ._recorder import CallContext
from ._state import OrderRecord, SimState
from ._tokens import KIWOOM

__all__ = ["ACCOUNT_PATH", "account_inquiry", "amend", "orderbook"]

ACCOUNT_PATH = "/api/dostk/acnt"
_NO_ORDER = "0000000"
_EXCHANGES = frozenset({"KRX", "NXT", "SOR"})
_VENUES: Mapping[str, tuple[str, str, str]] = {
    "KRX": ("1", "KRX", "N"),
    "NXT": ("2", "NXT", "N"),
    "SOR": ("0", "SOR", "Y"),
}
"""Order exchange -> (``stex_tp``, ``stex_tp_txt``, ``sor_yn``) of the order rows."""
_VENUE_FILTER: Mapping[str, frozenset[str]] = {
    "0": frozenset(_VENUES),
    "1": frozenset({"KRX"}),
    "2": frozenset({"NXT"}),
}
_SIDE_FILTER: Mapping[str, frozenset[str]] = {
    "0": frozenset({"buy", "sell"}),
    "1": frozenset({"sell"}),
    "2": frozenset({"buy"}),
}


# --- small formatters ----------------------------------------------------------------------


def _n15(value: int) -> str:
    return f"{value:015d}"


def _n12(value: int) -> str:
    return f"{value:012d}"


def _price(value: int, base: int) -> str:
    """A quote price signed against the base price; an empty level prints ``"0"``."""
    return vs_base(value, base) if value else "0"


def _cursor(order_no: str) -> str:
    return f"{int(order_no):010d}"


def _scope(*parts: str) -> str:
    """A short tag of a query's filters, so a ``next-key`` only continues its own query."""
    return hashlib.blake2b("|".join(parts).encode(), digest_size=3).hexdigest()


def _choice(
    body: Mapping[str, str], name: str, allowed: Mapping[str, object] | frozenset[str]
) -> str:
    value = body[name].strip()
    if value not in allowed:
        raise BadInput(name)
    return value


def _io_name(order: BookOrder) -> str:
    text = "+매수" if order.side == "buy" else "-매도"
    return text + "정정" if order.kind == "modify" else text


def _order_type(order: BookOrder) -> str:
    return "시장가" if order.market_order else "보통"


def _second(moment: datetime) -> int:
    local = moment.astimezone(KST)
    return local.hour * 3600 + local.minute * 60 + local.second


def _symbol_filter(body: Mapping[str, str], flag: str) -> str | None:
    """The one symbol a query asks for when ``flag`` is 1 (then ``stk_cd`` is required)."""
    if flag != "1":
        return None
    if not body.get("stk_cd", "").strip():
        raise MissingInput("stk_cd")
    return parse_code(body["stk_cd"])


# --- ka10004 -------------------------------------------------------------------------------


def _ordinal(level: int) -> str:
    # Kiwoom spells every level "th", level 1 included ("sel_1th_pre_req_pre").
    return f"{level}th"


def _bid_changes_at(seed: int, snap: Snapshot, now: datetime, book: Depth) -> tuple[int, ...]:
    """Per bid level, the change of its quantity against the previous second (as
    ``Depth.changes`` gives for the asks): the same levels one second earlier."""
    before = depth(seed, replace(snap, cutoff_s=snap.cutoff_s - 1), now)
    return tuple(
        qty - previous if qty else 0
        for (_, qty), (_, previous) in zip(book.bids, before.bids, strict=True)
    )


def orderbook(state: SimState, body: dict[str, str], now: datetime, key: str | None) -> Page:
    """ka10004 주식호가요청: the ten-level book of ``stk_cd`` at the simulated second."""
    code = parse_code(body["stk_cd"])
    snap = snapshot(state.market, code, now)
    book = depth(state.config.seed, snap, now)
    bid_changes = _bid_changes_at(state.config.seed, snap, now, book)
    base = snap.base
    payload: dict[str, str] = {"bid_req_base_tm": hhmmss(book.quote_second)}
    for level in range(10, 1, -1):
        price, qty = book.asks[level - 1]
        name = f"sel_{_ordinal(level)}_pre"
        payload[f"{name}_req_pre"] = signed(book.changes[level - 1])
        payload[f"{name}_req"] = str(qty)
        payload[f"{name}_bid"] = _price(price, base)
    payload["sel_1th_pre_req_pre"] = signed(book.changes[0])
    payload["sel_fpr_req"] = str(book.asks[0][1])
    payload["sel_fpr_bid"] = _price(book.asks[0][0], base)
    payload["buy_fpr_bid"] = _price(book.bids[0][0], base)
    payload["buy_fpr_req"] = str(book.bids[0][1])
    payload["buy_1th_pre_req_pre"] = signed(bid_changes[0])
    for level in range(2, 11):
        price, qty = book.bids[level - 1]
        name = f"buy_{_ordinal(level)}_pre"
        payload[f"{name}_bid"] = _price(price, base)
        payload[f"{name}_req"] = str(qty)
        payload[f"{name}_req_pre"] = signed(bid_changes[level - 1])
    payload.update(
        {
            "tot_sel_req_jub_pre": signed(sum(book.changes)),
            "tot_sel_req": str(book.total_ask),
            "tot_buy_req": str(book.total_bid),
            "tot_buy_req_jub_pre": signed(sum(bid_changes)),
            # The simulated market has no after-hours session.
            "ovt_sel_req_pre": "0",
            "ovt_sel_req": "0",
            "ovt_buy_req": "0",
            "ovt_buy_req_pre": "0",
        }
    )
    return payload, None


# --- kt00018 -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Position:
    """One kt00018 row's figures before formatting."""

    holding: Holding
    name: str
    price: int
    base: int
    cost: int
    value: int
    buy_fee: int
    sell_fee: int
    tax: int
    sellable: int

    @property
    def profit(self) -> int:
        """Value minus cost, commissions and tax (what selling now would bring in net)."""
        return self.value - self.cost - self.buy_fee - self.sell_fee - self.tax


def _fee(amount: int) -> int:
    """The commission on ``amount`` as kt00018 estimates it: rounded down to 10 won."""
    return int(amount * COMMISSION_BP / 10_000) // 10 * 10


def _position(state: SimState, account: str, holding: Holding, now: datetime) -> _Position:
    snap = snapshot(state.market, holding.symbol, now)
    value = snap.price * holding.quantity
    return _Position(
        holding=holding,
        name=snap.info.name,
        price=snap.price,
        base=snap.base,
        cost=holding.cost,
        value=value,
        buy_fee=_fee(holding.cost),
        sell_fee=_fee(value),
        tax=int(value * SELL_TAX_BP / 10_000),
        sellable=max(0, state.book.orderable_quantity(account, holding.symbol)),
    )


def _position_row(position: _Position, total_cost: int) -> dict[str, str]:
    holding = position.holding
    return {
        "stk_cd": "A" + holding.symbol,
        "stk_nm": position.name,
        "evltv_prft": _n15(position.profit),
        "prft_rt": pct(position.profit, position.cost),
        "pur_pric": _n15(position.cost // holding.quantity),
        "pred_close_pric": _n12(position.base),
        "rmnd_qty": _n15(holding.quantity),
        "trde_able_qty": _n15(position.sellable),
        "cur_prc": _n12(position.price),
        "pred_buyq": _n15(0),
        "pred_sellq": _n15(0),
        "tdy_buyq": _n15(holding.bought_today),
        "tdy_sellq": _n15(holding.sold_today),
        "pur_amt": _n15(position.cost),
        "pur_cmsn": _n15(position.buy_fee),
        "evlt_amt": _n15(position.value),
        "sell_cmsn": _n15(position.sell_fee),
        "tax": _n15(position.tax),
        "sum_cmsn": _n15(position.buy_fee + position.sell_fee),
        "poss_rt": pct(position.cost, total_cost),
        "crd_tp": "00",
        "crd_tp_nm": "",
        "crd_loan_dt": "",
    }


def _balance(
    state: SimState, appkey: str, body: dict[str, str], now: datetime, key: str | None
) -> Page:
    """kt00018 계좌평가잔고내역요청: the account's totals and its holdings, by code."""
    query = _choice(body, "qry_tp", frozenset({"1", "2"}))
    exchange = _choice(body, "dmst_stex_tp", frozenset({"KRX", "NXT"}))
    account = book_account(appkey)
    held = [h for h in state.book.holdings(account) if h.quantity > 0]
    positions = [_position(state, account, holding, now) for holding in held]
    cost = sum(p.cost for p in positions)
    value = sum(p.value for p in positions)
    profit = sum(p.profit for p in positions)
    scope = query + exchange
    after = decode_key("kt00018", scope, key)
    rows = ((p.holding.symbol, _position_row(p, cost)) for p in positions)
    size = state.config.kiwoom_page_rows_orders
    served, next_key = page("kt00018", scope, rows, size, after, descending=False)
    payload = {
        "tot_pur_amt": _n15(cost),
        "tot_evlt_amt": _n15(value),
        "tot_evlt_pl": _n15(profit),
        "tot_prft_rt": pct(profit, cost),
        "prsm_dpst_aset_amt": _n15(state.book.cash(account) + value),
        "tot_loan_amt": _n15(0),
        "tot_crd_loan_amt": _n15(0),
        "tot_crd_ls_amt": _n15(0),
        "acnt_evlt_remn_indv_tot": served,
    }
    return payload, next_key


def _summary(
    state: SimState, appkey: str, body: dict[str, str], now: datetime, key: str | None
) -> Page:
    """kt00004 계좌평가현황요청: deposit, estimated assets and a short row per holding.

    apihub's built-in catalog leaves this TR out on purpose: it is what its pass-through tests
    call."""
    _choice(body, "qry_tp", frozenset({"0", "1"}))
    _choice(body, "dmst_stex_tp", frozenset({"KRX", "NXT"}))
    del key  # one page
    account = book_account(appkey)
    held = [h for h in state.book.holdings(account) if h.quantity > 0]
    positions = [_position(state, account, holding, now) for holding in held]
    cash = state.book.cash(account)
    value = sum(p.value for p in positions)
    rows = [
        {
            "stk_cd": "A" + p.holding.symbol,
            "stk_nm": p.name,
            "rmnd_qty": _n15(p.holding.quantity),
            "avg_prc": _n15(p.cost // p.holding.quantity),
            "cur_prc": _n12(p.price),
            "evlt_amt": _n15(p.value),
            "pl_amt": _n15(p.value - p.cost),
            "pl_rt": pct(p.value - p.cost, p.cost),
        }
        for p in positions
    ]
    payload = {
        "entr": _n15(cash),
        "d2_entra": _n15(cash),
        "tot_est_amt": _n15(value),
        "prsm_dpst_aset_amt": _n15(cash + value),
        "stk_acnt_evlt_prst": rows,
    }
    return payload, None


# --- ka10075 / ka10076 ---------------------------------------------------------------------


@dataclass(frozen=True)
class _OrderFilter:
    """The rows an order query keeps."""

    sides: frozenset[str]
    venues: frozenset[str]
    symbol: str | None
    before: int | None = None
    """Keep order numbers below this one (ka10076 ``ord_no``)."""

    def keeps(self, order: BookOrder) -> bool:
        """Whether ``order`` belongs in the answer."""
        return (
            order.side in self.sides
            and order.exchange in self.venues
            and (self.symbol is None or order.symbol == self.symbol)
            and (self.before is None or int(order.order_no) < self.before)
        )


def _newest_first(orders: list[BookOrder], keep: _OrderFilter) -> list[BookOrder]:
    return sorted((o for o in orders if keep.keeps(o)), key=lambda o: -int(o.order_no))


def _venue_fields(order: BookOrder) -> dict[str, str]:
    stex_tp, text, sor = _VENUES.get(order.exchange, _VENUES["KRX"])
    return {"stex_tp": stex_tp, "stex_tp_txt": text, "sor_yn": sor}


class _Quotes:
    """Current price and best quotes per symbol, computed once per answer."""

    def __init__(self, state: SimState, now: datetime) -> None:
        self._state = state
        self._now = now
        self._cache: dict[str, tuple[Snapshot, Depth]] = {}

    def __call__(self, code: str) -> tuple[Snapshot, Depth]:
        if code not in self._cache:
            snap = snapshot(self._state.market, code, self._now)
            self._cache[code] = (snap, depth(self._state.config.seed, snap, self._now))
        return self._cache[code]


def _open_row(order: BookOrder, acnt_no: str, quotes: _Quotes) -> dict[str, str]:
    snap, book = quotes(order.symbol)
    return {
        "acnt_no": acnt_no,
        "ord_no": order.order_no,
        "mang_empno": "",
        "stk_cd": order.symbol,
        "tsk_tp": "",
        "ord_stt": "접수",
        "stk_nm": snap.info.name,
        "ord_qty": str(order.quantity),
        "ord_pric": str(order.price),
        "oso_qty": str(order.remaining),
        "cntr_tot_amt": str(order.fill_value),
        "orig_ord_no": order.original_no or _NO_ORDER,
        "io_tp_nm": _io_name(order),
        "trde_tp": _order_type(order),
        "tm": hhmmss(_second(order.placed_at)),
        "cntr_no": "",
        "cntr_pric": str(order.average_price),
        "cntr_qty": str(order.filled),
        "cur_prc": vs_base(snap.price, snap.base),
        "sel_bid": _price(book.asks[0][0], snap.base),
        "buy_bid": _price(book.bids[0][0], snap.base),
        "unit_cntr_pric": "",
        "unit_cntr_qty": "",
        "tdy_trde_cmsn": "0",
        "tdy_trde_tax": "0",
        "ind_invsr": "",
        **_venue_fields(order),
    }


def _open_orders(
    state: SimState, appkey: str, body: dict[str, str], now: datetime, key: str | None
) -> Page:
    """ka10075 미체결요청: the account's open orders, newest first."""
    flag = _choice(body, "all_stk_tp", frozenset({"0", "1"}))
    side = _choice(body, "trde_tp", _SIDE_FILTER)
    venue = _choice(body, "stex_tp", _VENUE_FILTER)
    keep = _OrderFilter(_SIDE_FILTER[side], _VENUE_FILTER[venue], _symbol_filter(body, flag))
    scope = _scope(flag, side, venue, keep.symbol or "")
    after = decode_key("ka10075", scope, key)
    orders = _newest_first(state.book.open_orders(book_account(appkey)), keep)
    quotes = _Quotes(state, now)
    acnt_no = account_number(appkey)
    rows = ((_cursor(o.order_no), _open_row(o, acnt_no, quotes)) for o in orders)
    size = state.config.kiwoom_page_rows_orders
    served, next_key = page("ka10075", scope, rows, size, after)
    return {"oso": served}, next_key


def _fill_row(order: BookOrder, name: str) -> dict[str, str]:
    tax = int(order.fill_value * SELL_TAX_BP / 10_000) if order.side == "sell" else 0
    return {
        "ord_no": order.order_no,
        "stk_nm": name,
        "io_tp_nm": _io_name(order),
        "ord_pric": str(order.price),
        "ord_qty": str(order.quantity),
        "cntr_pric": str(order.average_price),
        "cntr_qty": str(order.filled),
        "oso_qty": str(order.remaining),
        "tdy_trde_cmsn": str(int(order.fill_value * COMMISSION_BP / 10_000)),
        "tdy_trde_tax": str(tax),
        "ord_stt": "체결",
        "trde_tp": _order_type(order),
        "orig_ord_no": order.original_no or _NO_ORDER,
        "ord_tm": hhmmss(_second(order.placed_at)),
        "stk_cd": order.symbol,
        **_venue_fields(order),
    }


def _fills(
    state: SimState, appkey: str, body: dict[str, str], now: datetime, key: str | None
) -> Page:
    """ka10076 체결요청: today's filled orders, newest first."""
    flag = _choice(body, "qry_tp", frozenset({"0", "1"}))
    side = _choice(body, "sell_tp", _SIDE_FILTER)
    venue = _choice(body, "stex_tp", _VENUE_FILTER)
    raw_before = body.get("ord_no", "").strip()
    if raw_before and not raw_before.isdigit():
        raise BadInput("ord_no")
    keep = _OrderFilter(
        _SIDE_FILTER[side],
        _VENUE_FILTER[venue],
        _symbol_filter(body, flag),
        int(raw_before) if raw_before else None,
    )
    scope = _scope(flag, side, venue, keep.symbol or "", raw_before)
    after = decode_key("ka10076", scope, key)
    today = now.astimezone(KST).date()
    filled = [
        o for o in state.book.orders(book_account(appkey)) if o.filled and o.working_day == today
    ]
    names: dict[str, str] = {}
    market = state.market

    def rows() -> Iterator[tuple[str, dict[str, str]]]:
        for order in _newest_first(filled, keep):
            name = names.setdefault(order.symbol, market.symbol(order.symbol).name)
            yield _cursor(order.order_no), _fill_row(order, name)

    size = state.config.kiwoom_page_rows_orders
    served, next_key = page("ka10076", scope, rows(), size, after)
    return {"cntr": served}, next_key


# --- the /api/dostk/acnt route -------------------------------------------------------------

_AccountBuilder = Callable[[SimState, str, dict[str, str], datetime, str | None], Page]


@dataclass(frozen=True)
class _AccountTR:
    required: tuple[str, ...]
    build: _AccountBuilder


_ACCOUNT_TRS: Mapping[str, _AccountTR] = {
    "kt00018": _AccountTR(("qry_tp", "dmst_stex_tp"), _balance),
    "kt00004": _AccountTR(("qry_tp", "dmst_stex_tp"), _summary),
    "ka10075": _AccountTR(("all_stk_tp", "trde_tp", "stex_tp"), _open_orders),
    "ka10076": _AccountTR(("qry_tp", "sell_tp", "stex_tp"), _fills),
}


async def account_inquiry(state: SimState, request: Request, ctx: CallContext) -> Response:
    """``POST /api/dostk/acnt``: kt00018, kt00004, ka10075 and ka10076 for the token's account."""

    def lookup(api_id: str) -> tuple[tuple[str, ...], QueryBuilder]:
        tr = _ACCOUNT_TRS[api_id]
        return tr.required, partial(tr.build, state, ctx.appkey)

    return await answer_query(state, request, ctx, ACCOUNT_PATH, lookup)


# --- kt10002 / kt10003 ---------------------------------------------------------------------


def _original(orders: list[BookOrder], order_no: str) -> BookOrder | None:
    wanted = int(order_no)
    return next((o for o in orders if o.kind != "cancel" and int(o.order_no) == wanted), None)


def _amend_fields(ctx: CallContext, body: Mapping[str, object]) -> dict[str, str] | Response:
    """The validated fields of a kt10002 / kt10003 body, or the error answer."""
    modify = ctx.tr_id == "kt10002"
    quantity = "mdfy_qty" if modify else "cncl_qty"
    names = ("dmst_stex_tp", "orig_ord_no", "stk_cd", quantity)
    problem = required(ctx, body, (*names, "mdfy_uv") if modify else names)
    if problem is not None:
        return problem
    fields = {k: v.strip() for k, v in body.items() if isinstance(v, str)}
    try:
        fields["stk_cd"] = parse_code(fields["stk_cd"])
    except BadInput as error:
        return bad_input_error(ctx, error)
    checks = [
        ("dmst_stex_tp", fields["dmst_stex_tp"] in _EXCHANGES),
        ("orig_ord_no", fields["orig_ord_no"].isdigit()),
        (quantity, fields[quantity].isdigit()),
    ]
    if modify:
        checks.append(("mdfy_uv", fields["mdfy_uv"].isdigit() and int(fields["mdfy_uv"]) > 0))
    for name, good in checks:
        if not good:
            return bad_input_error(ctx, BadInput(name))
    return fields


def amend(state: SimState, ctx: CallContext, body: Mapping[str, object]) -> Response:
    """kt10002 정정 / kt10003 취소 of an open order of the token's account (blocking: run it
    in a worker thread)."""
    fields = _amend_fields(ctx, body)
    if isinstance(fields, Response):
        return fields
    modify = ctx.tr_id == "kt10002"
    account = book_account(ctx.appkey)
    original_no = fields["orig_ord_no"]
    original = _original(state.book.orders(account), original_no)
    if original is not None and original.symbol != fields["stk_cd"]:
        return rejected(ctx, "symbol", "원주문의 종목코드와 일치하지 않습니다")
    quantity = int(fields["mdfy_qty" if modify else "cncl_qty"]) or None
    order_no = f"{state.next_serial():07d}"
    try:
        if modify:
            order = state.book.modify(
                account,
                order_no,
                original_no,
                tr_id=ctx.tr_id,
                quantity=quantity,
                price=int(fields["mdfy_uv"]),
            )
        else:
            order = state.book.cancel(
                account, order_no, original_no, tr_id=ctx.tr_id, quantity=quantity
            )
    except OrderRejected as error:
        return rejection(ctx, error)
    state.add_order(
        OrderRecord(
            provider=KIWOOM,
            tr_id=ctx.tr_id,
            side=order.side,
            symbol=order.symbol,
            quantity=str(order.quantity),
            price=fields.get("mdfy_uv", ""),
            order_no=order_no,
            time=order.placed_at.isoformat(),
        )
    )
    payload = {"ord_no": order_no, "base_orig_ord_no": order.root_no}
    if modify:
        payload |= {"mdfy_qty": _n12(order.quantity), "dmst_stex_tp": fields["dmst_stex_tp"]}
    else:
        payload["cncl_qty"] = _n12(order.quantity)
    return ok(ctx.tr_id, payload)
