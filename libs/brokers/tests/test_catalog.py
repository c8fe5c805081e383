from __future__ import annotations

import dataclasses

import pytest

from apihub_brokers import TrSpec, known_trs, lookup_tr
from apihub_core import Provider

KIS_QUOTES = {
    "FHKST01010100": "/uapi/domestic-stock/v1/quotations/inquire-price",
    "FHKST01010300": "/uapi/domestic-stock/v1/quotations/inquire-ccnl",
    "FHKST01010400": "/uapi/domestic-stock/v1/quotations/inquire-daily-price",
    "FHKST03010100": "/uapi/domestic-stock/v1/quotations/inquire-daily-itemchartprice",
    "FHKST03010200": "/uapi/domestic-stock/v1/quotations/inquire-time-itemchartprice",
    "FHKST03010230": "/uapi/domestic-stock/v1/quotations/inquire-time-dailychartprice",
}
KIS_ORDERS = ("TTTC0012U", "TTTC0011U", "TTTC0802U", "TTTC0801U")
KIS_OTHER_QUOTES = {"FHKST01010200", "CTCA0903R"}
KIS_ACCOUNT = {
    "TTTC8434R": "inquire-balance",
    "TTTC0081R": "inquire-daily-ccld",
    "CTSC9215R": "inquire-daily-ccld",
    "TTTC8001R": "inquire-daily-ccld",
    "CTSC9115R": "inquire-daily-ccld",
    "TTTC0084R": "inquire-psbl-rvsecncl",
}
KIS_MODIFY = ("TTTC0013U", "TTTC0803U")
KIWOOM_QUERIES = {
    "ka10001",
    "ka10081",
    "ka10080",
    "ka10079",
    "ka10004",
    "kt00018",
    "ka10075",
    "ka10076",
}
KIWOOM_ORDERS = {"kt10000", "kt10001", "kt10002", "kt10003"}


@pytest.mark.parametrize(("tr_id", "path"), KIS_QUOTES.items())
def test_kis_quotes_are_gets_without_side_effects(tr_id: str, path: str) -> None:
    spec = lookup_tr(Provider.KIS, tr_id)
    assert spec is not None
    assert (spec.method, spec.path, spec.is_order) == ("GET", path, False)
    assert spec.required[:2] == ("FID_COND_MRKT_DIV_CODE", "FID_INPUT_ISCD")
    assert all(name == name.upper() for name in spec.required)


def test_kis_chart_paging_moves_a_window() -> None:
    daily = lookup_tr(Provider.KIS, "FHKST03010100")
    minute = lookup_tr(Provider.KIS, "FHKST03010200")
    assert daily is not None
    assert minute is not None
    assert (daily.paging, minute.paging) == ("date_window", "hour_window")
    assert {"FID_INPUT_DATE_1", "FID_INPUT_DATE_2"} <= set(daily.required)
    assert "FID_INPUT_HOUR_1" in minute.required
    assert daily.family == minute.family == "chart"


@pytest.mark.parametrize("tr_id", KIS_ORDERS)
def test_kis_orders_are_non_idempotent_posts(tr_id: str) -> None:
    spec = lookup_tr(Provider.KIS, tr_id)
    assert spec is not None
    assert spec.method == "POST"
    assert spec.path == "/uapi/domestic-stock/v1/trading/order-cash"
    assert spec.is_order
    assert spec.family == "order"
    assert spec.required == ("CANO", "ACNT_PRDT_CD", "PDNO", "ORD_DVSN", "ORD_QTY", "ORD_UNPR")


@pytest.mark.parametrize("tr_id", KIS_ORDERS)
def test_kis_vps_order_ids_resolve_to_the_real_spec(tr_id: str) -> None:
    assert lookup_tr(Provider.KIS, "V" + tr_id[1:]) is lookup_tr(Provider.KIS, tr_id)


def test_lookup_normalises_case_and_rejects_unknown_ids() -> None:
    assert lookup_tr(Provider.KIS, "fhkst01010100") is lookup_tr(Provider.KIS, "FHKST01010100")
    assert lookup_tr(Provider.KIWOOM, "KA10081") is lookup_tr(Provider.KIWOOM, "ka10081")
    assert lookup_tr(Provider.KIS, "VHKST01010100") is None  # only T/J/C ids have vps twins
    assert lookup_tr(Provider.KIS, "ka10081") is None
    assert lookup_tr(Provider.KIWOOM, "FHKST01010100") is None
    assert lookup_tr(Provider.KIS, "") is None


