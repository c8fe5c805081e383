"""The TRs apihub knows: where each one lives, what it needs and how it pages.

Parameter names follow the brokers' per-API documents (the KIS Open API portal
https://apiportal.koreainvestment.com and its sample repository
https://github.com/koreainvestment/open-trading-api; the Kiwoom REST API guide
https://openapi.kiwoom.com): KIS names are upper-case (query parameters of the GETs, JSON keys
of the order POST), Kiwoom names are the lower-case JSON keys of its POST bodies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from apihub_core import Provider

HttpMethod = Literal["GET", "POST"]
Paging = Literal["none", "tr_cont", "cont_key", "date_window", "hour_window"]
"""How a TR pages: not at all, KIS ``tr_cont`` headers, Kiwoom ``cont-yn``/``next-key`` headers,
or by moving a date (``FID_INPUT_DATE_2``) or time (``FID_INPUT_HOUR_1``) window back."""


@dataclass(frozen=True, slots=True)
class TrSpec:
    """One broker transaction (KIS ``tr_id`` / Kiwoom ``api-id``) and how to call it."""

    provider: Provider
    tr_id: str
    method: HttpMethod
    path: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    is_order: bool = False
    """Non-idempotent: never retried once the request may have reached the broker."""
    paging: Paging = "none"
    family: str = ""
    """Endpoint family (``quotations``, ``chart``, ``order``) for a per-family circuit breaker."""
    description: str = ""

    def missing_params(self, params: Mapping[str, str]) -> tuple[str, ...]:
        """The required parameters absent from ``params`` (names compared case-insensitively)."""
        present = {name.upper() for name in params}
        return tuple(name for name in self.required if name.upper() not in present)


_KIS_QUOTE_PREFIX = "/uapi/domestic-stock/v1/quotations/"
_KIS_ORDER_PATH = "/uapi/domestic-stock/v1/trading/order-cash"
_KIS_MARKET_STOCK = ("FID_COND_MRKT_DIV_CODE", "FID_INPUT_ISCD")
_KIS_ORDER_REQUIRED = ("CANO", "ACNT_PRDT_CD", "PDNO", "ORD_DVSN", "ORD_QTY", "ORD_UNPR")
_KIS_ORDER_OPTIONAL = ("EXCG_ID_DVSN_CD", "SLL_TYPE", "CNDT_PRIC")

_KIWOOM_CHART_PATH = "/api/dostk/chart"
_KIWOOM_ORDER_PATH = "/api/dostk/ordr"
_KIWOOM_ORDER_REQUIRED = ("dmst_stex_tp", "stk_cd", "ord_qty", "trde_tp")
_KIWOOM_ORDER_OPTIONAL = ("ord_uv", "cond_uv")


def _kis_order(tr_id: str, description: str) -> TrSpec:
    return TrSpec(
        Provider.KIS,
        tr_id,
        "POST",
        _KIS_ORDER_PATH,
        _KIS_ORDER_REQUIRED,
        _KIS_ORDER_OPTIONAL,
        is_order=True,
        family="order",
        description=description,
    )


def _kiwoom_order(tr_id: str, description: str) -> TrSpec:
    return TrSpec(
        Provider.KIWOOM,
        tr_id,
        "POST",
        _KIWOOM_ORDER_PATH,
        _KIWOOM_ORDER_REQUIRED,
        _KIWOOM_ORDER_OPTIONAL,
        is_order=True,
        family="order",
        description=description,
    )


_CATALOG: tuple[TrSpec, ...] = (
    TrSpec(
        Provider.KIS,
        "FHKST01010100",
        "GET",
        _KIS_QUOTE_PREFIX + "inquire-price",
        _KIS_MARKET_STOCK,
        family="quotations",
        description="주식현재가 시세: current price (output object)",
    ),
    TrSpec(
        Provider.KIS,
        "FHKST01010300",
        "GET",
        _KIS_QUOTE_PREFIX + "inquire-ccnl",
        _KIS_MARKET_STOCK,
        family="quotations",
        description="주식현재가 체결: last 30 trades (output array)",
    ),
    TrSpec(
        Provider.KIS,
        "FHKST01010400",
        "GET",
        _KIS_QUOTE_PREFIX + "inquire-daily-price",
        (*_KIS_MARKET_STOCK, "FID_PERIOD_DIV_CODE", "FID_ORG_ADJ_PRC"),
        family="quotations",
        description="주식현재가 일자별: last 30 days/weeks/months (output array)",
    ),
    TrSpec(
        Provider.KIS,
        "FHKST03010100",
        "GET",
        _KIS_QUOTE_PREFIX + "inquire-daily-itemchartprice",
        (
            *_KIS_MARKET_STOCK,
            "FID_INPUT_DATE_1",
            "FID_INPUT_DATE_2",
            "FID_PERIOD_DIV_CODE",
            "FID_ORG_ADJ_PRC",
        ),
        paging="date_window",
        family="chart",
        description="국내주식기간별시세: D/W/M/Y bars, at most 100 rows, newest first",
    ),
    TrSpec(
        Provider.KIS,
        "FHKST03010200",
        "GET",
        _KIS_QUOTE_PREFIX + "inquire-time-itemchartprice",
        (*_KIS_MARKET_STOCK, "FID_INPUT_HOUR_1", "FID_PW_DATA_INCU_YN", "FID_ETC_CLS_CODE"),
        paging="hour_window",
        family="chart",
        description="주식당일분봉조회: today's minute bars, at most 30 rows, newest first "
        "(send FID_ETC_CLS_CODE blank)",
    ),
    _kis_order("TTTC0012U", "주식주문(현금) buy"),
    _kis_order("TTTC0011U", "주식주문(현금) sell"),
    _kis_order("TTTC0802U", "주식주문(현금) buy, legacy TR id"),
    _kis_order("TTTC0801U", "주식주문(현금) sell, legacy TR id"),
    TrSpec(
        Provider.KIWOOM,
        "ka10001",
        "POST",
        "/api/dostk/stkinfo",
        ("stk_cd",),
        family="quotations",
        description="주식기본정보요청: basic info and current price",
    ),
    TrSpec(
        Provider.KIWOOM,
        "ka10081",
        "POST",
        _KIWOOM_CHART_PATH,
        ("stk_cd", "base_dt", "upd_stkpc_tp"),
        paging="cont_key",
        family="chart",
        description="주식일봉차트조회요청: daily bars, newest first",
    ),
    TrSpec(
        Provider.KIWOOM,
        "ka10080",
        "POST",
        _KIWOOM_CHART_PATH,
        ("stk_cd", "tic_scope", "upd_stkpc_tp"),
        ("base_dt",),
        paging="cont_key",
        family="chart",
        description="주식분봉차트조회요청: minute bars",
    ),
    TrSpec(
        Provider.KIWOOM,
        "ka10079",
        "POST",
        _KIWOOM_CHART_PATH,
        ("stk_cd", "tic_scope", "upd_stkpc_tp"),
        paging="cont_key",
        family="chart",
        description="주식틱차트조회요청: tick bars",
    ),
    _kiwoom_order("kt10000", "주식 매수주문: buy"),
    _kiwoom_order("kt10001", "주식 매도주문: sell"),
)

_BY_KEY: dict[tuple[Provider, str], TrSpec] = {(s.provider, s.tr_id): s for s in _CATALOG}

_KIS_VPS_PREFIXES = ("T", "J", "C")
"""Real TR ids starting with these letters become ``V…`` on the virtual (vps) domain."""


def kis_wire_tr_id(tr_id: str, *, virtual: bool) -> str:
    """The ``tr_id`` header KIS expects: ``T…``/``J…``/``C…`` become ``V…`` on vps, as the
    official sample client ``kis_auth._url_fetch`` (koreainvestment/open-trading-api) does."""
    if virtual and tr_id[:1] in _KIS_VPS_PREFIXES:
        return "V" + tr_id[1:]
    return tr_id


def lookup_tr(provider: Provider, tr_id: str) -> TrSpec | None:
    """The spec of ``tr_id``, or ``None`` when apihub does not know it.

    KIS ids are matched upper-case and a vps id (``VTTC0012U``) resolves to its real twin;
    Kiwoom ids are matched lower-case.
    """
    if provider is Provider.KIWOOM:
        return _BY_KEY.get((provider, tr_id.strip().lower()))
    wanted = tr_id.strip().upper()
    spec = _BY_KEY.get((provider, wanted))
    if spec is None and wanted.startswith("V"):
        for prefix in _KIS_VPS_PREFIXES:
            spec = _BY_KEY.get((provider, prefix + wanted[1:]))
            if spec is not None:
                break
    return spec


def known_trs(provider: Provider | None = None) -> list[TrSpec]:
    """Every TR in the catalog, or those of ``provider``, in catalog order."""
    return [s for s in _CATALOG if provider is None or s.provider is provider]
