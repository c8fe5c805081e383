"""Standing conditions (``/__sim/conditions``): latency with jitter, error rates, outages.

An armed fault (``_faults``) fires for a number of calls; a condition stays until it is
removed or, for an outage, until its window ends. Each is posted as a one-key object:

``{"latency": {"base_ms": 5, "jitter_ms": 30, "match": {...}}}``
    one-way delay of ``base_ms + U(0, jitter_ms)`` before the broker "sees" the call.
``{"error_rate": {"p": 0.3, "action": "egw00201", "match": {...}}}``
    each matching call is answered with ``action`` with probability ``p``.
``{"outage": {"duration_s": 30, "action": "http_503", "match": {...}}}``
    every matching call is answered with ``action`` for ``duration_s`` from now (omitted
    or ``null``: until removed).

``match`` and ``action`` are those of ``_faults``; ``action`` defaults to ``http_503``.
When several conditions of a type match, the first one (oldest) applies, except that every
matching error rate gets its own draw in turn.

Randomness comes from two ``random.Random`` streams owned by the book, one for delays and
one for errors, both derived from the seed: the same sequence of calls sees the same
delays and errors on every run, and adding a latency condition does not change which
calls fail. Clearing the conditions restarts both streams. Outage windows run on the
host's monotonic clock, like the rate limits, because an outage is real seconds of
unavailability and a frozen simulated clock must not make it eternal.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._faults import (
    FaultAction,
    FaultSpecError,
    call_matches,
    match_view,
    parse_action,
    parse_match,
)
from ._recorder import CallContext

__all__ = ["CONDITION_TYPES", "Condition", "ConditionBook", "ErrorRate", "Latency", "Outage"]

CONDITION_TYPES = ("latency", "error_rate", "outage")
_DEFAULT_ACTION = "http_503"


@dataclass
class Latency:
    """A one-way network delay of ``base_ms`` plus uniform jitter up to ``jitter_ms``."""

    id: int
    match: dict[str, str]
    base_ms: float
    jitter_ms: float
    applied: int = 0

    def to_json(self, now: float) -> dict[str, Any]:
        """The admin API's view."""
        return {
            "id": self.id,
            "type": "latency",
            "match": match_view(self.match),
            "base_ms": self.base_ms,
            "jitter_ms": self.jitter_ms,
            "applied": self.applied,
        }


@dataclass
class ErrorRate:
    """Answer a matching call with ``action`` with probability ``p``."""

    id: int
    match: dict[str, str]
    p: float
    action: FaultAction
    matched: int = 0
    fired: int = 0

    def to_json(self, now: float) -> dict[str, Any]:
        """The admin API's view."""
        return {
            "id": self.id,
            "type": "error_rate",
            "match": match_view(self.match),
            "p": self.p,
            "kind": self.action.kind,
            "status": self.action.status,
            "matched": self.matched,
            "fired": self.fired,
        }


@dataclass
class Outage:
    """Answer every matching call with ``action`` until ``started + duration_s``."""

    id: int
    match: dict[str, str]
    action: FaultAction
    started: float
    duration_s: float | None
    fired: int = 0

    def remaining_s(self, now: float) -> float | None:
        """Seconds left (``None``: until removed)."""
        if self.duration_s is None:
            return None
        return max(0.0, self.started + self.duration_s - now)

    def active(self, now: float) -> bool:
        """Whether the window is still open at monotonic time ``now``."""
        remaining = self.remaining_s(now)
        return remaining is None or remaining > 0.0

    def to_json(self, now: float) -> dict[str, Any]:
        """The admin API's view, with the time left in the window."""
        remaining = self.remaining_s(now)
        return {
            "id": self.id,
            "type": "outage",
            "match": match_view(self.match),
            "kind": self.action.kind,
            "status": self.action.status,
            "duration_s": self.duration_s,
            "remaining_s": None if remaining is None else round(remaining, 3),
            "fired": self.fired,
        }


Condition = Latency | ErrorRate | Outage


