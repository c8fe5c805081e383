"""The simulated clock every date-dependent answer is computed from."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

__all__ = ["KST", "SimClock"]

KST = timezone(timedelta(hours=9), "KST")
"""Korea Standard Time. Korea has no daylight saving, so a fixed offset is exact."""


class SimClock:
    """A thread-safe clock in KST that tests can freeze, set and advance.

    While running it ticks with the host's monotonic clock from its last anchor, so a
    simulated day passes at the speed of a real one. Naive datetimes are read as KST.
    """

    def __init__(self, start: datetime | None = None, *, frozen: bool = False) -> None:
        """Start at ``start`` (default: the real current time), optionally frozen."""
        self._lock = threading.Lock()
        self._anchor = _as_kst(start) if start is not None else datetime.now(KST)
        self._anchor_mono = time.monotonic()
        self._frozen = frozen

    @property
    def frozen(self) -> bool:
        """Whether the clock is standing still."""
        with self._lock:
            return self._frozen

    def now(self) -> datetime:
        """Return the simulated current time as an aware KST datetime."""
        with self._lock:
            return self._now_locked()

    def set(self, when: datetime, *, frozen: bool = True) -> None:
        """Jump to ``when``; by default the clock then stays there until advanced."""
        with self._lock:
            self._anchor = _as_kst(when)
            self._anchor_mono = time.monotonic()
            self._frozen = frozen

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or back, for a negative value) by ``seconds``."""
        with self._lock:
            self._anchor = self._now_locked() + timedelta(seconds=seconds)
            self._anchor_mono = time.monotonic()

    def unfreeze(self) -> None:
        """Let a frozen clock run again from where it stands."""
        with self._lock:
            self._anchor = self._now_locked()
            self._anchor_mono = time.monotonic()
            self._frozen = False

    def _now_locked(self) -> datetime:
        if self._frozen:
            return self._anchor
        return self._anchor + timedelta(seconds=time.monotonic() - self._anchor_mono)


def _as_kst(when: datetime) -> datetime:
    if when.tzinfo is None:
        return when.replace(tzinfo=KST)
    return when.astimezone(KST)
