"""Deterministic market data: ticks, and minute and daily bars aggregated exactly from them.

How a day is made, for one symbol:

1. The **close** of every trading day comes straight from a seeded function of the date
   (slow value noise plus a daily shock), so any day's previous close is known without
   generating earlier days.
2. The **open** is the previous close plus a small seeded gap.
3. The **ticks** (about 1,400 a day: the opening print at the open, at least one in every
   minute of continuous trading, none in the ten-minute closing auction, and the closing
   print at the close; on a regular day 09:00:00, 09:00–15:19 and 15:30:00) walk on the KRX
   price grid from the open to the close: a random walk in grid steps pulled towards the
   close (a discrete Brownian bridge), clamped to the daily price limits. The last tick is
   the close. Trading days and session hours follow the KRX calendar (``_krx``).
4. **Minute bars** aggregate ticks, **daily bars** aggregate minute bars, weekly and
   monthly bars aggregate daily bars. Nothing is stored that is not derived from ticks,
   so the three levels agree exactly.

Everything is keyed on ``(seed, symbol, date)`` through BLAKE2b (never ``hash()``, which is
salted per process), so the same request at the same simulated time gives the same bytes.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

from apihub_marketdata import TradingCalendar, krx_calendar

from ._clock import KST
from ._krx import (
    REGULAR_HOURS,
    MarketCalendar,
    SessionHours,
    index_to_price,
    price_limits,
    price_to_index,
    round_to_grid,
    second_of_day,
)

__all__ = ["Bar", "DayTape", "Market", "SymbolInfo", "aggregate", "symbol_info"]


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """Static reference data for one six-digit code."""

    code: str
    name: str
    base_price: int
    daily_volume: int
    listed_shares: int
    sector: str
    market_name: str
    par_value: int


@dataclass(frozen=True, slots=True)
class Bar:
    """An OHLCV bar. ``start_s`` is the bar's first second after midnight (0 for daily bars).

    ``value`` is the traded value (sum of price x volume) inside the bar; ``cum_volume`` and
    ``cum_value`` are the day's running totals at the end of the bar.
    """

    day: date
    start_s: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    value: int
    cum_volume: int
    cum_value: int
    ticks: int
    last_day: date


_KNOWN: dict[str, tuple[str, int, int, int, str, str, int]] = {
    # code: (name, base price, daily volume, listed shares, sector, market, par value)
    "005930": ("삼성전자", 72_000, 14_000_000, 5_919_637_922, "전기.전자", "KOSPI200", 100),
    "000660": ("SK하이닉스", 180_000, 3_500_000, 728_002_365, "전기.전자", "KOSPI200", 5_000),
    "035420": ("NAVER", 200_000, 700_000, 158_437_008, "서비스업", "KOSPI200", 100),
    "035720": ("카카오", 45_000, 2_000_000, 445_000_000, "서비스업", "KOSPI200", 100),
    "005380": ("현대차", 210_000, 600_000, 211_531_506, "운수장비", "KOSPI200", 5_000),
    "373220": ("LG에너지솔루션", 380_000, 250_000, 234_000_000, "전기.전자", "KOSPI200", 500),
    "069500": ("KODEX 200", 35_000, 3_000_000, 100_000_000, "", "KOSPI", 0),
}


def _digest(*parts: object) -> bytes:
    text = "|".join(str(part) for part in parts)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def _seed_int(*parts: object) -> int:
    return int.from_bytes(_digest(*parts)[:8], "big")


def _gauss(*parts: object) -> float:
    """A standard normal draw keyed on ``parts``, clipped to ±3 so daily moves stay bounded."""
    raw = _digest(*parts)
    u1 = (int.from_bytes(raw[:8], "big") + 0.5) / 2.0**64
    u2 = int.from_bytes(raw[8:], "big") / 2.0**64
    z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
    return max(-3.0, min(3.0, z))


@lru_cache(maxsize=4096)
def symbol_info(seed: int, code: str) -> SymbolInfo:
    """Reference data: a few real names, otherwise generated from the code."""
    known = _KNOWN.get(code)
    if known is not None:
        name, base, volume, shares, sector, market, par = known
        return SymbolInfo(code, name, base, volume, shares, sector, market, par)
    rng = random.Random(_seed_int("symbol", seed, code))  # noqa: S311 - simulation, not crypto
    base = round_to_grid(math.exp(rng.uniform(math.log(1_500), math.log(300_000))))
    volume = int(math.exp(rng.uniform(math.log(50_000), math.log(3_000_000))))
    shares = int(math.exp(rng.uniform(math.log(5e6), math.log(5e8))))
    return SymbolInfo(code, f"모의종목{code}", base, volume, shares, "기타", "KOSDAQ", 500)


@dataclass(frozen=True, slots=True)
class _Model:
    """The hashable inputs of generation; the lru caches are keyed on it."""

    seed: int
    calendar: MarketCalendar

    def hours(self, day: date) -> SessionHours | None:
        return self.calendar.hours(day)

    def is_trading_day(self, day: date) -> bool:
        return self.calendar.is_trading_day(day)

    def prev_trading_day(self, day: date) -> date:
        return self.calendar.prev_trading_day(day)


@lru_cache(maxsize=65_536)
def _close(model: _Model, code: str, day: date) -> int:
    # Slow value noise gives trends and cycles; a daily shock gives day-to-day moves. With
    # these amplitudes a change between trading days stays far inside the ±30 % limit even
    # across a ten-day holiday gap, so the close never needs clamping.
    info = symbol_info(model.seed, code)
    ordinal = day.toordinal()
    level = (
        0.15 * _value_noise(model.seed, code, 250, ordinal)
        + 0.04 * _value_noise(model.seed, code, 40, ordinal)
        + 0.012 * _gauss("shock", model.seed, code, ordinal)
    )
    return round_to_grid(info.base_price * math.exp(level))


def _value_noise(seed: int, code: str, period: int, ordinal: int) -> float:
    knot, frac = divmod(ordinal, period)
    a = _gauss("knot", seed, code, period, knot)
    b = _gauss("knot", seed, code, period, knot + 1)
    weight = (1.0 - math.cos(math.pi * frac / period)) / 2.0
    return a + (b - a) * weight


class DayTape:
    """All ticks of one symbol on one trading day, with prefix sums and full minute bars.

    ``hours`` is the session the ticks were made for (for a day the market is closed, the
    regular one: nothing asks for such a tape but the tests).
    """

    __slots__ = (
        "_minute_bars",
        "_minute_ends",
        "buy",
        "close",
        "cum_value",
        "cum_volume",
        "day",
        "hours",
        "lower",
        "open",
        "prev_close",
        "prices",
        "secs",
        "upper",
        "volumes",
    )

    def __init__(
        self,
        day: date,
        prev_close: int,
        secs: list[int],
        prices: list[int],
        volumes: list[int],
        buy: list[bool],
        hours: SessionHours = REGULAR_HOURS,
    ) -> None:
        """Derive prefix sums and minute bars from the raw tick columns."""
        self.day = day
        self.hours = hours
        self.prev_close = prev_close
        self.lower, self.upper = price_limits(prev_close)
        self.secs = secs
        self.prices = prices
        self.volumes = volumes
        self.buy = buy
        self.open = prices[0]
        self.close = prices[-1]
        cum_volume: list[int] = []
        cum_value: list[int] = []
        total_volume = 0
        total_value = 0
        for price, volume in zip(prices, volumes, strict=True):
            total_volume += volume
            total_value += price * volume
            cum_volume.append(total_volume)
            cum_value.append(total_value)
        self.cum_volume = cum_volume
        self.cum_value = cum_value
        self._minute_ends: list[int] | None = None
        self._minute_bars: list[Bar] | None = None

    @property
    def minute_ends(self) -> list[int]:
        """``minute_ends[k]`` is one past the last tick of the k-th minute bar."""
        if self._minute_ends is None:
            secs = self.secs
            ends = [i for i in range(1, len(secs)) if secs[i] // 60 != secs[i - 1] // 60]
            ends.append(len(secs))
            self._minute_ends = ends
        return self._minute_ends

    @property
    def minute_bars(self) -> list[Bar]:
        """All minute bars of the day, oldest first (built on first use)."""
        if self._minute_bars is None:
            bars: list[Bar] = []
            first = 0
            for end in self.minute_ends:
                bars.append(self._bar(first, end))
                first = end
            self._minute_bars = bars
        return self._minute_bars

    def day_bar(self) -> Bar:
        """The whole day as one bar; equal to aggregating :attr:`minute_bars`."""
        return self._bar(0, len(self.secs))

    def _bar(self, first: int, end: int) -> Bar:
        window = self.prices[first:end]
        before_volume = self.cum_volume[first - 1] if first else 0
        before_value = self.cum_value[first - 1] if first else 0
        return Bar(
            day=self.day,
            start_s=self.secs[first] // 60 * 60,
            open=window[0],
            high=max(window),
            low=min(window),
            close=window[-1],
            volume=self.cum_volume[end - 1] - before_volume,
            value=self.cum_value[end - 1] - before_value,
            cum_volume=self.cum_volume[end - 1],
            cum_value=self.cum_value[end - 1],
            ticks=end - first,
            last_day=self.day,
        )

    def tick_count(self, cutoff_s: int) -> int:
        """Number of ticks printed at or before ``cutoff_s``."""
        return bisect.bisect_right(self.secs, cutoff_s)

    def buy_sell_until(self, index: int) -> tuple[int, int]:
        """Buy- and sell-initiated volume from the open up to tick ``index`` inclusive."""
        buy_volume = 0
        for i in range(index + 1):
            if self.buy[i]:
                buy_volume += self.volumes[i]
        return buy_volume, self.cum_volume[index] - buy_volume

    def minute_bars_until(self, cutoff_s: int) -> list[Bar]:
        """Minute bars as they stood at ``cutoff_s``; the last one may be partial."""
        count = self.tick_count(cutoff_s)
        if count == 0:
            return []
        full = bisect.bisect_right(self.minute_ends, count)
        bars = self.minute_bars[:full]
        if full < len(self.minute_ends) and (full == 0 or self.minute_ends[full - 1] < count):
            first = self.minute_ends[full - 1] if full else 0
            bars.append(self._bar(first, count))
        return bars


def _build_tape(model: _Model, code: str, day: date) -> DayTape:
    info = symbol_info(model.seed, code)
    hours = model.hours(day) or REGULAR_HOURS
    prev_close = _close(model, code, model.prev_trading_day(day))
    close = _close(model, code, day)
    lower, upper = price_limits(prev_close)
    rng = random.Random(_seed_int("tape", model.seed, code, day.toordinal()))  # noqa: S311

    secs: list[int] = []
    rnd = rng.random
    last_minute = hours.continuous_minutes - 1
    for minute in range(hours.continuous_minutes):
        # More prints near the open and the close, as on the real market.
        rate = 2.0 * (
            1.0 + 1.5 * math.exp(-minute / 25.0) + 0.8 * math.exp((minute - last_minute) / 25.0)
        )
        count = min(30, 1 + int(rng.expovariate(1.0 / rate)))
        # One print per equal slot of the minute: distinct and sorted by construction.
        width = 60.0 / count
        base = hours.open_s + 60 * minute
        secs.extend(base + int((slot + rnd()) * width) for slot in range(count))
    secs[0] = hours.open_s  # the opening auction prints at the open
    # Continuous trading stops at the closing auction; its single print is the close.
    secs.append(hours.close_s)
    n = len(secs)

    open_price = round_to_grid(prev_close * math.exp(0.004 * _gauss("gap", model.seed, code, day)))
    open_price = min(max(open_price, lower), upper)
    lo_idx = price_to_index(lower)
    hi_idx = price_to_index(upper)
    target = price_to_index(close)
    current = price_to_index(open_price)
    # Pick the per-tick move probability so the day's spread is about 1.2 % of the price.
    spread_steps = 0.012 * open_price / max(1, index_to_price(current + 1) - open_price)
    move = min(0.9, spread_steps * spread_steps / n)
    half = move / 2.0

    indexes = [current]
    for i in range(1, n - 1):
        # Up with probability half + pull, down with half - pull: a bridge towards the close.
        pull = (target - current) / (2.0 * (n - i))
        u = rnd()
        if u < half + pull:
            if current < hi_idx:
                current += 1
        elif u > 1.0 - half + pull and current > lo_idx:
            current -= 1
        indexes.append(current)
    indexes.append(target)
    grid: dict[int, int] = {}
    prices = []
    for i in indexes:
        price = grid.get(i)
        if price is None:
            price = grid[i] = index_to_price(i)
        prices.append(price)

    mean_volume = max(1.0, info.daily_volume / n)
    volumes = [1 + int(rng.expovariate(1.0 / mean_volume)) for _ in range(n)]
    volumes[0] *= 20  # the opening and closing auctions cross much larger size
    volumes[-1] *= 30
    buy = [True]
    for i in range(1, n):
        if prices[i] != prices[i - 1]:
            buy.append(prices[i] > prices[i - 1])
        else:
            buy.append(rng.random() < 0.5)
    return DayTape(day, prev_close, secs, prices, volumes, buy, hours)


@lru_cache(maxsize=48)
def _tape(model: _Model, code: str, day: date) -> DayTape:
    return _build_tape(model, code, day)


@lru_cache(maxsize=65_536)
def _full_day_bar(model: _Model, code: str, day: date) -> Bar:
    # Built outside the tape cache: long daily walks must not flush the few tapes that
    # intraday requests keep re-reading.
    return _build_tape(model, code, day).day_bar()


def aggregate(bars: list[Bar]) -> Bar:
    """Merge consecutive bars (oldest first) into one."""
    first, last = bars[0], bars[-1]
    return Bar(
        day=first.day,
        start_s=first.start_s if first.day == last.day else 0,
        open=first.open,
        high=max(bar.high for bar in bars),
        low=min(bar.low for bar in bars),
        close=last.close,
        volume=sum(bar.volume for bar in bars),
        value=sum(bar.value for bar in bars),
        cum_volume=last.cum_volume,
        cum_value=last.cum_value,
        ticks=sum(bar.ticks for bar in bars),
        last_day=last.last_day,
    )


class Market:
    """Read access to the generated market, always "as of" a simulated instant.

    Trading days and hours follow ``calendar`` (default: ``apihub_marketdata.krx_calendar()``,
    built once per process, a few seconds the first time) with ``holidays`` as extra closures.
    """

    def __init__(
        self,
        seed: int,
        holidays: frozenset[date] = frozenset(),
        history_days: int = 730,
        calendar: TradingCalendar | None = None,
    ) -> None:
        """Create a market for ``seed``; ``history_days`` bounds how far back data exists."""
        trading = krx_calendar() if calendar is None else calendar
        self._model = _Model(seed, MarketCalendar(trading, frozenset(holidays)))
        self.history_days = history_days

    def symbol(self, code: str) -> SymbolInfo:
        """Reference data for ``code``."""
        return symbol_info(self._model.seed, code)

    def hours(self, day: date) -> SessionHours | None:
        """The session hours of ``day`` (``None`` when the market is closed)."""
        return self._model.hours(day)

    def close_s(self, day: date) -> int:
        """The second of the closing print of ``day`` (a closed day: the regular close)."""
        return (self.hours(day) or REGULAR_HOURS).close_s

    def is_trading_day(self, day: date) -> bool:
        """Whether the market is open on ``day``."""
        return self._model.is_trading_day(day)

    def prev_trading_day(self, day: date) -> date:
        """The last trading day before ``day``."""
        return self._model.prev_trading_day(day)

    def close(self, code: str, day: date) -> int:
        """The (final) close of a trading day, without generating its ticks."""
        return _close(self._model, code, day)

    def prev_close(self, code: str, day: date) -> int:
        """The base price of ``day``: the previous trading day's close."""
        return self.close(code, self.prev_trading_day(day))

    def tape(self, code: str, day: date) -> DayTape:
        """The full tick tape of a trading day (callers cut it at the session cutoff)."""
        return _tape(self._model, code, day)

    def session(self, now: datetime) -> tuple[date, int]:
        """Return the latest session that has started and how far it has got.

        The answer is ``(day, cutoff_s)``: today with the current second while today's
        session is open or over (at most its close), otherwise the previous trading day in
        full (its close). Before the open and on non-trading days the market therefore shows
        the last session.
        """
        local = now.astimezone(KST)
        day = local.date()
        second = second_of_day(local.hour, local.minute, local.second)
        hours = self.hours(day)
        if hours is not None and second >= hours.open_s:
            return day, min(second, hours.close_s)
        previous = self.prev_trading_day(day)
        return previous, self.close_s(previous)

    def first_day(self, now: datetime) -> date:
        """The oldest date with data (the simulated "listing date")."""
        return now.astimezone(KST).date() - timedelta(days=self.history_days)

    def day_bar(self, code: str, day: date, cutoff_s: int | None = None) -> Bar | None:
        """The daily bar of ``day`` as of ``cutoff_s`` (``None``: the whole day; the bar is
        ``None`` before the first print)."""
        if cutoff_s is None or cutoff_s >= self.close_s(day):
            return _full_day_bar(self._model, code, day)
        bars = self.tape(code, day).minute_bars_until(cutoff_s)
        return aggregate(bars) if bars else None

    def trading_days_desc(self, newest: date, oldest: date) -> Iterator[date]:
        """Trading days from ``newest`` back to ``oldest``, both inclusive."""
        day = newest
        while day >= oldest:
            if self.is_trading_day(day):
                yield day
            day -= timedelta(days=1)

    def iter_daily_desc(
        self, code: str, newest: date, oldest: date, now: datetime
    ) -> Iterator[Bar]:
        """Daily bars newest first within ``[oldest, newest]``, as of ``now``, lazily."""
        session_day, cutoff = self.session(now)
        newest = min(newest, session_day)
        oldest = max(oldest, self.first_day(now))
        for day in self.trading_days_desc(newest, oldest):
            bar = self.day_bar(code, day, cutoff if day == session_day else None)
            if bar is not None:
                yield bar
