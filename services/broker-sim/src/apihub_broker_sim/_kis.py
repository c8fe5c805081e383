"""The KIS Open API look-alike: OAuth, hashkey, seven quotation TRs and the cash order (the
account inquiries, modify/cancel and the holiday check live in ``_kis_account``).

The two minute charts read the same tape: FHKST03010200 (today's bars, 30 a call) and
FHKST03010230 (any kept day's bars, 120 a call, ending at ``FID_INPUT_HOUR_1`` inclusive as the
official backtester's paging implies) agree bar for bar on today. FHKST03010230 is real-only on
KIS (a virtual account gets ``EGW02006``); like the holiday check, the simulator answers it on
its one base URL for every caller.

Error conventions (as third-party clients of the KIS Open API report them; codes marked * are
this simulator's choice):

- gateway errors: HTTP 500, ``{"rt_cd":"1","msg_cd":"EGW...","msg1":...}`` -- bad token
  ``EGW00121``, expired ``EGW00123``, rate ``EGW00201``, missing appkey ``EGW00103``, wrong
  appsecret ``EGW00105``, ``tr_id`` missing or not this path's ``EGW00101``*;
- OAuth errors: HTTP 403, ``{"error_code":...,"error_description":...}``;
- input errors: HTTP 200, ``rt_cd "2"``, ``msg_cd "OPSQ2001"``, ``msg1`` ``"ERROR :
  INPUT_FIELD_NAME <FIELD>"`` for a missing field or ``"ERROR INVALID <FIELD>"`` for a bad
  value (the code and rt_cd are as seen in the wild; the texts are approximations*);
- order refusals by the account ledger: HTTP 200, ``rt_cd "1"``, ``APBK0952``* (orderable cash
  exceeded) or ``APBK0986``* (orderable quantity exceeded), ``msg1`` the ledger's reason (see
  ``_kis_common``).

A cash order is booked in the account ledger (``state.book``) under ``KIS:<CANO>-<ACNT_PRDT_CD>``
at branch ``91252``; ``ORD_DVSN "01"`` is a market order, any other a limit at ``ORD_UNPR``.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._book import OrderRejected, Side
from ._clock import KST
from ._depth import _quantity, depth
from ._gateway import EGW00121, EGW00133, broker_route, read_json_object
from ._http import json_response, kis_envelope_error, kis_token_error
from ._kis_account import routes as account_routes
from ._kis_common import (
    BRANCH,
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
from ._krx import floor_to_grid, second_of_day, tick_size
from ._market import Bar, Market
from ._quotes import (
    Snapshot,
    change_sign,
    close_extremes,
    daily_flow,
    fundamentals,
    hhmmss,
    pct,
    period_bars_desc,
    snapshot,
    ymd,
)
from ._recorder import CallContext
from ._state import OrderRecord, SimState
from ._tokens import KIS

__all__ = ["ORDER_TR_IDS", "QUOTE_PATH", "routes"]

QUOTE_PATH = "/uapi/domestic-stock/v1/quotations"
ORDER_PATH = "/uapi/domestic-stock/v1/trading/order-cash"

_ORDER_SIDES: dict[str, Side] = {
    "TTTC0012U": "buy",
    "TTTC0011U": "sell",
    "TTTC0802U": "buy",
    "TTTC0801U": "sell",
}
ORDER_TR_IDS: Mapping[str, Side] = {
    **_ORDER_SIDES,
    **{"V" + tr[1:]: side for tr, side in _ORDER_SIDES.items()},
}
"""Order TR id -> side: current and legacy ids, real and vps (``V...``) variants."""

_MARKETS = frozenset({"J", "NX", "UN"})  # all served from the KRX tape


# --- OAuth and hashkey -------------------------------------------------------------------


def _check_app(
    state: SimState, ctx: CallContext, appkey: object, secret: object
) -> Response | tuple[str, str]:
    """Validate an appkey/secret pair from a body; returns an error or the pair."""
    if not isinstance(appkey, str) or not appkey:
        return kis_token_error(ctx, "EGW00103", "유효하지 않은 AppKey입니다.")
    if not isinstance(secret, str) or not secret:
        return kis_token_error(ctx, "EGW00105", "유효하지 않은 AppSecret입니다.")
    configured = state.app_secret(appkey)
    if configured == "":
        return kis_token_error(ctx, "EGW00103", "유효하지 않은 AppKey입니다.")
    if configured is not None and configured != secret:
        return kis_token_error(ctx, "EGW00105", "유효하지 않은 AppSecret입니다.")
    return appkey, secret


async def _token(state: SimState, request: Request, ctx: CallContext) -> Response:
    body = await read_json_object(request)
    if body is None or body.get("grant_type") != "client_credentials":
        return kis_token_error(ctx, "EGW00101", "유효하지 않은 요청입니다. (grant_type)")
    checked = _check_app(state, ctx, body.get("appkey"), body.get("appsecret"))
    if isinstance(checked, Response):
        return checked
    appkey, secret = checked
    record = state.tokens.kis_issue(appkey, secret)
    if record is None:
        state.recorder.token_rejected(KIS, appkey)
        return kis_token_error(ctx, "EGW00133", EGW00133)
    state.recorder.token_issued(KIS, appkey)
    return json_response(
        {
            "access_token": record.token,
            "access_token_token_expired": record.expires_at.strftime("%Y-%m-%d %H:%M:%S"),
            "token_type": "Bearer",
            "expires_in": record.remaining_s(state.clock.now()),
        }
    )


async def _revoke(state: SimState, request: Request, ctx: CallContext) -> Response:
    body = await read_json_object(request) or {}
    appkey, secret, token = body.get("appkey"), body.get("appsecret"), body.get("token")
    checked = _check_app(state, ctx, appkey, secret)
    if isinstance(checked, Response):
        return checked
    if not isinstance(token, str) or not state.tokens.revoke_token(KIS, checked[0], token):
        return kis_token_error(ctx, "EGW00121", EGW00121)
    return json_response({"code": 200, "message": "접근토큰 폐기에 성공하였습니다"})


async def _approval(state: SimState, request: Request, ctx: CallContext) -> Response:
    body = await read_json_object(request)
    if body is None or body.get("grant_type") != "client_credentials":
        return kis_token_error(ctx, "EGW00101", "유효하지 않은 요청입니다. (grant_type)")
    checked = _check_app(state, ctx, body.get("appkey"), body.get("secretkey"))
    if isinstance(checked, Response):
        return checked
    material = f"approval|{state.config.seed}|{state.next_serial()}"
    key = uuid.UUID(bytes=hashlib.blake2b(material.encode(), digest_size=16).digest())
    return json_response({"approval_key": str(key)})


async def _hashkey(state: SimState, request: Request, ctx: CallContext) -> Response:
    if not ctx.appkey:
        return kis_envelope_error(ctx, 500, "EGW00103", "유효하지 않은 AppKey입니다.")
    if not request.headers.get("appsecret"):
        return kis_envelope_error(ctx, 500, "EGW00105", "유효하지 않은 AppSecret입니다.")
    body = await read_json_object(request)
    if body is None:
        return input_error(ctx, InputError("BODY"))
    digest = hashlib.sha256(await request.body()).hexdigest()
    return json_response({"BODY": body, "HASH": digest})


# --- quotations ----------------------------------------------------------------------------

Builder = Callable[[SimState, dict[str, str], datetime], dict[str, Any]]


@dataclass(frozen=True)
class _QuoteTR:
    path: str
    tr_id: str
    required: tuple[str, ...]
    build: Builder
    blank_ok: tuple[str, ...] = ()


def _code(params: Mapping[str, str]) -> str:
    if params["FID_COND_MRKT_DIV_CODE"].upper() not in _MARKETS:
        raise InputError("FID_COND_MRKT_DIV_CODE")
    match = CODE.fullmatch(params["FID_INPUT_ISCD"].strip())
    if match is None:
        raise InputError("FID_INPUT_ISCD")
    return match.group(1)


def _quote_route(state: SimState, tr: _QuoteTR) -> Route:
    async def handler(request: Request, ctx: CallContext) -> Response:
        denied = authorize(state, request, ctx, (tr.tr_id,))
        if denied is not None:
            return denied
        params = {key.upper(): value for key, value in request.query_params.items()}
        now = state.clock.now()
        try:
            require(params, tr.required, tr.blank_ok)
            payload = await anyio.to_thread.run_sync(tr.build, state, params, now)
        except InputError as error:
            return input_error(ctx, error)
        headers = {"tr_id": tr.tr_id, "tr_cont": "", "gt_uid": gt_uid(state)}
        return json_response({**payload, **OK}, headers=headers)

    return broker_route(state, KIS, tr.path, handler, ["GET"], quotation=True)


def _price_output(state: SimState, snap: Snapshot) -> dict[str, str]:
    info, bar, prev = snap.info, snap.bar, snap.prev_bar
    fund = fundamentals(info)
    market = state.market
    today = snap.day
    d250 = close_extremes(market, info.code, snap, today - timedelta(days=365))
    w52 = close_extremes(market, info.code, snap, today - timedelta(days=364))
    ytd = close_extremes(market, info.code, snap, today.replace(month=1, day=1))
    pivot = (prev.high + prev.low + prev.close) // 3
    price = snap.price
    per = price / fund.eps
    shares = info.listed_shares
    return {
        "iscd_stat_cls_code": "55",
        "marg_rate": "20.00",
        "rprs_mrkt_kor_name": info.market_name,
        "new_hgpr_lwpr_cls_code": "",
        "bstp_kor_isnm": info.sector,
        "temp_stop_yn": "N",
        "oprc_rang_cont_yn": "N",
        "clpr_rang_cont_yn": "N",
        "crdt_able_yn": "Y",
        "grmn_rate_cls_code": "40",
        "elw_pblc_yn": "N",
        "stck_prpr": str(price),
        "prdy_vrss": str(snap.change),
        "prdy_vrss_sign": snap.sign,
        "prdy_ctrt": snap.rate,
        "acml_tr_pbmn": str(bar.value),
        "acml_vol": str(bar.volume),
        "prdy_vrss_vol_rate": pct(bar.volume, prev.volume),
        "stck_oprc": str(bar.open),
        "stck_hgpr": str(bar.high),
        "stck_lwpr": str(bar.low),
        "stck_mxpr": str(snap.upper),
        "stck_llam": str(snap.lower),
        "stck_sdpr": str(snap.base),
        "wghn_avrg_stck_prc": f"{bar.value / bar.volume:.2f}",
        "hts_frgn_ehrt": f"{fund.foreign_pct:.2f}",
        "frgn_ntby_qty": str(daily_flow(info, today)),
        "pgtr_ntby_qty": str(daily_flow(info, today + timedelta(days=10_000))),
        "pvt_scnd_dmrs_prc": str(pivot + (prev.high - prev.low)),
        "pvt_frst_dmrs_prc": str(2 * pivot - prev.low),
        "pvt_pont_val": str(pivot),
        "pvt_frst_dmsp_prc": str(2 * pivot - prev.high),
        "pvt_scnd_dmsp_prc": str(pivot - (prev.high - prev.low)),
        "dmrs_val": str((prev.high + prev.close) // 2),
        "dmsp_val": str((prev.low + prev.close) // 2),
        "cpfn": str(shares * info.par_value // 100_000_000),
        "rstc_wdth_prc": str(snap.upper - snap.base),
        "stck_fcam": str(info.par_value),
        "stck_sspr": str(floor_to_grid(snap.base * 8 // 10)),
        "aspr_unit": str(tick_size(price)),
        "hts_deal_qty_unit_val": "1",
        "lstn_stcn": str(shares),
        "hts_avls": str(price * shares // 100_000_000),
        "per": f"{per:.2f}",
        "pbr": f"{price / fund.bps:.2f}",
        "stac_month": fund.fiscal_month,
        "vol_tnrt": pct(bar.volume, shares),
        "eps": f"{fund.eps:.2f}",
        "bps": f"{fund.bps:.2f}",
        "d250_hgpr": str(d250.high),
        "d250_hgpr_date": ymd(d250.high_day),
        "d250_hgpr_vrss_prpr_rate": pct(price - d250.high, d250.high),
        "d250_lwpr": str(d250.low),
        "d250_lwpr_date": ymd(d250.low_day),
        "d250_lwpr_vrss_prpr_rate": pct(price - d250.low, d250.low),
        "stck_dryy_hgpr": str(ytd.high),
        "dryy_hgpr_vrss_prpr_rate": pct(price - ytd.high, ytd.high),
        "dryy_hgpr_date": ymd(ytd.high_day),
        "stck_dryy_lwpr": str(ytd.low),
        "dryy_lwpr_vrss_prpr_rate": pct(price - ytd.low, ytd.low),
        "dryy_lwpr_date": ymd(ytd.low_day),
        "w52_hgpr": str(w52.high),
        "w52_hgpr_vrss_prpr_ctrt": pct(price - w52.high, w52.high),
        "w52_hgpr_date": ymd(w52.high_day),
        "w52_lwpr": str(w52.low),
        "w52_lwpr_vrss_prpr_ctrt": pct(price - w52.low, w52.low),
        "w52_lwpr_date": ymd(w52.low_day),
        "whol_loan_rmnd_rate": f"{fund.loan_pct:.2f}",
        "ssts_yn": "Y",
        "stck_shrn_iscd": info.code,
        "fcam_cnnm": "원",
        "cpfn_cnnm": "억",
        "apprch_rate": "0.00",
        "frgn_hldn_qty": str(int(shares * fund.foreign_pct / 100.0)),
        "vi_cls_code": "N",
        "ovtm_vi_cls_code": "N",
        "last_ssts_cntg_qty": str(abs(daily_flow(info, today)) // 100),
        "invt_caful_yn": "N",
        "mrkt_warn_cls_code": "00",
        "short_over_yn": "N",
        "sltr_yn": "N",
        "mang_issu_cls_code": "N",
    }


def _inquire_price(state: SimState, params: dict[str, str], now: datetime) -> dict[str, Any]:
    snap = snapshot(state.market, _code(params), now)
    return {"output": _price_output(state, snap)}


def _inquire_ccnl(state: SimState, params: dict[str, str], now: datetime) -> dict[str, Any]:
    snap = snapshot(state.market, _code(params), now)
    tape, base = snap.tape, snap.base
    buy, sell = tape.buy_sell_until(snap.last_index)
    rows: list[dict[str, str]] = []
    for i in range(snap.last_index, max(-1, snap.last_index - 30), -1):
        price, volume = tape.prices[i], tape.volumes[i]
        rows.append(
            {
                "stck_cntg_hour": hhmmss(tape.secs[i]),
                "stck_prpr": str(price),
                "prdy_vrss": str(price - base),
                "prdy_vrss_sign": change_sign(price, base),
                "cntg_vol": str(volume),
                "tday_rltv": pct(buy, sell),
                "prdy_ctrt": pct(price - base, base),
            }
        )
        # Walking back in time: take this print out of the running strength.
        if tape.buy[i]:
            buy -= volume
        else:
            sell -= volume
    return {"output": rows}


def _inquire_daily_price(state: SimState, params: dict[str, str], now: datetime) -> dict[str, Any]:
    code = _code(params)
    period = choice(params, "FID_PERIOD_DIV_CODE", "D W M")
    choice(params, "FID_ORG_ADJ_PRC", "0 1")
    market = state.market
    info = market.symbol(code)
    fund = fundamentals(info)
    day, _ = market.session(now)
    bars = period_bars_desc(market, code, day, market.first_day(now), now, period, 31)
    rows: list[dict[str, str]] = []
    for i, (bar, before) in enumerate(bars[:30]):
        older = bars[i + 1][0].volume if i + 1 < len(bars) else 0
        rows.append(
            {
                "stck_bsop_date": ymd(bar.day),
                "stck_oprc": str(bar.open),
                "stck_hgpr": str(bar.high),
                "stck_lwpr": str(bar.low),
                "stck_clpr": str(bar.close),
                "acml_vol": str(bar.volume),
                "prdy_vrss_vol_rate": pct(bar.volume - older, older),
                "prdy_vrss": str(bar.close - before),
                "prdy_vrss_sign": change_sign(bar.close, before),
                "prdy_ctrt": pct(bar.close - before, before),
                "hts_frgn_ehrt": f"{fund.foreign_pct:.2f}",
                "frgn_ntby_qty": str(daily_flow(info, bar.day)),
                "flng_cls_code": "00",
                "acml_prtt_rate": "0.00",
            }
        )
    return {"output": rows}


def _chart_output1(snap: Snapshot) -> dict[str, str]:
    bar, prev, info = snap.bar, snap.prev_bar, snap.info
    fund = fundamentals(info)
    shares = info.listed_shares
    return {
        "prdy_vrss": str(snap.change),
        "prdy_vrss_sign": snap.sign,
        "prdy_ctrt": snap.rate,
        "stck_prdy_clpr": str(snap.base),
        "acml_vol": str(bar.volume),
        "acml_tr_pbmn": str(bar.value),
        "hts_kor_isnm": info.name,
        "stck_prpr": str(snap.price),
        "stck_shrn_iscd": info.code,
        "prdy_vol": str(prev.volume),
        "stck_mxpr": str(snap.upper),
        "stck_llam": str(snap.lower),
        "stck_oprc": str(bar.open),
        "stck_hgpr": str(bar.high),
        "stck_lwpr": str(bar.low),
        "stck_prdy_oprc": str(prev.open),
        "stck_prdy_hgpr": str(prev.high),
        "stck_prdy_lwpr": str(prev.low),
        "askp": str(snap.price + tick_size(snap.price)),
        "bidp": str(snap.price),
        "prdy_vrss_vol": str(bar.volume - prev.volume),
        "vol_tnrt": pct(bar.volume, shares),
        "stck_fcam": str(info.par_value),
        "lstn_stcn": str(shares),
        "cpfn": str(shares * info.par_value // 100_000_000),
        "hts_avls": str(snap.price * shares // 100_000_000),
        "per": f"{snap.price / fund.eps:.2f}",
        "eps": f"{fund.eps:.2f}",
        "pbr": f"{snap.price / fund.bps:.2f}",
        "itewhol_loan_rmnd_ratem": f"{fund.loan_pct:.2f}",
    }


def _daily_chart(state: SimState, params: dict[str, str], now: datetime) -> dict[str, Any]:
    code = _code(params)
    first = parse_day(params, "FID_INPUT_DATE_1")
    last = parse_day(params, "FID_INPUT_DATE_2")
    period = choice(params, "FID_PERIOD_DIV_CODE", "D W M Y")
    choice(params, "FID_ORG_ADJ_PRC", "0 1")
    market = state.market
    snap = snapshot(market, code, now)
    limit = state.config.kis_page_rows_daily
    rows = [
        _daily_row(bar, before)
        for bar, before in period_bars_desc(market, code, last, first, now, period, limit)
    ]
    return {"output1": _chart_output1(snap), "output2": rows}


def _daily_row(bar: Bar, before: int) -> dict[str, str]:
    return {
        "stck_bsop_date": ymd(bar.day),
        "stck_clpr": str(bar.close),
        "stck_oprc": str(bar.open),
        "stck_hgpr": str(bar.high),
        "stck_lwpr": str(bar.low),
        "acml_vol": str(bar.volume),
        "acml_tr_pbmn": str(bar.value),
        "flng_cls_code": "00",
        "prtt_rate": "0.00",
        "mod_yn": "N",
        "prdy_vrss_sign": change_sign(bar.close, before),
        "prdy_vrss": str(bar.close - before),
        "revl_issu_reas": "",
    }


def _parse_hour(params: Mapping[str, str]) -> int:
    raw = params["FID_INPUT_HOUR_1"]
    if not re.fullmatch(r"\d{6}", raw):
        raise InputError("FID_INPUT_HOUR_1")
    hours, minutes, seconds = int(raw[:2]), int(raw[2:4]), int(raw[4:])
    if hours > 24 or minutes > 59 or seconds > 59:
        raise InputError("FID_INPUT_HOUR_1")
    return hours * 3600 + minutes * 60 + seconds


def _market_phase(state: SimState, now: datetime) -> str:
    """``new_mkop_cls_code``: ``10`` before the open, ``20`` in the session, ``30`` after
    the close or on a day off (the first digit as the KIS portal describes it)."""
    local = now.astimezone(KST)
    second = second_of_day(local.hour, local.minute, local.second)
    hours = state.market.hours(local.date())
    if hours is None or second >= hours.close_s:
        return "30"
    return "10" if second < hours.open_s else "20"


def _asking_price(state: SimState, params: dict[str, str], now: datetime) -> dict[str, Any]:
    snap = snapshot(state.market, _code(params), now)
    seed = state.config.seed
    book = depth(seed, snap, now)
    info, second = snap.info, book.quote_second
    bid_changes = [
        qty
        - (_quantity(seed, info.code, "bid", level, second - 1, info.daily_volume) if qty else 0)
        for level, (_, qty) in enumerate(book.bids)
    ]
    output1: dict[str, str] = {"aspr_acpt_hour": hhmmss(second)}
    output1.update({f"askp{i}": str(price) for i, (price, _) in enumerate(book.asks, 1)})
    output1.update({f"bidp{i}": str(price) for i, (price, _) in enumerate(book.bids, 1)})
    output1.update({f"askp_rsqn{i}": str(qty) for i, (_, qty) in enumerate(book.asks, 1)})
    output1.update({f"bidp_rsqn{i}": str(qty) for i, (_, qty) in enumerate(book.bids, 1)})
    output1.update({f"askp_rsqn_icdc{i}": str(c) for i, c in enumerate(book.changes, 1)})
    output1.update({f"bidp_rsqn_icdc{i}": str(c) for i, c in enumerate(bid_changes, 1)})
    output1.update(
        {
            "total_askp_rsqn": str(book.total_ask),
            "total_bidp_rsqn": str(book.total_bid),
            "total_askp_rsqn_icdc": str(sum(book.changes)),
            "total_bidp_rsqn_icdc": str(sum(bid_changes)),
            "ovtm_total_askp_icdc": "0",
            "ovtm_total_bidp_icdc": "0",
            "ovtm_total_askp_rsqn": "0",
            "ovtm_total_bidp_rsqn": "0",
            "ntby_aspr_rsqn": str(book.total_bid - book.total_ask),
            "new_mkop_cls_code": _market_phase(state, now),
        }
    )
    bar = snap.bar
    output2 = {
        "antc_mkop_cls_code": "",
        "stck_prpr": str(snap.price),
        "stck_oprc": str(bar.open),
        "stck_hgpr": str(bar.high),
        "stck_lwpr": str(bar.low),
        "stck_sdpr": str(snap.base),
        "antc_cnpr": str(snap.price),
        "antc_cntg_vrss_sign": snap.sign,
        "antc_cntg_vrss": str(snap.change),
        "antc_cntg_prdy_ctrt": snap.rate,
        "antc_vol": "0",
        "stck_shrn_iscd": info.code,
        "vi_cls_code": "N",
    }
    return {"output1": output1, "output2": output2}


def _minute_row(bar: Bar) -> dict[str, str]:
    return {
        "stck_bsop_date": ymd(bar.day),
        "stck_cntg_hour": hhmmss(bar.start_s),
        "stck_prpr": str(bar.close),
        "stck_oprc": str(bar.open),
        "stck_hgpr": str(bar.high),
        "stck_lwpr": str(bar.low),
        "cntg_vol": str(bar.volume),
        "acml_tr_pbmn": str(bar.cum_value),
    }


_MINUTE_OUTPUT1 = (
    "prdy_vrss",
    "prdy_vrss_sign",
    "prdy_ctrt",
    "stck_prdy_clpr",
    "acml_vol",
    "acml_tr_pbmn",
    "hts_kor_isnm",
    "stck_prpr",
)


def _minute_output1(snap: Snapshot) -> dict[str, str]:
    """The ``output1`` of both minute charts: the symbol as it stands now."""
    full = _chart_output1(snap)
    return {key: full[key] for key in _MINUTE_OUTPUT1}


def _minute_chart(state: SimState, params: dict[str, str], now: datetime) -> dict[str, Any]:
    code = _code(params)
    hour_s = _parse_hour(params)
    choice(params, "FID_PW_DATA_INCU_YN", "Y N")
    snap = snapshot(state.market, code, now)
    bars = snap.tape.minute_bars_until(snap.cutoff_s)
    # A future hour means "now" (as the KIS docs say); a finished session is "now" from 15:30 on.
    if hour_s <= snap.cutoff_s:
        if state.config.kis_time_chart_inclusive:
            bars = [bar for bar in bars if bar.start_s <= hour_s]
        else:
            bars = [bar for bar in bars if bar.start_s < hour_s]
    rows = [_minute_row(bar) for bar in reversed(bars[-state.config.kis_page_rows_minute :])]
    return {"output1": _minute_output1(snap), "output2": rows}


def _day_minute_bars(market: Market, code: str, day: date, now: datetime) -> list[Bar]:
    """The minute bars of ``day`` as they stand at ``now``, oldest first (none for a day off,
    a future day, or today before the open)."""
    if not market.is_trading_day(day):
        return []
    session_day, cutoff = market.session(now)
    if day > session_day:
        return []
    tape = market.tape(code, day)
    return tape.minute_bars_until(cutoff) if day == session_day else tape.minute_bars


def _daily_minute_chart(state: SimState, params: dict[str, str], now: datetime) -> dict[str, Any]:
    """FHKST03010230: minute bars of ``FID_INPUT_DATE_1`` up to ``FID_INPUT_HOUR_1``
    inclusive, newest first; no rows for a day off or a day older than the kept history."""
    code = _code(params)
    hour_s = _parse_hour(params)
    day = parse_day(params, "FID_INPUT_DATE_1")
    if params.get("FID_PW_DATA_INCU_YN", ""):  # blank or absent: N
        choice(params, "FID_PW_DATA_INCU_YN", "Y N")
    if params["FID_FAKE_TICK_INCU_YN"].strip():
        raise InputError("FID_FAKE_TICK_INCU_YN")  # the KIS portal: blank, always
    config, market = state.config, state.market
    snap = snapshot(market, code, now)
    limit = config.kis_page_rows_daily_minute
    oldest = now.astimezone(KST).date() - timedelta(days=config.kis_daily_minute_history_days)
    rows: list[dict[str, str]] = []
    if day >= oldest:
        bars = [bar for bar in _day_minute_bars(market, code, day, now) if bar.start_s <= hour_s]
        rows = [_minute_row(bar) for bar in reversed(bars[-limit:])]
        earlier = day
        while config.kis_daily_minute_crosses_days and len(rows) < limit:
            earlier = market.prev_trading_day(earlier)
            if earlier < oldest:
                break
            more = _day_minute_bars(market, code, earlier, now)
            rows.extend(_minute_row(bar) for bar in reversed(more[-(limit - len(rows)) :]))
    return {"output1": _minute_output1(snap), "output2": rows}


_BASIC = ("FID_COND_MRKT_DIV_CODE", "FID_INPUT_ISCD")
QUOTE_TRS = (
    _QuoteTR(f"{QUOTE_PATH}/inquire-price", "FHKST01010100", _BASIC, _inquire_price),
    _QuoteTR(f"{QUOTE_PATH}/inquire-ccnl", "FHKST01010300", _BASIC, _inquire_ccnl),
    _QuoteTR(f"{QUOTE_PATH}/inquire-asking-price-exp-ccn", "FHKST01010200", _BASIC, _asking_price),
    _QuoteTR(
        f"{QUOTE_PATH}/inquire-daily-price",
        "FHKST01010400",
        (*_BASIC, "FID_PERIOD_DIV_CODE", "FID_ORG_ADJ_PRC"),
        _inquire_daily_price,
    ),
    _QuoteTR(
        f"{QUOTE_PATH}/inquire-daily-itemchartprice",
        "FHKST03010100",
        (
            *_BASIC,
            "FID_INPUT_DATE_1",
            "FID_INPUT_DATE_2",
            "FID_PERIOD_DIV_CODE",
            "FID_ORG_ADJ_PRC",
        ),
        _daily_chart,
    ),
    _QuoteTR(
        f"{QUOTE_PATH}/inquire-time-itemchartprice",
        "FHKST03010200",
        (*_BASIC, "FID_INPUT_HOUR_1", "FID_PW_DATA_INCU_YN", "FID_ETC_CLS_CODE"),
        _minute_chart,
        blank_ok=("FID_ETC_CLS_CODE",),
    ),
    _QuoteTR(
        f"{QUOTE_PATH}/inquire-time-dailychartprice",
        "FHKST03010230",
        (*_BASIC, "FID_INPUT_HOUR_1", "FID_INPUT_DATE_1", "FID_FAKE_TICK_INCU_YN"),
        _daily_minute_chart,
        blank_ok=("FID_FAKE_TICK_INCU_YN",),
    ),
)


# --- orders --------------------------------------------------------------------------------

_ORDER_FIELDS = ("CANO", "ACNT_PRDT_CD", "PDNO", "ORD_DVSN", "ORD_QTY", "ORD_UNPR")


def _order_fields(body: Mapping[str, object] | None) -> dict[str, str]:
    if body is None:
        raise InputError("BODY")
    for name in _ORDER_FIELDS:
        # KIS's order docs want upper-case keys, so a lower-case key counts as missing.
        value = body.get(name)
        if not isinstance(value, str) or (not value and name != "ORD_UNPR"):
            raise InputError(name, missing=True)
    fields = {name: str(body[name]) for name in _ORDER_FIELDS}
    if CODE.fullmatch(fields["PDNO"]) is None:
        raise InputError("PDNO")
    if not fields["ORD_QTY"].isdigit() or int(fields["ORD_QTY"]) <= 0:
        raise InputError("ORD_QTY")
    if fields["ORD_UNPR"] and not fields["ORD_UNPR"].isdigit():
        raise InputError("ORD_UNPR")
    return fields


async def _order(state: SimState, request: Request, ctx: CallContext) -> Response:
    denied = authorize(state, request, ctx, ORDER_TR_IDS)
    if denied is not None:
        return denied
    try:
        fields = _order_fields(await read_json_object(request))
    except InputError as error:
        return input_error(ctx, error)
    now = state.clock.now()
    order_no = f"{state.next_serial():010d}"
    side = ORDER_TR_IDS[ctx.tr_id]
    place = partial(
        state.book.place,
        account_key(fields),
        order_no,
        tr_id=ctx.tr_id,
        side=side,
        symbol=fields["PDNO"][-6:],
        quantity=int(fields["ORD_QTY"]),
        price=int(fields["ORD_UNPR"] or 0),
        market_order=fields["ORD_DVSN"] == "01",
        branch=BRANCH,
    )
    try:
        await anyio.to_thread.run_sync(place)
    except OrderRejected as rejection:
        return rejected(ctx, rejection)
    state.add_order(
        OrderRecord(
            provider=KIS,
            tr_id=ctx.tr_id,
            side=side,
            symbol=fields["PDNO"],
            quantity=fields["ORD_QTY"],
            price=fields["ORD_UNPR"],
            order_no=order_no,
            time=now.isoformat(),
        )
    )
    output = {
        "KRX_FWDG_ORD_ORGNO": BRANCH,
        "ODNO": order_no,
        "ORD_TMD": now.strftime("%H%M%S"),
    }
    headers = {"tr_id": ctx.tr_id, "tr_cont": "", "gt_uid": gt_uid(state)}
    return json_response({"output": output, **ORDER_OK}, headers=headers)


def routes(state: SimState) -> list[Route]:
    """Every KIS route of the simulator."""
    bound: list[Route] = [
        broker_route(state, KIS, "/oauth2/tokenP", partial(_token, state), ["POST"]),
        broker_route(state, KIS, "/oauth2/revokeP", partial(_revoke, state), ["POST"]),
        broker_route(state, KIS, "/oauth2/Approval", partial(_approval, state), ["POST"]),
        broker_route(state, KIS, "/uapi/hashkey", partial(_hashkey, state), ["POST"]),
        broker_route(state, KIS, ORDER_PATH, partial(_order, state), ["POST"]),
    ]
    bound.extend(_quote_route(state, tr) for tr in QUOTE_TRS)
    bound.extend(account_routes(state))
    return bound
