"""One entry point from a broker answer to market data: ``normalise``.

It is a pure function of the request's parameters, the answer's bytes and when the answer was
received, and the whole answer succeeds or fails together: one row that does not parse or
cannot be true fails the answer with a ``NormaliseError`` whose ``detail`` names the row (its
index in the broker's own order) and the field, so the archiver quarantines the answer as it
came and nothing half-true is stored.

What every answer becomes:

- candles, ticks and snapshots oldest first; within one answer a time given twice with the
  same values is kept once (paging windows overlap by their boundary row), with different
  values it is ``inconsistent_bar``. Ticks are never merged: two equal prints in one second
  are two trades, told apart by ``seq``;
- an empty answer (an empty list, a padding row whose date or time is blank: Kiwoom's single
  sentinel row of empty strings, KIS rows without ``stck_bsop_date``) is an empty
  ``MarketData``, not an error; so is a TR variant the archive does not keep (KIS weekly,
  monthly and yearly bars, Kiwoom 3-minute bars or 10-tick charts);
- a traded value the answer does not give is ``None``, never estimated.

The per-TR rules are in ``_kis_normalise`` and ``_kiwoom_normalise``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Final

from apihub_core import Provider

from . import _kis_normalise as kis
from . import _kiwoom_normalise as kiwoom
from ._calendar import TradingCalendar
from ._errors import NormaliseError
from ._models import MarketData, SourceType
from ._parse import Context, aware

_Handler = Callable[[Context, Mapping[str, str], bytes], MarketData]
_Symbol = Callable[[Mapping[str, str]], str]

_KIS: Final = Provider.KIS.value
_KIWOOM: Final = Provider.KIWOOM.value

_HANDLERS: Final[dict[tuple[str, str], tuple[_Symbol, _Handler]]] = {
    (_KIS, "FHKST03010200"): (kis.symbol, kis.minute_bars),
    (_KIS, "FHKST03010230"): (kis.symbol, kis.minute_bars),
    (_KIS, "FHKST03010100"): (kis.symbol, kis.period_bars),
    (_KIS, "FHKST01010400"): (kis.symbol, kis.daily_bars),
    (_KIS, "FHKST01010300"): (kis.symbol, kis.trades),
    (_KIS, "FHKST01010100"): (kis.symbol, kis.current_price),
    (_KIWOOM, "ka10081"): (kiwoom.symbol, kiwoom.daily_bars),
    (_KIWOOM, "ka10080"): (kiwoom.symbol, kiwoom.minute_bars),
    (_KIWOOM, "ka10079"): (kiwoom.symbol, kiwoom.tick_chart),
}
_BY_KEY: Final = {(p, tr.upper()): (p, tr) for p, tr in _HANDLERS}

MARKET_DATA_TRS: Final[frozenset[tuple[str, str]]] = frozenset(_HANDLERS)
"""Every (provider, tr_id) whose answers ``normalise`` turns into market data."""


def _known(provider: str, tr_id: str) -> tuple[str, str] | None:
    return _BY_KEY.get((provider.strip().upper(), tr_id.strip().upper()))


def carries_market_data(provider: str, tr_id: str) -> bool:
    """Whether answers of ``tr_id`` become market data (both names case-insensitive)."""
    return _known(provider, tr_id) is not None


def normalise(
    provider: str,
    tr_id: str,
    params: Mapping[str, str],
    body: bytes,
    *,
    lineage: str,
    source_type: SourceType = "rest",
    received_at: datetime | None = None,
    calendar: TradingCalendar | None = None,
) -> MarketData:
    """Turn one broker answer into candles, ticks or a snapshot.

    ``params`` are the request's broker parameters (the symbol comes from them: KIS
    ``FID_INPUT_ISCD``, Kiwoom ``stk_cd`` without its ``_NX``/``_AL`` suffix); ``body`` the
    answer's bytes as received; ``lineage`` the request (or event) id every value carries.
    ``received_at`` (aware; the broker's ``Date`` header) dates answers whose rows hold only a
    time of day (KIS FHKST01010300) or no time at all (FHKST01010100). ``calendar`` (default:
    ``krx_calendar()``) says when a session opens, for the first minute's traded value.

    Raises ``NormaliseError`` (whole answer rejected, see its reasons) and ``ValueError`` for
    a naive ``received_at`` (a caller's bug, not the broker's).
    """
    key = _known(provider, tr_id)
    if key is None:
        raise NormaliseError(
            "unsupported_tr", "no market data in this TR", provider=provider, tr_id=tr_id
        )
    name, canonical = key
    symbol_of, handler = _HANDLERS[key]
    try:
        ctx = Context(
            provider=name,
            symbol=symbol_of(params),
            lineage=lineage,
            source_type=source_type,
            received_at=aware(received_at),
            calendar=calendar,
        )
        return handler(ctx, params, body)
    except NormaliseError as exc:
        exc.provider, exc.tr_id = name, canonical
        raise
