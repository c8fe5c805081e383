"""Standing conditions (``/__sim/conditions``): latency with jitter, error rates, outages.

An armed fault (``_faults``) fires for a number of calls; a condition stays until it is
removed or its window ends. Each is posted as a one-key object:

``{"latency": {"base_ms": 5, "jitter_ms": 30, ...}}``
    one-way delay of ``base_ms + U(0, jitter_ms)`` before the broker "sees" the call.
``{"error_rate": {"p": 0.3, "action": "egw00201", ...}}``
    each matching call is answered with ``action`` with probability ``p``.
``{"outage": {"duration_s": 30, "action": "http_503", ...}}``
    every matching call is answered with ``action`` for ``duration_s`` real seconds from now
    (omitted or ``null``: until removed or until its simulated window ends).

Every type also takes these targets, all optional and all required to hold for a call to
match (``action`` defaults to ``http_503``):

``match``
    the fault match of ``_faults`` (provider, tr_id / api_id, path, method, appkey).
``symbols``
    a list of codes; the call must name one of them (KIS ``FID_INPUT_ISCD`` or ``PDNO``,
    Kiwoom ``stk_cd``), compared prefix- and suffix-insensitively (``005930_NX`` is
    ``005930``). A call that names no symbol does not match.
``tr_ids``
    a list of KIS tr_ids / Kiwoom api-ids, any of which the call must carry.
``from`` / ``until`` / ``for_s``
    a window of **simulated** time: ISO 8601 datetimes (naive ones are KST), ``until``
    exclusive; ``for_s`` simulated seconds from ``from`` (default: the simulated now when
    the condition is added, or armed at start / reset). Before ``from`` a condition waits;
    once the simulated clock reaches ``until`` it is removed (moving the clock back later
    does not bring it back), so ``GET`` lists no ended condition.

Example, an outage of three symbols' quotations for ten simulated minutes:
``{"outage": {"symbols": ["005930", "000660", "035720"], "for_s": 600,
"action": "quote_refused"}}``.

When several conditions of a type match, the first one (oldest) applies, except that every
matching error rate gets its own draw in turn. A call a condition does not match draws
nothing, so which calls fail depends only on the seed and the sequence of matching calls.

Randomness comes from two ``random.Random`` streams owned by the book, one for delays and
one for errors, both derived from the seed: the same sequence of calls sees the same
delays and errors on every run, and adding a latency condition does not change which
calls fail. Clearing the conditions restarts both streams. ``duration_s`` runs on the
host's monotonic clock, like the rate limits, because an outage of that kind is real
seconds of unavailability and a frozen simulated clock must not make it eternal; use a
simulated window (``for_s``) for an outage that should follow a sped-up or moved clock. The
two kinds of window do not combine.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ._clock import KST, SimClock
from ._faults import (
    FaultAction,
    FaultSpecError,
    action_applies,
    call_matches,
    match_view,
    parse_action,
    parse_match,
    symbol_key,
)
from ._recorder import CallContext

__all__ = [
    "CONDITION_TYPES",
    "Condition",
    "ConditionBook",
    "ErrorRate",
    "Latency",
    "Outage",
    "Target",
]

CONDITION_TYPES = ("latency", "error_rate", "outage")
_DEFAULT_ACTION = "http_503"
_TARGET_KEYS = frozenset({"match", "symbols", "tr_ids", "from", "until", "for_s"})


@dataclass(frozen=True)
class Target:
    """Which calls a condition applies to: a fault match, symbols, tr ids and a window of
    simulated time (``start`` inclusive, ``end`` exclusive; ``None`` is open)."""

    match: dict[str, str]
    symbols: frozenset[str] | None = None
    tr_ids: frozenset[str] | None = None
    start: datetime | None = None
    end: datetime | None = None

    def in_window(self, sim_now: datetime) -> bool:
        """Whether the simulated instant ``sim_now`` is inside the window."""
        return (self.start is None or self.start <= sim_now) and not self.ended(sim_now)

    def ended(self, sim_now: datetime) -> bool:
        """Whether the window is over at ``sim_now`` (never, without an end)."""
        return self.end is not None and sim_now >= self.end

    def matches(self, ctx: CallContext, sim_now: datetime) -> bool:
        """Whether the call ``ctx``, arriving at ``sim_now``, is targeted."""
        if self.symbols is not None and ctx.symbol not in self.symbols:
            return False
        if self.tr_ids is not None and ctx.tr_id not in self.tr_ids:
            return False
        return self.in_window(sim_now) and call_matches(self.match, ctx)

    def to_json(self, sim_now: datetime) -> dict[str, Any]:
        """The admin API's view (the raw appkey is never echoed back)."""
        return {
            "match": match_view(self.match),
            "symbols": None if self.symbols is None else sorted(self.symbols),
            "tr_ids": None if self.tr_ids is None else sorted(self.tr_ids),
            "from": None if self.start is None else self.start.isoformat(),
            "until": None if self.end is None else self.end.isoformat(),
            "active": self.in_window(sim_now),
        }