def test_kiwoom_catalog() -> None:
    info = lookup_tr(Provider.KIWOOM, "ka10001")
    assert info is not None
    assert (info.method, info.path, info.required) == ("POST", "/api/dostk/stkinfo", ("stk_cd",))
    for tr_id in ("ka10081", "ka10080", "ka10079"):
        chart = lookup_tr(Provider.KIWOOM, tr_id)
        assert chart is not None
        assert (chart.path, chart.paging, chart.is_order) == ("/api/dostk/chart", "cont_key", False)
    daily = lookup_tr(Provider.KIWOOM, "ka10081")
    assert daily is not None
    assert daily.required == ("stk_cd", "base_dt", "upd_stkpc_tp")
    for tr_id in ("kt10000", "kt10001"):
        order = lookup_tr(Provider.KIWOOM, tr_id)
        assert order is not None
        assert (order.path, order.is_order) == ("/api/dostk/ordr", True)
        assert order.required == ("dmst_stex_tp", "stk_cd", "ord_qty", "trde_tp")
        assert "ord_uv" in order.optional


def test_known_trs_filters_by_provider() -> None:
    every = known_trs()
    kis = known_trs(Provider.KIS)
    kiwoom = known_trs(Provider.KIWOOM)
    assert len(every) == len(kis) + len(kiwoom) == 33
    assert {s.tr_id for s in kis} == (
        set(KIS_QUOTES) | set(KIS_ORDERS) | KIS_OTHER_QUOTES | set(KIS_ACCOUNT)
    ) | {"TTTC8908R", *KIS_MODIFY}
    assert {s.tr_id for s in kiwoom} == KIWOOM_QUERIES | KIWOOM_ORDERS
    assert {s.tr_id for s in every if s.is_order} == set(KIS_ORDERS) | set(KIS_MODIFY) | (
        KIWOOM_ORDERS
    )
    assert all(s.family and s.description for s in every)
    assert all(lookup_tr(s.provider, s.tr_id) is s for s in every)


def test_spec_is_frozen_and_reports_missing_params() -> None:
    spec = lookup_tr(Provider.KIS, "FHKST01010100")
    assert isinstance(spec, TrSpec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.tr_id = "X"  # type: ignore[misc]
    assert spec.missing_params({"fid_cond_mrkt_div_code": "J"}) == ("FID_INPUT_ISCD",)
    assert spec.missing_params({"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": ""}) == ()


@pytest.mark.parametrize(("tr_id", "leaf"), KIS_ACCOUNT.items())
def test_kis_account_inquiries_page_with_body_cursors(tr_id: str, leaf: str) -> None:
    spec = lookup_tr(Provider.KIS, tr_id)
    assert spec is not None
    assert (spec.method, spec.path) == ("GET", f"/uapi/domestic-stock/v1/trading/{leaf}")
    assert (spec.paging, spec.cont_fields) == ("tr_cont", ("CTX_AREA_FK100", "CTX_AREA_NK100"))
    assert spec.required[:2] == ("CANO", "ACNT_PRDT_CD")
    assert set(spec.cont_fields) <= set(spec.optional)
    assert not spec.is_order


def test_kis_modify_and_cancel_are_orders_and_the_holiday_check_pages_without_100() -> None:
    for tr_id in KIS_MODIFY:
        spec = lookup_tr(Provider.KIS, tr_id)
        assert spec is not None
        assert (spec.method, spec.is_order, spec.family) == ("POST", True, "order")
        assert spec.path.endswith("/trading/order-rvsecncl")
        assert "RVSE_CNCL_DVSN_CD" in spec.required
    holiday = lookup_tr(Provider.KIS, "CTCA0903R")
    assert holiday is not None
    assert holiday.cont_fields == ("CTX_AREA_FK", "CTX_AREA_NK")
    assert holiday.wire_tr_id(virtual=True) == "CTCA0903R"  # real only: no vps twin


def test_kiwoom_account_and_order_trs() -> None:
    for tr_id in ("kt00018", "ka10075", "ka10076"):
        spec = lookup_tr(Provider.KIWOOM, tr_id)
        assert spec is not None
        assert (spec.path, spec.paging, spec.is_order) == ("/api/dostk/acnt", "cont_key", False)
    for tr_id in ("kt10002", "kt10003"):
        spec = lookup_tr(Provider.KIWOOM, tr_id)
        assert spec is not None
        assert (spec.path, spec.is_order) == ("/api/dostk/ordr", True)
        assert "orig_ord_no" in spec.required
    book = lookup_tr(Provider.KIWOOM, "ka10004")
    assert book is not None
    assert (book.path, book.required) == ("/api/dostk/mrkcond", ("stk_cd",))
