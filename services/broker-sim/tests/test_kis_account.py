"""KIS account TRs over a real socket: balance, daily orders and fills, orderable amount,
cancellable orders, modify/cancel, the order book and the holiday check -- shapes, agreement
with the ledger, paging, validation and the real/virtual ids."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Protocol

import httpx
import pytest

from apihub_broker_sim import KST, ThreadedSimServer

TRADING = "/uapi/domestic-stock/v1/trading"
QUOTES = "/uapi/domestic-stock/v1/quotations"
ACCOUNT = {"CANO": "12345678", "ACNT_PRDT_CD": "01"}
BALANCE = {
    "AFHR_FLPR_YN": "N",
    "OFL_YN": "",
    "INQR_DVSN": "02",
    "UNPR_DVSN": "01",
    "FUND_STTL_ICLD_YN": "N",
    "FNCG_AMT_AUTO_RDPT_YN": "N",
    "PRCS_DVSN": "00",
    "CTX_AREA_FK100": "",
    "CTX_AREA_NK100": "",
}
CCLD = {
    "INQR_STRT_DT": "20250321",
    "INQR_END_DT": "20250321",
    "SLL_BUY_DVSN_CD": "00",
    "INQR_DVSN": "00",
    "PDNO": "",
    "CCLD_DVSN": "00",
    "ORD_GNO_BRNO": "",
    "ODNO": "",
    "INQR_DVSN_3": "00",
    "INQR_DVSN_1": "",
    "CTX_AREA_FK100": "",
    "CTX_AREA_NK100": "",
}
PSBL_ORDER = {
    "PDNO": "005930",
    "ORD_UNPR": "0",
    "ORD_DVSN": "00",
    "CMA_EVLU_AMT_ICLD_YN": "N",
    "OVRS_ICLD_YN": "N",
}
CANCELLABLE = {"INQR_DVSN_1": "0", "INQR_DVSN_2": "0", "CTX_AREA_FK100": "", "CTX_AREA_NK100": ""}
OPENING_CASH = 100_000_000


class SimHarness(Protocol):
    """The conftest's simulator harness, as far as these tests use it."""

    server: ThreadedSimServer
    client: httpx.Client

    def forget_tokens(self) -> None: ...
    def kis_headers(self, tr_id: str) -> dict[str, str]: ...
    def kis_get(self, name: str, tr_id: str, **params: str) -> httpx.Response: ...
    def kis_price(self, code: str = "005930") -> httpx.Response: ...
    def kis_minutes(self, hour: str, code: str = "005930") -> httpx.Response: ...
    def kis_trading_get(
        self, name: str, tr_id: str, *, tr_cont: str = "", **params: str
    ) -> httpx.Response: ...
    def kis_trading_post(self, name: str, tr_id: str, body: dict[str, Any]) -> httpx.Response: ...
    def kis_order(
        self, tr_id: str, code: str, quantity: int, price: int = 0, *, market: bool = False
    ) -> httpx.Response: ...
    def kis_revise(
        self, original: str, *, cancel: bool, quantity: int = 0, price: int = 0, tr_id: str = ""
    ) -> httpx.Response: ...
    def kis_walk(
        self, path: str, tr_id: str, params: dict[str, str], *, suffix: str = "100"
    ) -> list[httpx.Response]: ...


def _all_strings(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_all_strings(v) for v in value.values())
    if isinstance(value, list):
        return all(_all_strings(v) for v in value)
    return isinstance(value, str)


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["rt_cd"] == "0", body
    assert len(response.headers["gt_uid"]) == 32
    return body


def _odno(response: httpx.Response) -> str:
    return str(_ok(response)["output"]["ODNO"])


def _balance(sim: SimHarness, tr_id: str = "TTTC8434R", **changes: str) -> httpx.Response:
    return sim.kis_trading_get("inquire-balance", tr_id, **{**BALANCE, **changes})


def _ccld(sim: SimHarness, tr_id: str = "TTTC0081R", **changes: str) -> httpx.Response:
    return sim.kis_trading_get("inquire-daily-ccld", tr_id, **{**CCLD, **changes})


def _psbl(sim: SimHarness, tr_id: str = "TTTC8908R", **changes: str) -> httpx.Response:
    return sim.kis_trading_get("inquire-psbl-order", tr_id, **{**PSBL_ORDER, **changes})


def _cancellable(sim: SimHarness, **changes: str) -> httpx.Response:
    return sim.kis_trading_get("inquire-psbl-rvsecncl", "TTTC0084R", **{**CANCELLABLE, **changes})


def _holiday(sim: SimHarness, tr_id: str = "CTCA0903R", **params: str) -> httpx.Response:
    return sim.client.get(f"{QUOTES}/chk-holiday", params=params, headers=sim.kis_headers(tr_id))


def _limits(sim: SimHarness, code: str = "005930") -> tuple[int, int, int]:
    """(lower limit, last price, upper limit) of ``code`` now."""
    out = _ok(sim.kis_price(code))["output"]
    return int(out["stck_llam"]), int(out["stck_prpr"]), int(out["stck_mxpr"])


def _error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["msg_cd"], body["msg1"]


def _missing(field: str) -> tuple[int, str, str]:
    return 200, "OPSQ2001", f"ERROR : INPUT_FIELD_NAME {field}"


def _invalid(field: str) -> tuple[int, str, str]:
    return 200, "OPSQ2001", f"ERROR INVALID {field}"


# --- balance ----------------------------------------------------------------------------


