"""The observer pipeline, pure: validation (the normaliser), every guard rule, enrichment, and
the whole of it on answers as the broker sends them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest

from apihub_collector import observe
from apihub_collector._collector import broker_time
from apihub_collector._scalp import (
    GUARD_REASONS,
    Quote,
    Rejected,
    enrich,
    guard,
    quote_of,
    scalp_params,
    validate,
)
from apihub_core import Provider, Response, SnapshotQuarantined, SnapshotRecorded
from apihub_marketdata import KST, Snapshot

WHEN = datetime(2025, 3, 21, 10, 30, 5, tzinfo=KST)
PARAMS = scalp_params(Provider.KIS, "005930")


def answer(**output: str) -> dict[str, Any]:
    """A FHKST01010100 answer: 71,500 won, up 500 on the day (previous close 71,000)."""
    fields = {
        "stck_shrn_iscd": "005930",
        "stck_prpr": "71500",
        "prdy_vrss": "500",
        "stck_oprc": "71000",
        "stck_hgpr": "71800",
        "stck_lwpr": "70900",
        "acml_vol": "1000000",
        "acml_tr_pbmn": "71500000000",
        "stck_mxpr": "92300",
        "stck_llam": "49700",
        **output,
    }
    return {"output": fields, "rt_cd": "0", "msg_cd": "MCA00000", "msg1": "정상처리 되었습니다."}


def body(**output: str) -> bytes:
    return msgspec.json.encode(answer(**output))


def snap(**changes: Any) -> Snapshot:
    base = Snapshot(
        provider="KIS",
        symbol="005930",
        ts=WHEN,
        price=71_500,
        open=71_000,
        high=71_800,
        low=70_900,
        cum_volume=1_000_000,
        cum_value=71_500_000_000,
        change=500,
        lineage="r1",
    )
    return msgspec.structs.replace(base, **changes)


def run(raw: bytes, previous: Snapshot | None = None, symbol: str = "005930") -> Any:
    return observe(
        Provider.KIS,
        "FHKST01010100",
        scalp_params(Provider.KIS, symbol),
        raw,
        symbol=symbol,
        previous=previous,
        collector="c1",
        lineage="req-1",
        received_at=WHEN,
        now_ms=123,
    )


# -- validation ---------------------------------------------------------------------------------


def test_a_good_answer_validates_to_a_snapshot() -> None:
    checked = validate(
        Provider.KIS, "FHKST01010100", PARAMS, body(), lineage="r1", received_at=WHEN
    )
    assert checked == snap()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "malformed_json"),
        (body(stck_prpr="71,5OO"), "bad_number"),
        (msgspec.json.encode({"rt_cd": "0"}), "missing_field"),
        (msgspec.json.encode({"rt_cd": "1", "msg_cd": "X", "msg1": "no"}), "broker_error"),
        (body(stck_prpr=""), "no_snapshot"),  # no price yet: nothing to record
    ],
)
def test_validation_failures_keep_the_normalisers_reason(raw: bytes, reason: str) -> None:
    checked = validate(Provider.KIS, "FHKST01010100", PARAMS, raw, lineage="r", received_at=WHEN)
    assert isinstance(checked, Rejected)
    assert checked.reason == reason


# -- the guard ----------------------------------------------------------------------------------


def test_a_sound_snapshot_passes_the_guard() -> None:
    assert guard(snap(), None, symbol="005930") is None
    assert guard(snap(), None, symbol="005930", quote=Quote("005930", 92_300, 49_700)) is None
    earlier = snap(ts=WHEN - timedelta(seconds=1), cum_volume=999_000)
    assert guard(snap(), earlier, symbol="005930") is None


@pytest.mark.parametrize(
    ("snapshot", "previous", "quote", "reason"),
    [
        (snap(), None, Quote(symbol="000660"), "symbol_mismatch"),
        (snap(symbol="000660"), None, None, "symbol_mismatch"),
        (snap(price=0, change=0), None, None, "bad_price"),
        (snap(price=95_000), None, Quote("005930", 92_300, 49_700), "outside_price_limits"),
        (snap(price=49_000), None, Quote("005930", 92_300, 49_700), "outside_price_limits"),
        # Without the answer's limits: ±30 % of the previous close (price - change).
        (snap(price=93_000, change=22_000), None, None, "outside_price_limits"),
        (snap(price=49_000, change=-22_000), None, None, "outside_price_limits"),
        (snap(price=1_000, change=1_000), None, None, "outside_price_limits"),
        (snap(ts=WHEN - timedelta(seconds=1)), snap(), None, "stale"),
        (snap(cum_volume=999_999), snap(), None, "volume_decreased"),
    ],
)
def test_each_guard_rule(
    snapshot: Snapshot, previous: Snapshot | None, quote: Quote | None, reason: str
) -> None:
    verdict = guard(snapshot, previous, symbol="005930", quote=quote)
    assert verdict is not None
    assert verdict.reason == reason
    assert verdict.reason in GUARD_REASONS
    assert verdict.detail


def test_the_limits_of_the_answer_win_over_the_change() -> None:
    # A change that would put the price outside ±30 %, inside the answer's own limits.
    assert (
        guard(snap(change=30_000), None, symbol="005930", quote=Quote(None, 92_300, 49_700)) is None
    )


def test_yesterdays_snapshot_is_no_previous() -> None:
    yesterday = snap(ts=WHEN + timedelta(days=-1, hours=5), cum_volume=9_000_000)
    assert guard(snap(), yesterday, symbol="005930") is None


def test_quote_of_reads_the_answers_own_facts() -> None:
    assert quote_of(Provider.KIS, answer()) == Quote("005930", 92_300, 49_700)
    assert quote_of(Provider.KIS, answer(stck_mxpr="", stck_llam="0")) == Quote("005930")
    assert quote_of(Provider.KIS, answer(stck_shrn_iscd=" ")) == Quote(None, 92_300, 49_700)
    assert quote_of(Provider.KIS, {"output": []}) == Quote()
    assert quote_of(Provider.KIS, ["not", "an", "object"]) == Quote()
    assert quote_of(Provider.KIWOOM, {"stk_cd": "005930"}) == Quote()
    assert quote_of(Provider.KIS, {"output": {"stck_prpr": "1"}}) == Quote()


# -- enrichment ---------------------------------------------------------------------------------


def test_enrichment_against_the_previous_snapshot() -> None:
    previous = snap(ts=WHEN - timedelta(seconds=1), price=71_400, cum_volume=998_800)
    event = enrich(snap(), previous, collector="c1", recorded_at_ms=7)
    assert (event.volume_delta, event.price_change) == (1_200, 100)
    assert (event.collector, event.symbol, event.price, event.lineage) == (
        "c1",
        "005930",
        71_500,
        "r1",
    )
    assert (event.cum_value, event.change, event.recorded_at_ms) == (71_500_000_000, 500, 7)


def test_the_days_first_snapshot_has_no_deltas() -> None:
    assert enrich(snap(), None, collector="c1", recorded_at_ms=0).volume_delta == 0
    yesterday = snap(ts=WHEN - timedelta(days=1), price=60_000, cum_volume=5)
    event = enrich(snap(), yesterday, collector="c1", recorded_at_ms=0)
    assert (event.volume_delta, event.price_change) == (0, 0)


# -- the whole pipeline -------------------------------------------------------------------------


def test_a_good_answer_is_recorded() -> None:
    previous = snap(ts=WHEN - timedelta(seconds=1), cum_volume=999_000, price=71_600)
    result = run(body(), previous)
    assert isinstance(result, tuple)
    event, snapshot = result
    assert isinstance(event, SnapshotRecorded)
    assert snapshot == snap(lineage="req-1")
    assert (event.volume_delta, event.price_change, event.lineage) == (1_000, -100, "req-1")


def test_a_malformed_answer_is_quarantined_with_the_normalisers_reason() -> None:
    result = run(b'{"rt_cd": "0", "output": {"stck_prpr": "abc"')
    assert isinstance(result, SnapshotQuarantined)
    assert (result.reason, result.request_id, result.symbol) == (
        "malformed_json",
        "req-1",
        "005930",
    )
    assert (result.collector, result.provider, result.quarantined_at_ms) == ("c1", "KIS", 123)


def test_an_answer_about_another_symbol_is_quarantined() -> None:
    result = run(body(stck_shrn_iscd="000660"))
    assert isinstance(result, SnapshotQuarantined)
    assert result.reason == "symbol_mismatch"


def test_an_answer_outside_its_own_limits_is_quarantined() -> None:
    result = run(body(stck_prpr="93000", stck_hgpr="93000"))
    assert isinstance(result, SnapshotQuarantined)
    assert result.reason == "outside_price_limits"


# -- the broker's time ------------------------------------------------------------------------


def response(headers: dict[str, str]) -> Response:
    return Response(
        request_id="r", provider="KIS", tr_id="T", account="a", status=200, headers=headers, body={}
    )


def test_the_broker_date_header_times_the_quote() -> None:
    when = broker_time(response({"Date": "Fri, 21 Mar 2025 01:30:05 GMT"}))
    assert when == WHEN
    assert when is not None
    assert when.tzinfo == KST
    assert broker_time(response({})) is None
    assert broker_time(response({"date": "yesterday"})) is None
    assert broker_time(response({"date": "Fri, 21 Mar 2025 01:30:05"})) is None  # no zone
