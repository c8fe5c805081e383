"""The KRX trading calendar: which days trade, when each session opens and closes, and which
minute bars a complete day of 1m data holds.

Built once per process from exchange-calendars' ``XKRX`` calendar (holidays, ad-hoc closures,
the 12-31 closure, the year's first session opening at 10:00) over 2020-01-01 … the end of the
year after next, then answered from plain dicts: no pandas after the build. Building takes a few
seconds, so it happens on the first question, not on import.

The installed exchange-calendars (4.13.2) does not know everything, so a small table shipped
with the package (``calendar_overrides.toml``) corrects it: the college-entrance-exam (CSAT)
days since 2021, when KRX moves the whole session one hour later (10:00–16:30; the library's
precomputed CSAT list, ``xkrx_holidays.precomputed_csat_days``, ends at 2020-12-03), and the
2026-06-03 closure (local elections). A user file in the same format adds to it and wins::

    [[day]]
    date = 2026-06-03
    closed = true

    [[day]]
    date = 2026-11-19
    open = "10:00"     # KST, "HH:MM"; a missing one is the regular 09:00 / 15:30
    close = "16:30"
    note = "CSAT"      # optional, for the reader

A ``[[day]]`` with neither ``closed`` nor times is a regular 09:00–15:30 session (to reopen a
day). Outside the built span, weekends are closed and weekdays trade 09:00–15:30 unless an
override says otherwise: exchange-calendars is not asked about days it was not built for.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import tempfile
import tomllib
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Final

from ._errors import CalendarError
from ._models import KST

__all__ = ["Session", "TradingCalendar", "krx_calendar"]

REGULAR_OPEN: Final = time(9, 0)
REGULAR_CLOSE: Final = time(15, 30)
CLOSING_AUCTION: Final = timedelta(minutes=10)
"""KRX's closing single-price auction: orders are collected for the last ten minutes and
matched once at the close, so no continuous trades (and no 1m bars) fall between."""

BUILT_FIRST: Final = date(2020, 1, 1)
YEARS_AHEAD: Final = 2
_SEARCH_DAYS: Final = 400
_MINUTE: Final = timedelta(minutes=1)
_OVERRIDE_KEYS: Final = frozenset({"date", "closed", "open", "close", "note"})
_BUILTIN_OVERRIDES: Final = "calendar_overrides.toml"


@dataclass(frozen=True, slots=True)
class Session:
    """One trading day of KRX's regular session; ``open``/``close`` are aware KST datetimes."""

    day: date
    open: datetime
    close: datetime

    @property
    def closing_auction(self) -> datetime:
        """Start of the closing single-price auction (``close`` − 10 min): no continuous
        trades between it and ``close``, whose print is the auction's."""
        return self.close - CLOSING_AUCTION


def _session(day: date, opens: time = REGULAR_OPEN, closes: time = REGULAR_CLOSE) -> Session:
    return Session(
        day, datetime.combine(day, opens, tzinfo=KST), datetime.combine(day, closes, tzinfo=KST)
    )


