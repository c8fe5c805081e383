"""What every normaliser shares: decoding, the brokers' number, date and time strings, the
request's symbol, and the checks a bar passes before it is kept.

The hot path is plain Python on msgspec Structs: ``int()`` on ASCII strings, dict caches for
date and time strings (an answer repeats the same day on every row), no regex. The slow path
(finding which field of which row is wrong) runs only once an answer has already failed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final, TypeVar

import msgspec

from ._calendar import REGULAR_OPEN, TradingCalendar, krx_calendar
from ._errors import NormaliseError
from ._models import KST, Candle, Interval, SourceType, Tick

T = TypeVar("T")

RawBar = tuple[datetime, int, int, int, int, int, int | None, int]
"""ts, open, high, low, close, volume, value (or the cumulative it comes from), row index."""

_CACHE_LIMIT: Final = 100_000
_DAYS: dict[str, date] = {}
_TIMES: dict[str, time] = {}
_MINUTES: dict[str, datetime] = {}


def decode(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    """Decode ``body`` into the TR's Struct; every failure is ``malformed_json``."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise NormaliseError("malformed_json", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise NormaliseError("malformed_json", f"not JSON ({exc})") from None


def require(value: T | None, name: str) -> T:
    """The answer's list or object ``name``; ``missing_field`` when it is absent or null."""
    if value is None:
        raise NormaliseError("missing_field", f"the answer has no {name!r}")
    return value


def whole(text: str) -> int:
    """A whole number as the brokers write it (``"70100"``, ``"+70100"``, ``"-600"``).

    ``int()`` alone would also take ``"1_000"`` and non-ASCII digits; neither is a broker's.
    """
    if text.isascii() and "_" not in text:
        return int(text)
    raise ValueError(text)


def plain(joined: str) -> None:
    """``ValueError`` unless ``joined`` (a row's number strings, concatenated) holds only what
    ``int()`` should see from a broker: one check per row instead of one per number."""
    if not joined.isascii() or "_" in joined:
        raise ValueError(joined)


def parse_day(text: str) -> date:
    """``YYYYMMDD`` as a date; ``ValueError`` when it is not one."""
    day = _DAYS.get(text)
    if day is None:
        if len(text) != 8 or not (text.isascii() and text.isdigit()):
            raise ValueError(text)
        day = date(int(text[:4]), int(text[4:6]), int(text[6:]))
        if len(_DAYS) >= _CACHE_LIMIT:
            _DAYS.clear()
        _DAYS[text] = day
    return day


def parse_time(text: str) -> time:
    """``HHMMSS`` as an aware KST time; ``ValueError`` when it is not one."""
    found = _TIMES.get(text)
    if found is None:
        if len(text) != 6 or not (text.isascii() and text.isdigit()):
            raise ValueError(text)
        found = time(int(text[:2]), int(text[2:4]), int(text[4:]), tzinfo=KST)
        _TIMES[text] = found  # at most 86,400 valid strings
    return found


def minute_start(day: str, hhmmss: str) -> datetime:
    """A 1m bar's start from its day and time strings; the time must fall on the minute."""
    key = day + hhmmss
    found = _MINUTES.get(key)
    if found is None:
        at = parse_time(hhmmss)
        if at.second:
            raise ValueError(hhmmss)
        found = datetime.combine(parse_day(day), at)
        if len(_MINUTES) >= _CACHE_LIMIT:
            _MINUTES.clear()
        _MINUTES[key] = found
    return found


def stamp(text: str, *, on_minute: bool) -> datetime:
    """A ``YYYYMMDDHHMMSS`` stamp (Kiwoom's ``cntr_tm``); ``on_minute`` for a 1m bar's."""
    if len(text) != 14:
        raise ValueError(text)
    if on_minute:
        return minute_start(text[:8], text[8:])
    return datetime.combine(parse_day(text[:8]), parse_time(text[8:]))


def day_start(day: str) -> datetime:
    """A daily bar's start: 00:00 KST of its day."""
    return datetime.combine(parse_day(day), _MIDNIGHT)


_MIDNIGHT: Final = time(0, 0, tzinfo=KST)


def param(params: Mapping[str, str], name: str) -> str:
    """A request parameter, its name matched case-insensitively (KIS takes ``fid_…`` too);
    ``missing_field`` when absent or blank."""
    value = params.get(name)
    if value is None:
        wanted = name.casefold()
        value = next((v for k, v in params.items() if k.casefold() == wanted), None)
    if value is None or not value.strip():
        raise NormaliseError("missing_field", f"the request has no {name!r} parameter")
    return value.strip()


def bad_number(where: str, fields: Sequence[tuple[str, str]]) -> NormaliseError:
    """The error for the first field of ``fields`` that is not a whole number."""
    for name, text in fields:
        try:
            whole(text)
        except ValueError:
            return NormaliseError("bad_number", f"{where}.{name}: {text!r} is not a whole number")
    return NormaliseError("bad_number", f"{where}: a number does not parse")  # pragma: no cover


def bad_time(where: str, fields: Sequence[tuple[str, str]], shape: str) -> NormaliseError:
    """The error for a row whose date/time fields (named in ``fields``) do not parse."""
    shown = ", ".join(f"{name} {text!r}" for name, text in fields)
    return NormaliseError("bad_time", f"{where}: {shown} is not a valid {shape}")


