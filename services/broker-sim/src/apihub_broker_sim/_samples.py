"""Requests the simulator answers out of the box, for tests, demos and benchmarks.

Typed as read-only mappings: copy one (``{**KIS_PRICE, "FID_INPUT_ISCD": "000660"}``) to
change a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

KIS_PRICE: Final[Mapping[str, str]] = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}
"""KIS FHKST01010100 (current price) of Samsung Electronics."""

KIWOOM_DAILY: Final[Mapping[str, str]] = {
    "stk_cd": "005930",
    "base_dt": "20250321",
    "upd_stkpc_tp": "1",
}
"""Kiwoom ka10081 (daily bars) of Samsung Electronics up to 2025-03-21."""

KIS_ORDER: Final[Mapping[str, str]] = {
    "CANO": "50000000",
    "ACNT_PRDT_CD": "01",
    "PDNO": "005930",
    "ORD_DVSN": "00",
    "ORD_QTY": "1",
    "ORD_UNPR": "70000",
}
"""KIS TTTC0012U (cash buy): one share of Samsung Electronics at 70,000 KRW, limit order."""
