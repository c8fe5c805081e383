"""Pages: the broker calls that fetch a range of bars, planned on a fixed grid.

Every page of a day is cut from the same grid (the calendar's expected bars, sliced from the
session's first bar in steps of the TR's page size), so whoever plans a range — the sentinel
healing a gap, a backfill job, two of either — names the same pages with the same ids, and a
claim on a page id keeps it from being asked twice at once.

==========  ========  ==========================  ===============================================
provider    interval  TR                          one page
==========  ========  ==========================  ===============================================
KIS         1m        FHKST03010200 (today)       30 rows ending at ``FID_INPUT_HOUR_1``: 29 bars
                                                  and the row before them
KIS         1m        FHKST03010230 (past days)   120 rows of ``FID_INPUT_DATE_1`` ending at
                                                  ``FID_INPUT_HOUR_1``: 119 bars and the row
                                                  before them (cut back from the close)
KIS         1d        FHKST03010100               100 trading days ``FID_INPUT_DATE_1..2``
KIWOOM      1m        ka10080                     one day (``base_dt``; a page holds ~900 bars)
KIWOOM      1d        ka10081                     600 trading days ending at ``base_dt``
==========  ========  ==========================  ===============================================

FHKST03010200 serves today only and FHKST03010230 past days only (the latter on real accounts
only), per the KIS Open API documents (koreainvestment/open-trading-api, ``examples_llm``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Final

from apihub_marketdata import KST, Interval, TradingCalendar

KIS_TODAY_MINUTES: Final = "FHKST03010200"
KIS_PAST_MINUTES: Final = "FHKST03010230"
KIS_DAILY: Final = "FHKST03010100"
KIWOOM_MINUTES: Final = "ka10080"
KIWOOM_DAILY: Final = "ka10081"

PAGE_ROWS: Final[dict[str, int]] = {
    KIS_TODAY_MINUTES: 30,
    KIS_PAST_MINUTES: 120,
    KIS_DAILY: 100,
    KIWOOM_DAILY: 600,
}
"""Rows per page of the TRs whose page the grid is cut to (ka10080 is cut per day)."""


@dataclass(frozen=True, slots=True)
class Page:
    """One broker call that fetches ``bars`` (the expected bar starts it covers, oldest first).

    ``chunk`` is the page's id on the grid: the same range planned twice gets the same id.
    """

    provider: str
    symbol: str
    interval: Interval
    tr_id: str
    params: dict[str, str]
    chunk: str
    bars: tuple[datetime, ...] = field(repr=False)

    @property
    def first(self) -> datetime:
        """The first bar start the page covers."""
        return self.bars[0]

    @property
    def last(self) -> datetime:
        """The last bar start the page covers."""
        return self.bars[-1]

    @property
    def day(self) -> date:
        """The trading day of the page's last bar."""
        return self.bars[-1].date()

    def ends_before(self, at: datetime) -> bool:
        """Whether every bar of the page had ended by ``at`` (the page can be complete)."""
        return self.last + _LENGTH[self.interval] <= at


_LENGTH: Final[dict[str, timedelta]] = {"1m": timedelta(minutes=1), "1d": timedelta(days=1)}


def bar_length(interval: Interval) -> timedelta:
    """How long one bar of ``interval`` lasts (a daily bar: the calendar day)."""
    return _LENGTH[interval]


def expected_bars(
    calendar: TradingCalendar, interval: Interval, first: date, last: date
) -> list[datetime]:
    """Every bar start that must exist between the days ``first`` and ``last`` (inclusive)."""
    if interval == "1m":
        return [
            minute
            for session in calendar.sessions(first, last)
            for minute in calendar.expected_minutes(session.day)
        ]
    return [_midnight(session.day) for session in calendar.sessions(first, last)]


def plan_pages(
    provider: str,
    symbol: str,
    interval: Interval,
    first: date,
    last: date,
    *,
    calendar: TradingCalendar,
    today: date,
) -> list[Page]:
    """The pages that fetch every bar of ``symbol`` between the days ``first`` and ``last``,
    oldest first. ``today`` is the market's current date (it decides which KIS minute TR
    serves a day); days after it are left out."""
    last = min(last, today)
    if first > last:
        return []
    provider = provider.upper()
    if interval == "1m":
        pages: list[Page] = []
        for session in calendar.sessions(first, last):
            pages += _minute_pages(
                provider, symbol, calendar.expected_minutes(session.day), today=today
            )
        return pages
    days = [_midnight(s.day) for s in calendar.sessions(first, last) if s.day < today]
    if provider == "KIS":
        return [_kis_daily(symbol, chunk) for chunk in _slices(days, PAGE_ROWS[KIS_DAILY])]
    if provider == "KIWOOM":
        return [_kiwoom_daily(symbol, chunk) for chunk in _slices(days, PAGE_ROWS[KIWOOM_DAILY])]
    raise ValueError(f"no backfill pages for provider {provider!r}")


