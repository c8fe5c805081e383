"""KIS account TRs: balance, daily orders and fills, orderable amount, cancellable orders,
modify/cancel, and the holiday check, all answered from the account ledger (``state.book``)
and the market calendar, so what one TR says agrees with every other.

=====================================  ================================  ==================
path                                   tr_id (real / virtual)            paged
=====================================  ================================  ==================
``GET  trading/inquire-balance``       ``TTTC8434R`` / ``VTTC8434R``     ``…100`` cursors
``GET  trading/inquire-daily-ccld``    ``TTTC0081R`` / ``VTTC0081R``,    ``…100`` cursors
                                       ``CTSC9215R`` / ``VTSC9215R``
                                       (legacy ``TTTC8001R``,
                                       ``CTSC9115R`` and their ``V…``)
``GET  trading/inquire-psbl-order``    ``TTTC8908R`` / ``VTTC8908R``     no
``GET  trading/inquire-psbl-rvsecncl``  ``TTTC0084R`` (real only)        ``…100`` cursors
``POST trading/order-rvsecncl``        ``TTTC0013U`` / ``VTTC0013U``     no
                                       (legacy ``TTTC0803U`` / ``V…``)
``GET  quotations/chk-holiday``        ``CTCA0903R`` (real only)         ``CTX_AREA_FK/NK``
=====================================  ================================  ==================

A real-only id sent as its ``V…`` twin gets ``EGW00101``, like any id that is not the path's.

Continuation (the KIS portal's ``tr_cont`` style): the first call sends the cursors blank
(or leaves them out); every page answers them at the top level of the body in lower case
(``ctx_area_fk100``/``ctx_area_nk100``, ``ctx_area_fk``/``ctx_area_nk`` on the holiday check)
and the header ``tr_cont`` ``M`` while more pages follow, ``D`` on the last one (KIS also uses
``F``/``E``; the simulator always answers ``M``/``D``)*. The next page is asked with the request
header ``tr_cont: N`` and both cursors echoed back; without that header a call is a first page
whatever the cursors say. ``ctx_area_fk…`` is a digest of the query (tr_id and every parameter
but the cursors), ``ctx_area_nk…`` the base64url of ``<digest>:<row offset>`` ("" on the last
page)*; a continuation whose cursors do not decode to this query is an input error naming the
cursor. Rows are counted off the ledger as it stands at each call (an order placed between two
pages of a newest-first listing shifts the rows by one).

Page sizes: ``SimConfig.kis_page_rows_balance`` / ``kis_page_rows_orders`` /
``kis_page_rows_cancellable`` on real ids; virtual ids take the smaller of those and
:data:`VIRTUAL_BALANCE_ROWS` / :data:`VIRTUAL_ORDER_ROWS`. The holiday check answers
:data:`HOLIDAY_PAGE_DAYS` days a page over :data:`HOLIDAY_HORIZON_DAYS` days from ``BASS_DT``.

Other choices (marked * where unconfirmed):

- the balance's cash: trades settle two days later, so today's fills leave ``dnca_tot_amt``
  (D+0) and ``nxdy_excc_amt`` (D+1) alone and move ``prvs_rcdl_excc_amt`` (D+2, the ledger's
  cash); fills of earlier days count as settled*. ``tot_evlu_amt`` = securities at the last
  price + D+2 cash; ``asst_icdc_amt`` is against yesterday's positions at yesterday's close*;
- ``TTTC0081R`` covers the last three calendar months (on 2024-04-25: 2024-01-01 onwards),
  ``CTSC9215R`` the days before; a start outside the TR's period is an input error naming
  ``INQR_STRT_DT``, an end outside it (or before the start) one naming ``INQR_END_DT``*;
  ``output2.tot_ord_qty`` sums the new and modify rows (not the cancels)*;
- the orderable amount ignores commission, as the ledger's own check does (``max_buy_qty`` =
  orderable cash // price); ``ORD_DVSN "01"`` prices at the upper limit, ``ORD_UNPR "0"`` at
  the last price;
- a modify/cancel needs every body field of the KIS portal's list but ``CNDT_PRIC`` and
  ``EXCG_ID_DVSN_CD`` (blank or absent: KRX; ``KRX``/``NXT``/``SOR`` otherwise); book
  refusals answer the codes listed in ``_kis_common``*.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, Generic, TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._book import COMMISSION_BP, SELL_TAX_BP, BookOrder, Holding, OrderRejected
from ._clock import KST
from ._gateway import broker_route, read_json_object
from ._http import json_response
from ._kis_common import (
    CODE,
    OK,
    ORDER_OK,
    InputError,
    account_key,
    authorize,
    choice,
    gt_uid,
    input_error,
    parse_day,
    rejected,
    require,
)
from ._quotes import Snapshot, pct, snapshot, ymd
from ._recorder import CallContext
from ._state import SimState
from ._tokens import KIS

__all__ = [
    "HOLIDAY_HORIZON_DAYS",
    "HOLIDAY_PAGE_DAYS",
    "LAST",
    "MORE",
    "VIRTUAL_BALANCE_ROWS",
    "VIRTUAL_ORDER_ROWS",
    "routes",
]

TRADING_PATH = "/uapi/domestic-stock/v1/trading"
HOLIDAY_PATH = "/uapi/domestic-stock/v1/quotations/chk-holiday"

VIRTUAL_BALANCE_ROWS = 20
"""Most rows of a VTTC8434R page (the KIS portal: 50 real, 20 virtual)."""
VIRTUAL_ORDER_ROWS = 15
"""Most rows of a VTTC0081R page (the KIS portal: 100 real, 15 virtual)."""
HOLIDAY_PAGE_DAYS = 30
"""Days per CTCA0903R page (unconfirmed)."""
HOLIDAY_HORIZON_DAYS = 90
"""Days from ``BASS_DT`` a CTCA0903R walk covers before its last page (unconfirmed)."""
MORE = "M"
"""Response ``tr_cont`` while more pages follow."""
LAST = "D"
"""Response ``tr_cont`` on the last page."""

_ACCOUNT = ("CANO", "ACNT_PRDT_CD")
_CURSORS_100 = ("CTX_AREA_FK100", "CTX_AREA_NK100")
_CURSORS = ("CTX_AREA_FK", "CTX_AREA_NK")
_TWO_DIGITS = re.compile(r"\d{2}")

_T = TypeVar("_T")


def _with_virtual(*tr_ids: str) -> frozenset[str]:
    return frozenset({*tr_ids, *("V" + tr[1:] for tr in tr_ids)})


# --- calls, answers and pages ------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """One inquiry: its tr_id, upper-case query, the simulated now and whether it continues."""

    tr_id: str
    params: Mapping[str, str]
    now: datetime
    continued: bool

    @property
    def virtual(self) -> bool:
        return self.tr_id.startswith("V")

    @property
    def account(self) -> str:
        return account_key(self.params)

    @property
    def today(self) -> date:
        return self.now.astimezone(KST).date()

    def optional(self, name: str) -> str:
        return self.params.get(name, "").strip()


@dataclass(frozen=True)
class _Answer:
    payload: dict[str, Any]
    tr_cont: str = ""


@dataclass(frozen=True)
class _Page(Generic[_T]):
    rows: list[_T]
    cursors: dict[str, str]
    """The body's lower-case cursor fields."""
    tr_cont: str


