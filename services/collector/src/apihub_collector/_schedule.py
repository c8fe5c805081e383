"""When the collector works: pure functions of the trading calendar and the market's clock.

The collector polls only on trading days inside the regular session, ``[open, close]`` in
market time (the wall clock in production, the simulator's published clock under
``apihub up``). Outside it sleeps towards the next open in bounded steps, reading the clock
again after each, because the simulator's clock may jump (a test or the demo moving it).
Cadences are market time too (:meth:`~apihub_runtime.MarketClock.wall_seconds` turns them into
real pauses); request timeouts stay real time.

A cycle starts only when the previous cycle of its mode has been answered in full and fewer
than ``max_in_flight`` of the collector's requests are outstanding (:func:`admission`);
otherwise it is skipped and recorded, never queued.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from apihub_marketdata import KST, Session, TradingCalendar
from apihub_runtime import MarketClock

SkipReason = Literal["overrun", "budget_saturated"]

MAX_PAUSE_S: Final = 5.0
"""Longest real pause inside the session between two readings of the market clock."""
MAX_IDLE_S: Final = 30.0
"""Longest real pause outside the session between two readings of the market clock."""
LOOKAHEAD_DAYS: Final = 31
"""How far :func:`next_open` looks for the next session (KRX never closes this long)."""


@dataclass(frozen=True, slots=True)
class InSession:
    """Market time is inside ``session``: poll."""

    session: Session


@dataclass(frozen=True, slots=True)
class Closed:
    """Market time is outside every session; the next one opens at ``next_open`` (``None``
    when the calendar knows none within :data:`LOOKAHEAD_DAYS`). ``why`` is ``before_open``,
    ``after_close`` or ``closed_day``."""

    next_open: datetime | None
    why: Literal["before_open", "after_close", "closed_day"]


def market_state(calendar: TradingCalendar, now: datetime) -> InSession | Closed:
    """Whether ``now`` (aware) falls inside the day's session, both ends included."""
    now = now.astimezone(KST)
    session = calendar.session(now.date())
    if session is not None and session.open <= now <= session.close:
        return InSession(session)
    if session is None:
        why: Literal["before_open", "after_close", "closed_day"] = "closed_day"
    else:
        why = "before_open" if now < session.open else "after_close"
    return Closed(next_open(calendar, now), why)


def next_open(calendar: TradingCalendar, now: datetime) -> datetime | None:
    """The first session open after ``now`` (today's, before it opens)."""
    now = now.astimezone(KST)
    for offset in range(LOOKAHEAD_DAYS + 1):
        session = calendar.session(now.date() + timedelta(days=offset))
        if session is not None and session.open > now:
            return session.open
    return None


def closed_pause(
    clock: MarketClock, now: datetime, opens: datetime | None, *, cap: float = MAX_IDLE_S
) -> float:
    """Real seconds to sleep outside the session: towards ``opens``, at most ``cap`` so a
    jump of the clock is noticed."""
    if opens is None:
        return cap
    until = (opens - now).total_seconds()
    return max(0.0, min(clock.wall_seconds(until), cap))


def admission(*, running: bool, in_flight: int, max_in_flight: int) -> SkipReason | None:
    """Why a cycle must be skipped (``None``: run it): ``overrun`` while the previous cycle of
    the mode has requests unanswered, ``budget_saturated`` when ``max_in_flight`` requests of
    the collector (of both modes) are outstanding: they wait for permits, the hub's budget is
    spent."""
    if running:
        return "overrun"
    if in_flight >= max_in_flight:
        return "budget_saturated"
    return None


def minute_of(at: datetime) -> datetime:
    """The start of the minute holding ``at``, in KST."""
    return at.astimezone(KST).replace(second=0, microsecond=0)


def window_start(
    now: datetime, last_poll: datetime | None, session: Session, overlap_bars: int
) -> datetime | None:
    """The oldest minute bar a swing poll at ``now`` must reach so that it overlaps the
    previous successful poll (at ``last_poll``) by ``overlap_bars`` bars, or ``None`` when
    there is nothing to continue (no poll yet this session, or a clock that went back): then
    the newest page alone is asked, and older bars are the sentinel's to heal.

    The bar forming at ``last_poll`` and the ``overlap_bars - 1`` before it are read again, so
    a bar still forming at one poll is read complete at the next."""
    if last_poll is None:
        return None
    last = last_poll.astimezone(KST)
    if last.date() != session.day or last > now or last < session.open:
        return None
    start = minute_of(last) - timedelta(minutes=max(overlap_bars, 1) - 1)
    return max(start, session.open)