def pages_for(pages: Iterable[Page], bars: Iterable[datetime]) -> list[Page]:
    """The pages among ``pages`` that cover at least one of ``bars``."""
    wanted = set(bars)
    return [page for page in pages if wanted.intersection(page.bars)]


def _minute_pages(
    provider: str, symbol: str, minutes: Sequence[datetime], *, today: date
) -> list[Page]:
    if not minutes:
        return []
    day = minutes[0].date()
    if provider == "KIWOOM":
        params = {"stk_cd": symbol, "tic_scope": "1", "upd_stkpc_tp": "1", "base_dt": _ymd(day)}
        return [_page(provider, symbol, "1m", KIWOOM_MINUTES, params, tuple(minutes))]
    if provider != "KIS":
        raise ValueError(f"no backfill pages for provider {provider!r}")
    tr_id = KIS_TODAY_MINUTES if day == today else KIS_PAST_MINUTES
    # A past day is complete, so its grid is cut back from the close: every page is full
    # except the morning's first, and no page overlaps another. Today's grid is cut forward
    # from the open, so it stays the same while the day goes on.
    # A page covers one bar less than it returns: its oldest row is only the predecessor that
    # gives the first covered bar its traded value (a bar's value is the difference of two
    # rows' cumulative values), so no backfilled bar is left without one.
    size = PAGE_ROWS[tr_id] - 1
    slices = _slices(minutes, size) if tr_id == KIS_TODAY_MINUTES else _slices_back(minutes, size)
    pages = []
    for chunk in slices:
        params = {
            "FID_COND_MRKT_DIV_CODE": "J",
            "FID_INPUT_ISCD": symbol,
            "FID_INPUT_HOUR_1": chunk[-1].strftime("%H%M%S"),
            "FID_PW_DATA_INCU_YN": "N",
        }
        if tr_id == KIS_TODAY_MINUTES:
            params["FID_ETC_CLS_CODE"] = ""
        else:
            params["FID_INPUT_DATE_1"] = _ymd(day)
            params["FID_FAKE_TICK_INCU_YN"] = ""
        pages.append(_page(provider, symbol, "1m", tr_id, params, chunk))
    return pages


def _kis_daily(symbol: str, days: tuple[datetime, ...]) -> Page:
    params = {
        "FID_COND_MRKT_DIV_CODE": "J",
        "FID_INPUT_ISCD": symbol,
        "FID_INPUT_DATE_1": _ymd(days[0].date()),
        "FID_INPUT_DATE_2": _ymd(days[-1].date()),
        "FID_PERIOD_DIV_CODE": "D",
        "FID_ORG_ADJ_PRC": "0",
    }
    return _page("KIS", symbol, "1d", KIS_DAILY, params, days)


def _kiwoom_daily(symbol: str, days: tuple[datetime, ...]) -> Page:
    params = {"stk_cd": symbol, "base_dt": _ymd(days[-1].date()), "upd_stkpc_tp": "1"}
    return _page("KIWOOM", symbol, "1d", KIWOOM_DAILY, params, days)


def _page(
    provider: str,
    symbol: str,
    interval: Interval,
    tr_id: str,
    params: dict[str, str],
    bars: tuple[datetime, ...],
) -> Page:
    chunk = f"{tr_id}:{bars[0]:%Y%m%d%H%M}-{bars[-1]:%Y%m%d%H%M}"
    return Page(provider, symbol, interval, tr_id, params, chunk, bars)


def _slices(items: Sequence[datetime], size: int) -> list[tuple[datetime, ...]]:
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]


def _slices_back(items: Sequence[datetime], size: int) -> list[tuple[datetime, ...]]:
    ends = range(len(items), 0, -size)
    return [tuple(items[max(0, end - size) : end]) for end in reversed(ends)]


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=KST)


def _ymd(day: date) -> str:
    return day.strftime("%Y%m%d")
