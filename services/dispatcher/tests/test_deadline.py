"""``seconds_left``: a request's deadline read without trusting the producer's clock."""

from __future__ import annotations

import pytest

from apihub_core import RequestSubmitted
from apihub_dispatcher._deadline import arrival_ms, seconds_left

ARRIVED = 1_763_884_800_000
ENTRY = f"{ARRIVED}-0"
MAX_S = 300.0


def _request(**fields: int | None) -> RequestSubmitted:
    return RequestSubmitted(request_id="r", provider="KIS", tr_id="T", **fields)  # type: ignore[arg-type]


def left(request: RequestSubmitted, *, now_ms: int, entry_id: str = ENTRY) -> float:
    return seconds_left(request, entry_id=entry_id, now_ms=now_ms, max_request_s=MAX_S)


def test_the_entry_id_is_the_arrival_time() -> None:
    assert arrival_ms("1763884800000-7") == ARRIVED
    assert arrival_ms("nonsense") is None


def test_no_deadline_means_max_request_s() -> None:
    assert left(_request(), now_ms=ARRIVED + 10_000_000) == MAX_S


@pytest.mark.parametrize("offset_ms", [-3_600_000, 0, 3_600_000, 86_400_000])
def test_the_budget_does_not_depend_on_the_producers_clock(offset_ms: int) -> None:
    producer_now = ARRIVED + offset_ms
    request = _request(submitted_at_ms=producer_now, deadline_ms=producer_now + 10_000)
    assert left(request, now_ms=ARRIVED) == 10.0
    assert left(request, now_ms=ARRIVED + 4_000) == 6.0
    assert left(request, now_ms=ARRIVED + 12_000) == -2.0


def test_a_hub_clock_behind_redis_never_adds_time() -> None:
    request = _request(submitted_at_ms=1, deadline_ms=1 + 10_000)
    assert left(request, now_ms=ARRIVED - 5_000) == 10.0


def test_without_submitted_at_the_deadline_is_absolute_on_the_hub_clock() -> None:
    request = _request(deadline_ms=ARRIVED + 10_000)
    assert left(request, now_ms=ARRIVED + 2_500) == 7.5
    assert left(request, now_ms=ARRIVED + 2_500, entry_id="1-1") == 7.5


def test_max_request_s_caps_any_deadline() -> None:
    request = _request(submitted_at_ms=1, deadline_ms=1 + 3_600_000)
    assert left(request, now_ms=ARRIVED) == MAX_S


def test_a_deadline_before_submission_has_passed() -> None:
    request = _request(submitted_at_ms=ARRIVED, deadline_ms=ARRIVED - 1)
    assert left(request, now_ms=ARRIVED) < 0
