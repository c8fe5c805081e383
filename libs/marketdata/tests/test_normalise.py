"""The entry point: which TRs carry market data, and what every error carries."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from apihub_marketdata import (
    MARKET_DATA_TRS,
    NORMALISE_REASONS,
    MarketDataError,
    NormaliseError,
    carries_market_data,
    normalise,
)


def test_the_market_data_trs() -> None:
    assert (
        frozenset(
            {
                ("KIS", "FHKST03010200"),
                ("KIS", "FHKST03010230"),
                ("KIS", "FHKST03010100"),
                ("KIS", "FHKST01010400"),
                ("KIS", "FHKST01010300"),
                ("KIS", "FHKST01010100"),
                ("KIWOOM", "ka10081"),
                ("KIWOOM", "ka10080"),
                ("KIWOOM", "ka10079"),
            }
        )
        == MARKET_DATA_TRS
    )


@pytest.mark.parametrize(
    ("provider", "tr_id", "expected"),
    [
        ("KIS", "FHKST03010200", True),
        ("kis", "fhkst03010200", True),
        (" KIWOOM ", "KA10081", True),
        ("KIS", "TTTC0012U", False),
        ("KIWOOM", "ka10001", False),
        ("KIWOOM", "FHKST03010200", False),
        ("OTHER", "ka10081", False),
    ],
)
def test_carries_market_data(provider: str, tr_id: str, expected: bool) -> None:
    assert carries_market_data(provider, tr_id) is expected


def test_an_unsupported_tr_is_refused_by_name() -> None:
    with pytest.raises(NormaliseError) as caught:
        normalise("KIS", "TTTC0012U", {}, b"{}", lineage="x")
    error = caught.value
    assert (error.reason, error.provider, error.tr_id) == ("unsupported_tr", "KIS", "TTTC0012U")
    assert str(error) == "KIS TTTC0012U: unsupported_tr: no market data in this TR"


def test_names_are_matched_case_insensitively_and_reported_canonically(
    raw: Callable[[str], bytes],
) -> None:
    params = {"stk_cd": "005930", "base_dt": "20250321", "upd_stkpc_tp": "1"}
    found = normalise("kiwoom", "KA10081", params, raw("kiwoom_ka10081"), lineage="x")
    assert {c.provider for c in found.candles} == {"KIWOOM"}
    with pytest.raises(NormaliseError) as caught:
        normalise("kiwoom", "KA10081", params, b"{", lineage="x")
    assert (caught.value.provider, caught.value.tr_id) == ("KIWOOM", "ka10081")


def test_the_error_tree() -> None:
    assert issubclass(NormaliseError, MarketDataError)
    bare = NormaliseError("bad_time")
    assert str(bare) == "bad_time"
    assert bare.detail == ""
    assert str(NormaliseError("bad_time", "row 3")) == "bad_time: row 3"
    assert "unsupported_tr" in NORMALISE_REASONS
