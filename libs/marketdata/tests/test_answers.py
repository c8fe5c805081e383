"""Every market-data TR against the same answer shapes: a normal answer, an empty one, a broker
error, and the ways an answer can be broken. A broken answer fails as a whole, with a stable
reason and a detail naming the row (in the broker's order) and the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from apihub_marketdata import (
    KST,
    MARKET_DATA_TRS,
    NORMALISE_REASONS,
    MarketData,
    NormaliseError,
    normalise,
)

Answer = dict[str, Any]
RECEIVED = datetime(2025, 3, 21, 13, 0, 5, tzinfo=KST)
KIS_PARAMS = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930", "FID_PERIOD_DIV_CODE": "D"}


@dataclass(frozen=True)
class Case:
    """One TR: its fixture, where its rows are, and a field of each kind to break."""

    provider: str
    tr_id: str
    fixture: str
    rows: str  # the list (or, for the current price, the object) holding the rows
    count: int  # items the fixture becomes
    number: str  # a number field
    when: str  # the date/time field
    bad_when: str
    inconsistent: dict[str, str]  # what makes the first row impossible
    params: dict[str, str] = field(default_factory=lambda: dict(KIS_PARAMS))

    @property
    def error(self) -> str:
        return "kis_error_rate_limited" if self.provider == "KIS" else "kiwoom_error_rate_limited"

    def __str__(self) -> str:
        return self.tr_id


KIWOOM = {"stk_cd": "005930", "tic_scope": "1", "upd_stkpc_tp": "1"}
CASES = [
    Case("KIS", "FHKST03010200", "kis_FHKST03010200", "output2", 30, "stck_oprc",
         "stck_cntg_hour", "126000", {"stck_hgpr": "61700"}),
    Case("KIS", "FHKST03010230", "kis_FHKST03010230", "output2", 31, "cntg_vol",
         "stck_bsop_date", "20250230", {"stck_lwpr": "99999"}),
    Case("KIS", "FHKST03010100", "kis_FHKST03010100", "output2", 15, "acml_vol",
         "stck_bsop_date", "2025-03-21", {"stck_oprc": "0"}),
    Case("KIS", "FHKST01010400", "kis_FHKST01010400", "output", 10, "stck_clpr",
         "stck_bsop_date", "20251321", {"stck_hgpr": "100"}),
    Case("KIS", "FHKST01010300", "kis_FHKST01010300", "output", 12, "cntg_vol",
         "stck_cntg_hour", "12:59:50", {"stck_prpr": "0"}),
    Case("KIS", "FHKST01010100", "kis_FHKST01010100", "output", 1, "acml_vol",
         "", "", {"stck_hgpr": "61700"}),
    Case("KIWOOM", "ka10081", "kiwoom_ka10081", "stk_dt_pole_chart_qry", 5, "trde_qty",
         "dt", "2025032", {"high_pric": "+100"}, dict(KIWOOM)),
    Case("KIWOOM", "ka10080", "kiwoom_ka10080", "stk_min_pole_chart_qry", 20, "open_pric",
         "cntr_tm", "20250321250000", {"low_pric": "-99999"}, dict(KIWOOM)),
    Case("KIWOOM", "ka10079", "kiwoom_ka10079", "stk_tic_chart_qry", 20, "cur_prc",
         "cntr_tm", "2025032112595", {"cur_prc": "0"}, dict(KIWOOM)),
]  # fmt: skip


def run(case: Case, body: bytes) -> MarketData:
    return normalise(
        case.provider, case.tr_id, case.params, body, lineage="L", received_at=RECEIVED
    )


def failure(case: Case, body: bytes) -> NormaliseError:
    with pytest.raises(NormaliseError) as caught:
        run(case, body)
    error = caught.value
    assert error.reason in NORMALISE_REASONS
    assert (error.provider, error.tr_id) == (case.provider, case.tr_id)
    assert "\n" not in str(error)
    return error


def first_row(data: Answer, case: Case) -> dict[str, Any]:
    rows = data[case.rows]
    return rows if isinstance(rows, dict) else rows[0]


def where(case: Case) -> str:
    return case.rows if case.tr_id == "FHKST01010100" else f"{case.rows}[0]"


def encode(data: Answer) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


cases = pytest.mark.parametrize("case", CASES, ids=str)


def test_the_cases_cover_every_market_data_tr() -> None:
    assert {(c.provider, c.tr_id) for c in CASES} == MARKET_DATA_TRS


@cases
def test_a_normal_answer(case: Case, raw: Callable[[str], bytes]) -> None:
    result = run(case, raw(case.fixture))
    items = result.candles + result.ticks + result.snapshots
    assert len(items) == case.count
    assert bool(result)
    stamps = [item.ts for item in items]
    assert stamps == sorted(stamps)
    assert all(item.provider == case.provider for item in items)
    assert all(item.symbol == "005930" for item in items)
    assert all(item.lineage == "L" for item in items)
    assert all(item.ts.utcoffset() == KST.utcoffset(None) for item in items)


@cases
def test_an_empty_answer_is_empty_market_data(case: Case, answer: Callable[[str], Answer]) -> None:
    data = answer(case.fixture)
    if isinstance(data[case.rows], dict):
        data[case.rows] = dict.fromkeys(data[case.rows], "")
    else:
        data[case.rows] = []
    assert run(case, encode(data)) == MarketData()


@cases
def test_a_padding_row_of_empty_strings_is_empty_market_data(
    case: Case, answer: Callable[[str], Answer]
) -> None:
    data = answer(case.fixture)
    if isinstance(data[case.rows], dict):
        pytest.skip("one object: blanking it is the empty answer")
    data[case.rows] = [dict.fromkeys(data[case.rows][0], "")]
    assert run(case, encode(data)) == MarketData()


@cases
def test_a_broker_error(case: Case, raw: Callable[[str], bytes]) -> None:
    error = failure(case, raw(case.error))
    assert error.reason == "broker_error"
    assert ("EGW00201" if case.provider == "KIS" else "1700") in error.detail


@cases
def test_a_truncated_answer_is_malformed_json(case: Case, raw: Callable[[str], bytes]) -> None:
    body = raw(case.fixture)
    for cut in (len(body) // 2, len(body) - 3, 1):
        assert failure(case, body[:cut]).reason == "malformed_json"


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[1, 2]", b'"text"', b"null", b"\xff\xfe"], ids=repr
)
@cases
def test_what_is_not_a_json_object_is_malformed_json(case: Case, body: bytes) -> None:
    assert failure(case, body).reason == "malformed_json"


@cases
def test_a_value_of_the_wrong_json_type_is_malformed_json(
    case: Case, answer: Callable[[str], Answer]
) -> None:
    data = answer(case.fixture)
    first_row(data, case)[case.number] = 70100
    error = failure(case, encode(data))
    assert error.reason == "malformed_json"
    assert case.number in error.detail


@cases
def test_a_missing_row_list_is_a_missing_field(case: Case, answer: Callable[[str], Answer]) -> None:
    data = answer(case.fixture)
    del data[case.rows]
    error = failure(case, encode(data))
    assert error.reason == "missing_field"
    assert repr(case.rows) in error.detail


@cases
def test_a_missing_result_code_is_a_missing_field(
    case: Case, answer: Callable[[str], Answer]
) -> None:
    data = answer(case.fixture)
    del data["rt_cd" if case.provider == "KIS" else "return_code"]
    assert failure(case, encode(data)).reason == "missing_field"


@pytest.mark.parametrize("bad", ["7O100", "", "1_000", "７０１００", "70100.5", "--5"])
@cases
def test_a_number_that_does_not_parse(
    case: Case, answer: Callable[[str], Answer], bad: str
) -> None:
    data = answer(case.fixture)
    first_row(data, case)[case.number] = bad
    error = failure(case, encode(data))
    assert error.reason == "bad_number"
    assert error.detail == f"{where(case)}.{case.number}: {bad!r} is not a whole number"


@cases
def test_a_time_that_does_not_parse(case: Case, answer: Callable[[str], Answer]) -> None:
    if not case.when:
        pytest.skip("the current price carries no time of its own")
    data = answer(case.fixture)
    first_row(data, case)[case.when] = case.bad_when
    error = failure(case, encode(data))
    assert error.reason == "bad_time"
    assert error.detail.startswith(f"{where(case)}: ")
    assert repr(case.bad_when) in error.detail


@cases
def test_an_impossible_bar_fails_the_whole_answer(
    case: Case, answer: Callable[[str], Answer]
) -> None:
    data = answer(case.fixture)
    first_row(data, case).update(case.inconsistent)
    error = failure(case, encode(data))
    assert error.reason == "inconsistent_bar"
    assert error.detail.startswith(f"{where(case)}: ")


@cases
def test_a_bad_row_anywhere_fails_the_answer_and_is_named(
    case: Case, answer: Callable[[str], Answer]
) -> None:
    data = answer(case.fixture)
    rows = data[case.rows]
    if isinstance(rows, dict):
        pytest.skip("one object, one row")
    rows[-1][case.number] = "x"
    error = failure(case, encode(data))
    assert error.reason == "bad_number"
    assert error.detail.startswith(f"{case.rows}[{len(rows) - 1}].{case.number}: ")


@cases
def test_the_symbol_is_required(case: Case, raw: Callable[[str], bytes]) -> None:
    params = {k: v for k, v in case.params.items() if k not in ("FID_INPUT_ISCD", "stk_cd")}
    body = raw(case.fixture)
    with pytest.raises(NormaliseError) as caught:
        normalise(case.provider, case.tr_id, params, body, lineage="L", received_at=RECEIVED)
    assert caught.value.reason == "missing_field"
    assert "parameter" in caught.value.detail
