"""Kiwoom REST chart answers → market data.

Field names follow Kiwoom's REST guide (https://openapi.kiwoom.com) and its official examples.
Every number is a string, and prices carry a sign that is a *direction* against the previous
close (``"+70100"`` rose, ``"-78800"`` fell), never a negative price: the absolute value is the
price (volumes likewise). An answer is an error unless ``return_code`` is 0. Rows are newest
first; an empty answer is an empty list or a single row of empty strings.

- ka10081 (daily, ``stk_dt_pole_chart_qry``): ``dt``, open/high/low/``cur_prc``, ``trde_qty``;
  ``trde_prica`` is in millions of KRW (×1,000,000 for the candle's value).
- ka10080 (minute, ``stk_min_pole_chart_qry``): ``cntr_tm`` YYYYMMDDHHMMSS, no traded value;
  only ``tic_scope`` 1 becomes 1m candles (3, 5, … minute bars are not stored).
- ka10079 (tick chart, ``stk_tic_chart_qry``): only ``tic_scope`` 1 (one trade per row)
  becomes ticks.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

import msgspec

from ._errors import NormaliseError
from ._models import MarketData
from ._parse import (
    Context,
    RawBar,
    bad_number,
    bad_time,
    check_print,
    day_start,
    decode,
    param,
    plain,
    require,
    settle,
    stamp,
)

SYMBOL_PARAM: Final = "stk_cd"
SCOPE_PARAM: Final = "tic_scope"
EXCHANGE_SUFFIXES: Final = ("_NX", "_AL")
"""Kiwoom's exchange-specific codes: ``005930_NX`` (NXT), ``005930_AL`` (SOR); the symbol is
the code without them."""
_MILLION: Final = 1_000_000
_EMPTY: Final = MarketData()


class _Envelope(msgspec.Struct):
    return_code: int | str | None = None
    return_msg: str = ""


class _DailyRow(msgspec.Struct):
    dt: str = ""
    open_pric: str = ""
    high_pric: str = ""
    low_pric: str = ""
    cur_prc: str = ""
    trde_qty: str = ""
    trde_prica: str = ""


class _DailyAnswer(_Envelope):
    stk_dt_pole_chart_qry: list[_DailyRow] | None = None


class _MinuteRow(msgspec.Struct):
    cntr_tm: str = ""
    open_pric: str = ""
    high_pric: str = ""
    low_pric: str = ""
    cur_prc: str = ""
    trde_qty: str = ""


class _MinuteAnswer(_Envelope):
    stk_min_pole_chart_qry: list[_MinuteRow] | None = None


class _TickRow(msgspec.Struct):
    cntr_tm: str = ""
    cur_prc: str = ""
    trde_qty: str = ""


class _TickAnswer(_Envelope):
    stk_tic_chart_qry: list[_TickRow] | None = None


_ENVELOPE: Final = msgspec.json.Decoder(_Envelope)
_DAILIES: Final = msgspec.json.Decoder(_DailyAnswer)
_MINUTES: Final = msgspec.json.Decoder(_MinuteAnswer)
_TICKS: Final = msgspec.json.Decoder(_TickAnswer)


def symbol(params: Mapping[str, str]) -> str:
    """The symbol a Kiwoom chart request asked for, exchange suffix dropped."""
    code = param(params, SYMBOL_PARAM)
    for suffix in EXCHANGE_SUFFIXES:
        if code.upper().endswith(suffix):
            return code[: -len(suffix)]
    return code


def _answered(envelope: _Envelope) -> None:
    code = envelope.return_code
    if code is None:
        raise NormaliseError("missing_field", "the answer has no 'return_code'")
    if code not in (0, "0"):
        raise NormaliseError("broker_error", f"return_code {code!r}: {envelope.return_msg}")


def _one_trade_scope(params: Mapping[str, str]) -> bool:
    return param(params, SCOPE_PARAM) == "1"


def daily_bars(ctx: Context, params: Mapping[str, str], body: bytes) -> MarketData:
    """ka10081: daily candles, value from ``trde_prica`` (millions of KRW)."""
    answer = decode(_DAILIES, body)
    _answered(answer)
    rows = "stk_dt_pole_chart_qry"
    bars: list[RawBar] = []
    for index, row in enumerate(require(answer.stk_dt_pole_chart_qry, rows)):
        if not row.dt:
            continue  # the sentinel row of an empty answer
        where = f"{rows}[{index}]"
        try:
            ts = day_start(row.dt)
        except ValueError:
            raise bad_time(where, (("dt", row.dt),), "date YYYYMMDD") from None
        try:
            plain(
                row.open_pric
                + row.high_pric
                + row.low_pric
                + row.cur_prc
                + row.trde_qty
                + row.trde_prica
            )
            bar = (
                ts,
                abs(int(row.open_pric)),
                abs(int(row.high_pric)),
                abs(int(row.low_pric)),
                abs(int(row.cur_prc)),
                abs(int(row.trde_qty)),
                abs(int(row.trde_prica)) * _MILLION if row.trde_prica else None,
                index,
            )
        except ValueError:
            raise bad_number(
                where,
                (
                    ("open_pric", row.open_pric),
                    ("high_pric", row.high_pric),
                    ("low_pric", row.low_pric),
                    ("cur_prc", row.cur_prc),
                    ("trde_qty", row.trde_qty),
                    ("trde_prica", row.trde_prica),
                ),
            ) from None
        bars.append(bar)
    settled = settle(bars, rows)
    return MarketData(candles=ctx.candles("1d", settled))


def minute_bars(ctx: Context, params: Mapping[str, str], body: bytes) -> MarketData:
    """ka10080: 1m candles (``tic_scope`` 1 only), no traded value in the answer."""
    if not _one_trade_scope(params):
        _answered(decode(_ENVELOPE, body))
        return _EMPTY
    answer = decode(_MINUTES, body)
    _answered(answer)
    rows = "stk_min_pole_chart_qry"
    bars: list[RawBar] = []
    for index, row in enumerate(require(answer.stk_min_pole_chart_qry, rows)):
        if not row.cntr_tm:
            continue
        where = f"{rows}[{index}]"
        try:
            ts = stamp(row.cntr_tm, on_minute=True)
        except ValueError:
            raise bad_time(where, (("cntr_tm", row.cntr_tm),), "minute YYYYMMDDHHMM00") from None
        try:
            plain(row.open_pric + row.high_pric + row.low_pric + row.cur_prc + row.trde_qty)
            bar = (
                ts,
                abs(int(row.open_pric)),
                abs(int(row.high_pric)),
                abs(int(row.low_pric)),
                abs(int(row.cur_prc)),
                abs(int(row.trde_qty)),
                None,
                index,
            )
        except ValueError:
            raise bad_number(
                where,
                (
                    ("open_pric", row.open_pric),
                    ("high_pric", row.high_pric),
                    ("low_pric", row.low_pric),
                    ("cur_prc", row.cur_prc),
                    ("trde_qty", row.trde_qty),
                ),
            ) from None
        bars.append(bar)
    settled = settle(bars, rows)
    return MarketData(candles=ctx.candles("1m", settled))


def tick_chart(ctx: Context, params: Mapping[str, str], body: bytes) -> MarketData:
    """ka10079: ticks (``tic_scope`` 1 only), oldest first, ``seq`` within a second."""
    if not _one_trade_scope(params):
        _answered(decode(_ENVELOPE, body))
        return _EMPTY
    answer = decode(_TICKS, body)
    _answered(answer)
    rows = "stk_tic_chart_qry"
    listed = require(answer.stk_tic_chart_qry, rows)
    prints: list[tuple[datetime, int, int]] = []
    for index in range(len(listed) - 1, -1, -1):  # oldest first: one second's prints in order
        row = listed[index]
        if not row.cntr_tm:
            continue
        where = f"{rows}[{index}]"
        try:
            ts = stamp(row.cntr_tm, on_minute=False)
        except ValueError:
            raise bad_time(where, (("cntr_tm", row.cntr_tm),), "time YYYYMMDDHHMMSS") from None
        try:
            plain(row.cur_prc + row.trde_qty)
            price, volume = abs(int(row.cur_prc)), abs(int(row.trde_qty))
        except ValueError:
            fields = (("cur_prc", row.cur_prc), ("trde_qty", row.trde_qty))
            raise bad_number(where, fields) from None
        check_print(where, price, volume)
        prints.append((ts, price, volume))
    return MarketData(ticks=ctx.ticks(prints))