@dataclass(frozen=True)
class _AccountTR:
    path: str
    tr_ids: frozenset[str]
    required: tuple[str, ...]
    build: Callable[[SimState, _Call], _Answer]
    blank_ok: tuple[str, ...] = ()


def _digest(call: _Call, names: tuple[str, str]) -> str:
    query = "&".join(f"{k}={v}" for k, v in sorted(call.params.items()) if k not in names)
    material = f"{call.tr_id}|{query}".encode()
    return hashlib.blake2b(material, digest_size=8).hexdigest()


def _encode_cursor(digest: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{digest}:{offset}".encode()).decode().rstrip("=")


def _start(call: _Call, digest: str, names: tuple[str, str]) -> int:
    """The row offset a call starts at (0 unless it continues with this query's cursors)."""
    if not call.continued:
        return 0
    fk_name, nk_name = names
    fk, nk = call.optional(fk_name), call.optional(nk_name)
    if fk != digest:
        raise InputError(fk_name, missing=not fk)
    if not nk:
        raise InputError(nk_name, missing=True)
    try:
        text = base64.urlsafe_b64decode(nk + "=" * (-len(nk) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InputError(nk_name) from None
    owner, _, offset = text.partition(":")
    if owner != digest or not offset.isdigit():
        raise InputError(nk_name)
    return int(offset)


def _page(call: _Call, rows: Sequence[_T], size: int, names: tuple[str, str]) -> _Page[_T]:
    digest = _digest(call, names)
    start = _start(call, digest, names)
    end = start + size
    more = end < len(rows)
    cursors = {
        names[0].lower(): digest,
        names[1].lower(): _encode_cursor(digest, end) if more else "",
    }
    return _Page(list(rows[start:end]), cursors, MORE if more else LAST)


def _page_rows(configured: int, virtual_cap: int, call: _Call) -> int:
    return min(configured, virtual_cap) if call.virtual else configured


def _account_route(state: SimState, tr: _AccountTR) -> Route:
    async def handler(request: Request, ctx: CallContext) -> Response:
        denied = authorize(state, request, ctx, tr.tr_ids)
        if denied is not None:
            return denied
        params = {key.upper(): value for key, value in request.query_params.items()}
        continued = request.headers.get("tr_cont", "").strip().upper() == "N"
        call = _Call(ctx.tr_id, params, state.clock.now(), continued)
        try:
            require(params, tr.required, tr.blank_ok)
            answer = await anyio.to_thread.run_sync(tr.build, state, call)
        except InputError as error:
            return input_error(ctx, error)
        headers = {"tr_id": ctx.tr_id, "tr_cont": answer.tr_cont, "gt_uid": gt_uid(state)}
        return json_response({**answer.payload, **OK}, headers=headers)

    return broker_route(state, KIS, tr.path, handler, ["GET"])


# --- shared row pieces ---------------------------------------------------------------------


def _name(state: SimState, code: str) -> str:
    return state.market.symbol(code).name


def _order_kind_code(order: BookOrder) -> str:
    return "01" if order.market_order else "00"


def _order_kind_name(order: BookOrder) -> str:
    return "시장가" if order.market_order else "지정가"


def _side_code(order: BookOrder) -> str:
    return "01" if order.side == "sell" else "02"


def _side_name(order: BookOrder) -> str:
    side = "매도" if order.side == "sell" else "매수"
    if order.kind == "modify":
        return f"{side}정정"
    if order.kind == "cancel":
        return f"{side}취소"
    return f"현금{side}"


def _order_time(order: BookOrder) -> str:
    return order.placed_at.astimezone(KST).strftime("%H%M%S")


def _costs(order: BookOrder) -> int:
    """Commission and (sells) tax on the order's fills, as the ledger charges them."""
    fee = int(order.fill_value * COMMISSION_BP / 10_000)
    tax = int(order.fill_value * SELL_TAX_BP / 10_000) if order.side == "sell" else 0
    return fee + tax


def _average(value: int, quantity: int) -> str:
    return f"{value / quantity:.4f}" if quantity else "0.0000"


# --- TTTC8434R: balance ------------------------------------------------------------------


@dataclass(frozen=True)
class _Position:
    holding: Holding
    snap: Snapshot
    orderable: int
    yesterday_close: int

    @property
    def value(self) -> int:
        return self.holding.quantity * self.snap.price

    @property
    def opening_value(self) -> int:
        """The position as it stood before today's fills, at yesterday's close."""
        holding = self.holding
        opening = holding.quantity - holding.bought_today + holding.sold_today
        return opening * self.yesterday_close


def _positions(state: SimState, call: _Call) -> list[_Position]:
    book, market = state.book, state.market
    yesterday = market.prev_trading_day(call.today)
    return [
        _Position(
            holding=holding,
            snap=snapshot(market, holding.symbol, call.now),
            orderable=book.orderable_quantity(call.account, holding.symbol),
            yesterday_close=market.close(holding.symbol, yesterday),
        )
        for holding in book.holdings(call.account)
    ]


def _position_row(state: SimState, position: _Position) -> dict[str, str]:
    holding, snap = position.holding, position.snap
    value, cost = position.value, holding.cost
    return {
        "pdno": holding.symbol,
        "prdt_name": _name(state, holding.symbol),
        "trad_dvsn_name": "현금",
        "bfdy_buy_qty": "0",
        "bfdy_sll_qty": "0",
        "thdt_buyqty": str(holding.bought_today),
        "thdt_sll_qty": str(holding.sold_today),
        "hldg_qty": str(holding.quantity),
        "ord_psbl_qty": str(max(0, position.orderable)),
        "pchs_avg_pric": f"{holding.average_price:.4f}",
        "pchs_amt": str(cost),
        "prpr": str(snap.price),
        "evlu_amt": str(value),
        "evlu_pfls_amt": str(value - cost),
        "evlu_pfls_rt": pct(value - cost, cost),
        "evlu_erng_rt": pct(value - cost, cost),
        "loan_dt": "",
        "loan_amt": "0",
        "stln_slng_chgs": "0",
        "expd_dt": "",
        "fltt_rt": snap.rate,
        "bfdy_cprs_icdc": str(snap.change),
        "item_mgna_rt_name": "",
        "grta_rt_name": "",
        "sbst_pric": "0",
        "stck_loan_unpr": "0",
    }


def _balance_summary(state: SimState, call: _Call, positions: list[_Position]) -> dict[str, str]:
    book = state.book
    cash = book.cash(call.account)
    buy, sell, fees, tax = book.today_flows(call.account)
    unsettled = cash - (sell - buy - fees - tax)  # today's fills settle on D+2
    securities = sum(p.value for p in positions)
    cost = sum(p.holding.cost for p in positions)
    total = securities + cash
    opening = unsettled + sum(p.opening_value for p in positions)
    return {
        "dnca_tot_amt": str(unsettled),
        "nxdy_excc_amt": str(unsettled),
        "prvs_rcdl_excc_amt": str(cash),
        "cma_evlu_amt": "0",
        "bfdy_buy_amt": "0",
        "thdt_buy_amt": str(buy),
        "nxdy_auto_rdpt_amt": "0",
        "bfdy_sll_amt": "0",
        "thdt_sll_amt": str(sell),
        "d2_auto_rdpt_amt": "0",
        "bfdy_tlex_amt": "0",
        "thdt_tlex_amt": str(fees + tax),
        "tot_loan_amt": "0",
        "scts_evlu_amt": str(securities),
        "tot_evlu_amt": str(total),
        "nass_amt": str(total),
        "fncg_gld_auto_rdpt_yn": "",
        "pchs_amt_smtl_amt": str(cost),
        "evlu_amt_smtl_amt": str(securities),
        "evlu_pfls_smtl_amt": str(securities - cost),
        "tot_stln_slng_chgs": "0",
        "bfdy_tot_asst_evlu_amt": str(opening),
        "asst_icdc_amt": str(total - opening),
        "asst_icdc_erng_rt": pct(total - opening, opening),
    }


def _balance(state: SimState, call: _Call) -> _Answer:
    params = call.params
    choice(params, "AFHR_FLPR_YN", "N Y X")
    if params["OFL_YN"].strip().upper() not in ("", "N", "Y"):
        raise InputError("OFL_YN")
    choice(params, "INQR_DVSN", "01 02")
    choice(params, "UNPR_DVSN", "01")
    choice(params, "FUND_STTL_ICLD_YN", "N Y")
    choice(params, "FNCG_AMT_AUTO_RDPT_YN", "N Y")
    choice(params, "PRCS_DVSN", "00 01")
    positions = _positions(state, call)
    size = _page_rows(state.config.kis_page_rows_balance, VIRTUAL_BALANCE_ROWS, call)
    page = _page(call, positions, size, _CURSORS_100)
    payload = {
        **page.cursors,
        "output1": [_position_row(state, position) for position in page.rows],
        "output2": [_balance_summary(state, call, positions)],
    }
    return _Answer(payload, page.tr_cont)


# --- TTTC0081R / CTSC9215R: daily orders and fills ------------------------------------------

_RECENT_CCLD = _with_virtual("TTTC0081R", "TTTC8001R")
_OLDER_CCLD = frozenset({"CTSC9215R", "VTSC9215R", "CTSC9115R", "VTSC9115R"})
_SIDES: Mapping[str, str | None] = {"00": None, "01": "sell", "02": "buy"}


def _recent_period_start(today: date) -> date:
    """The first day TTTC0081R covers: the 1st of the month three months back."""
    months = today.year * 12 + today.month - 1 - 3
    return date(months // 12, months % 12 + 1, 1)


def _ccld_period(call: _Call) -> tuple[date, date]:
    first = parse_day(call.params, "INQR_STRT_DT")
    last = parse_day(call.params, "INQR_END_DT")
    bound = _recent_period_start(call.today)
    if call.tr_id in _RECENT_CCLD:
        if first < bound:
            raise InputError("INQR_STRT_DT")
    elif first >= bound:
        raise InputError("INQR_STRT_DT")
    elif last >= bound:
        raise InputError("INQR_END_DT")
    if last < first:
        raise InputError("INQR_END_DT")
    return first, last


def _ccld_filter(call: _Call) -> Callable[[BookOrder], bool]:
    """The optional and coded filters of an inquiry, as one predicate (validating them)."""
    params = call.params
    side = _SIDES[choice(params, "SLL_BUY_DVSN_CD", "00 01 02")]
    filled = choice(params, "CCLD_DVSN", "00 01 02")
    cash_orders = choice(params, "INQR_DVSN_3", "00 01 02 03 04 05 06 07") in ("00", "01")
    product = call.optional("INQR_DVSN_1")
    if product not in ("", "1", "2"):
        raise InputError("INQR_DVSN_1")
    code = call.optional("PDNO")
    if code and CODE.fullmatch(code) is None:
        raise InputError("PDNO")
    order_no = call.optional("ODNO")
    if order_no and not order_no.isdigit():
        raise InputError("ODNO")
    exchange = call.optional("EXCG_ID_DVSN_CD").upper()
    if exchange not in ("", "ALL", "KRX", "NXT", "SOR"):
        raise InputError("EXCG_ID_DVSN_CD")
    branch = call.optional("ORD_GNO_BRNO")
    stock_orders = cash_orders and not product  # no ELW or Freeboard orders in the ledger

    def matches(order: BookOrder) -> bool:
        return (
            stock_orders
            and (side is None or order.side == side)
            and (filled != "01" or order.filled > 0)
            and (filled != "02" or order.remaining > 0)
            and (not code or order.symbol == code[-6:])
            and (not order_no or int(order.order_no) == int(order_no))
            and (exchange in ("", "ALL") or order.exchange == exchange)
            and (not branch or order.branch == branch)
        )

    return matches


def _ccld_row(state: SimState, order: BookOrder) -> dict[str, str]:
    cancel = order.kind == "cancel"
    return {
        "ord_dt": ymd(order.placed_at.astimezone(KST).date()),
        "ord_gno_brno": order.branch,
        "odno": order.order_no,
        "orgn_odno": order.original_no,
        "ord_dvsn_name": _order_kind_name(order),
        "sll_buy_dvsn_cd": _side_code(order),
        "sll_buy_dvsn_cd_name": _side_name(order),
        "pdno": order.symbol,
        "prdt_name": _name(state, order.symbol),
        "ord_qty": str(order.quantity),
        "ord_unpr": str(order.price),
        "ord_tmd": _order_time(order),
        "tot_ccld_qty": str(order.filled),
        "avg_prvs": str(order.average_price),
        "cncl_yn": "Y" if cancel else "N",
        "tot_ccld_amt": str(order.fill_value),
        "loan_dt": "",
        "ordr_empno": "",
        "ord_dvsn_cd": _order_kind_code(order),
        "cnc_cfrm_qty": str(order.quantity if cancel else 0),
        "rmn_qty": str(order.remaining),
        "rjct_qty": "0",
        "ccld_cndt_name": "없음",
        "inqr_ip_addr": "",
        "cpbc_ordp_ord_rcit_dvsn_cd": "",
        "cpbc_ordp_infm_mthd_dvsn_cd": "",
        "infm_tmd": "",
        "ctac_tlno": "",
        "prdt_type_cd": "300",
        "excg_dvsn_cd": "02",
        "cpbc_ordp_mtrl_dvsn_cd": "",
        "ord_orgno": "",
        "rsvn_ord_end_dt": "",
        "excg_id_dvsn_Cd": order.exchange,
        "stpm_cndt_pric": "0",
        "stpm_efct_occr_dtmd": "",
    }


def _ccld_totals(orders: list[BookOrder]) -> dict[str, str]:
    quantity = sum(o.filled for o in orders)
    value = sum(o.fill_value for o in orders)
    return {
        "tot_ord_qty": str(sum(o.quantity for o in orders if o.kind != "cancel")),
        "tot_ccld_qty": str(quantity),
        "tot_ccld_amt": str(value),
        "prsm_tlex_smtl": str(sum(_costs(o) for o in orders)),
        "pchs_avg_pric": _average(value, quantity),
    }


def _daily_ccld(state: SimState, call: _Call) -> _Answer:
    first, last = _ccld_period(call)
    matches = _ccld_filter(call)
    newest_first = choice(call.params, "INQR_DVSN", "00 01") == "00"
    orders = [
        order
        for order in state.book.orders(call.account)
        if first <= order.placed_at.astimezone(KST).date() <= last and matches(order)
    ]
    if newest_first:
        orders.reverse()
    size = _page_rows(state.config.kis_page_rows_orders, VIRTUAL_ORDER_ROWS, call)
    page = _page(call, orders, size, _CURSORS_100)
    payload = {
        **page.cursors,
        "output1": [_ccld_row(state, order) for order in page.rows],
        "output2": _ccld_totals(orders),
    }
    return _Answer(payload, page.tr_cont)


# --- TTTC8908R: orderable amount -----------------------------------------------------------


def _orderable(state: SimState, call: _Call) -> _Answer:
    params = call.params
    match = CODE.fullmatch(params["PDNO"].strip())
    if match is None:
        raise InputError("PDNO")
    code = match.group(1)
    if not params["ORD_UNPR"].isdigit():
        raise InputError("ORD_UNPR")
    if _TWO_DIGITS.fullmatch(params["ORD_DVSN"]) is None:
        raise InputError("ORD_DVSN")
    choice(params, "CMA_EVLU_AMT_ICLD_YN", "N Y")
    choice(params, "OVRS_ICLD_YN", "N Y")
    book = state.book
    if params["ORD_DVSN"] == "01":
        price = book.order_price_cap(code, 0, market_order=True)
    else:
        price = int(params["ORD_UNPR"]) or snapshot(state.market, code, call.now).price
    cash = max(0, book.orderable_cash(call.account))
    quantity = cash // price
    output = {
        "ord_psbl_cash": str(cash),
        "ord_psbl_sbst": "0",
        "ruse_psbl_amt": "0",
        "fund_rpch_chgs": "0",
        "psbl_qty_calc_unpr": str(price),
        "nrcvb_buy_amt": str(cash),
        "nrcvb_buy_qty": str(quantity),
        "max_buy_amt": str(cash),
        "max_buy_qty": str(quantity),
        "cma_evlu_amt": "0",
        "ovrs_re_use_amt_wcrc": "0",
        "ord_psbl_frcr_amt_wcrc": "0",
    }
    return _Answer({"output": output})


# --- TTTC0084R: orders that can be modified or cancelled ------------------------------------


def _cancellable_row(state: SimState, order: BookOrder) -> dict[str, str]:
    return {
        "ord_gno_brno": order.branch,
        "odno": order.order_no,
        "orgn_odno": order.original_no,
        "ord_dvsn_name": _order_kind_name(order),
        "pdno": order.symbol,
        "prdt_name": _name(state, order.symbol),
        "rvse_cncl_dvsn_name": "정정" if order.kind == "modify" else "",
        "ord_qty": str(order.quantity),
        "ord_unpr": str(order.price),
        "ord_tmd": _order_time(order),
        "tot_ccld_qty": str(order.filled),
        "tot_ccld_amt": str(order.fill_value),
        "psbl_qty": str(order.remaining),
        "sll_buy_dvsn_cd": _side_code(order),
        "ord_dvsn_cd": _order_kind_code(order),
        "mgco_aptm_odno": "",
        "excg_dvsn_cd": "02",
        "excg_id_dvsn_cd": order.exchange,
        "excg_id_dvsn_name": order.exchange,
        "stpm_cndt_pric": "0",
        "stpm_efct_occr_yn": "N",
    }


def _order_number(order: BookOrder) -> int:
    return int(order.order_no)


def _cancellable(state: SimState, call: _Call) -> _Answer:
    choice(call.params, "INQR_DVSN_1", "0 1 2")
    side = {"0": None, "1": "sell", "2": "buy"}[choice(call.params, "INQR_DVSN_2", "0 1 2")]
    orders = [o for o in state.book.open_orders(call.account) if side in (None, o.side)]
    orders.sort(key=_order_number)
    page = _page(call, orders, state.config.kis_page_rows_cancellable, _CURSORS_100)
    rows = [_cancellable_row(state, order) for order in page.rows]
    return _Answer({**page.cursors, "output": rows}, page.tr_cont)


# --- CTCA0903R: the holiday check ----------------------------------------------------------


def _calendar_row(state: SimState, day: date) -> dict[str, str]:
    open_day = "Y" if state.market.is_trading_day(day) else "N"
    return {
        "bass_dt": ymd(day),
        "wday_dvsn_cd": f"{(day.weekday() + 1) % 7 + 1:02d}",  # 01 Sunday .. 07 Saturday
        "bzdy_yn": open_day,
        "tr_day_yn": open_day,
        "opnd_yn": open_day,
        "sttl_day_yn": open_day,
    }


def _holidays(state: SimState, call: _Call) -> _Answer:
    start = parse_day(call.params, "BASS_DT")
    days = [start + timedelta(days=i) for i in range(HOLIDAY_HORIZON_DAYS)]
    page = _page(call, days, HOLIDAY_PAGE_DAYS, _CURSORS)
    rows = [_calendar_row(state, day) for day in page.rows]
    return _Answer({**page.cursors, "output": rows}, page.tr_cont)


ACCOUNT_TRS = (
    _AccountTR(
        f"{TRADING_PATH}/inquire-balance",
        _with_virtual("TTTC8434R"),
        (
            *_ACCOUNT,
            "AFHR_FLPR_YN",
            "OFL_YN",
            "INQR_DVSN",
            "UNPR_DVSN",
            "FUND_STTL_ICLD_YN",
            "FNCG_AMT_AUTO_RDPT_YN",
            "PRCS_DVSN",
        ),
        _balance,
        blank_ok=("OFL_YN",),
    ),
    _AccountTR(
        f"{TRADING_PATH}/inquire-daily-ccld",
        _RECENT_CCLD | _OLDER_CCLD,
        (
            *_ACCOUNT,
            "INQR_STRT_DT",
            "INQR_END_DT",
            "SLL_BUY_DVSN_CD",
            "CCLD_DVSN",
            "INQR_DVSN",
            "INQR_DVSN_3",
        ),
        _daily_ccld,
    ),
    _AccountTR(
        f"{TRADING_PATH}/inquire-psbl-order",
        _with_virtual("TTTC8908R"),
        (*_ACCOUNT, "PDNO", "ORD_UNPR", "ORD_DVSN", "CMA_EVLU_AMT_ICLD_YN", "OVRS_ICLD_YN"),
        _orderable,
    ),
    _AccountTR(
        f"{TRADING_PATH}/inquire-psbl-rvsecncl",
        frozenset({"TTTC0084R"}),
        (*_ACCOUNT, "INQR_DVSN_1", "INQR_DVSN_2"),
        _cancellable,
    ),
    _AccountTR(HOLIDAY_PATH, frozenset({"CTCA0903R"}), ("BASS_DT",), _holidays),
)


# --- TTTC0013U: modify or cancel -----------------------------------------------------------

REVISE_TR_IDS = _with_virtual("TTTC0013U", "TTTC0803U")
_REVISE_FIELDS = (
    *_ACCOUNT,
    "KRX_FWDG_ORD_ORGNO",
    "ORGN_ODNO",
    "ORD_DVSN",
    "RVSE_CNCL_DVSN_CD",
    "ORD_QTY",
    "ORD_UNPR",
    "QTY_ALL_ORD_YN",
)


@dataclass(frozen=True)
class _Revision:
    account: str
    original_no: str
    cancel: bool
    quantity: int | None
    """``None``: the whole remainder."""
    price: int
    market_order: bool
    branch: str


def _revision_fields(body: Mapping[str, object] | None) -> dict[str, str]:
    if body is None:
        raise InputError("BODY")
    for name in _REVISE_FIELDS:
        # Upper-case keys only, as on the cash order.
        value = body.get(name)
        if not isinstance(value, str) or (not value and name != "ORD_UNPR"):
            raise InputError(name, missing=True)
    condition = body.get("CNDT_PRIC", "")
    if not isinstance(condition, str) or (condition and not condition.isdigit()):
        raise InputError("CNDT_PRIC")
    exchange = body.get("EXCG_ID_DVSN_CD", "")
    if not isinstance(exchange, str) or exchange.strip().upper() not in ("", "KRX", "NXT", "SOR"):
        raise InputError("EXCG_ID_DVSN_CD")
    return {name: str(body[name]).strip() for name in _REVISE_FIELDS}


def _revision(body: Mapping[str, object] | None) -> _Revision:
    fields = _revision_fields(body)
    if not fields["ORGN_ODNO"].isdigit():
        raise InputError("ORGN_ODNO")
    if _TWO_DIGITS.fullmatch(fields["ORD_DVSN"]) is None:
        raise InputError("ORD_DVSN")
    cancel = choice(fields, "RVSE_CNCL_DVSN_CD", "01 02") == "02"
    whole = choice(fields, "QTY_ALL_ORD_YN", "Y N") == "Y"
    quantity = fields["ORD_QTY"]
    if not quantity.isdigit() or (not whole and int(quantity) == 0):
        raise InputError("ORD_QTY")
    price = fields["ORD_UNPR"]
    if price and not price.isdigit():
        raise InputError("ORD_UNPR")
    market_order = fields["ORD_DVSN"] == "01"
    if not cancel and not market_order and not int(price or 0):
        raise InputError("ORD_UNPR")  # a limit modify needs its new price
    return _Revision(
        account=account_key(fields),
        original_no=fields["ORGN_ODNO"],
        cancel=cancel,
        quantity=None if whole else int(quantity),
        price=int(price or 0),
        market_order=market_order,
        branch=fields["KRX_FWDG_ORD_ORGNO"],
    )


def _book_revision(state: SimState, tr_id: str, order_no: str, revision: _Revision) -> BookOrder:
    book = state.book
    if revision.cancel:
        return book.cancel(
            revision.account,
            order_no,
            revision.original_no,
            tr_id=tr_id,
            quantity=revision.quantity,
            branch=revision.branch,
        )
    return book.modify(
        revision.account,
        order_no,
        revision.original_no,
        tr_id=tr_id,
        quantity=revision.quantity,
        price=revision.price,
        market_order=revision.market_order,
        branch=revision.branch,
    )


async def _revise(state: SimState, request: Request, ctx: CallContext) -> Response:
    denied = authorize(state, request, ctx, REVISE_TR_IDS)
    if denied is not None:
        return denied
    try:
        revision = _revision(await read_json_object(request))
    except InputError as error:
        return input_error(ctx, error)
    now = state.clock.now()
    order_no = f"{state.next_serial():010d}"
    booking = partial(_book_revision, state, ctx.tr_id, order_no, revision)
    try:
        order = await anyio.to_thread.run_sync(booking)
    except OrderRejected as rejection:
        return rejected(ctx, rejection)
    output = {
        "KRX_FWDG_ORD_ORGNO": order.branch,
        "ODNO": order_no,
        "ORD_TMD": now.strftime("%H%M%S"),
    }
    headers = {"tr_id": ctx.tr_id, "tr_cont": "", "gt_uid": gt_uid(state)}
    return json_response({"output": output, **ORDER_OK}, headers=headers)


def routes(state: SimState) -> list[Route]:
    """The account, modify/cancel and holiday routes."""
    bound = [_account_route(state, tr) for tr in ACCOUNT_TRS]
    revise = partial(_revise, state)
    bound.append(broker_route(state, KIS, f"{TRADING_PATH}/order-rvsecncl", revise, ["POST"]))
    return bound
