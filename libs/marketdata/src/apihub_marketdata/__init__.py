"""apihub market data: what broker answers become before they are stored.

- the vocabulary: ``Candle``, ``Tick``, ``Snapshot``, ``MarketData`` (prices in whole KRW,
  times aware in ``KST``);
- ``normalise()``: one broker answer (KIS or Kiwoom quote and chart TRs, ``MARKET_DATA_TRS``)
  to market data, all of it or a ``NormaliseError`` with a stable reason;
- ``krx_calendar()``: the KRX trading calendar (``TradingCalendar``, ``Session``), built from
  exchange-calendars once per process and corrected by a small override table.
"""

from ._calendar import Session, TradingCalendar, krx_calendar
from ._errors import NORMALISE_REASONS, CalendarError, MarketDataError, NormaliseError
from ._models import (
    INTERVALS,
    KST,
    SOURCE_TYPES,
    Candle,
    Interval,
    MarketData,
    Snapshot,
    SourceType,
    Tick,
)
from ._normalise import MARKET_DATA_TRS, carries_market_data, normalise

__all__ = [
    "INTERVALS",
    "KST",
    "MARKET_DATA_TRS",
    "NORMALISE_REASONS",
    "SOURCE_TYPES",
    "CalendarError",
    "Candle",
    "Interval",
    "MarketData",
    "MarketDataError",
    "NormaliseError",
    "Session",
    "Snapshot",
    "SourceType",
    "Tick",
    "TradingCalendar",
    "carries_market_data",
    "krx_calendar",
    "normalise",
]
