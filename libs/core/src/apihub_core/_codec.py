"""Stream entry encoding: one JSON document per entry, in the field ``data``.

An entry written by apihub has two fields: ``type`` (the event's tag, for people and filters) and
``data`` (the event as UTF-8 JSON, tag included). Readers rely on ``data`` alone, so a producer in
another language only has to ``XADD <stream> * data <json>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeVar

import msgspec

from ._events import (
    AnyEvent,
    Event,
    Outcome,
    RequestSubmitted,
    TokenEvent,
    event_type_name,
)

DATA_FIELD: Final = "data"
TYPE_FIELD: Final = "type"

_T = TypeVar("_T")

_encoder = msgspec.json.Encoder()
_any_decoder: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)
_outcome_decoder: msgspec.json.Decoder[Outcome] = msgspec.json.Decoder(Outcome)
_request_decoder = msgspec.json.Decoder(RequestSubmitted)
_token_decoder: msgspec.json.Decoder[TokenEvent] = msgspec.json.Decoder(TokenEvent)


EntryFields = dict[Any, Any]
"""Fields for ``XADD`` (``str`` names, ``bytes`` values), typed to fit redis-py's stubs."""

StreamEntry = tuple[bytes, dict[bytes, bytes]]
"""One entry as redis-py returns it (``decode_responses=False``): id and fields."""

StreamBatches = list[tuple[bytes, list[StreamEntry]]]
"""What ``XREAD``/``XREADGROUP`` return: per stream, its entries."""


class EntryDecodeError(ValueError):
    """A stream entry could not be decoded; ``reason`` is a stable word for the dead letter."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def encode_event(event: Event) -> bytes:
    """The event as compact UTF-8 JSON."""
    return _encoder.encode(event)


def encode_entry(event: Event) -> EntryFields:
    """Fields for ``XADD``: the tag and the JSON document."""
    return {TYPE_FIELD: event_type_name(event).encode(), DATA_FIELD: _encoder.encode(event)}


_DATA_KEY: Final = DATA_FIELD.encode()


def _data_of(fields: Mapping[bytes, bytes]) -> bytes:
    raw = fields.get(_DATA_KEY)
    if raw is None:
        raise EntryDecodeError("missing_data", f"entry has no {DATA_FIELD!r} field")
    return raw


def _decode(decoder: msgspec.json.Decoder[_T], data: bytes) -> _T:
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise EntryDecodeError("invalid_event", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise EntryDecodeError("bad_encoding", str(exc)) from None


def decode_request(fields: Mapping[bytes, bytes]) -> RequestSubmitted:
    """Decode a request-stream entry; raises :class:`EntryDecodeError` with a reason."""
    return _decode(_request_decoder, _data_of(fields))


def decode_token_event(fields: Mapping[bytes, bytes]) -> TokenEvent:
    """Decode a token-stream entry; raises :class:`EntryDecodeError` with a reason."""
    return _decode(_token_decoder, _data_of(fields))


def decode_outcome(fields: Mapping[bytes, bytes]) -> Outcome:
    """Decode a reply/response-stream entry (``ResponseReceived`` or ``RequestFailed``)."""
    return _decode(_outcome_decoder, _data_of(fields))


def decode_any(fields: Mapping[bytes, bytes]) -> AnyEvent:
    """Decode an entry of any apihub stream."""
    return _decode(_any_decoder, _data_of(fields))