class TradingCalendar:
    """Trading days and sessions, answered from plain dicts.

    ``sessions`` are every session of the span ``first`` … ``last`` (inclusive); a day of the
    span without one is closed. Outside the span, weekdays trade 09:00–15:30 and weekends are
    closed. ``overrides`` (a session, or ``None`` for closed) win everywhere. Use
    ``krx_calendar()`` for the real KRX calendar; build one directly for tests.
    """

    def __init__(
        self,
        sessions: Iterable[Session],
        *,
        first: date,
        last: date,
        overrides: Mapping[date, Session | None] | None = None,
    ) -> None:
        """Answer from ``sessions`` for ``first`` … ``last`` and from ``overrides`` first."""
        self._sessions = {s.day: s for s in sessions}
        self._first = first
        self._last = last
        self._overrides = dict(overrides or {})

    def session(self, day: date) -> Session | None:
        """The session of ``day``, ``None`` when KRX does not trade."""
        if day in self._overrides:
            return self._overrides[day]
        if self._first <= day <= self._last:
            return self._sessions.get(day)
        return None if day.weekday() >= 5 else _session(day)

    def is_trading_day(self, day: date) -> bool:
        """Whether KRX trades on ``day``."""
        return self.session(day) is not None

    def sessions(self, first: date, last: date) -> list[Session]:
        """Every session from ``first`` to ``last``, both included, oldest first."""
        found = []
        day = first
        while day <= last:
            session = self.session(day)
            if session is not None:
                found.append(session)
            day += timedelta(days=1)
        return found

    def previous_trading_day(self, day: date) -> date:
        """The last trading day strictly before ``day``."""
        return self._step(day, -1)

    def next_trading_day(self, day: date) -> date:
        """The first trading day strictly after ``day``."""
        return self._step(day, 1)

    def is_open(self, at: datetime) -> bool:
        """Whether ``at`` (aware) falls inside a session, ``open`` and ``close`` included."""
        if at.tzinfo is None:
            raise ValueError("is_open needs an aware datetime")
        at = at.astimezone(KST)
        session = self.session(at.date())
        return session is not None and session.open <= at <= session.close

    def expected_minutes(self, day: date) -> list[datetime]:
        """The bar starts a complete day of 1m data holds, oldest first: every minute from the
        open up to (not including) the closing auction, then the close minute itself (the
        auction's print). 09:00 … 15:19 and 15:30 on a normal day: 381 bars; none when closed.
        """
        session = self.session(day)
        if session is None:
            return []
        minutes = []
        minute = session.open
        auction = session.closing_auction
        while minute < auction:
            minutes.append(minute)
            minute += _MINUTE
        minutes.append(session.close)
        return minutes

    def _step(self, day: date, direction: int) -> date:
        step = timedelta(days=direction)
        candidate = day
        for _ in range(_SEARCH_DAYS):
            candidate += step
            if self.is_trading_day(candidate):
                return candidate
        raise CalendarError(f"no trading day within {_SEARCH_DAYS} days of {day.isoformat()}")


def krx_calendar(override: Path | None = None) -> TradingCalendar:
    """The KRX calendar: exchange-calendars' ``XKRX``, corrected by the built-in override table
    and then by ``override`` (a TOML file, see the module docs).

    Cached per override path for the life of the process (a changed file is read again only by
    a new process); the exchange-calendars build behind it happens once. A file that cannot be
    read or says something impossible raises ``CalendarError``.
    """
    return _calendar(None if override is None else Path(override).resolve())


@functools.cache
def _calendar(override: Path | None) -> TradingCalendar:
    overrides = dict(_builtin_overrides())
    if override is not None:
        overrides.update(read_overrides(override))
    sessions, first, last = _xkrx()
    return TradingCalendar(sessions, first=first, last=last, overrides=overrides)


@functools.cache
def _builtin_overrides() -> dict[date, Session | None]:
    text = resources.files(__package__).joinpath(_BUILTIN_OVERRIDES).read_text(encoding="utf-8")
    return parse_overrides(text, _BUILTIN_OVERRIDES)


@functools.cache
def _xkrx() -> tuple[tuple[Session, ...], date, date]:
    first = BUILT_FIRST
    last = date(datetime.now(KST).year + YEARS_AHEAD, 12, 31)
    cache = _cache_file(first, last)
    cached = _read_cache(cache) if cache is not None else None
    if cached is not None:
        return cached, first, last
    sessions = build_xkrx(first, last)
    if cache is not None:
        _write_cache(cache, sessions)
    return sessions, first, last


def _cache_file(first: date, last: date) -> Path | None:
    """Where the built schedule is kept between processes: building it takes seconds, reading
    it back milliseconds. Named by the exchange-calendars version and the span, so an upgrade
    builds afresh. ``APIHUB_CACHE_DIR`` (else ``$XDG_CACHE_HOME/apihub``, else
    ``~/.cache/apihub``); ``APIHUB_CACHE_DIR=""`` turns the cache off."""
    configured = os.environ.get("APIHUB_CACHE_DIR")
    if configured == "":
        return None
    try:
        version = importlib.metadata.version("exchange-calendars")
    except importlib.metadata.PackageNotFoundError:
        return None
    if configured:
        root = Path(configured)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "apihub"
    return root / f"xkrx-{version}-{first:%Y%m%d}-{last:%Y%m%d}.json"


