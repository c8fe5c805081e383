"""Quote arithmetic shared by the KIS and Kiwoom formatters: snapshots, signs, periods."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from ._krx import price_limits
from ._market import Bar, DayTape, Market, SymbolInfo, aggregate

__all__ = [
    "Extremes",
    "Fundamentals",
    "Snapshot",
    "change_sign",
    "close_extremes",
    "daily_flow",
    "fundamentals",
    "hhmmss",
    "pct",
    "period_bars_desc",
    "period_key",
    "period_start",
    "signed",
    "snapshot",
    "vs_base",
    "ymd",
]


def ymd(day: date) -> str:
    """``YYYYMMDD``."""
    return day.strftime("%Y%m%d")


def hhmmss(second: int) -> str:
    """Seconds after midnight as ``HHMMSS``."""
    return f"{second // 3600:02d}{second // 60 % 60:02d}{second % 60:02d}"


def pct(numerator: float, denominator: float) -> str:
    """A percentage with two decimals, ``"0.00"`` when undefined."""
    if not denominator:
        return "0.00"
    return f"{numerator * 100.0 / denominator:.2f}"


def signed(value: int | str) -> str:
    """Kiwoom style: ``+`` for positive, ``-`` for negative, bare for zero."""
    text = str(value)
    if text.startswith("-") or text.strip("0.") == "":
        return text
    return "+" + text


def change_sign(price: int, base: int) -> str:
    """The KIS/Kiwoom change code: 1 upper limit, 2 up, 3 flat, 4 lower limit, 5 down."""
    lower, upper = price_limits(base)
    if price > base:
        return "1" if price >= upper else "2"
    if price < base:
        return "4" if price <= lower else "5"
    return "3"


def vs_base(price: int, base: int) -> str:
    """A price signed against the base price, as Kiwoom prints prices."""
    if price > base:
        return f"+{price}"
    if price < base:
        return f"-{price}"
    return str(price)


@dataclass(frozen=True)
class Snapshot:
    """A symbol as it stands at the simulated now."""

    info: SymbolInfo
    day: date
    cutoff_s: int
    tape: DayTape
    last_index: int
    price: int
    base: int
    upper: int
    lower: int
    bar: Bar
    prev_bar: Bar

    @property
    def change(self) -> int:
        """Price minus the previous close."""
        return self.price - self.base

    @property
    def sign(self) -> str:
        """The change code (see :func:`change_sign`)."""
        return change_sign(self.price, self.base)

    @property
    def rate(self) -> str:
        """Change in percent, two decimals."""
        return pct(self.change, self.base)


def snapshot(market: Market, code: str, now: datetime) -> Snapshot:
    """The current state of ``code``: last print, today's bar, yesterday's bar."""
    day, cutoff = market.session(now)
    tape = market.tape(code, day)
    count = tape.tick_count(cutoff)
    bar = market.day_bar(code, day, cutoff)
    prev_bar = market.day_bar(code, market.prev_trading_day(day))
    if bar is None or prev_bar is None or count == 0:
        # session() only returns started sessions, and each opens with a print at its open.
        raise RuntimeError(f"no prints for {code} on {day} by {cutoff}")
    lower, upper = price_limits(tape.prev_close)
    return Snapshot(
        info=market.symbol(code),
        day=day,
        cutoff_s=cutoff,
        tape=tape,
        last_index=count - 1,
        price=tape.prices[count - 1],
        base=tape.prev_close,
        upper=upper,
        lower=lower,
        bar=bar,
        prev_bar=prev_bar,
    )


@dataclass(frozen=True)
class Extremes:
    """Highest and lowest close over a lookback, with their dates."""

    high: int
    high_day: date
    low: int
    low_day: date


def close_extremes(market: Market, code: str, snap: Snapshot, since: date) -> Extremes:
    """Extremes of daily closes since ``since`` (today counts at its current price).

    Closes rather than intraday highs keep this cheap: closes need no tick generation.
    """
    high, high_day = snap.price, snap.day
    low, low_day = snap.price, snap.day
    for day in market.trading_days_desc(market.prev_trading_day(snap.day), since):
        close = market.close(code, day)
        if close > high:
            high, high_day = close, day
        if close < low:
            low, low_day = close, day
    return Extremes(high, high_day, low, low_day)


def period_key(day: date, period: str) -> tuple[int, ...]:
    """Group key of ``day`` for D/W/M/Y periods."""
    if period == "W":
        iso = day.isocalendar()
        return (iso.year, iso.week)
    if period == "M":
        return (day.year, day.month)
    if period == "Y":
        return (day.year,)
    return (day.toordinal(),)


def period_start(day: date, period: str) -> date:
    """The first calendar day of the period containing ``day``."""
    if period == "W":
        return day - timedelta(days=day.weekday())
    if period == "M":
        return day.replace(day=1)
    if period == "Y":
        return day.replace(month=1, day=1)
    return day


def period_bars_desc(
    market: Market,
    code: str,
    newest: date,
    oldest: date,
    now: datetime,
    period: str,
    limit: int,
) -> list[tuple[Bar, int]]:
    """Up to ``limit`` D/W/M/Y bars in ``[oldest, newest]``, newest first.

    Each comes with the close before its period (for the change fields). A period bar is
    the exact aggregate of its daily bars in range; it is dated by its first trading day in
    range, so paging by "oldest date minus one day" never repeats a period.
    """
    result: list[tuple[Bar, int]] = []
    group: list[Bar] = []
    key: tuple[int, ...] | None = None
    for bar in market.iter_daily_desc(code, newest, oldest, now):
        bar_key = period_key(bar.day, period)
        if key is not None and bar_key != key:
            result.append(_period_bar(market, code, group, period))
            if len(result) >= limit:
                return result
            group = []
        key = bar_key
        group.append(bar)
    if group:
        result.append(_period_bar(market, code, group, period))
    return result[:limit]


def _period_bar(market: Market, code: str, group_desc: list[Bar], period: str) -> tuple[Bar, int]:
    bars = list(reversed(group_desc))
    merged = aggregate(bars) if len(bars) > 1 else bars[0]
    # Use the close before the period's first calendar day, even when the range clips it.
    first = period_start(bars[0].day, period)
    before = market.close(code, market.prev_trading_day(first if period != "D" else bars[0].day))
    return merged, before


@dataclass(frozen=True)
class Fundamentals:
    """Slow-moving per-symbol figures that the quote TRs print but nothing else uses."""

    eps: int
    bps: int
    foreign_pct: float
    loan_pct: float
    fiscal_month: str


def fundamentals(info: SymbolInfo) -> Fundamentals:
    """Plausible constants for ``info`` derived from its code."""
    digest = hashlib.blake2b(f"fundamentals|{info.code}".encode(), digest_size=8).digest()
    a, b, c, d = digest[0], digest[1], digest[2], digest[3]
    eps = max(1, info.base_price // (8 + a % 20))
    bps = max(1, info.base_price * (40 + b % 80) // 100)
    return Fundamentals(
        eps=eps,
        bps=bps,
        foreign_pct=5.0 + (c % 500) / 10.0,
        loan_pct=(d % 100) / 100.0,
        fiscal_month="12",
    )


def daily_flow(info: SymbolInfo, day: date) -> int:
    """Seeded foreign/program net buying for a day (shares, may be negative)."""
    digest = hashlib.blake2b(f"flow|{info.code}|{day}".encode(), digest_size=8).digest()
    raw = int.from_bytes(digest, "big") / 2.0**64 - 0.5
    return int(raw * info.daily_volume * 0.2)
