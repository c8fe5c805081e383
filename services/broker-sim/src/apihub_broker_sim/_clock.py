"""The simulated clock every date-dependent answer is computed from.

Two timelines live here:

- :meth:`SimClock.now`, the **simulated** time: it can be frozen, set, advanced, and run faster
  (or slower) than real time by :attr:`SimClock.rate` simulated seconds per real second. Market
  data, token lifetimes, order fills, condition windows and the ``Date`` header follow it.
- :meth:`SimClock.pacing_now`, the **pacing** time: it runs at exactly one second per real
  second whatever the rate and even while the clock is frozen, and moves by the explicit jumps
  only (``set``, ``advance``). The KIS token issuance throttle follows it, so a clock running
  ten times faster does not let a client mint tokens ten times as often, while a test that
  moves the clock past a window has still waited it out. (Per-second rate limits and outage
  durations use the host's monotonic clock directly.)
"""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime, timedelta, timezone

__all__ = ["KST", "SimClock"]

KST = timezone(timedelta(hours=9), "KST")
"""Korea Standard Time. Korea has no daylight saving, so a fixed offset is exact."""


class SimClock:
    """A thread-safe clock in KST that tests can freeze, set, advance and speed up.

    While running it ticks with the host's monotonic clock from its last anchor, ``rate``
    simulated seconds per real second (1.0: a simulated day passes at the speed of a real
    one). Naive datetimes are read as KST. ``rate`` must be a finite number above zero (to
    stop the clock, freeze it).
    """

    def __init__(
        self, start: datetime | None = None, *, frozen: bool = False, rate: float = 1.0
    ) -> None:
        """Start at ``start`` (default: the real current time), optionally frozen, running
        ``rate`` times as fast as real time."""
        self._lock = threading.Lock()
        self._anchor = _as_kst(start) if start is not None else datetime.now(KST)
        self._anchor_mono = time.monotonic()
        self._frozen = frozen
        self._rate = _checked_rate(rate)
        self._pace_anchor = self._anchor
        self._pace_mono = self._anchor_mono

    @property
    def frozen(self) -> bool:
        """Whether the clock is standing still."""
        with self._lock:
            return self._frozen

    @property
    def rate(self) -> float:
        """Simulated seconds per real second while the clock runs."""
        with self._lock:
            return self._rate

    def now(self) -> datetime:
        """Return the simulated current time as an aware KST datetime."""
        with self._lock:
            return self._now_locked(time.monotonic())

    def pacing_now(self) -> datetime:
        """Return the pacing time (module docstring): real speed plus the explicit jumps."""
        with self._lock:
            return self._pacing_locked(time.monotonic())

    def set(self, when: datetime, *, frozen: bool = True) -> None:
        """Jump to ``when``; by default the clock then stays there until advanced."""
        with self._lock:
            mono = time.monotonic()
            target = _as_kst(when)
            self._jump_pacing(mono, target - self._now_locked(mono))
            self._anchor = target
            self._anchor_mono = mono
            self._frozen = frozen

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or back, for a negative value) by ``seconds``."""
        with self._lock:
            mono = time.monotonic()
            step = timedelta(seconds=seconds)
            self._jump_pacing(mono, step)
            self._anchor = self._now_locked(mono) + step
            self._anchor_mono = mono

    def unfreeze(self) -> None:
        """Let a frozen clock run again from where it stands."""
        with self._lock:
            mono = time.monotonic()
            self._anchor = self._now_locked(mono)
            self._anchor_mono = mono
            self._frozen = False

    def set_rate(self, rate: float) -> None:
        """Run ``rate`` simulated seconds per real second from now on (no jump in time)."""
        checked = _checked_rate(rate)
        with self._lock:
            mono = time.monotonic()
            self._anchor = self._now_locked(mono)
            self._anchor_mono = mono
            self._rate = checked

    def _now_locked(self, mono: float) -> datetime:
        if self._frozen:
            return self._anchor
        return self._anchor + timedelta(seconds=(mono - self._anchor_mono) * self._rate)

    def _pacing_locked(self, mono: float) -> datetime:
        return self._pace_anchor + timedelta(seconds=mono - self._pace_mono)

    def _jump_pacing(self, mono: float, step: timedelta) -> None:
        self._pace_anchor = self._pacing_locked(mono) + step
        self._pace_mono = mono


def _checked_rate(rate: float) -> float:
    if (
        isinstance(rate, bool)
        or not isinstance(rate, int | float)
        or not math.isfinite(rate)
        or rate <= 0
    ):
        raise ValueError(f"the clock rate must be a finite number above 0, not {rate!r}")
    return float(rate)


def _as_kst(when: datetime) -> datetime:
    if when.tzinfo is None:
        return when.replace(tzinfo=KST)
    return when.astimezone(KST)