@dataclass
class Latency:
    """A one-way network delay of ``base_ms`` plus uniform jitter up to ``jitter_ms``."""

    id: int
    target: Target
    base_ms: float
    jitter_ms: float
    applied: int = 0

    def to_json(self, mono: float, sim_now: datetime) -> dict[str, Any]:
        """The admin API's view at monotonic time ``mono`` and simulated time ``sim_now``."""
        return {
            "id": self.id,
            "type": "latency",
            **self.target.to_json(sim_now),
            "base_ms": self.base_ms,
            "jitter_ms": self.jitter_ms,
            "applied": self.applied,
        }


@dataclass
class ErrorRate:
    """Answer a matching call with ``action`` with probability ``p``."""

    id: int
    target: Target
    p: float
    action: FaultAction
    matched: int = 0
    fired: int = 0

    def to_json(self, mono: float, sim_now: datetime) -> dict[str, Any]:
        """The admin API's view at monotonic time ``mono`` and simulated time ``sim_now``."""
        return {
            "id": self.id,
            "type": "error_rate",
            **self.target.to_json(sim_now),
            "p": self.p,
            "kind": self.action.kind,
            "status": self.action.status,
            "matched": self.matched,
            "fired": self.fired,
        }


@dataclass
class Outage:
    """Answer every matching call with ``action``, until ``started + duration_s`` (host
    monotonic seconds) when ``duration_s`` is set, and within the target's window."""

    id: int
    target: Target
    action: FaultAction
    started: float
    duration_s: float | None
    fired: int = 0

    def remaining_s(self, now: float) -> float | None:
        """Real seconds left of ``duration_s`` (``None``: no real-time limit)."""
        if self.duration_s is None:
            return None
        return max(0.0, self.started + self.duration_s - now)

    def active(self, now: float) -> bool:
        """Whether the real-time window is still open at monotonic time ``now``."""
        remaining = self.remaining_s(now)
        return remaining is None or remaining > 0.0

    def to_json(self, mono: float, sim_now: datetime) -> dict[str, Any]:
        """The admin API's view, with the real time left of ``duration_s``."""
        remaining = self.remaining_s(mono)
        view = {
            "id": self.id,
            "type": "outage",
            **self.target.to_json(sim_now),
            "kind": self.action.kind,
            "status": self.action.status,
            "duration_s": self.duration_s,
            "remaining_s": None if remaining is None else round(remaining, 3),
            "fired": self.fired,
        }
        view["active"] = view["active"] and self.active(mono)
        return view


Condition = Latency | ErrorRate | Outage


class ConditionBook:
    """The standing conditions of one simulator and their seeded random streams; thread-safe.

    ``initial`` holds specs (the admin API's JSON shape) armed at start and again on
    :meth:`reset`; a malformed one raises :class:`FaultSpecError`. Simulated windows are read
    on ``clock``.
    """

    def __init__(self, seed: int, initial: Sequence[Mapping[str, Any]], clock: SimClock) -> None:
        """Arm ``initial`` with random streams seeded from ``seed``."""
        self._lock = threading.Lock()
        self._clock = clock
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
        """Back to the configured conditions and seed; their windows restart now."""
        mono, sim_now = time.monotonic(), self._clock.now()
        parsed = [_parse(spec, mono, sim_now) for spec in self._initial]
        with self._lock:
            self._reseed(self._initial_seed)
            self._conditions = [self._numbered(condition) for condition in parsed]

    def add(self, spec: Any) -> Condition:
        """Add a condition from its JSON spec; raises :class:`FaultSpecError` if malformed."""
        condition = _parse(spec, time.monotonic(), self._clock.now())
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

    def describe(self, condition: Condition) -> dict[str, Any]:
        """The admin API's view of one condition, now."""
        return condition.to_json(time.monotonic(), self._clock.now())

    def view(self) -> dict[str, Any]:
        """``{"seed", "latency": [...], "error_rate": [...], "outage": [...]}``.

        Conditions whose window has ended are dropped first, so the lists show only live
        and waiting ones.
        """
        mono, sim_now = time.monotonic(), self._clock.now()
        with self._lock:
            self._drop_ended(mono, sim_now)
            grouped: dict[str, Any] = {"seed": self._seed}
            for kind in CONDITION_TYPES:
                grouped[kind] = [
                    c.to_json(mono, sim_now) for c in self._conditions if _type(c) == kind
                ]
            return grouped

    # --- per call ---
    def latency_ms(self, ctx: CallContext) -> float:
        """Draw the one-way delay for ``ctx`` from the first matching latency (else 0).

        Rounded to the microsecond so the recorded value is exactly the one slept.
        """
        mono, sim_now = time.monotonic(), self._clock.now()
        with self._lock:
            self._drop_ended(mono, sim_now)
            for condition in self._conditions:
                if isinstance(condition, Latency) and condition.target.matches(ctx, sim_now):
                    condition.applied += 1
                    jitter = condition.jitter_ms
                    drawn = self._delays.uniform(0.0, jitter) if jitter > 0 else 0.0
                    return round(condition.base_ms + drawn, 3)
        return 0.0

    def outage_for(self, ctx: CallContext) -> FaultAction | None:
        """The action of the first live outage matching ``ctx``, if any."""
        mono, sim_now = time.monotonic(), self._clock.now()
        with self._lock:
            self._drop_ended(mono, sim_now)
            for condition in self._conditions:
                if (
                    isinstance(condition, Outage)
                    and condition.target.matches(ctx, sim_now)
                    and action_applies(condition.action, ctx)
                ):
                    condition.fired += 1
                    return condition.action
        return None

    def error_for(self, ctx: CallContext) -> FaultAction | None:
        """Draw against each matching error rate in turn; the first hit's action, if any."""
        mono, sim_now = time.monotonic(), self._clock.now()
        with self._lock:
            self._drop_ended(mono, sim_now)
            for condition in self._conditions:
                if (
                    isinstance(condition, ErrorRate)
                    and condition.target.matches(ctx, sim_now)
                    and action_applies(condition.action, ctx)
                ):
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

    def _drop_ended(self, mono: float, sim_now: datetime) -> None:
        self._conditions = [
            c
            for c in self._conditions
            if not c.target.ended(sim_now) and (not isinstance(c, Outage) or c.active(mono))
        ]


