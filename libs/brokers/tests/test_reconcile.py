"""Matching a lost order against the broker's inquiry rows: pure functions, every branch."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from apihub_brokers import (
    Candidate,
    OrderTerms,
    candidate_rows,
    judge,
    lookup_tr,
    order_terms,
    reconciliation_inquiries,
    rows_of,
)
from apihub_brokers._reconcile import KST
from apihub_core import Provider

SENT = datetime(2025, 3, 21, 13, 0, 30, tzinfo=KST)
WINDOW = (SENT - timedelta(seconds=60), SENT + timedelta(seconds=60))
KIS_BUY = {
    "CANO": "50000000",
    "ACNT_PRDT_CD": "01",
    "PDNO": "005930",
    "ORD_DVSN": "00",
    "ORD_QTY": "2",
    "ORD_UNPR": "61800",
}


def terms(provider: Provider, tr_id: str, params: dict[str, str]) -> OrderTerms:
    spec = lookup_tr(provider, tr_id)
    assert spec is not None
    found = order_terms(spec, params)
    assert found is not None
    return found


def kis_row(**changes: str) -> dict[str, str]:
    row = {
        "odno": "0000000011",
        "orgn_odno": "",
        "pdno": "005930",
        "sll_buy_dvsn_cd": "02",
        "ord_qty": "2",
        "ord_unpr": "61800",
        "ord_tmd": "130031",
        "rmn_qty": "0",
    }
    return {**row, **changes}


def kis_candidates(*rows: dict[str, str]) -> list[Candidate]:
    return rows_of("TTTC0081R", {"output1": list(rows)})


def test_a_kis_cash_order_is_found_by_its_terms_in_the_window() -> None:
    buy = terms(Provider.KIS, "TTTC0012U", KIS_BUY)
    assert (buy.kind, buy.side, buy.quantity, buy.price, buy.market) == (
        "new",
        "buy",
        2,
        61800,
        False,
    )
    (inquiry,) = reconciliation_inquiries(buy, SENT)
    assert inquiry.tr_id == "TTTC0081R"
    assert inquiry.params["INQR_STRT_DT"] == inquiry.params["INQR_END_DT"] == "20250321"
    assert (inquiry.params["SLL_BUY_DVSN_CD"], inquiry.params["CANO"]) == ("02", "50000000")
    verdict = judge(buy, kis_candidates(kis_row()), window=WINDOW)
    assert (verdict.status, verdict.order_no) == ("found", "0000000011")
    assert candidate_rows(verdict.candidates)[0]["open_quantity"] == "0"


@pytest.mark.parametrize(
    ("row", "why"),
    [
        (kis_row(ord_tmd="125900"), "before the window"),
        (kis_row(ord_tmd="130200"), "after the window"),
        (kis_row(ord_unpr="61700"), "another price"),
        (kis_row(ord_qty="3"), "another quantity"),
        (kis_row(sll_buy_dvsn_cd="01"), "the other side"),
        (kis_row(pdno="000660"), "another symbol"),
        (kis_row(orgn_odno="0000000009"), "a modify of another order"),
        (kis_row(ord_tmd="bogus"), "no time"),
    ],
)
def test_rows_that_differ_in_any_term_are_not_the_order(row: dict[str, str], why: str) -> None:
    verdict = judge(terms(Provider.KIS, "TTTC0012U", KIS_BUY), kis_candidates(row), window=WINDOW)
    assert verdict.status == "not_found", why
    assert "late" in verdict.detail


def test_identical_orders_are_ambiguous_and_a_market_order_ignores_the_price() -> None:
    buy = terms(Provider.KIS, "TTTC0012U", KIS_BUY)
    twins = kis_candidates(kis_row(), kis_row(odno="12", ord_tmd="130040"))
    verdict = judge(buy, twins, window=WINDOW)
    assert (verdict.status, len(verdict.candidates)) == ("ambiguous", 2)
    market = terms(Provider.KIS, "TTTC0011U", {**KIS_BUY, "ORD_DVSN": "01", "ORD_UNPR": "0"})
    assert (market.side, market.market) == ("sell", True)
    sold = kis_candidates(kis_row(sll_buy_dvsn_cd="01", ord_unpr="0"))
    assert judge(market, sold, window=WINDOW).status == "found"


def test_a_window_past_midnight_covers_the_rest_of_the_day() -> None:
    late = datetime(2025, 3, 21, 23, 59, 50, tzinfo=KST)
    window = (late, late + timedelta(seconds=60))
    buy = terms(Provider.KIS, "TTTC0012U", KIS_BUY)
    assert judge(buy, kis_candidates(kis_row(ord_tmd="235959")), window=window).status == "found"


def test_a_kis_modify_or_cancel_is_found_by_the_order_it_points_at() -> None:
    revise = {
        **KIS_BUY,
        "KRX_FWDG_ORD_ORGNO": "91252",
        "ORGN_ODNO": "11",
        "RVSE_CNCL_DVSN_CD": "02",
        "QTY_ALL_ORD_YN": "Y",
    }
    cancel = terms(Provider.KIS, "TTTC0013U", revise)
    assert (cancel.kind, cancel.original_no) == ("cancel", "11")
    assert terms(Provider.KIS, "TTTC0013U", {**revise, "RVSE_CNCL_DVSN_CD": "01"}).kind == "modify"
    rows = kis_candidates(kis_row(), kis_row(odno="0000000014", orgn_odno="0000000011"))
    verdict = judge(cancel, rows, window=WINDOW)
    assert (verdict.status, verdict.order_no) == ("found", "0000000014")
    assert judge(cancel, kis_candidates(kis_row()), window=WINDOW).detail == (
        "no order points at 11"
    )


def kiwoom_open(**changes: str) -> dict[str, str]:
    row = {
        "ord_no": "0000005",
        "stk_cd": "005930",
        "io_tp_nm": "+매수",
        "ord_qty": "7",
        "ord_pric": "50100",
        "oso_qty": "7",
        "tm": "130031",
        "orig_ord_no": "0000000",
    }
    return {**row, **changes}


def test_a_kiwoom_order_open_and_partly_filled_is_one_order() -> None:
    order = {"dmst_stex_tp": "KRX", "stk_cd": "005930", "ord_qty": "7", "ord_uv": "50100"}
    buy = terms(Provider.KIWOOM, "kt10000", {**order, "trde_tp": "0"})
    inquiries = reconciliation_inquiries(buy, SENT)
    assert [i.tr_id for i in inquiries] == ["ka10075", "ka10076"]
    assert inquiries[0].params == {
        "all_stk_tp": "1",
        "trde_tp": "2",
        "stk_cd": "005930",
        "stex_tp": "0",
    }
    fill = {**kiwoom_open(), "ord_tm": "130031"}
    rows = rows_of("ka10075", {"oso": [kiwoom_open(), "junk"]}) + rows_of(
        "ka10076", {"cntr": [fill]}
    )
    verdict = judge(buy, rows, window=WINDOW)
    assert (verdict.status, verdict.order_no, len(verdict.candidates)) == ("found", "0000005", 2)
    assert terms(Provider.KIWOOM, "kt10001", {**order, "trde_tp": "3"}).market


def test_a_kiwoom_cancel_is_judged_by_whether_the_original_is_still_open() -> None:
    cancel = terms(
        Provider.KIWOOM,
        "kt10003",
        {"dmst_stex_tp": "KRX", "orig_ord_no": "5", "stk_cd": "005930", "cncl_qty": "0"},
    )
    assert (cancel.kind, cancel.side) == ("cancel", "")
    assert reconciliation_inquiries(cancel, SENT)[0].params["trde_tp"] == "0"
    still_open = judge(cancel, rows_of("ka10075", {"oso": [kiwoom_open()]}), window=WINDOW)
    assert still_open.status == "not_found"
    assert "still open" in still_open.detail
    gone = judge(cancel, [], window=WINDOW)
    assert gone.status == "ambiguous"
    modify = terms(
        Provider.KIWOOM,
        "kt10002",
        {
            "dmst_stex_tp": "KRX",
            "orig_ord_no": "5",
            "stk_cd": "005930",
            "mdfy_qty": "0",
            "mdfy_uv": "50000",
        },
    )
    moved = rows_of("ka10075", {"oso": [kiwoom_open(ord_no="0000006", orig_ord_no="0000005")]})
    assert judge(modify, moved, window=WINDOW).order_no == "0000006"


def test_what_cannot_be_reconciled_or_read_is_said_so() -> None:
    quote = lookup_tr(Provider.KIS, "FHKST01010100")
    assert quote is not None
    assert order_terms(quote, {}) is None
    chart = lookup_tr(Provider.KIWOOM, "ka10081")
    assert chart is not None
    assert order_terms(chart, {}) is None
    assert rows_of("TTTC0081R", ["not", "an", "object"]) == []
    assert rows_of("TTTC0081R", {"output1": "nope"}) == []
    assert rows_of("ka10076", {"cntr": [{"ord_qty": "x1", "io_tp_nm": "?"}]})[0].quantity == 0
