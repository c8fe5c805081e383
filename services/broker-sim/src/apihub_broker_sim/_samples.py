"""Requests the simulator answers out of the box, for tests, demos and benchmarks.

Read-only mappings: share them freely, copy them (``{**KIS_PRICE, ...}``) to change a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

KIS_PRICE: Final[Mapping[str, str]] = MappingProxyType(
    {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}
)
"""KIS FHKST01010100 (current price) of Samsung Electronics."""

KIWOOM_DAILY: Final[Mapping[str, str]] = MappingProxyType(
    {"stk_cd": "005930", "base_dt": "20250321", "upd_stkpc_tp": "1"}
)
"""Kiwoom ka10081 (daily bars) of Samsung Electronics up to 2025-03-21."""

KIS_ORDER: Final[Mapping[str, str]] = MappingProxyType(
    {
        "CANO": "50000000",
        "ACNT_PRDT_CD": "01",
        "PDNO": "005930",
        "ORD_DVSN": "00",
        "ORD_QTY": "1",
        "ORD_UNPR": "70000",
    }
)
"""KIS TTTC0012U (cash buy): one share of Samsung Electronics at 70,000 KRW, limit order."""
