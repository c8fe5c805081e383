"""Turning a broker's answer into success or one of the ``Upstream*`` errors.

All broker codes that change a classification live here, in one :class:`ErrorCodes` per broker.
The code decides, never the HTTP status alone: KIS answers gateway errors with HTTP 500 (and
sometimes EGW00201 with 200), Kiwoom answers auth and rate errors with HTTP 200 and puts the
real code in ``return_msg`` brackets (both as measured and reported by third-party clients).
A caller extends a set with :func:`dataclasses.replace`, e.g.
``replace(KIS_ERROR_CODES, transient=KIS_ERROR_CODES.transient | {"EGW00003"})``, and passes it
to the client as ``error_codes=``.

A broker code is looked up in ``rate_limited`` → ``auth`` → ``transient`` → ``rejected`` (so
adding a code to a retryable set wins over the default ``rejected`` listing); a code in no set
is :class:`~apihub_core.UpstreamRejected` unless the status is 429 or 401. Kiwoom checks its
bracket code first and its ``return_code`` category only when the bracket code is in no set.
Without a broker code the HTTP status decides: 401 auth, 429 rate limited, 408 and 5xx
transient, other non-2xx rejected; a 2xx that is not JSON is transient (a truncated or proxied
answer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from apihub_core import (
    Provider,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTransient,
)


@dataclass(frozen=True, slots=True)
class ErrorCodes:
    """Broker codes that map to a class other than the default :class:`UpstreamRejected`.

    ``rejected`` exists to override a category: Kiwoom's ``[1634]`` batch-size error carries
    the rate-limit ``return_code`` 5, and ``[8001]`` (bad app key) the auth ``return_code`` 3.
    """

    rate_limited: frozenset[str]
    auth: frozenset[str]
    transient: frozenset[str]
    rejected: frozenset[str] = frozenset()

    def classify(self, code: str) -> type[UpstreamError] | None:
        """The error type ``code`` names, or ``None`` when the code is not in any set."""
        if code in self.rate_limited:
            return UpstreamRateLimited
        if code in self.auth:
            return UpstreamAuthError
        if code in self.transient:
            return UpstreamTransient
        if code in self.rejected:
            return UpstreamRejected
        return None


KIS_RATE_LIMITED_CODES: Final = frozenset({"EGW00201", "EGW00215", "EGW00133"})
"""Per-second limit, ledger per-second limit, token issuance throttle (1 per minute)."""
KIS_AUTH_CODES: Final = frozenset({"EGW00121", "EGW00122", "EGW00123"})
"""Invalid, unknown or expired token: a new token fixes it."""
KIS_TRANSIENT_CODES: Final = frozenset({"EGW00002"})
"""Gateway server error."""
KIS_REJECTED_CODES: Final = frozenset(
    {
        "EGW00003",
        "EGW00004",
        "EGW00101",
        "EGW00103",
        "EGW00105",
        "EGW02004",
        "EGW02006",
        "EGW02007",
    }
)
"""Access denied, no permission, invalid request, bad app key / secret, real-vs-vps mix-ups.
Bad credentials are a configuration problem a new token cannot fix, hence not auth."""

KIS_ERROR_CODES: Final = ErrorCodes(
    rate_limited=KIS_RATE_LIMITED_CODES,
    auth=KIS_AUTH_CODES,
    transient=KIS_TRANSIENT_CODES,
    rejected=KIS_REJECTED_CODES,
)
"""The default KIS classification (the ``EGW…`` gateway codes as KIS and third-party clients
report them)."""

KIWOOM_RATE_LIMITED_CODES: Final = frozenset({"5", "1700", "1687"})
"""``return_code`` 5 (category), ``[1700]`` request count exceeded, ``[1687]`` recursive call
throttled."""
KIWOOM_AUTH_CODES: Final = frozenset({"3", "8003", "8005", "8010", "8031", "8103"})
"""``return_code`` 3 (category), token lookup failed, token invalid, token IP mismatch, token of
the other (real/mock) domain, token/device authentication failed: a new token fixes them."""
KIWOOM_TRANSIENT_CODES: Final = frozenset({"1999", "8006", "8009"})
"""Unexpected server error, token creation / issuance failure."""
KIWOOM_REJECTED_CODES: Final = frozenset(
    {"1634", "8001", "8002", "8011", "8012", "8020", "8030", "8040", "8050"}
)
"""Batch size exceeded, bad app key / secret, bad grant_type, missing key, app key of the other
domain, device authentication: permanent even though they arrive with ``return_code`` 3 or 5."""

KIWOOM_ERROR_CODES: Final = ErrorCodes(
    rate_limited=KIWOOM_RATE_LIMITED_CODES,
    auth=KIWOOM_AUTH_CODES,
    transient=KIWOOM_TRANSIENT_CODES,
    rejected=KIWOOM_REJECTED_CODES,
)
"""The default Kiwoom classification (the error-code table of the Kiwoom REST API guide,
https://openapi.kiwoom.com)."""

SNIPPET_CHARS: Final = 200
_BRACKET_CODE = re.compile(r"\[(\d{3,5})\s*[:\]]|CODE\s*=\s*(\d{3,5})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_decoder: Final = msgspec.json.Decoder()


def snippet(body: bytes) -> str:
    """A short, single-line, printable excerpt of ``body`` for an error message."""
    text = _CONTROL.sub(" ", body[: SNIPPET_CHARS * 4].decode("utf-8", errors="replace"))
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + "…"


def decode_object(body: bytes) -> dict[str, Any] | None:
    """``body`` as a JSON object, or ``None`` when it is not one."""
    try:
        decoded = _decoder.decode(body)
    except msgspec.DecodeError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _by_status(provider: str, status: int, body: bytes, parsed: bool) -> UpstreamError | None:
    if 200 <= status < 300:
        if parsed:
            return None
        return UpstreamTransient(
            f"unparseable success response: {snippet(body)!r}", status=status, provider=provider
        )
    error: type[UpstreamError]
    if status == 401:
        error = UpstreamAuthError
    elif status == 429:
        error = UpstreamRateLimited
    elif status == 408 or status >= 500:
        error = UpstreamTransient
    else:
        error = UpstreamRejected
    return error(
        f"HTTP {status} without a broker error code: {snippet(body)!r}",
        status=status,
        provider=provider,
    )


def _unknown_code(status: int) -> type[UpstreamError]:
    # A code no set names: the status may still say rate limit or auth; otherwise the broker
    # rejected the request on its merits (KIS sends HTTP 500 for permanent EGW errors too).
    if status == 429:
        return UpstreamRateLimited
    if status == 401:
        return UpstreamAuthError
    return UpstreamRejected


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def kis_error(
    status: int, body: bytes, codes: ErrorCodes = KIS_ERROR_CODES
) -> UpstreamError | None:
    """The error a KIS answer means, or ``None`` for success (see :func:`classify_kis_response`)."""
    doc = decode_object(body)
    if doc is not None:
        failed = True
        if "error_code" in doc:  # the token endpoints' shape: error_code / error_description
            code = _text(doc.get("error_code"))
            message = _text(doc.get("error_description"))
        elif "rt_cd" in doc and _text(doc.get("rt_cd")) != "0":
            code = _text(doc.get("msg_cd"))
            message = _text(doc.get("msg1"))
        else:
            failed = False
        if failed:
            error = codes.classify(code) or _unknown_code(status)
            return error(
                message or f"broker error {code or '(no code)'}",
                code=code,
                status=status,
                provider=Provider.KIS.value,
            )
    return _by_status(Provider.KIS.value, status, body, doc is not None)


def kiwoom_error(
    status: int, body: bytes, codes: ErrorCodes = KIWOOM_ERROR_CODES
) -> UpstreamError | None:
    """The error a Kiwoom answer means, or ``None`` (see :func:`classify_kiwoom_response`)."""
    doc = decode_object(body)
    if doc is not None and "return_code" in doc:
        raw = doc.get("return_code")
        return_code = _text(raw)
        if return_code not in ("0", ""):
            message = _text(doc.get("return_msg"))
            match = _BRACKET_CODE.search(message)
            detail = (match.group(1) or match.group(2)) if match else ""
            candidates = [c for c in (detail, return_code) if c]
            found = (t for t in map(codes.classify, candidates) if t is not None)
            error = next(found, None) or _unknown_code(status)
            return error(
                message or f"broker error {return_code}",
                code=detail or return_code,
                status=status,
                provider=Provider.KIWOOM.value,
            )
    return _by_status(Provider.KIWOOM.value, status, body, doc is not None)


def classify_kis_response(status: int, body: bytes, *, codes: ErrorCodes = KIS_ERROR_CODES) -> None:
    """Return if a KIS answer is a success, else raise the matching ``Upstream*`` error.

    Handles both envelopes: ``rt_cd``/``msg_cd``/``msg1`` of the data APIs and
    ``error_code``/``error_description`` of the token endpoints. ``code`` is the broker's
    ``msg_cd``/``error_code``, ``message`` its text, ``status`` the HTTP status.
    """
    error = kis_error(status, body, codes)
    if error is not None:
        raise error


def classify_kiwoom_response(
    status: int, body: bytes, *, codes: ErrorCodes = KIWOOM_ERROR_CODES
) -> None:
    """Return if a Kiwoom answer is a success, else raise the matching ``Upstream*`` error.

    The detailed code sits in ``return_msg`` brackets (``…[8005:Token이 유효하지 않습니다]``) with
    a category in ``return_code``; both are checked, the bracket code first, and it becomes
    ``code`` (else ``str(return_code)``).
    """
    error = kiwoom_error(status, body, codes)
    if error is not None:
        raise error
