"""Entry encoding (field ``data`` = JSON) and the tagged event vocabulary."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import msgspec
import pytest

from apihub_core import (
    SCHEMA_VERSION,
    DeadLettered,
    EntryDecodeError,
    Event,
    RequestFailed,
    RequestSubmitted,
    ResponseReceived,
    decode_any,
    decode_outcome,
    decode_request,
    encode_entry,
    now_ms,
)

BROKER_BODY = (
    b'{"output": {"stck_prpr": "71500", "prdy_vrss": "-500"},  "rt_cd":"0",'
    b' "msg_cd": "MCA00000", "msg1": "\xec\xa0\x95\xec\x83\x81\xec\xb2\x98\xeb\xa6\xac '
    b'\xeb\x90\x98\xec\x97\x88\xec\x8a\xb5\xeb\x8b\x88\xeb\x8b\xa4.", "n": 1.50e3}'
)

SUBMITTED = RequestSubmitted(
    request_id="6f1c0a4e9b8d4d7c8a1e2f3b4c5d6e7f",
    provider="KIS",
    tr_id="FHKST01010100",
    params={"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"},
    account="main",
    priority="order",
    reply_to="apihub:reply:client-1",
    deadline_ms=1_763_884_800_000,
    submitted_at_ms=1_763_884_790_000,
    cont=True,
    next_key="abc",
    idempotency_key="idem-1",
    trace={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
)
RECEIVED = ResponseReceived(
    request_id="r-1",
    provider="KIS",
    tr_id="FHKST01010100",
    account="default",
    status=200,
    headers={"tr_id": "FHKST01010100", "tr_cont": "M", "gt_uid": "g"},
    body=msgspec.Raw(BROKER_BODY),
    has_more=True,
    next_key="",
    received_at_ms=1_763_884_790_012,
    elapsed_ms=11.8,
    attempts=2,
)
FAILED = RequestFailed(
    request_id="r-2",
    provider="KIWOOM",
    tr_id="ka10081",
    account=None,
    error_class="rate_limited",
    code="1700",
    message="허용된 요청 개수를 초과하였습니다",
    status=429,
    retryable=True,
    failed_at_ms=1_763_884_790_020,
    attempts=3,
)
DEAD = DeadLettered(
    source_stream="apihub:requests",
    entry_id="1763884790000-0",
    reason="unknown_tr",
    detail="KIS has no TR 'NOPE'",
    request_id="r-3",
    group="dispatcher",
    deliveries=1,
    fields={"data": "{}"},
    dead_lettered_at_ms=1_763_884_790_001,
)

TAGS = {
    RequestSubmitted: "request.submitted",
    ResponseReceived: "response.received",
    RequestFailed: "request.failed",
    DeadLettered: "request.dead_lettered",
}


def as_redis_fields(fields: Mapping[Any, Any]) -> dict[bytes, bytes]:
    """What redis-py hands a reader: bytes names and bytes values."""
    return {
        (k.encode() if isinstance(k, str) else k): (v.encode() if isinstance(v, str) else v)
        for k, v in fields.items()
    }


def data_entry(document: dict[str, Any] | bytes) -> dict[bytes, bytes]:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return {b"data": raw}


# --- encoding -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event", [SUBMITTED, RECEIVED, FAILED, DEAD], ids=lambda e: type(e).__name__
)
def test_entry_has_the_type_tag_and_json_data(event: Event) -> None:
    fields = encode_entry(event)
    assert set(fields) == {"type", "data"}
    assert fields["type"] == TAGS[type(event)].encode()
    document = json.loads(fields["data"])
    assert document["type"] == TAGS[type(event)]
    assert document["schema"] == SCHEMA_VERSION == 1


@pytest.mark.parametrize(
    "event", [SUBMITTED, RECEIVED, FAILED, DEAD], ids=lambda e: type(e).__name__
)
def test_every_event_round_trips_through_decode_any(event: Event) -> None:
    assert decode_any(as_redis_fields(encode_entry(event))) == event


def test_request_round_trips_through_decode_request() -> None:
    assert decode_request(as_redis_fields(encode_entry(SUBMITTED))) == SUBMITTED


@pytest.mark.parametrize("event", [RECEIVED, FAILED], ids=lambda e: type(e).__name__)
def test_outcomes_round_trip_through_decode_outcome(event: Event) -> None:
    decoded = decode_outcome(as_redis_fields(encode_entry(event)))
    assert decoded == event
    assert type(decoded) is type(event)


def test_events_are_frozen() -> None:
    with pytest.raises(AttributeError):
        SUBMITTED.tr_id = "other"  # type: ignore[misc]


def test_the_type_field_is_optional_for_readers() -> None:
    fields = as_redis_fields(encode_entry(FAILED))
    del fields[b"type"]
    assert decode_outcome(fields) == FAILED


def test_other_fields_are_ignored() -> None:
    fields = as_redis_fields(encode_entry(SUBMITTED))
    fields[b"producer"] = b"go-client/1.0"
    assert decode_request(fields) == SUBMITTED


# --- the broker body ----------------------------------------------------------------------------


def test_response_body_keeps_the_broker_json_byte_for_byte() -> None:
    decoded = decode_outcome(as_redis_fields(encode_entry(RECEIVED)))
    assert isinstance(decoded, ResponseReceived)
    assert bytes(decoded.body) == BROKER_BODY


def test_response_body_from_a_foreign_producer_is_kept_verbatim() -> None:
    data = (
        b'{"type":"response.received","request_id":"r","provider":"KIS","tr_id":"T",'
        b'"account":"default","status":200,"body":' + BROKER_BODY + b"}"
    )
    decoded = decode_outcome({b"data": data})
    assert isinstance(decoded, ResponseReceived)
    assert bytes(decoded.body) == BROKER_BODY


def test_response_body_defaults_to_json_null() -> None:
    event = ResponseReceived(request_id="r", provider="KIS", tr_id="T", account="a", status=200)
    assert bytes(event.body) == b"null"


# --- decode errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("decode", [decode_request, decode_outcome, decode_any])
def test_entry_without_data_is_missing_data(decode: Any) -> None:
    with pytest.raises(EntryDecodeError) as caught:
        decode({b"type": b"request.submitted"})
    assert caught.value.reason == "missing_data"
    assert "data" in caught.value.detail


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b'{"type": "request.submitted"'])
def test_bad_json_is_bad_encoding(raw: bytes) -> None:
    with pytest.raises(EntryDecodeError) as caught:
        decode_any({b"data": raw})
    assert caught.value.reason == "bad_encoding"
    assert str(caught.value).startswith("bad_encoding: ")


def test_entry_decode_error_is_a_value_error() -> None:
    assert issubclass(EntryDecodeError, ValueError)


@pytest.mark.parametrize(
    "document",
    [
        {"type": "request.nope", "request_id": "r", "provider": "KIS", "tr_id": "T"},
        {"request_id": "r", "provider": "KIS", "tr_id": "T"},
        [1, 2, 3],
        "just a string",
    ],
    ids=["unknown-tag", "no-tag", "array", "string"],
)
def test_wrong_type_tag_is_invalid_event(document: Any) -> None:
    with pytest.raises(EntryDecodeError) as caught:
        decode_any(data_entry(json.dumps(document).encode()))
    assert caught.value.reason == "invalid_event"


def test_an_outcome_is_not_a_request() -> None:
    with pytest.raises(EntryDecodeError) as caught:
        decode_request(as_redis_fields(encode_entry(RECEIVED)))
    assert caught.value.reason == "invalid_event"


@pytest.mark.parametrize("event", [SUBMITTED, DEAD], ids=lambda e: type(e).__name__)
def test_a_non_outcome_is_not_an_outcome(event: Event) -> None:
    with pytest.raises(EntryDecodeError) as caught:
        decode_outcome(as_redis_fields(encode_entry(event)))
    assert caught.value.reason == "invalid_event"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("params", {"FID_INPUT_ISCD": 5930}),
        ("request_id", 42),
        ("priority", "urgent"),
        ("deadline_ms", "soon"),
        ("cont", "yes"),
    ],
)
def test_wrong_field_type_is_invalid_event(field: str, value: Any) -> None:
    document = {"type": "request.submitted", "request_id": "r", "provider": "KIS", "tr_id": "T"}
    document[field] = value
    with pytest.raises(EntryDecodeError) as caught:
        decode_request(data_entry(document))
    assert caught.value.reason == "invalid_event"
    assert field in caught.value.detail


def test_missing_required_field_is_invalid_event() -> None:
    with pytest.raises(EntryDecodeError) as caught:
        decode_request(data_entry({"type": "request.submitted", "provider": "KIS", "tr_id": "T"}))
    assert caught.value.reason == "invalid_event"
    assert "request_id" in caught.value.detail


def test_unknown_error_class_is_invalid_event() -> None:
    document = json.loads(encode_entry(FAILED)["data"])
    document["error_class"] = "cosmic_rays"
    with pytest.raises(EntryDecodeError) as caught:
        decode_outcome(data_entry(document))
    assert caught.value.reason == "invalid_event"


# --- schema evolution ---------------------------------------------------------------------------


def test_unknown_fields_from_a_newer_writer_are_ignored() -> None:
    document = json.loads(encode_entry(SUBMITTED)["data"])
    document["schema"] = SCHEMA_VERSION + 1
    document["sla_class"] = "gold"
    document["routing"] = {"region": "kr", "hops": [1, 2]}
    decoded = decode_request(data_entry(document))
    assert decoded.schema == SCHEMA_VERSION + 1
    assert decoded.request_id == SUBMITTED.request_id
    assert decoded.params == SUBMITTED.params


@pytest.mark.parametrize("decode", [decode_outcome, decode_any])
def test_unknown_fields_are_ignored_on_outcomes(decode: Any) -> None:
    document = json.loads(encode_entry(FAILED)["data"])
    document["broker_trace_id"] = "xyz"
    assert decode(data_entry(document)) == FAILED


def test_a_minimal_request_takes_every_default() -> None:
    decoded = decode_request(
        data_entry(
            {"type": "request.submitted", "request_id": "r-1", "provider": "KIS", "tr_id": "T"}
        )
    )
    assert decoded == RequestSubmitted(request_id="r-1", provider="KIS", tr_id="T")
    assert decoded.schema == SCHEMA_VERSION
    assert decoded.params == {}
    assert decoded.priority == "interactive"
    assert decoded.reply_to is None
    assert decoded.deadline_ms is None
    assert decoded.cont is False
    assert decoded.trace == {}


def test_a_minimal_failure_takes_every_default() -> None:
    decoded = decode_outcome(
        data_entry(
            {
                "type": "request.failed",
                "request_id": "r",
                "provider": "KIS",
                "tr_id": "T",
                "error_class": "transient",
            }
        )
    )
    assert isinstance(decoded, RequestFailed)
    assert decoded.code == ""
    assert decoded.status is None
    assert decoded.retryable is False
    assert decoded.attempts == 0


def test_the_documented_wire_example_decodes() -> None:
    data = (
        b'{"type":"request.submitted","request_id":"r-1","provider":"KIS",'
        b'"tr_id":"FHKST01010100","params":{"FID_COND_MRKT_DIV_CODE":"J",'
        b'"FID_INPUT_ISCD":"005930"},"reply_to":"apihub:reply:my-client-42"}'
    )
    decoded = decode_request({b"data": data})
    assert decoded.reply_to == "apihub:reply:my-client-42"
    assert decoded.params["FID_INPUT_ISCD"] == "005930"


# --- time ---------------------------------------------------------------------------------------


def test_now_ms_is_unix_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    value = now_ms()
    after = time.time_ns() // 1_000_000
    assert isinstance(value, int)
    assert before <= value <= after


# --- strict decoding (how the dispatcher reads a request it is to execute) --------------------


def test_strict_decoding_requires_the_type_tag() -> None:
    document = {"request_id": "r", "provider": "KIS", "tr_id": "T"}
    assert decode_request(data_entry(document)).request_id == "r"  # lenient by default
    with pytest.raises(EntryDecodeError) as caught:
        decode_request(data_entry(document), strict=True)
    assert caught.value.reason == "missing_type"
    assert '"type": "request.submitted"' in caught.value.detail


@pytest.mark.parametrize("schema", [0, -1, SCHEMA_VERSION + 1, 99])
def test_strict_decoding_refuses_unknown_schema_versions(schema: int) -> None:
    document = json.loads(encode_entry(SUBMITTED)["data"])
    document["schema"] = schema
    with pytest.raises(EntryDecodeError) as caught:
        decode_request(data_entry(document), strict=True)
    assert caught.value.reason == "unsupported_schema"
    assert str(schema) in caught.value.detail


def test_strict_decoding_accepts_what_the_client_writes_and_a_missing_schema() -> None:
    assert decode_request(as_redis_fields(encode_entry(SUBMITTED)), strict=True) == SUBMITTED
    minimal = {"type": "request.submitted", "request_id": "r", "provider": "KIS", "tr_id": "T"}
    assert decode_request(data_entry(minimal), strict=True).schema == SCHEMA_VERSION


def test_strict_decoding_still_types_the_schema() -> None:
    document = {"type": "request.submitted", "schema": "1", "request_id": "r", "provider": "K"}
    with pytest.raises(EntryDecodeError) as caught:
        decode_request(data_entry({**document, "tr_id": "T"}), strict=True)
    assert caught.value.reason == "invalid_event"
    assert "schema" in caught.value.detail


@pytest.mark.parametrize(
    ("value", "shown"),
    [({"a": 1}, 'object {"a":1}'), ([1], "array [1]"), (5930, "number 5930"), (None, "null")],
)
def test_a_mistyped_parameter_is_named(value: Any, shown: str) -> None:
    document = {"type": "request.submitted", "request_id": "r", "provider": "KIS", "tr_id": "T"}
    document["params"] = {"GOOD": "x", "FID_INPUT_ISCD": value}
    with pytest.raises(EntryDecodeError) as caught:
        decode_request(data_entry(document))
    assert caught.value.reason == "invalid_event"
    assert caught.value.detail == f"params['FID_INPUT_ISCD'] must be a JSON string, got {shown}"


def test_a_mistyped_trace_entry_is_named() -> None:
    document = {"type": "request.submitted", "request_id": "r", "provider": "KIS", "tr_id": "T"}
    document["trace"] = {"traceparent": 7}
    with pytest.raises(EntryDecodeError) as caught:
        decode_request(data_entry(document))
    assert "trace['traceparent']" in caught.value.detail
