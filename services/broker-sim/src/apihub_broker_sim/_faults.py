"""Run-time fault injection (``POST /__sim/faults``).

A fault is a match (provider, tr_id / api-id, path, method, appkey), a count (``-1`` until
cleared) and an action. The first fault that matches a request fires; a fault whose count
reaches zero disappears. Preset actions reproduce the brokers' documented failures:

==============  ==========================================================================
kind            answer
==============  ==========================================================================
``error``       ``status`` + JSON ``body`` (+ ``headers``) given by the caller
``egw00201``    KIS per-second limit, HTTP 500 (``kis_rate_limit_status``)
``egw00121``    KIS invalid token, HTTP 500
``egw00123``    KIS expired token, HTTP 500
``egw00133``    KIS token issuance throttle, HTTP 403 (``error_code`` shape)
``kiwoom_8005`` Kiwoom invalid token, HTTP 200, ``return_code`` 3
``kiwoom_1700`` Kiwoom rate limit, ``kiwoom_rate_limit_status``, ``return_code`` 5
``http_503``    a bare gateway 503 with an HTML body
``delay``       sleep ``delay_ms``, then answer normally
``reset``       drop the connection; clients see a transport error
``drop_answer`` handle the call (an order is accepted and booked), then drop the connection
                instead of answering: the "did my order go through?" case
``quote_refused`` the broker's refusal of a symbol's quotation, on quotation calls only
                (others pass untouched): KIS HTTP 200 ``{"rt_cd":"1","msg_cd":"MCA05918",
                "msg1":"종목코드 오류입니다."}`` (a "stock code error" body the KIS portal
                quotes in its condition-search notes; per-TR codes are unconfirmed), Kiwoom
                HTTP 200 ``return_code`` 2 ``[1902:종목 정보가 없습니다...]`` (the "no such
                stock" code of the Kiwoom REST error table, the same answer the simulator
                gives for a code that names no stock)
==============  ==========================================================================

Any action may also carry ``delay_ms``, applied before it. The match and action parsers
are shared with the standing conditions of ``_conditions`` (error rates, outages).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from ._recorder import CallContext

__all__ = [
    "FAULT_KINDS",
    "Fault",
    "FaultAction",
    "FaultBook",
    "FaultSpecError",
    "action_applies",
    "call_matches",
    "match_view",
    "parse_action",
    "parse_match",
    "symbol_key",
]

FAULT_KINDS = frozenset(
    {
        "delay",
        "drop_answer",
        "egw00121",
        "egw00123",
        "egw00133",
        "egw00201",
        "error",
        "http_503",
        "kiwoom_1700",
        "kiwoom_8005",
        "quote_refused",
        "reset",
    }
)
_MATCH_KEYS = frozenset({"provider", "tr_id", "api_id", "path", "method", "appkey"})


class FaultSpecError(ValueError):
    """A fault (or condition) spec posted to the admin API is malformed."""


@dataclass(frozen=True)
class FaultAction:
    """What an injected fault answers; shared by armed faults, error rates and outages."""

    kind: str
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_ms: float = 0.0


def parse_match(raw: Any) -> dict[str, str]:
    """Validate a ``match`` object (missing means "every broker call")."""
    match = {} if raw is None else raw
    if not isinstance(match, dict) or not set(match) <= _MATCH_KEYS:
        raise FaultSpecError(f"match must be an object with keys from {sorted(_MATCH_KEYS)}")
    if not all(isinstance(v, str) for v in match.values()):
        raise FaultSpecError("match values must be strings")
    return dict(match)


def parse_action(raw: Any) -> FaultAction:
    """Validate an ``action``: an object with ``kind``, or just the kind name."""
    action = {"kind": raw} if isinstance(raw, str) else raw
    if not isinstance(action, dict):
        raise FaultSpecError("action must be an object or a kind name")
    kind = action.get("kind")
    if kind not in FAULT_KINDS:
        raise FaultSpecError(f"action.kind must be one of {sorted(FAULT_KINDS)}")
    status = action.get("status")
    if status is not None and (not isinstance(status, int) or not 100 <= status <= 599):
        raise FaultSpecError("action.status must be an HTTP status code")
    if kind == "error" and status is None:
        raise FaultSpecError("an error action needs a status")
    headers = action.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise FaultSpecError("action.headers must map strings to strings")
    delay_ms = action.get("delay_ms", 0)
    if not isinstance(delay_ms, int | float) or isinstance(delay_ms, bool) or delay_ms < 0:
        raise FaultSpecError("action.delay_ms must be a non-negative number")
    return FaultAction(
        kind=str(kind),
        status=status,
        body=action.get("body"),
        headers=dict(headers),
        delay_ms=float(delay_ms),
    )


def call_matches(match: dict[str, str], ctx: CallContext) -> bool:
    """Whether the call ``ctx`` satisfies every key of ``match``."""
    for key, wanted in match.items():
        if key == "provider":
            if ctx.provider.upper() != wanted.upper():
                return False
        elif key in ("tr_id", "api_id"):
            if ctx.tr_id != wanted:
                return False
        elif key == "path":
            hit = ctx.path.startswith(wanted[:-1]) if wanted.endswith("*") else ctx.path == wanted
            if not hit:
                return False
        elif key == "method":
            if ctx.method.upper() != wanted.upper():
                return False
        elif key == "appkey" and ctx.appkey != wanted:
            return False
    return True


_SYMBOL = re.compile(r"[AQ]?(\d{6})(?:_[A-Z]+)?")


def symbol_key(raw: str) -> str:
    """The code a symbol names, compared prefix- and suffix-insensitively: ``005930``,
    ``A005930``, ``005930_NX`` and ``005930_AL`` are all ``005930`` (and KIS's ETN form
    ``Q500001`` is ``500001``), as they all read the same tape here; anything else is only
    upper-cased and stripped."""
    text = raw.strip().upper()
    found = _SYMBOL.fullmatch(text)
    return found.group(1) if found else text


def action_applies(action: FaultAction, ctx: CallContext) -> bool:
    """Whether ``action`` can answer ``ctx``: ``quote_refused`` only answers quotations."""
    return action.kind != "quote_refused" or ctx.quotation


def match_view(match: dict[str, str]) -> dict[str, str]:
    """``match`` as the admin API shows it: the raw appkey is never echoed back."""
    return {k: ("***" if k == "appkey" else v) for k, v in match.items()}


@dataclass
class Fault:
    """One armed fault."""

    id: int
    match: dict[str, str]
    remaining: int
    action: FaultAction
    fired: int = 0

    def matches(self, ctx: CallContext) -> bool:
        """Whether this fault applies to the call ``ctx``."""
        return call_matches(self.match, ctx) and action_applies(self.action, ctx)

    def to_json(self) -> dict[str, Any]:
        """The admin API's view; the appkey a fault matches on is not echoed back."""
        return {
            "id": self.id,
            "match": match_view(self.match),
            "remaining": self.remaining,
            "kind": self.action.kind,
            "status": self.action.status,
            "delay_ms": self.action.delay_ms,
            "fired": self.fired,
        }


