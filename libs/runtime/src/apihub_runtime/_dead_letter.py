"""Turning an unprocessable stream entry into a ``DeadLettered`` event without leaking secrets."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from apihub_core import DeadLettered, now_ms

MAX_FIELD_CHARS: Final = 4096
"""Each original field is cut to this many characters in the dead letter."""

_CREDENTIAL_KEY = re.compile(
    r"(app_?key|app_?secret|secret_?key|secret|token|authorization|password|passwd|approval_key)",
    re.IGNORECASE,
)
_REDACTED: Final = "***redacted***"


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _REDACTED if _CREDENTIAL_KEY.search(str(key)) else _redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact(item) for item in value]
    return value


def redact_field(name: str, raw: bytes) -> str:
    """The field as text for a dead letter: credential-like keys masked, length capped.

    A JSON document has the values of credential-looking keys replaced; a field whose own name
    looks like a credential is masked whole.
    """
    if _CREDENTIAL_KEY.search(name):
        return _REDACTED
    text = raw.decode("utf-8", errors="replace")
    try:
        doc = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        pass
    else:
        if isinstance(doc, (dict, list)):
            text = msgspec.json.encode(_redact(doc)).decode()
    if len(text) > MAX_FIELD_CHARS:
        text = text[:MAX_FIELD_CHARS] + f"…(+{len(text) - MAX_FIELD_CHARS} chars)"
    return text


def dead_letter_event(
    *,
    source_stream: str,
    entry_id: str,
    fields: Mapping[bytes, bytes],
    reason: str,
    detail: str = "",
    request_id: str | None = None,
    group: str = "",
    deliveries: int = 0,
) -> DeadLettered:
    """Build the ``DeadLettered`` event for an entry, with its fields redacted and truncated."""
    return DeadLettered(
        source_stream=source_stream,
        entry_id=entry_id,
        reason=reason,
        detail=detail[:MAX_FIELD_CHARS],
        request_id=request_id,
        group=group,
        deliveries=deliveries,
        fields={
            name.decode("utf-8", errors="replace"): redact_field(
                name.decode("utf-8", errors="replace"), value
            )
            for name, value in fields.items()
        },
        dead_lettered_at_ms=now_ms(),
    )