def test_balance_shape_and_opening_positions(frozen_sim: SimHarness) -> None:
    response = _balance(frozen_sim)
    body = _ok(response)
    assert response.headers["tr_id"] == "TTTC8434R"
    assert response.headers["tr_cont"] == "D"
    assert list(body) == [
        "ctx_area_fk100",
        "ctx_area_nk100",
        "output1",
        "output2",
        "rt_cd",
        "msg_cd",
        "msg1",
    ]
    assert body["ctx_area_fk100"]
    assert body["ctx_area_nk100"] == ""
    assert _all_strings(body)
    rows = body["output1"]
    assert [(r["pdno"], r["hldg_qty"], r["ord_psbl_qty"]) for r in rows] == [
        ("000660", "30", "30"),
        ("005930", "100", "100"),
        ("035720", "50", "50"),
    ]
    for row in rows:
        for name in (
            "prdt_name",
            "thdt_buyqty",
            "thdt_sll_qty",
            "pchs_avg_pric",
            "pchs_amt",
            "prpr",
            "evlu_amt",
            "evlu_pfls_amt",
            "evlu_pfls_rt",
            "fltt_rt",
        ):
            assert name in row
        assert int(row["evlu_amt"]) == int(row["hldg_qty"]) * int(row["prpr"])
        assert int(row["evlu_pfls_amt"]) == int(row["evlu_amt"]) - int(row["pchs_amt"])
    samsung = rows[1]
    price = _ok(frozen_sim.kis_price())["output"]
    assert samsung["prpr"] == price["stck_prpr"]
    assert samsung["fltt_rt"] == price["prdy_ctrt"]
    # Bought at the previous close, which is today's base price.
    assert samsung["pchs_avg_pric"] == f"{int(price['stck_sdpr']):.4f}"
    (summary,) = body["output2"]
    assert summary["dnca_tot_amt"] == summary["prvs_rcdl_excc_amt"] == str(OPENING_CASH)
    securities = sum(int(r["evlu_amt"]) for r in rows)
    assert int(summary["scts_evlu_amt"]) == securities
    assert int(summary["tot_evlu_amt"]) == securities + OPENING_CASH
    assert summary["nass_amt"] == summary["tot_evlu_amt"]
    assert int(summary["pchs_amt_smtl_amt"]) == sum(int(r["pchs_amt"]) for r in rows)
    assert summary["evlu_amt_smtl_amt"] == summary["scts_evlu_amt"]
    assert int(summary["evlu_pfls_smtl_amt"]) == securities - int(summary["pchs_amt_smtl_amt"])
    assert (summary["thdt_buy_amt"], summary["thdt_sll_amt"]) == ("0", "0")
    assert "asst_icdc_amt" in summary


def test_a_buy_shows_in_the_balance_and_cash_drops_by_value_and_commission(
    frozen_sim: SimHarness,
) -> None:
    _, last, upper = _limits(frozen_sim)
    _odno(frozen_sim.kis_order("TTTC0012U", "005930", 10, market=True))
    _odno(frozen_sim.kis_order("TTTC0011U", "000660", 30, market=True))  # sells out
    _odno(frozen_sim.kis_order("TTTC0011U", "035720", 20, upper))  # rests, holds 20 shares
    body = _ok(_balance(frozen_sim, OFL_YN="N"))
    rows = {row["pdno"]: row for row in body["output1"]}
    samsung, hynix, kakao = rows["005930"], rows["000660"], rows["035720"]
    assert (samsung["hldg_qty"], samsung["thdt_buyqty"], samsung["ord_psbl_qty"]) == (
        "110",
        "10",
        "110",
    )
    assert (hynix["hldg_qty"], hynix["thdt_sll_qty"], hynix["evlu_amt"]) == ("0", "30", "0")
    assert (kakao["hldg_qty"], kakao["ord_psbl_qty"]) == ("50", "30")
    (summary,) = body["output2"]
    bought = 10 * last
    commission = bought * 15 // 100_000
    hynix_price = int(hynix["prpr"])
    sold = 30 * hynix_price
    sell_costs = sold * 15 // 100_000 + sold * 18 // 10_000
    cash = OPENING_CASH - bought - commission + sold - sell_costs
    assert summary["thdt_buy_amt"] == str(bought)
    assert summary["thdt_sll_amt"] == str(sold)
    assert summary["thdt_tlex_amt"] == str(commission + sell_costs)
    assert summary["prvs_rcdl_excc_amt"] == str(cash)
    # Today's trades settle on D+2: D+0 and D+1 still show the opening cash.
    assert summary["dnca_tot_amt"] == summary["nxdy_excc_amt"] == str(OPENING_CASH)
    securities = sum(int(r["evlu_amt"]) for r in rows.values())
    assert int(summary["tot_evlu_amt"]) == securities + cash
    # Against yesterday: the opening positions at yesterday's close plus the opening cash.
    yesterday = OPENING_CASH + sum(
        (int(r["hldg_qty"]) - int(r["thdt_buyqty"]) + int(r["thdt_sll_qty"]))
        * (int(r["prpr"]) - int(r["bfdy_cprs_icdc"]))
        for r in rows.values()
    )
    assert summary["bfdy_tot_asst_evlu_amt"] == str(yesterday)
    assert int(summary["asst_icdc_amt"]) == int(summary["tot_evlu_amt"]) - yesterday
    # The next day the sold-out row is gone and yesterday's fills count as settled cash.
    frozen_sim.server.clock.set(datetime(2025, 3, 24, 10, 0, tzinfo=KST))
    frozen_sim.forget_tokens()
    monday = _ok(_balance(frozen_sim))
    assert [row["pdno"] for row in monday["output1"]] == ["005930", "035720"]
    assert monday["output2"][0]["dnca_tot_amt"] == str(cash)


def test_orders_beyond_holdings_or_cash_are_refused(frozen_sim: SimHarness) -> None:
    too_many = frozen_sim.kis_order("TTTC0011U", "005930", 101, 61800)
    assert _error(too_many) == (200, "APBK0986", "주문가능수량을 초과 했습니다")
    assert too_many.json()["rt_cd"] == "1"
    too_dear = frozen_sim.kis_order("VTTC0012U", "005930", 10_000, 61800)
    assert _error(too_dear) == (200, "APBK0952", "주문가능금액을 초과 했습니다")
    assert frozen_sim.client.get("/__sim/orders").json() == []
    assert _ok(_ccld(frozen_sim))["output1"] == []


# --- orderable amount ------------------------------------------------------------------