class FaultBook:
    """The armed faults of one simulator; thread-safe."""

    def __init__(self) -> None:
        """Start with no faults."""
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 1

    def add(self, spec: Any) -> Fault:
        """Arm a fault from its JSON spec; raises :class:`FaultSpecError` if it is malformed."""
        if not isinstance(spec, dict):
            raise FaultSpecError("fault spec must be a JSON object")
        match = parse_match(spec.get("match"))
        count = spec.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count == 0 or count < -1:
            raise FaultSpecError("count must be a positive integer or -1")
        action = parse_action(spec.get("action", {}))
        with self._lock:
            fault = Fault(id=self._next_id, match=match, remaining=count, action=action)
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def take(self, ctx: CallContext) -> Fault | None:
        """Fire the first fault matching ``ctx``, if any, consuming one of its count."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(ctx):
                    fault.fired += 1
                    if fault.remaining > 0:
                        fault.remaining -= 1
                        if fault.remaining == 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def list(self) -> list[Fault]:
        """The armed faults, in firing priority."""
        with self._lock:
            return list(self._faults)

    def remove(self, fault_id: int) -> bool:
        """Disarm one fault."""
        with self._lock:
            for fault in self._faults:
                if fault.id == fault_id:
                    self._faults.remove(fault)
                    return True
        return False

    def clear(self) -> None:
        """Disarm everything."""
        with self._lock:
            self._faults.clear()