def _type(condition: Condition) -> str:
    if isinstance(condition, Latency):
        return "latency"
    return "error_rate" if isinstance(condition, ErrorRate) else "outage"


def _parse(spec: Any, mono: float, sim_now: datetime) -> Condition:
    """Build an (unnumbered) condition from ``{"<type>": {...}}``."""
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise FaultSpecError(f"a condition is an object with one key from {list(CONDITION_TYPES)}")
    ((kind, body),) = spec.items()
    if kind not in CONDITION_TYPES:
        raise FaultSpecError(f"condition type must be one of {list(CONDITION_TYPES)}")
    if not isinstance(body, Mapping):
        raise FaultSpecError(f"{kind} must be an object")
    allowed = (
        _TARGET_KEYS
        | {
            "latency": {"base_ms", "jitter_ms"},
            "error_rate": {"p", "action"},
            "outage": {"duration_s", "action"},
        }[kind]
    )
    unknown = set(body) - allowed
    if unknown:
        raise FaultSpecError(f"{kind} does not take {sorted(unknown)}; allowed: {sorted(allowed)}")
    target = _target(body, kind, sim_now)
    if kind == "latency":
        base = _number(body, "base_ms", 0.0, kind)
        jitter = _number(body, "jitter_ms", 0.0, kind)
        return Latency(id=0, target=target, base_ms=base, jitter_ms=jitter)
    action = parse_action(body.get("action", _DEFAULT_ACTION))
    if kind == "error_rate":
        if "p" not in body:
            raise FaultSpecError("error_rate needs p")
        p = _number(body, "p", 0.0, kind)
        if p > 1.0:
            raise FaultSpecError("error_rate.p must be between 0 and 1")
        return ErrorRate(id=0, target=target, p=p, action=action)
    duration = None if body.get("duration_s") is None else _number(body, "duration_s", 0.0, kind)
    if duration is not None and (target.start is not None or target.end is not None):
        raise FaultSpecError(
            "outage.duration_s (real seconds) does not combine with a simulated window "
            "(from / until / for_s)"
        )
    return Outage(id=0, target=target, action=action, started=mono, duration_s=duration)


def _target(body: Mapping[str, Any], kind: str, sim_now: datetime) -> Target:
    symbols = _names(body, "symbols", kind)
    tr_ids = _names(body, "tr_ids", kind)
    start = _instant(body, "from", kind)
    end = _instant(body, "until", kind)
    if "for_s" in body:
        if end is not None:
            raise FaultSpecError(f"{kind}: give until or for_s, not both")
        start = sim_now if start is None else start
        try:
            end = start + timedelta(seconds=_number(body, "for_s", 0.0, kind))
        except OverflowError:
            raise FaultSpecError(f"{kind}.for_s is too large") from None
    if start is not None and end is not None and end < start:
        raise FaultSpecError(f"{kind}.until must not be before {kind}.from")
    return Target(
        match=parse_match(body.get("match")),
        symbols=None if symbols is None else frozenset(symbol_key(s) for s in symbols),
        tr_ids=None if tr_ids is None else frozenset(name.strip() for name in tr_ids),
        start=start,
        end=end,
    )


def _names(body: Mapping[str, Any], key: str, kind: str) -> list[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(item, str) and item.strip() for item in value)
    ):
        raise FaultSpecError(
            f"{kind}.{key} must be a non-empty list of non-empty strings (omit it to match all)"
        )
    return list(value)


def _instant(body: Mapping[str, Any], key: str, kind: str) -> datetime | None:
    raw = body.get(key)
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        when = None
    if when is None:
        raise FaultSpecError(f"{kind}.{key} must be an ISO 8601 datetime (naive means KST)")
    return when.replace(tzinfo=KST) if when.tzinfo is None else when.astimezone(KST)


def _number(body: Mapping[str, Any], key: str, default: float, kind: str) -> float:
    value = body.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < math.inf:
        raise FaultSpecError(f"{kind}.{key} must be a non-negative number")
    return float(value)