def _read_cache(path: Path) -> tuple[Session, ...] | None:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return tuple(
            Session(
                date.fromisoformat(day),
                datetime.fromisoformat(opens).astimezone(KST),
                datetime.fromisoformat(closes).astimezone(KST),
            )
            for day, opens, closes in rows
        )
    except (OSError, ValueError, TypeError):
        return None  # absent or unreadable: build it


def _write_cache(path: Path, sessions: Iterable[Session]) -> None:
    rows = [[s.day.isoformat(), s.open.isoformat(), s.close.isoformat()] for s in sessions]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(rows, out)
        os.replace(temp, path)
    except OSError:
        pass  # a read-only home only costs the next process the build


def build_xkrx(first: date, last: date) -> tuple[Session, ...]:
    """Every XKRX session between ``first`` and ``last``, from exchange-calendars."""
    with warnings.catch_warnings():
        # exchange-calendars 4.13 on pandas 3 warns about its own use of Series.values.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        import exchange_calendars  # type: ignore[import-untyped]

        calendar: Any = exchange_calendars.get_calendar(
            "XKRX", start=first.isoformat(), end=last.isoformat()
        )
        schedule: Any = calendar.schedule
        return tuple(
            Session(
                label.date(),
                opens.to_pydatetime().astimezone(KST),
                closes.to_pydatetime().astimezone(KST),
            )
            for label, opens, closes in zip(
                schedule.index, schedule["open"], schedule["close"], strict=True
            )
        )


def read_overrides(path: Path) -> dict[date, Session | None]:
    """Read one override file: day → its session, or ``None`` for closed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CalendarError(f"{path}: cannot read the calendar overrides: {exc}") from exc
    return parse_overrides(text, str(path))


def parse_overrides(text: str, source: str) -> dict[date, Session | None]:
    """Parse override TOML; ``source`` names it in errors (one line: file and problem)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CalendarError(f"{source}: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - {"day"})
    if unknown:
        raise CalendarError(f"{source}: unknown top-level key {unknown[0]!r} (only [[day]])")
    entries = data.get("day", [])
    if not isinstance(entries, list):
        raise CalendarError(f"{source}: 'day' must be an array of tables ([[day]])")
    found: dict[date, Session | None] = {}
    for number, entry in enumerate(entries, 1):
        day, session = _override(entry, f"{source}: [[day]] #{number}")
        if day in found:
            raise CalendarError(f"{source}: [[day]] #{number}: {day.isoformat()} given twice")
        found[day] = session
    return found


def _override(entry: object, where: str) -> tuple[date, Session | None]:
    if not isinstance(entry, dict):
        raise CalendarError(f"{where}: must be a table")
    unknown = sorted(set(entry) - _OVERRIDE_KEYS)
    if unknown:
        raise CalendarError(f"{where}: unknown key {unknown[0]!r}")
    day = _override_day(entry.get("date"), where)
    where = f"{where} ({day.isoformat()})"
    closed = entry.get("closed", False)
    if not isinstance(closed, bool):
        raise CalendarError(f"{where}: 'closed' must be true or false")
    if closed:
        if "open" in entry or "close" in entry:
            raise CalendarError(f"{where}: a closed day has no 'open' or 'close'")
        return day, None
    opens = _override_time(entry.get("open", REGULAR_OPEN), "open", where)
    closes = _override_time(entry.get("close", REGULAR_CLOSE), "close", where)
    if opens >= closes:
        raise CalendarError(f"{where}: 'open' {opens:%H:%M} is not before 'close' {closes:%H:%M}")
    return day, _session(day, opens, closes)


def _override_day(raw: object, where: str) -> date:
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return raw
    if isinstance(raw, str):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    if raw is None:
        raise CalendarError(f"{where}: 'date' is missing")
    raise CalendarError(f"{where}: 'date' must be a date such as 2026-06-03, not {raw!r}")


def _override_time(raw: object, key: str, where: str) -> time:
    if isinstance(raw, time) and raw.tzinfo is None:
        return raw
    if isinstance(raw, str) and len(raw) == 5 and raw[2] == ":":
        try:
            return time.fromisoformat(raw)
        except ValueError:
            pass
    raise CalendarError(f'{where}: {key!r} must be a KST time "HH:MM", not {raw!r}')