def test_orderable_amount_follows_cash_and_price(frozen_sim: SimHarness) -> None:
    lower, last, upper = _limits(frozen_sim)
    response = _psbl(frozen_sim)
    body = _ok(response)
    assert response.headers["tr_cont"] == ""
    assert list(body) == ["output", "rt_cd", "msg_cd", "msg1"]
    out = body["output"]
    for name in (
        "ord_psbl_cash",
        "ord_psbl_sbst",
        "ruse_psbl_amt",
        "psbl_qty_calc_unpr",
        "nrcvb_buy_amt",
        "nrcvb_buy_qty",
        "max_buy_amt",
        "max_buy_qty",
        "cma_evlu_amt",
    ):
        assert name in out
    assert _all_strings(body)
    assert out["ord_psbl_cash"] == str(OPENING_CASH)
    assert out["psbl_qty_calc_unpr"] == str(last)
    assert out["max_buy_qty"] == out["nrcvb_buy_qty"] == str(OPENING_CASH // last)
    limit = _ok(_psbl(frozen_sim, ORD_UNPR="50000"))["output"]
    assert (limit["psbl_qty_calc_unpr"], limit["max_buy_qty"]) == ("50000", "2000")
    market = _ok(_psbl(frozen_sim, "VTTC8908R", ORD_DVSN="01"))["output"]
    assert market["psbl_qty_calc_unpr"] == str(upper)
    assert market["max_buy_qty"] == str(OPENING_CASH // upper)
    # A resting buy holds its value.
    _odno(frozen_sim.kis_order("TTTC0012U", "005930", 1000, lower))
    held = _ok(_psbl(frozen_sim, ORD_UNPR="50000"))["output"]
    assert held["ord_psbl_cash"] == str(OPENING_CASH - 1000 * lower)
    assert held["max_buy_qty"] == str((OPENING_CASH - 1000 * lower) // 50000)


# --- cancellable orders, modify and cancel ------------------------------------------------


def test_a_resting_order_is_cancellable_until_cancelled(frozen_sim: SimHarness) -> None:
    lower, _, upper = _limits(frozen_sim)
    buy = _odno(frozen_sim.kis_order("TTTC0012U", "005930", 3, lower))
    sell = _odno(frozen_sim.kis_order("TTTC0011U", "005930", 2, upper))
    response = _cancellable(frozen_sim)
    body = _ok(response)
    assert response.headers["tr_cont"] == "D"
    assert list(body) == ["ctx_area_fk100", "ctx_area_nk100", "output", "rt_cd", "msg_cd", "msg1"]
    rows = body["output"]
    assert [row["odno"] for row in rows] == [buy, sell]
    first = rows[0]
    for name in (
        "ord_gno_brno",
        "orgn_odno",
        "pdno",
        "prdt_name",
        "ord_qty",
        "ord_unpr",
        "ord_tmd",
        "tot_ccld_qty",
        "psbl_qty",
        "sll_buy_dvsn_cd",
        "ord_dvsn_cd",
        "excg_id_dvsn_cd",
    ):
        assert name in first
    assert _all_strings(body)
    assert (first["ord_gno_brno"], first["orgn_odno"], first["pdno"]) == ("91252", "", "005930")
    assert (first["ord_qty"], first["psbl_qty"], first["tot_ccld_qty"]) == ("3", "3", "0")
    assert (first["ord_unpr"], first["ord_tmd"], first["sll_buy_dvsn_cd"]) == (
        str(lower),
        "130030",
        "02",
    )
    assert (first["ord_dvsn_cd"], first["excg_id_dvsn_cd"]) == ("00", "KRX")
    sells = _ok(_cancellable(frozen_sim, INQR_DVSN_2="1", INQR_DVSN_1="1"))["output"]
    assert [row["odno"] for row in sells] == [sell]
    buys = _ok(_cancellable(frozen_sim, INQR_DVSN_2="2", INQR_DVSN_1="2"))["output"]
    assert [row["odno"] for row in buys] == [buy]
    # Part, then the rest.
    part = frozen_sim.kis_revise(buy, cancel=True, quantity=1)
    assert _ok(part)["msg_cd"] == "APBK0013"
    assert set(part.json()["output"]) == {"KRX_FWDG_ORD_ORGNO", "ODNO", "ORD_TMD"}
    assert part.json()["output"]["KRX_FWDG_ORD_ORGNO"] == "91252"
    assert part.json()["output"]["ORD_TMD"] == "130030"
    assert _ok(_cancellable(frozen_sim))["output"][0]["psbl_qty"] == "2"
    _odno(frozen_sim.kis_revise(buy, cancel=True))
    assert [row["odno"] for row in _ok(_cancellable(frozen_sim))["output"]] == [sell]
    again = frozen_sim.kis_revise(buy, cancel=True)
    assert _error(again) == (200, "APBK0963", "정정/취소할 수량이 없습니다")
    unknown = frozen_sim.kis_revise("9999999", cancel=True)
    assert _error(unknown) == (200, "APBK0904", "원주문번호가 존재하지 않습니다")
    too_large = frozen_sim.kis_revise(sell, cancel=True, quantity=5)
    assert _error(too_large) == (200, "APBK0917", "정정/취소 가능수량을 초과 했습니다")
    # Leading zeros do not matter, and the legacy and virtual ids work too.
    _odno(frozen_sim.kis_revise(sell.lstrip("0"), cancel=True, tr_id="TTTC0803U"))
    assert _ok(_cancellable(frozen_sim))["output"] == []
    # Only buy and sell orders went to the admin log.
    assert len(frozen_sim.client.get("/__sim/orders").json()) == 2


def test_modify_chain_points_back_and_shows_in_daily_ccld(frozen_sim: SimHarness) -> None:
    lower, last, _ = _limits(frozen_sim)
    original = _odno(frozen_sim.kis_order("TTTC0012U", "005930", 10, lower))
    moved = frozen_sim.kis_revise(original, cancel=False, quantity=4, price=lower + 50)
    modify = _odno(moved)
    assert int(modify) > int(original)
    rows = {r["odno"]: r for r in _ok(_cancellable(frozen_sim))["output"]}
    assert (rows[original]["psbl_qty"], rows[original]["rvse_cncl_dvsn_name"]) == ("6", "")
    assert (rows[modify]["orgn_odno"], rows[modify]["psbl_qty"]) == (original, "4")
    assert (rows[modify]["ord_unpr"], rows[modify]["rvse_cncl_dvsn_name"]) == (
        str(lower + 50),
        "정정",
    )
    # Modify the modify to a marketable price: it fills at once.
    filled = _odno(frozen_sim.kis_revise(modify, cancel=False, price=last, tr_id="VTTC0013U"))
    cancel = _odno(frozen_sim.kis_revise(original, cancel=True, tr_id="VTTC0803U"))
    assert _ok(_cancellable(frozen_sim))["output"] == []
    body = _ok(_ccld(frozen_sim))
    assert list(body) == [
        "ctx_area_fk100",
        "ctx_area_nk100",
        "output1",
        "output2",
        "rt_cd",
        "msg_cd",
        "msg1",
    ]
    assert _all_strings(body)
    rows_ccld = body["output1"]
    assert [r["odno"] for r in rows_ccld] == [cancel, filled, modify, original]  # newest first
    by_no = {r["odno"]: r for r in rows_ccld}
    assert (by_no[original]["orgn_odno"], by_no[original]["rmn_qty"]) == ("", "0")
    assert by_no[original]["sll_buy_dvsn_cd_name"] == "현금매수"
    assert (by_no[modify]["orgn_odno"], by_no[modify]["ord_qty"]) == (original, "4")
    assert by_no[modify]["sll_buy_dvsn_cd_name"] == "매수정정"
    assert (by_no[filled]["orgn_odno"], by_no[filled]["tot_ccld_qty"]) == (modify, "4")
    assert (by_no[filled]["avg_prvs"], by_no[filled]["tot_ccld_amt"]) == (
        str(last),
        str(4 * last),
    )
    assert (by_no[cancel]["cncl_yn"], by_no[cancel]["cnc_cfrm_qty"]) == ("Y", "6")
    assert (by_no[cancel]["orgn_odno"], by_no[cancel]["sll_buy_dvsn_cd_name"]) == (
        original,
        "매수취소",
    )
    assert by_no[original]["cncl_yn"] == "N"
    totals = body["output2"]
    assert totals == {
        "tot_ord_qty": "18",  # 10 + 4 + 4; the cancel is not an order quantity
        "tot_ccld_qty": "4",
        "tot_ccld_amt": str(4 * last),
        "prsm_tlex_smtl": str(4 * last * 15 // 100_000),
        "pchs_avg_pric": f"{last:.4f}",
    }
    # A modify to a price the cash cannot cover is refused and leaves the order alone.
    big = _odno(frozen_sim.kis_order("TTTC0012U", "005930", 2000, lower))
    refused = frozen_sim.kis_revise(big, cancel=False, price=last)
    assert _error(refused) == (200, "APBK0952", "주문가능금액을 초과 했습니다")
    assert _ok(_cancellable(frozen_sim))["output"][0]["psbl_qty"] == "2000"


def test_daily_ccld_filters(frozen_sim: SimHarness) -> None:
    lower, last, upper = _limits(frozen_sim)
    filled = _odno(frozen_sim.kis_order("TTTC0012U", "005930", 10, market=True))
    resting = _odno(frozen_sim.kis_order("TTTC0012U", "005930", 5, lower))
    sold = _odno(frozen_sim.kis_order("TTTC0011U", "000660", 5, market=True))
    offered = _odno(frozen_sim.kis_order("TTTC0011U", "035720", 5, upper))

    def numbers(**changes: str) -> list[str]:
        return [row["odno"] for row in _ok(_ccld(frozen_sim, **changes))["output1"]]

    assert numbers() == [offered, sold, resting, filled]
    assert numbers(INQR_DVSN="01") == [filled, resting, sold, offered]
    assert numbers(CCLD_DVSN="01") == [sold, filled]
    assert numbers(CCLD_DVSN="02") == [offered, resting]
    assert numbers(SLL_BUY_DVSN_CD="01") == [offered, sold]
    assert numbers(SLL_BUY_DVSN_CD="02") == [resting, filled]
    assert numbers(PDNO="005930") == [resting, filled]
    assert numbers(ODNO=str(int(resting))) == [resting]
    assert numbers(ORD_GNO_BRNO="91252") == numbers()
    assert numbers(ORD_GNO_BRNO="00000") == []
    assert numbers(EXCG_ID_DVSN_CD="KRX") == numbers(EXCG_ID_DVSN_CD="ALL") == numbers()
    assert numbers(EXCG_ID_DVSN_CD="NXT") == []
    assert numbers(INQR_DVSN_3="01") == numbers()
    assert numbers(INQR_DVSN_3="02") == []
    assert numbers(INQR_DVSN_1="1") == []
    assert numbers(INQR_STRT_DT="20250320", INQR_END_DT="20250320") == []
    row = _ok(_ccld(frozen_sim, ODNO=sold))["output1"][0]
    for name in (
        "ord_dt",
        "ord_gno_brno",
        "odno",
        "orgn_odno",
        "sll_buy_dvsn_cd",
        "sll_buy_dvsn_cd_name",
        "pdno",
        "prdt_name",
        "ord_qty",
        "ord_unpr",
        "ord_tmd",
        "ord_dvsn_cd",
        "tot_ccld_qty",
        "avg_prvs",
        "tot_ccld_amt",
        "rmn_qty",
        "cnc_cfrm_qty",
        "rjct_qty",
        "cncl_yn",
        "excg_id_dvsn_Cd",
    ):
        assert name in row
    assert (row["ord_dt"], row["ord_tmd"], row["sll_buy_dvsn_cd"]) == ("20250321", "130030", "01")
    assert (row["ord_dvsn_cd"], row["ord_unpr"], row["tot_ccld_qty"]) == ("01", "0", "5")
    assert (row["sll_buy_dvsn_cd_name"], row["excg_id_dvsn_Cd"]) == ("현금매도", "KRX")
    sell_value = int(row["tot_ccld_amt"])
    totals = _ok(_ccld(frozen_sim, ODNO=sold))["output2"]
    assert totals["prsm_tlex_smtl"] == str(sell_value * 15 // 100_000 + sell_value * 18 // 10_000)
    assert _ok(_ccld(frozen_sim, ODNO=filled))["output1"][0]["avg_prvs"] == str(last)


def test_a_resting_limit_fills_when_the_clock_moves(frozen_sim: SimHarness) -> None:
    clock = frozen_sim.server.clock
    start = clock.now()
    _, last, _ = _limits(frozen_sim)
    clock.set(datetime(2025, 3, 21, 15, 30, tzinfo=KST))
    hours = ("133000", "140000", "143000", "150000", "153000")
    bars = [bar for hour in hours for bar in _ok(frozen_sim.kis_minutes(hour))["output2"]]
    future_high = max(int(b["stck_hgpr"]) for b in bars if b["stck_cntg_hour"] >= "130100")
    clock.set(start)
    assert future_high > last  # the seeded tape rises after 13:00:30
    order = _odno(frozen_sim.kis_order("TTTC0011U", "005930", 10, future_high))
    row = _ok(_ccld(frozen_sim))["output1"][0]
    assert (row["tot_ccld_qty"], row["rmn_qty"]) == ("0", "10")
    assert [r["odno"] for r in _ok(_cancellable(frozen_sim))["output"]] == [order]
    assert _ok(_balance(frozen_sim))["output1"][1]["ord_psbl_qty"] == "90"
    clock.set(datetime(2025, 3, 21, 15, 30, tzinfo=KST))
    row = _ok(_ccld(frozen_sim))["output1"][0]
    assert (row["tot_ccld_qty"], row["rmn_qty"], row["avg_prvs"]) == ("10", "0", str(future_high))
    assert _ok(_ccld(frozen_sim, CCLD_DVSN="01"))["output2"]["tot_ccld_qty"] == "10"
    assert _ok(_cancellable(frozen_sim))["output"] == []
    samsung = _ok(_balance(frozen_sim))["output1"][1]
    assert (samsung["pdno"], samsung["hldg_qty"], samsung["thdt_sll_qty"]) == ("005930", "90", "10")


# --- the three-month boundary ---------------------------------------------------------------


def test_recent_and_older_daily_ccld_periods(frozen_sim: SimHarness) -> None:
    # 2025-03-21: TTTC0081R covers 2024-12-01 onwards, CTSC9215R the days before.
    assert _error(_ccld(frozen_sim, INQR_STRT_DT="20241130")) == _invalid("INQR_STRT_DT")
    _ok(_ccld(frozen_sim, INQR_STRT_DT="20241201"))
    _ok(_ccld(frozen_sim, "TTTC8001R", INQR_STRT_DT="20241201", INQR_END_DT="20250401"))
    older = {"INQR_STRT_DT": "20240101", "INQR_END_DT": "20241130"}
    for tr_id in ("CTSC9215R", "VTSC9215R", "CTSC9115R", "VTSC9115R"):
        response = _ccld(frozen_sim, tr_id, **older)
        assert _ok(response)["output1"] == []
        assert response.headers["tr_id"] == tr_id
    assert _error(_ccld(frozen_sim, "CTSC9215R", INQR_STRT_DT="20241201")) == _invalid(
        "INQR_STRT_DT"
    )
    assert _error(
        _ccld(frozen_sim, "CTSC9215R", INQR_STRT_DT="20241101", INQR_END_DT="20241201")
    ) == _invalid("INQR_END_DT")
    assert _error(_ccld(frozen_sim, INQR_STRT_DT="20250321", INQR_END_DT="20250320")) == _invalid(
        "INQR_END_DT"
    )
    # Four months on, today's order has moved to the older TR.
    order = _odno(frozen_sim.kis_order("TTTC0012U", "005930", 1, market=True))
    frozen_sim.server.clock.set(datetime(2025, 7, 21, 10, 0, tzinfo=KST))
    frozen_sim.forget_tokens()
    march = {"INQR_STRT_DT": "20250301", "INQR_END_DT": "20250331"}
    assert _error(_ccld(frozen_sim, **march)) == _invalid("INQR_STRT_DT")
    rows = _ok(_ccld(frozen_sim, "CTSC9215R", **march))["output1"]
    assert [(r["odno"], r["ord_dt"], r["tot_ccld_qty"]) for r in rows] == [(order, "20250321", "1")]
    _ok(_ccld(frozen_sim, INQR_STRT_DT="20250401", INQR_END_DT="20250721"))


def test_the_period_counts_calendar_months(make_sim: Callable[..., SimHarness]) -> None:
    sim = make_sim(start_time=datetime(2024, 4, 25, 10, 0, tzinfo=KST))
    window = {"INQR_END_DT": "20240425"}
    _ok(_ccld(sim, INQR_STRT_DT="20240101", **window))
    assert _error(_ccld(sim, INQR_STRT_DT="20231231", **window)) == _invalid("INQR_STRT_DT")
    _ok(_ccld(sim, "CTSC9215R", INQR_STRT_DT="20231201", INQR_END_DT="20231231"))


# --- paging -----------------------------------------------------------------------------


def _rows_of(pages: list[httpx.Response], key: str, field: str) -> list[str]:
    return [row[field] for page in pages for row in page.json()[key]]


def test_paging_walks_every_row_exactly_once(make_sim: Callable[..., SimHarness]) -> None:
    sim = make_sim(kis_page_rows_balance=2, kis_page_rows_orders=3, kis_page_rows_cancellable=2)
    lower, _, _ = _limits(sim)
    placed = [_odno(sim.kis_order("TTTC0012U", "005930", 1, lower + 50 * i)) for i in range(7)]

    pages = sim.kis_walk(f"{TRADING}/inquire-balance", "TTTC8434R", {**ACCOUNT, **BALANCE})
    assert [p.headers["tr_cont"] for p in pages] == ["M", "D"]
    assert _rows_of(pages, "output1", "pdno") == ["000660", "005930", "035720"]
    assert pages[0].json()["ctx_area_nk100"]
    assert pages[1].json()["ctx_area_nk100"] == ""
    assert all(len(p.json()["output2"]) == 1 for p in pages)

    pages = sim.kis_walk(f"{TRADING}/inquire-daily-ccld", "TTTC0081R", {**ACCOUNT, **CCLD})
    assert [p.headers["tr_cont"] for p in pages] == ["M", "M", "D"]
    assert [len(p.json()["output1"]) for p in pages] == [3, 3, 1]
    assert _rows_of(pages, "output1", "odno") == placed[::-1]
    assert all(p.json()["output2"]["tot_ord_qty"] == "7" for p in pages)

    pages = sim.kis_walk(
        f"{TRADING}/inquire-psbl-rvsecncl", "TTTC0084R", {**ACCOUNT, **CANCELLABLE}
    )
    assert [p.headers["tr_cont"] for p in pages] == ["M", "M", "M", "D"]
    assert _rows_of(pages, "output", "odno") == placed

    # Without the tr_cont header the cursors are ignored: a first page again.
    first = pages[0].json()
    again = sim.kis_trading_get(
        "inquire-psbl-rvsecncl",
        "TTTC0084R",
        **{
            **CANCELLABLE,
            "CTX_AREA_FK100": first["ctx_area_fk100"],
            "CTX_AREA_NK100": first["ctx_area_nk100"],
        },
    )
    assert _rows_of([again], "output", "odno") == placed[:2]


def test_virtual_ids_page_in_smaller_pages(frozen_sim: SimHarness) -> None:
    lower, _, _ = _limits(frozen_sim)
    placed = [_odno(frozen_sim.kis_order("VTTC0012U", "005930", 1, lower)) for _ in range(16)]
    pages = frozen_sim.kis_walk(
        f"{TRADING}/inquire-daily-ccld", "VTTC0081R", {**ACCOUNT, **CCLD, "INQR_DVSN": "01"}
    )
    assert [len(p.json()["output1"]) for p in pages] == [15, 1]
    assert [p.headers["tr_cont"] for p in pages] == ["M", "D"]
    assert [p.headers["tr_id"] for p in pages] == ["VTTC0081R", "VTTC0081R"]
    assert _rows_of(pages, "output1", "odno") == placed
    real = _ok(_ccld(frozen_sim))
    assert len(real["output1"]) == 16
    balance = _balance(frozen_sim, "VTTC8434R")
    assert len(_ok(balance)["output1"]) == 3
    assert balance.headers["tr_id"] == "VTTC8434R"


def test_bad_cursors_are_input_errors(make_sim: Callable[..., SimHarness]) -> None:
    sim = make_sim(kis_page_rows_balance=1)
    first = _ok(_balance(sim))
    fk, nk = first["ctx_area_fk100"], first["ctx_area_nk100"]

    def follow(**changes: str) -> httpx.Response:
        params = {**BALANCE, "CTX_AREA_FK100": fk, "CTX_AREA_NK100": nk, **changes}
        return sim.kis_trading_get("inquire-balance", "TTTC8434R", tr_cont="N", **params)

    second = follow()
    assert [r["pdno"] for r in _ok(second)["output1"]] == ["005930"]
    assert second.headers["tr_cont"] == "M"
    assert _error(follow(CTX_AREA_FK100="", CTX_AREA_NK100="")) == _missing("CTX_AREA_FK100")
    assert _error(follow(CTX_AREA_NK100="")) == _missing("CTX_AREA_NK100")
    assert _error(follow(CTX_AREA_FK100="0" * 16)) == _invalid("CTX_AREA_FK100")
    # The cursors of one query do not continue another.
    assert _error(follow(INQR_DVSN="01")) == _invalid("CTX_AREA_FK100")
    assert _error(follow(CTX_AREA_NK100="a")) == _invalid("CTX_AREA_NK100")
    not_text = base64.urlsafe_b64encode(b"\xff\xfe").decode()
    assert _error(follow(CTX_AREA_NK100=not_text)) == _invalid("CTX_AREA_NK100")
    foreign = base64.urlsafe_b64encode(b"0123456789abcdef:1").decode().rstrip("=")
    assert _error(follow(CTX_AREA_NK100=foreign)) == _invalid("CTX_AREA_NK100")
    no_offset = base64.urlsafe_b64encode(f"{fk}:x".encode()).decode().rstrip("=")
    assert _error(follow(CTX_AREA_NK100=no_offset)) == _invalid("CTX_AREA_NK100")
    beyond = base64.urlsafe_b64encode(f"{fk}:9".encode()).decode().rstrip("=")
    past_the_end = follow(CTX_AREA_NK100=beyond)
    assert _ok(past_the_end)["output1"] == []
    assert past_the_end.headers["tr_cont"] == "D"


# --- validation and ids -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "base", "field", "value"),
    [
        ("inquire-balance", BALANCE, "AFHR_FLPR_YN", "Q"),
        ("inquire-balance", BALANCE, "OFL_YN", "Q"),
        ("inquire-balance", BALANCE, "INQR_DVSN", "03"),
        ("inquire-balance", BALANCE, "UNPR_DVSN", "02"),
        ("inquire-balance", BALANCE, "FUND_STTL_ICLD_YN", "Q"),
        ("inquire-balance", BALANCE, "FNCG_AMT_AUTO_RDPT_YN", "Q"),
        ("inquire-balance", BALANCE, "PRCS_DVSN", "02"),
        ("inquire-daily-ccld", CCLD, "INQR_STRT_DT", "2025-03-21"),
        ("inquire-daily-ccld", CCLD, "INQR_END_DT", "20251301"),
        ("inquire-daily-ccld", CCLD, "SLL_BUY_DVSN_CD", "03"),
        ("inquire-daily-ccld", CCLD, "CCLD_DVSN", "03"),
        ("inquire-daily-ccld", CCLD, "INQR_DVSN", "02"),
        ("inquire-daily-ccld", CCLD, "INQR_DVSN_3", "08"),
        ("inquire-daily-ccld", CCLD, "INQR_DVSN_1", "3"),
        ("inquire-daily-ccld", CCLD, "PDNO", "5930"),
        ("inquire-daily-ccld", CCLD, "ODNO", "12a"),
        ("inquire-daily-ccld", CCLD, "EXCG_ID_DVSN_CD", "NYSE"),
        ("inquire-psbl-order", PSBL_ORDER, "PDNO", "5930"),
        ("inquire-psbl-order", PSBL_ORDER, "ORD_UNPR", "1.5"),
        ("inquire-psbl-order", PSBL_ORDER, "ORD_DVSN", "1"),
        ("inquire-psbl-order", PSBL_ORDER, "CMA_EVLU_AMT_ICLD_YN", "Q"),
        ("inquire-psbl-order", PSBL_ORDER, "OVRS_ICLD_YN", "Q"),
        ("inquire-psbl-rvsecncl", CANCELLABLE, "INQR_DVSN_1", "3"),
        ("inquire-psbl-rvsecncl", CANCELLABLE, "INQR_DVSN_2", "3"),
    ],
)
def test_bad_inquiry_values_name_the_field(
    frozen_sim: SimHarness, name: str, base: dict[str, str], field: str, value: str
) -> None:
    tr_id = {
        "inquire-balance": "TTTC8434R",
        "inquire-daily-ccld": "TTTC0081R",
        "inquire-psbl-order": "TTTC8908R",
        "inquire-psbl-rvsecncl": "TTTC0084R",
    }[name]
    response = frozen_sim.kis_trading_get(name, tr_id, **{**base, field: value})
    assert _error(response) == _invalid(field)
    assert response.json()["rt_cd"] == "2"


@pytest.mark.parametrize(
    ("name", "tr_id", "base", "optional"),
    [
        ("inquire-balance", "TTTC8434R", BALANCE, ("CTX_AREA_FK100", "CTX_AREA_NK100")),
        (
            "inquire-daily-ccld",
            "TTTC0081R",
            CCLD,
            ("CTX_AREA_FK100", "CTX_AREA_NK100", "PDNO", "ODNO", "ORD_GNO_BRNO", "INQR_DVSN_1"),
        ),
        ("inquire-psbl-order", "TTTC8908R", PSBL_ORDER, ()),
        ("inquire-psbl-rvsecncl", "TTTC0084R", CANCELLABLE, ("CTX_AREA_FK100", "CTX_AREA_NK100")),
    ],
)
def test_missing_inquiry_fields_are_named(
    frozen_sim: SimHarness, name: str, tr_id: str, base: dict[str, str], optional: tuple[str, ...]
) -> None:
    no_account = frozen_sim.kis_trading_get(name, tr_id, **base, CANO="")
    assert _error(no_account) == _missing("CANO")
    no_product = frozen_sim.kis_trading_get(name, tr_id, **base, ACNT_PRDT_CD="")
    assert _error(no_product) == _missing("ACNT_PRDT_CD")
    for field in base:
        if field not in optional:
            params = {k: v for k, v in base.items() if k != field}
            assert _error(frozen_sim.kis_trading_get(name, tr_id, **params)) == _missing(field)
    # Optional fields may be left out entirely.
    _ok(
        frozen_sim.kis_trading_get(
            name, tr_id, **{k: v for k, v in base.items() if k not in optional}
        )
    )


_REVISE = {
    "KRX_FWDG_ORD_ORGNO": "91252",
    "ORGN_ODNO": "1",
    "ORD_DVSN": "00",
    "RVSE_CNCL_DVSN_CD": "02",
    "ORD_QTY": "0",
    "ORD_UNPR": "0",
    "QTY_ALL_ORD_YN": "Y",
}


def test_modify_cancel_body_validation(frozen_sim: SimHarness) -> None:
    def revise(**changes: Any) -> tuple[int, str, str]:
        body = {**_REVISE, **changes}
        return _error(frozen_sim.kis_trading_post("order-rvsecncl", "TTTC0013U", body))

    for field in ("CANO", "ACNT_PRDT_CD", *_REVISE):
        if field == "ORD_UNPR":
            continue
        body = {**ACCOUNT, **_REVISE}
        del body[field]
        response = frozen_sim.client.post(
            f"{TRADING}/order-rvsecncl", json=body, headers=frozen_sim.kis_headers("TTTC0013U")
        )
        assert _error(response) == _missing(field)
    assert revise(ORD_UNPR=None) == _missing("ORD_UNPR")
    assert revise(ORGN_ODNO="") == _missing("ORGN_ODNO")
    assert revise(ORGN_ODNO="x1") == _invalid("ORGN_ODNO")
    assert revise(ORD_DVSN="1") == _invalid("ORD_DVSN")
    assert revise(RVSE_CNCL_DVSN_CD="03") == _invalid("RVSE_CNCL_DVSN_CD")
    assert revise(QTY_ALL_ORD_YN="X") == _invalid("QTY_ALL_ORD_YN")
    assert revise(EXCG_ID_DVSN_CD="NYSE") == _invalid("EXCG_ID_DVSN_CD")
    assert revise(EXCG_ID_DVSN_CD=1) == _invalid("EXCG_ID_DVSN_CD")
    assert revise(QTY_ALL_ORD_YN="N") == _invalid("ORD_QTY")
    assert revise(ORD_QTY="-1") == _invalid("ORD_QTY")
    assert revise(ORD_UNPR="1.5") == _invalid("ORD_UNPR")
    assert revise(RVSE_CNCL_DVSN_CD="01", ORD_UNPR="") == _invalid("ORD_UNPR")
    assert revise(CNDT_PRIC="x") == _invalid("CNDT_PRIC")
    assert revise(CNDT_PRIC=100) == _invalid("CNDT_PRIC")
    # Well-formed: the book answers (nothing to cancel), whether CNDT_PRIC is blank or not.
    assert revise(CNDT_PRIC="", EXCG_ID_DVSN_CD="")[1] == "APBK0904"
    assert revise(EXCG_ID_DVSN_CD="nxt")[1] == "APBK0904"
    assert revise(CNDT_PRIC="61000", ORD_UNPR="")[1] == "APBK0904"
    assert revise(RVSE_CNCL_DVSN_CD="01", ORD_DVSN="01")[1] == "APBK0904"
    lower = frozen_sim.client.post(
        f"{TRADING}/order-rvsecncl",
        json={k.lower(): v for k, v in {**ACCOUNT, **_REVISE}.items()},
        headers=frozen_sim.kis_headers("TTTC0013U"),
    )
    assert _error(lower) == _missing("CANO")
    not_json = frozen_sim.client.post(
        f"{TRADING}/order-rvsecncl", content=b"[]", headers=frozen_sim.kis_headers("TTTC0013U")
    )
    assert _error(not_json) == _invalid("BODY")


def test_real_only_ids_and_wrong_ids(frozen_sim: SimHarness) -> None:
    gateway = (500, "EGW00101", "유효하지 않은 요청입니다. (tr_id)")
    virtual_cancellable = frozen_sim.kis_trading_get(
        "inquire-psbl-rvsecncl", "VTTC0084R", **CANCELLABLE
    )
    assert _error(virtual_cancellable) == gateway
    assert _error(_holiday(frozen_sim, "VTCA0903R", BASS_DT="20250321")) == gateway
    assert _error(_balance(frozen_sim, "TTTC0081R")) == gateway
    assert _error(_ccld(frozen_sim, "TTTC8434R")) == gateway
    wrong_post = frozen_sim.kis_trading_post("order-rvsecncl", "TTTC0012U", _REVISE)
    assert _error(wrong_post) == gateway
    no_token = frozen_sim.client.get(
        f"{TRADING}/inquire-balance",
        params={**ACCOUNT, **BALANCE},
        headers={**frozen_sim.kis_headers("TTTC8434R"), "authorization": "Bearer x"},
    )
    assert _error(no_token)[1] == "EGW00121"
    lower_keys = frozen_sim.client.get(
        f"{TRADING}/inquire-psbl-order",
        params={k.lower(): v for k, v in {**ACCOUNT, **PSBL_ORDER}.items()},
        headers=frozen_sim.kis_headers("VTTC8908R"),
    )
    _ok(lower_keys)


# --- the holiday check ------------------------------------------------------------------


def test_holiday_check_marks_weekends_and_configured_holidays(
    make_sim: Callable[..., SimHarness],
) -> None:
    sim = make_sim(holidays=frozenset({date(2025, 3, 24)}))
    response = _holiday(sim, BASS_DT="20250321", CTX_AREA_FK="", CTX_AREA_NK="")
    body = _ok(response)
    assert response.headers["tr_id"] == "CTCA0903R"
    assert response.headers["tr_cont"] == "M"
    assert list(body) == ["ctx_area_fk", "ctx_area_nk", "output", "rt_cd", "msg_cd", "msg1"]
    rows = body["output"]
    assert len(rows) == 30
    assert set(rows[0]) == {
        "bass_dt",
        "wday_dvsn_cd",
        "bzdy_yn",
        "tr_day_yn",
        "opnd_yn",
        "sttl_day_yn",
    }
    flags = ("bzdy_yn", "tr_day_yn", "opnd_yn", "sttl_day_yn")
    week = [(r["bass_dt"], r["wday_dvsn_cd"], *(r[f] for f in flags)) for r in rows[:5]]
    assert week == [
        ("20250321", "06", "Y", "Y", "Y", "Y"),  # Friday
        ("20250322", "07", "N", "N", "N", "N"),  # Saturday
        ("20250323", "01", "N", "N", "N", "N"),  # Sunday
        ("20250324", "02", "N", "N", "N", "N"),  # the configured holiday
        ("20250325", "03", "Y", "Y", "Y", "Y"),
    ]
    pages = sim.kis_walk(f"{QUOTES}/chk-holiday", "CTCA0903R", {"BASS_DT": "20250321"}, suffix="")
    assert [p.headers["tr_cont"] for p in pages] == ["M", "M", "D"]
    days = _rows_of(pages, "output", "bass_dt")
    assert len(days) == len(set(days)) == 90
    assert days == sorted(days)
    assert days[-1] == "20250618"
    assert pages[-1].json()["ctx_area_nk"] == ""
    assert _error(_holiday(sim)) == _missing("BASS_DT")
    assert _error(_holiday(sim, BASS_DT="2025-03-21")) == _invalid("BASS_DT")


# --- the order book -----------------------------------------------------------------------


def _asking(sim: SimHarness, tr_id: str = "FHKST01010200", code: str = "005930") -> Any:
    return sim.kis_get(
        "inquire-asking-price-exp-ccn",
        tr_id,
        FID_COND_MRKT_DIV_CODE="J",
        FID_INPUT_ISCD=code,
    )


def test_asking_price_shape_and_consistency(frozen_sim: SimHarness) -> None:
    response = _asking(frozen_sim)
    body = _ok(response)
    assert (response.headers["tr_id"], response.headers["tr_cont"]) == ("FHKST01010200", "")
    assert list(body) == ["output1", "output2", "rt_cd", "msg_cd", "msg1"]
    assert _all_strings(body)
    book, expected = body["output1"], body["output2"]
    levels = range(1, 11)
    for prefix in ("askp", "bidp", "askp_rsqn", "bidp_rsqn", "askp_rsqn_icdc", "bidp_rsqn_icdc"):
        assert all(f"{prefix}{i}" in book for i in levels)
    for name in (
        "total_askp_rsqn",
        "total_bidp_rsqn",
        "total_askp_rsqn_icdc",
        "total_bidp_rsqn_icdc",
        "ovtm_total_askp_rsqn",
        "ovtm_total_bidp_rsqn",
        "ntby_aspr_rsqn",
        "aspr_acpt_hour",
        "new_mkop_cls_code",
    ):
        assert name in book
    assert set(expected) >= {
        "antc_mkop_cls_code",
        "antc_cnpr",
        "antc_cntg_vrss_sign",
        "antc_cntg_vrss",
        "antc_cntg_prdy_ctrt",
        "antc_vol",
        "stck_prpr",
        "stck_sdpr",
        "stck_shrn_iscd",
        "vi_cls_code",
    }
    asks = [int(book[f"askp{i}"]) for i in levels]
    bids = [int(book[f"bidp{i}"]) for i in levels]
    assert asks == sorted(asks)
    assert bids == sorted(bids, reverse=True)
    assert bids[0] < asks[0]
    ask_total = sum(int(book[f"askp_rsqn{i}"]) for i in levels)
    bid_total = sum(int(book[f"bidp_rsqn{i}"]) for i in levels)
    assert (book["total_askp_rsqn"], book["total_bidp_rsqn"]) == (str(ask_total), str(bid_total))
    assert book["ntby_aspr_rsqn"] == str(bid_total - ask_total)
    assert book["aspr_acpt_hour"] == "130030"
    assert book["new_mkop_cls_code"] == "20"
    price = _ok(frozen_sim.kis_price())["output"]
    assert expected["stck_prpr"] == expected["antc_cnpr"] == price["stck_prpr"]
    assert (expected["antc_cntg_vrss"], expected["antc_cntg_vrss_sign"]) == (
        price["prdy_vrss"],
        price["prdy_vrss_sign"],
    )
    assert expected["antc_cntg_prdy_ctrt"] == price["prdy_ctrt"]
    assert (expected["stck_sdpr"], expected["stck_shrn_iscd"]) == (price["stck_sdpr"], "005930")
    assert int(price["stck_prpr"]) in (asks[0], bids[0])
    # The changes are each level's quantity against the same level a second earlier.
    frozen_sim.server.clock.advance(-1)
    before = _ok(_asking(frozen_sim))["output1"]
    for side in ("askp", "bidp"):
        changes = [int(book[f"{side}_rsqn_icdc{i}"]) for i in levels]
        assert changes == [
            int(book[f"{side}_rsqn{i}"]) - int(before[f"{side}_rsqn{i}"]) for i in levels
        ]
        assert book[f"total_{side}_rsqn_icdc"] == str(sum(changes))


def test_asking_price_phases_and_validation(frozen_sim: SimHarness) -> None:
    clock = frozen_sim.server.clock
    clock.set(datetime(2025, 3, 22, 11, 0, tzinfo=KST))
    saturday = _ok(_asking(frozen_sim))["output1"]
    assert (saturday["new_mkop_cls_code"], saturday["aspr_acpt_hour"]) == ("30", "153000")
    clock.set(datetime(2025, 3, 24, 8, 30, tzinfo=KST))
    frozen_sim.forget_tokens()
    assert _ok(_asking(frozen_sim))["output1"]["new_mkop_cls_code"] == "10"
    clock.set(datetime(2025, 3, 24, 16, 0, tzinfo=KST))
    assert _ok(_asking(frozen_sim))["output1"]["new_mkop_cls_code"] == "30"
    assert _error(_asking(frozen_sim, code="5930")) == _invalid("FID_INPUT_ISCD")
    assert _error(_asking(frozen_sim, "VHKST01010200")) == (
        500,
        "EGW00101",
        "유효하지 않은 요청입니다. (tr_id)",
    )