class ConditionBook:
    """The standing conditions of one simulator and their seeded random streams; thread-safe.

    ``initial`` holds specs (the admin API's JSON shape) armed at start and again on
    :meth:`reset`; a malformed one raises :class:`FaultSpecError`.
    """

    def __init__(self, seed: int, initial: Sequence[Mapping[str, Any]] = ()) -> None:
        """Arm ``initial`` with random streams seeded from ``seed``."""
        self._lock = threading.Lock()
        self._initial_seed = seed
        self._initial = tuple(initial)
        self._next_id = 1
        self._seed = seed
        self._delays = random.Random()  # noqa: S311 - simulation, not crypto
        self._errors = random.Random()  # noqa: S311
        self._conditions: list[Condition] = []
        self.reset()

    # --- administration ---
    def reset(self) -> None:
        """Back to the configured conditions and seed; outage windows restart now."""
        now = time.monotonic()
        parsed = [_parse(spec, now) for spec in self._initial]
        with self._lock:
            self._reseed(self._initial_seed)
            self._conditions = [self._numbered(condition) for condition in parsed]

    def add(self, spec: Any) -> Condition:
        """Add a condition from its JSON spec; raises :class:`FaultSpecError` if malformed."""
        condition = _parse(spec, time.monotonic())
        with self._lock:
            numbered = self._numbered(condition)
            self._conditions.append(numbered)
            return numbered

    def remove(self, condition_id: int) -> bool:
        """Remove one condition (ending an outage early)."""
        with self._lock:
            for condition in self._conditions:
                if condition.id == condition_id:
                    self._conditions.remove(condition)
                    return True
        return False

    def clear(self) -> None:
        """Remove every condition and restart the random streams from the current seed."""
        with self._lock:
            self._conditions.clear()
            self._reseed(self._seed)

    def reseed(self, seed: int) -> None:
        """Restart the random streams from ``seed`` (conditions stay)."""
        with self._lock:
            self._reseed(seed)

    def view(self) -> dict[str, Any]:
        """``{"seed", "latency": [...], "error_rate": [...], "outage": [...]}``.

        Outages whose window has ended are dropped first, so the list shows only live ones.
        """
        now = time.monotonic()
        with self._lock:
            self._drop_ended(now)
            grouped: dict[str, Any] = {"seed": self._seed}
            for kind in CONDITION_TYPES:
                grouped[kind] = [c.to_json(now) for c in self._conditions if _type(c) == kind]
            return grouped

    # --- per call ---
    def latency_ms(self, ctx: CallContext) -> float:
        """Draw the one-way delay for ``ctx`` from the first matching latency (else 0).

        Rounded to the microsecond so the recorded value is exactly the one slept.
        """
        with self._lock:
            for condition in self._conditions:
                if isinstance(condition, Latency) and call_matches(condition.match, ctx):
                    condition.applied += 1
                    jitter = condition.jitter_ms
                    drawn = self._delays.uniform(0.0, jitter) if jitter > 0 else 0.0
                    return round(condition.base_ms + drawn, 3)
        return 0.0

    def outage_for(self, ctx: CallContext) -> FaultAction | None:
        """The action of the first live outage matching ``ctx``, if any."""
        now = time.monotonic()
        with self._lock:
            self._drop_ended(now)
            for condition in self._conditions:
                if isinstance(condition, Outage) and call_matches(condition.match, ctx):
                    condition.fired += 1
                    return condition.action
        return None

    def error_for(self, ctx: CallContext) -> FaultAction | None:
        """Draw against each matching error rate in turn; the first hit's action, if any."""
        with self._lock:
            for condition in self._conditions:
                if isinstance(condition, ErrorRate) and call_matches(condition.match, ctx):
                    condition.matched += 1
                    if self._errors.random() < condition.p:
                        condition.fired += 1
                        return condition.action
        return None

    # --- internals (lock held) ---
    def _reseed(self, seed: int) -> None:
        # String seeds are hashed with SHA-512, so the streams are independent of each
        # other and of PYTHONHASHSEED.
        self._seed = seed
        self._delays.seed(f"{seed}:latency")
        self._errors.seed(f"{seed}:error_rate")

    def _numbered(self, condition: Condition) -> Condition:
        condition.id = self._next_id
        self._next_id += 1
        return condition

    def _drop_ended(self, now: float) -> None:
        self._conditions = [
            c for c in self._conditions if not isinstance(c, Outage) or c.active(now)
        ]


def _type(condition: Condition) -> str:
    if isinstance(condition, Latency):
        return "latency"
    return "error_rate" if isinstance(condition, ErrorRate) else "outage"


def _parse(spec: Any, now: float) -> Condition:
    """Build an (unnumbered) condition from ``{"<type>": {...}}``."""
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise FaultSpecError(f"a condition is an object with one key from {list(CONDITION_TYPES)}")
    ((kind, body),) = spec.items()
    if kind not in CONDITION_TYPES:
        raise FaultSpecError(f"condition type must be one of {list(CONDITION_TYPES)}")
    if not isinstance(body, Mapping):
        raise FaultSpecError(f"{kind} must be an object")
    allowed = {
        "latency": {"base_ms", "jitter_ms", "match"},
        "error_rate": {"p", "action", "match"},
        "outage": {"duration_s", "action", "match"},
    }[kind]
    unknown = set(body) - allowed
    if unknown:
        raise FaultSpecError(f"{kind} does not take {sorted(unknown)}; allowed: {sorted(allowed)}")
    match = parse_match(body.get("match"))
    if kind == "latency":
        base = _number(body, "base_ms", 0.0, kind)
        jitter = _number(body, "jitter_ms", 0.0, kind)
        return Latency(id=0, match=match, base_ms=base, jitter_ms=jitter)
    action = parse_action(body.get("action", _DEFAULT_ACTION))
    if kind == "error_rate":
        if "p" not in body:
            raise FaultSpecError("error_rate needs p")
        p = _number(body, "p", 0.0, kind)
        if p > 1.0:
            raise FaultSpecError("error_rate.p must be between 0 and 1")
        return ErrorRate(id=0, match=match, p=p, action=action)
    duration = None if body.get("duration_s") is None else _number(body, "duration_s", 0.0, kind)
    return Outage(id=0, match=match, action=action, started=now, duration_s=duration)


def _number(body: Mapping[str, Any], key: str, default: float, kind: str) -> float:
    value = body.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
        raise FaultSpecError(f"{kind}.{key} must be a non-negative number")
    return float(value)
