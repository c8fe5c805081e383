"""Stream entry encoding: one JSON document per entry, in the field ``data``.

An entry written by apihub has two fields: ``type`` (the event's tag, for people and filters) and
``data`` (the event as UTF-8 JSON, tag included). Readers rely on ``data`` alone, so a producer in
another language only has to ``XADD <stream> * data <json>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, TypeVar

import msgspec

from ._events import (
    SCHEMA_VERSION,
    AnyEvent,
    Event,
    Outcome,
    RequestSubmitted,
    TokenEvent,
    event_type_name,
)
from ._market_events import ArchiveEvent, CollectorEvent, GapEvent, MarketEvent

DATA_FIELD: Final = "data"
TYPE_FIELD: Final = "type"

_T = TypeVar("_T")

_encoder = msgspec.json.Encoder()
_any_decoder: msgspec.json.Decoder[AnyEvent | MarketEvent] = msgspec.json.Decoder(
    AnyEvent | MarketEvent
)
_archive_decoder: msgspec.json.Decoder[ArchiveEvent] = msgspec.json.Decoder(ArchiveEvent)
_gap_decoder: msgspec.json.Decoder[GapEvent] = msgspec.json.Decoder(GapEvent)
_collector_decoder: msgspec.json.Decoder[CollectorEvent] = msgspec.json.Decoder(CollectorEvent)
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
        raise EntryDecodeError("invalid_event", _name_the_key(str(exc), data)) from None
    except msgspec.DecodeError as exc:
        raise EntryDecodeError("bad_encoding", str(exc)) from None


_MAP_PATH = re.compile(r"at `\$\.(\w+)\[\.\.\.\]`$")
_JSON_TYPES: Final = {
    dict: "object",
    list: "array",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _name_the_key(message: str, data: bytes) -> str:
    """msgspec says ``at `$.params[...]``` for a bad value in a map; name the key(s) instead."""
    match = _MAP_PATH.search(message)
    if match is None:
        return message
    field = match.group(1)
    try:
        document = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return message
    mapping = document.get(field) if isinstance(document, dict) else None
    if not isinstance(mapping, dict):
        return message
    bad = [
        f"{field}[{key!r}] must be a JSON string, got {_shown(value)}"
        for key, value in mapping.items()
        if not isinstance(value, str)
    ]
    return "; ".join(bad) if bad else message


def _shown(value: Any) -> str:
    kind = _JSON_TYPES.get(type(value), "value")
    return kind if value is None else f"{kind} {msgspec.json.encode(value).decode()[:60]}"


class _Header(msgspec.Struct):
    type: Any = None
    schema: Any = SCHEMA_VERSION


_header_decoder = msgspec.json.Decoder(_Header)
_REQUEST_TAG: Final = str(RequestSubmitted.__struct_config__.tag)


def _check_header(data: bytes) -> None:
    try:
        header = _header_decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return  # not an object, or not JSON: the full decode says which
    if header.type is None:
        raise EntryDecodeError(
            "missing_type",
            f"the event has no {TYPE_FIELD!r} field; a request needs "
            f'"{TYPE_FIELD}": "{_REQUEST_TAG}"',
        )
    schema = header.schema
    known = isinstance(schema, int) and 1 <= schema <= SCHEMA_VERSION
    if isinstance(schema, int) and not isinstance(schema, bool) and not known:
        raise EntryDecodeError(
            "unsupported_schema",
            f"schema {schema} is not supported (supported: "
            f"{', '.join(str(v) for v in range(1, SCHEMA_VERSION + 1))})",
        )


def decode_request(fields: Mapping[bytes, bytes], *, strict: bool = False) -> RequestSubmitted:
    """Decode a request-stream entry; raises :class:`EntryDecodeError` with a reason.

    ``strict`` is how the dispatcher reads a request it is to execute: the ``type`` tag must be
    present (``missing_type``) and ``schema`` one this code knows (``unsupported_schema``), since
    a field of a newer vocabulary it would ignore could change what the request means.
    Otherwise both are lenient, like every other reader.
    """
    data = _data_of(fields)
    if strict:
        _check_header(data)
    return _decode(_request_decoder, data)


def decode_token_event(fields: Mapping[bytes, bytes]) -> TokenEvent:
    """Decode a token-stream entry; raises :class:`EntryDecodeError` with a reason."""
    return _decode(_token_decoder, _data_of(fields))


def decode_outcome(fields: Mapping[bytes, bytes]) -> Outcome:
    """Decode a reply/response-stream entry (``ResponseReceived`` or ``RequestFailed``)."""
    return _decode(_outcome_decoder, _data_of(fields))


def decode_any(fields: Mapping[bytes, bytes]) -> AnyEvent | MarketEvent:
    """Decode an entry of any apihub stream."""
    return _decode(_any_decoder, _data_of(fields))


def decode_archive_event(fields: Mapping[bytes, bytes]) -> ArchiveEvent:
    """Decode an archive-stream entry (``archive.written``, ``archive.quarantined``)."""
    return _decode(_archive_decoder, _data_of(fields))


def decode_gap_event(fields: Mapping[bytes, bytes]) -> GapEvent:
    """Decode a gap-stream entry (``gap.*``, ``market.inconsistent``)."""
    return _decode(_gap_decoder, _data_of(fields))


def decode_collector_event(fields: Mapping[bytes, bytes]) -> CollectorEvent:
    """Decode a collector-stream entry."""
    return _decode(_collector_decoder, _data_of(fields))
