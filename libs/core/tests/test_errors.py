"""The exception tree: classification, context in messages, and the wire mapping."""

from __future__ import annotations

from typing import get_args

import pytest

from apihub_core import (
    ConfigurationError,
    ErrorClass,
    HubError,
    HubUnavailable,
    OutcomeUnknown,
    RequestInvalid,
    RequestTimeout,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTransient,
    error_type_for,
)

CLASSIFICATION = [
    (RequestInvalid, "invalid", False),
    (RequestTimeout, "timeout", True),
    (OutcomeUnknown, "outcome_unknown", False),
    (HubUnavailable, "unavailable", True),
    (ConfigurationError, "invalid", False),
    (UpstreamTransient, "transient", True),
    (UpstreamRateLimited, "rate_limited", True),
    (UpstreamAuthError, "auth", True),
    (UpstreamRejected, "permanent", False),
]

WIRE_MAPPING: dict[str, type[HubError]] = {
    "invalid": RequestInvalid,
    "transient": UpstreamTransient,
    "rate_limited": UpstreamRateLimited,
    "auth": UpstreamAuthError,
    "permanent": UpstreamRejected,
    "timeout": RequestTimeout,
    "outcome_unknown": OutcomeUnknown,
    "unavailable": HubUnavailable,
}


@pytest.mark.parametrize(("exc_type", "error_class", "retryable"), CLASSIFICATION)
def test_each_error_has_its_classification(
    exc_type: type[HubError], error_class: str, retryable: bool
) -> None:
    assert exc_type.error_class == error_class
    assert exc_type.retryable is retryable
    assert issubclass(exc_type, HubError)


@pytest.mark.parametrize(
    "exc_type", [UpstreamTransient, UpstreamRateLimited, UpstreamAuthError, UpstreamRejected]
)
def test_broker_errors_are_upstream_errors(exc_type: type[HubError]) -> None:
    assert issubclass(exc_type, UpstreamError)


def test_the_base_error_is_fatal_and_permanent() -> None:
    assert HubError.error_class == "permanent"
    assert HubError.retryable is False


def test_wire_mapping_covers_every_error_class_literal() -> None:
    assert set(WIRE_MAPPING) == set(get_args(ErrorClass))


@pytest.mark.parametrize(("error_class", "exc_type"), sorted(WIRE_MAPPING.items()))
def test_error_type_for_maps_each_wire_class(
    error_class: ErrorClass, exc_type: type[HubError]
) -> None:
    assert error_type_for(error_class) is exc_type
    assert error_type_for(error_class).error_class == error_class


def test_message_without_context_is_the_bare_message() -> None:
    assert str(RequestInvalid("bad request")) == "bad request"


def test_message_carries_the_context() -> None:
    err = RequestTimeout("no answer", request_id="r-1", provider="KIS", tr_id="FHKST01010100")
    assert str(err) == "no answer (request_id=r-1, provider=KIS, tr_id=FHKST01010100)"
    assert (err.request_id, err.provider, err.tr_id) == ("r-1", "KIS", "FHKST01010100")
    assert err.message == "no answer"


def test_message_lists_only_the_context_that_is_known() -> None:
    assert str(HubUnavailable("down", provider="KIWOOM")) == "down (provider=KIWOOM)"


def test_upstream_message_carries_code_and_http_status() -> None:
    err = UpstreamRateLimited(
        "초당 거래건수를 초과하였습니다.", code="EGW00201", status=500, request_id="r-2"
    )
    assert str(err) == "[EGW00201] 초당 거래건수를 초과하였습니다. (request_id=r-2) HTTP 500"
    assert err.code == "EGW00201"
    assert err.status == 500


def test_upstream_message_without_code_or_status() -> None:
    err = UpstreamTransient("connection reset")
    assert str(err) == "connection reset"
    assert err.code == ""
    assert err.status is None


def test_with_context_fills_only_blanks() -> None:
    err = UpstreamRejected("rejected", code="APBK0919", provider="KIS")
    returned = err.with_context(request_id="r-3", provider="KIWOOM", tr_id="TTTC0802U")
    assert returned is err
    assert err.request_id == "r-3"
    assert err.provider == "KIS"
    assert err.tr_id == "TTTC0802U"


def test_with_context_keeps_existing_values_when_given_none() -> None:
    err = OutcomeUnknown("maybe sent", request_id="r-4", tr_id="TTTC0802U")
    err.with_context()
    assert (err.request_id, err.provider, err.tr_id) == ("r-4", None, "TTTC0802U")


def test_errors_can_be_raised_and_caught_by_base() -> None:
    with pytest.raises(HubError, match=r"\[8005\] token expired"):
        raise UpstreamAuthError("token expired", code="8005", status=401)