def bar_problem(bar: RawBar, where: str) -> NormaliseError:
    """The ``inconsistent_bar`` error for a bar that cannot be true, saying why."""
    _, o, h, low, c, v, _, _ = bar
    if min(o, h, low, c) <= 0:
        why = f"a price is not above zero (open {o} high {h} low {low} close {c})"
    elif h < max(o, c) or low > min(o, c):
        why = f"high {h} / low {low} do not hold open {o} and close {c}"
    else:
        why = f"negative volume or value (volume {v}, value {bar[6]})"
    return NormaliseError("inconsistent_bar", f"{where}: {why}")


def settle(bars: list[RawBar], rows: str) -> list[RawBar]:
    """Check every bar, drop exact repeats of a time, sort oldest first.

    Two different bars at one time are ``inconsistent_bar``: which one is true is unknowable.
    """
    by_ts: dict[datetime, RawBar] = {}
    for bar in bars:
        _, o, h, low, c, v, value, index = bar
        if (
            low <= 0
            or h < (o if o > c else c)
            or low > (o if o < c else c)
            or v < 0
            or (value is not None and value < 0)
        ):
            raise bar_problem(bar, f"{rows}[{index}]")
        seen = by_ts.get(bar[0])
        if seen is None:
            by_ts[bar[0]] = bar
        elif seen[1:7] != bar[1:7]:
            raise NormaliseError(
                "inconsistent_bar",
                f"{rows}[{seen[7]}] and {rows}[{bar[7]}]: two different bars at "
                f"{bar[0].isoformat()}",
            )
    return sorted(by_ts.values(), key=_ts)


def _ts(bar: RawBar) -> datetime:
    return bar[0]


@dataclass(frozen=True, slots=True)
class Context:
    """Everything about one answer that is not in its body."""

    provider: str
    symbol: str
    lineage: str
    source_type: SourceType
    received_at: datetime | None
    calendar: TradingCalendar | None

    def trading_calendar(self) -> TradingCalendar:
        """The calendar given, else the KRX one (built on first use)."""
        return self.calendar if self.calendar is not None else krx_calendar()

    def session_open(self, day: date) -> datetime:
        """When ``day``'s session opens (09:00 when the calendar says it does not trade)."""
        session = self.trading_calendar().session(day)
        return session.open if session is not None else datetime.combine(day, _OPEN_KST)

    def candles(
        self, interval: Interval, bars: Sequence[RawBar], values: Sequence[int | None] = ()
    ) -> tuple[Candle, ...]:
        """Candles of settled ``bars``; their value is ``values[i]`` when given, else the
        bar's own."""
        provider, symbol, lineage, source = (
            self.provider,
            self.symbol,
            self.lineage,
            self.source_type,
        )
        return tuple(
            Candle(
                provider=provider,
                symbol=symbol,
                interval=interval,
                ts=bar[0],
                open=bar[1],
                high=bar[2],
                low=bar[3],
                close=bar[4],
                volume=bar[5],
                value=value,
                source_type=source,
                lineage=lineage,
            )
            for bar, value in zip(bars, values or [bar[6] for bar in bars], strict=True)
        )

    def ticks(self, prints: list[tuple[datetime, int, int]]) -> tuple[Tick, ...]:
        """Ticks of ``prints`` (ts, price, volume) given oldest first, sorted by time (stable,
        so prints of one second keep their order); ``seq`` numbers each second's from 0."""
        prints.sort(key=_first)
        out = []
        last: datetime | None = None
        seq = 0
        for ts, price, volume in prints:
            seq = seq + 1 if ts == last else 0
            last = ts
            out.append(
                Tick(
                    provider=self.provider,
                    symbol=self.symbol,
                    ts=ts,
                    price=price,
                    volume=volume,
                    seq=seq,
                    source_type=self.source_type,
                    lineage=self.lineage,
                )
            )
        return tuple(out)


def _first(item: tuple[datetime, int, int]) -> datetime:
    return item[0]


def check_print(where: str, price: int, volume: int) -> None:
    """``inconsistent_bar`` unless a trade print can be true."""
    if price <= 0 or volume < 0:
        raise NormaliseError(
            "inconsistent_bar", f"{where}: price {price} / volume {volume} cannot be a trade"
        )


_OPEN_KST: Final = REGULAR_OPEN.replace(tzinfo=KST)
_TOLERANCE: Final = timedelta(minutes=1)


def tick_day_resolver(ctx: Context) -> Callable[[time], datetime]:
    """Dates for trade times that carry only a time of day, from ``received_at``.

    A time belongs to received_at's KST day when that day trades and the time is not later
    than received_at (a minute of clock difference allowed); otherwise to the trading day
    before it (a poll before the open, or on a holiday, shows the last session's trades).
    """
    received = ctx.received_at
    if received is None:
        raise NormaliseError("missing_time", "the rows carry only a time of day: give received_at")
    received = received.astimezone(KST)
    today = received.date()
    calendar = ctx.trading_calendar()
    latest = received + _TOLERANCE
    before = calendar.previous_trading_day(today)
    if not calendar.is_trading_day(today):
        return lambda at: datetime.combine(before, at)

    def resolve(at: time) -> datetime:
        when = datetime.combine(today, at)
        return when if when <= latest else datetime.combine(before, at)

    return resolve


def aware(received_at: datetime | None) -> datetime | None:
    """``received_at`` checked: an aware datetime or nothing."""
    if received_at is not None and received_at.tzinfo is None:
        raise ValueError("received_at must be an aware datetime (the broker's Date header)")
    return received_at
