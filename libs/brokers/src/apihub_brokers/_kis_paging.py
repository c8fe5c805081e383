"""KIS continuation as ``has_more``/``next_key``, whatever style the TR pages in.

KIS pages three ways, and callers should not have to know which:

- ``tr_cont``: the account TRs return body cursors (``ctx_area_fk100``/``ctx_area_nk100``, or
  ``ctx_area_fk``/``ctx_area_nk`` on the holiday check) and a ``tr_cont`` header of ``F``/``M``
  while more follows; the next page is asked with ``tr_cont: N`` and the cursors echoed back as
  the upper-case parameters (``CTX_AREA_FK100``…). The cursors travel as one opaque
  ``next_key`` so a caller passes back one string, as it does on Kiwoom.
- ``date_window``: the daily chart returns at most :data:`DATE_WINDOW_ROWS` bars, newest first;
  the next page moves the upper bound (``FID_INPUT_DATE_2``) to the day before the oldest bar
  received, until the lower bound (``FID_INPUT_DATE_1``) is passed.
- ``hour_window``: today's minute chart returns at most :data:`HOUR_WINDOW_ROWS` bars; the next
  page asks for bars up to one second before the oldest bar received (right whether the broker
  counts ``FID_INPUT_HOUR_1`` inclusively or not), until the 09:00 open.

A window ``next_key`` is just the new bound (``20250101``, ``130059``), readable in a shell.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any, Final

import msgspec

from apihub_core import RequestInvalid
from apihub_runtime import TrSpec

__all__ = [
    "DATE_WINDOW_ROWS",
    "HOUR_WINDOW_ROWS",
    "apply_next_key",
    "check_next_key",
    "continuation",
    "param_value",
]

DATE_WINDOW_ROWS: Final = 100
"""Most bars one FHKST03010100-style answer holds (the KIS portal's limit)."""
HOUR_WINDOW_ROWS: Final = 30
"""Most bars one FHKST03010200-style answer holds."""
_SESSION_OPEN: Final = 9 * 3600
_CURSOR_PREFIX: Final = "ctx."
_MORE: Final = frozenset({"F", "M"})


def _encode_cursors(values: list[str]) -> str:
    raw = msgspec.json.encode(values)
    return _CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursors(spec: TrSpec, key: str) -> list[str]:
    problem = RequestInvalid(
        f"next_key {key[:40]!r} is not a continuation {spec.tr_id} returned; pass back the "
        "next_key of the previous page unchanged"
    )
    if not key.startswith(_CURSOR_PREFIX):
        raise problem
    body = key[len(_CURSOR_PREFIX) :]
    try:
        values = msgspec.json.decode(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise problem from None
    if (
        not isinstance(values, list)
        or len(values) != len(spec.cont_fields)
        or not all(isinstance(v, str) for v in values)
    ):
        raise problem
    return values


def check_next_key(spec: TrSpec, next_key: str) -> None:
    """Raise :class:`~apihub_core.RequestInvalid` when ``next_key`` cannot be a continuation of
    ``spec`` (checked before the hub spends a permit on it). Kiwoom keys are the broker's own
    and pass unchecked."""
    if spec.provider.value == "KIS":
        apply_next_key(spec, {}, next_key)


def apply_next_key(spec: TrSpec, params: Mapping[str, str], next_key: str) -> dict[str, str]:
    """``params`` for the page ``next_key`` points at (unchanged when it is empty)."""
    merged = dict(params)
    if not next_key or not spec.cont_fields:
        return merged
    if spec.paging == "tr_cont":
        values = _decode_cursors(spec, next_key)
    elif spec.paging in ("date_window", "hour_window"):
        values = [_checked_bound(spec, next_key)]
    else:
        return merged
    by_upper = {name.upper(): name for name in merged}
    for field, value in zip(spec.cont_fields, values, strict=False):
        merged[by_upper.get(field.upper(), field)] = value
    return merged


def continuation(
    spec: TrSpec, params: Mapping[str, str], tr_cont: str, body: bytes
) -> tuple[bool, str]:
    """``(has_more, next_key)`` of one KIS answer to ``spec`` called with ``params``."""
    if spec.paging == "tr_cont":
        more = tr_cont.strip().upper() in _MORE
        if not spec.cont_fields:
            return more, ""
        doc = _object(body)
        values = [str(doc.get(field.lower(), "")) for field in spec.cont_fields]
        return (more, _encode_cursors(values)) if more else (False, "")
    if spec.paging == "date_window":
        return _date_window(spec, params, body)
    if spec.paging == "hour_window":
        return _hour_window(spec, params, body)
    return tr_cont.strip().upper() in _MORE, ""


def _object(body: bytes) -> dict[str, Any]:
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _rows(body: bytes) -> list[dict[str, Any]]:
    rows = _object(body).get("output2")
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def param_value(params: Mapping[str, str], name: str) -> str:
    """The value of parameter ``name`` in ``params``, names compared case-insensitively as the
    brokers do ("" when absent)."""
    for key, value in params.items():
        if key.upper() == name.upper():
            return value
    return ""


def _parse_date(raw: str) -> date:
    if len(raw) != 8 or not raw.isdigit():
        raise ValueError(f"not YYYYMMDD: {raw!r}")
    return date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))


def _parse_hour(raw: str) -> int:
    if len(raw) == 6 and raw.isdigit():
        hours, minutes, seconds = int(raw[:2]), int(raw[2:4]), int(raw[4:])
        if hours <= 24 and minutes < 60 and seconds < 60:
            return hours * 3600 + minutes * 60 + seconds
    raise ValueError(f"not HHMMSS: {raw!r}")


def _checked_bound(spec: TrSpec, key: str) -> str:
    try:
        if spec.paging == "date_window":
            _parse_date(key)
        else:
            _parse_hour(key)
    except ValueError:
        shape = "a YYYYMMDD date" if spec.paging == "date_window" else "an HHMMSS time"
        raise RequestInvalid(f"next_key {key[:40]!r} is not {shape} for {spec.tr_id}") from None
    return key


def _date_window(spec: TrSpec, params: Mapping[str, str], body: bytes) -> tuple[bool, str]:
    rows = _rows(body)
    if len(rows) < DATE_WINDOW_ROWS:
        return False, ""
    try:
        oldest = min(_parse_date(str(row.get("stck_bsop_date", ""))) for row in rows)
        lower = _parse_date(param_value(params, "FID_INPUT_DATE_1"))
    except ValueError:
        return False, ""
    following = oldest - timedelta(days=1)
    if following < lower:
        return False, ""
    return True, following.strftime("%Y%m%d")


def _hour_window(spec: TrSpec, params: Mapping[str, str], body: bytes) -> tuple[bool, str]:
    del spec, params  # the window always runs back to the open
    rows = _rows(body)
    if len(rows) < HOUR_WINDOW_ROWS:
        return False, ""
    try:
        oldest = min(_parse_hour(str(row.get("stck_cntg_hour", ""))) for row in rows)
    except ValueError:
        return False, ""
    following = oldest - 1
    if following < _SESSION_OPEN:
        return False, ""
    hours, rest = divmod(following, 3600)
    return True, f"{hours:02d}{rest // 60:02d}{rest % 60:02d}"
