"""dead_letter_event: the original entry, redacted and truncated, never a credential."""

from __future__ import annotations

import json

import msgspec

from apihub_core import DeadLettered, encode_entry
from apihub_runtime import dead_letter_event

REDACTED = "***redacted***"
SECRET_VALUES = ["PSappKeyValue", "appSecretValue", "bearerTokenValue", "pw", "approvalValue"]


def make(fields: dict[bytes, bytes], **kwargs: object) -> DeadLettered:
    defaults: dict[str, object] = {
        "source_stream": "ns:requests",
        "entry_id": "1-0",
        "reason": "invalid_event",
    }
    defaults.update(kwargs)
    return dead_letter_event(fields=fields, **defaults)  # type: ignore[arg-type]


def test_event_carries_its_context() -> None:
    event = make(
        {b"data": b"{}"},
        detail="boom",
        request_id="r-1",
        group="dispatcher",
        deliveries=4,
        reason="too_many_deliveries",
    )
    assert event.source_stream == "ns:requests"
    assert event.entry_id == "1-0"
    assert event.reason == "too_many_deliveries"
    assert event.detail == "boom"
    assert event.request_id == "r-1"
    assert event.group == "dispatcher"
    assert event.deliveries == 4
    assert event.dead_lettered_at_ms > 0


def test_nested_credential_like_keys_are_redacted() -> None:
    document = {
        "type": "request.submitted",
        "request_id": "r-1",
        "params": {
            "appkey": "PSappKeyValue",
            "APP_SECRET": "appSecretValue",
            "FID_INPUT_ISCD": "005930",
            "headers": [{"Authorization": "Bearer bearerTokenValue"}, {"keep": "me"}],
        },
        "login": {"password": "pw", "user": "alice"},
        "approval_key": "approvalValue",
    }
    event = make({b"data": json.dumps(document).encode()})
    redacted = json.loads(event.fields["data"])
    assert redacted["params"]["appkey"] == REDACTED
    assert redacted["params"]["APP_SECRET"] == REDACTED
    assert redacted["params"]["headers"][0]["Authorization"] == REDACTED
    assert redacted["login"]["password"] == REDACTED
    assert redacted["approval_key"] == REDACTED
    # Everything else survives, so the dead letter stays useful.
    assert redacted["params"]["FID_INPUT_ISCD"] == "005930"
    assert redacted["params"]["headers"][1] == {"keep": "me"}
    assert redacted["login"]["user"] == "alice"
    assert redacted["request_id"] == "r-1"
    encoded = msgspec.json.encode(event).decode()
    assert not any(value in encoded for value in SECRET_VALUES)


def test_credential_keys_inside_a_top_level_list_are_redacted() -> None:
    event = make({b"data": b'[{"access_token": "bearerTokenValue"}, 1]'})
    assert json.loads(event.fields["data"]) == [{"access_token": REDACTED}, 1]


def test_a_field_named_like_a_credential_is_redacted_whole() -> None:
    event = make(
        {
            b"app_secret": b"appSecretValue",
            b"Authorization": b"Bearer bearerTokenValue",
            b"appkey": b'{"harmless": "json"}',
            b"data": b"{}",
        }
    )
    assert event.fields["app_secret"] == REDACTED
    assert event.fields["Authorization"] == REDACTED
    assert event.fields["appkey"] == REDACTED
    assert event.fields["data"] == "{}"


def test_long_fields_are_truncated_with_a_marker() -> None:
    event = make({b"blob": b"x" * 5000})
    assert event.fields["blob"] == "x" * 4096 + "…(+904 chars)"


def test_long_json_fields_are_truncated_after_redaction() -> None:
    document = {"token": "bearerTokenValue", "pad": "y" * 6000}
    event = make({b"data": json.dumps(document).encode()})
    text = event.fields["data"]
    assert text.startswith('{"token":"***redacted***"')
    assert "bearerTokenValue" not in text
    assert "…(+" in text
    assert len(text) < 4096 + 20


def test_fields_at_the_limit_are_kept_whole() -> None:
    event = make({b"blob": b"z" * 4096})
    assert event.fields["blob"] == "z" * 4096


def test_non_json_fields_are_kept_as_text() -> None:
    event = make({b"note": b"not json at all {", b"number": b"42", b"text": b'"quoted"'})
    assert event.fields == {"note": "not json at all {", "number": "42", "text": '"quoted"'}


def test_invalid_utf8_is_kept_with_replacement_characters() -> None:
    event = make({b"data": b"\xff\xfeabc", b"\xffname": b"v"})
    assert event.fields["data"] == "\ufffd\ufffdabc"
    assert event.fields["\ufffdname"] == "v"


def test_empty_fields_give_an_empty_mapping() -> None:
    assert make({}).fields == {}


def test_detail_is_capped() -> None:
    assert len(make({}, detail="d" * 10_000).detail) == 4096


def test_a_dead_letter_is_itself_an_encodable_event() -> None:
    event = make({b"data": b'{"app_key": "PSappKeyValue"}'})
    entry = encode_entry(event)
    assert entry["type"] == b"request.dead_lettered"
    assert b"PSappKeyValue" not in entry["data"]
