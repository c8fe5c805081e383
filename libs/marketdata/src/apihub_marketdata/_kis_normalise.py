"""KIS Open API quote answers → market data.

Field names and shapes follow the official examples (github.com/koreainvestment/
open-trading-api, ``examples_llm/domestic_stock/<name>/chk_<name>.py``). Every number is a
string; prices are whole won. A KIS answer is an error unless ``rt_cd`` is ``"0"``.

- FHKST03010200 (today's minute bars, ≤ 30 rows) and FHKST03010230 (past days, ≤ 120 rows):
  ``output2``, newest first. ``acml_tr_pbmn`` is the day's traded value *up to and including*
  the bar, so a bar's own value is the difference to the bar just before it (same day, same
  answer); the session's first bar (09:00, or 10:00 on a late-opening day, from the calendar)
  is its own cumulative; any other bar without its predecessor in the answer gets ``None``.
- FHKST03010100 (period bars): ``output2`` newest first; only ``FID_PERIOD_DIV_CODE=D`` gives
  daily candles, with that day's ``acml_tr_pbmn`` as value; W/M/Y give nothing.
- FHKST01010400 (last 30 days): ``output`` array; only ``D`` gives candles, without a value.
- FHKST01010300 (the last 30 trades): ``output`` array, newest first, times of day only.
- FHKST01010100 (current price): ``output`` object → one snapshot at ``received_at``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

import msgspec

from ._errors import NormaliseError
from ._models import KST, MarketData, Snapshot
from ._parse import (
    Context,
    RawBar,
    bad_number,
    bad_time,
    check_print,
    day_start,
    decode,
    minute_start,
    param,
    parse_time,
    plain,
    require,
    settle,
    tick_day_resolver,
    whole,
)

SYMBOL_PARAM: Final = "FID_INPUT_ISCD"
PERIOD_PARAM: Final = "FID_PERIOD_DIV_CODE"
_EMPTY: Final = MarketData()


class _Envelope(msgspec.Struct):
    rt_cd: str | None = None
    msg_cd: str = ""
    msg1: str = ""


class _MinuteRow(msgspec.Struct):
    stck_bsop_date: str = ""
    stck_cntg_hour: str = ""
    stck_prpr: str = ""
    stck_oprc: str = ""
    stck_hgpr: str = ""
    stck_lwpr: str = ""
    cntg_vol: str = ""
    acml_tr_pbmn: str = ""


class _MinuteAnswer(_Envelope):
    output2: list[_MinuteRow] | None = None


class _PeriodRow(msgspec.Struct):
    stck_bsop_date: str = ""
    stck_oprc: str = ""
    stck_hgpr: str = ""
    stck_lwpr: str = ""
    stck_clpr: str = ""
    acml_vol: str = ""
    acml_tr_pbmn: str = ""


class _PeriodAnswer(_Envelope):
    output2: list[_PeriodRow] | None = None


class _DailyRow(msgspec.Struct):
    stck_bsop_date: str = ""
    stck_oprc: str = ""
    stck_hgpr: str = ""
    stck_lwpr: str = ""
    stck_clpr: str = ""
    acml_vol: str = ""


class _DailyAnswer(_Envelope):
    output: list[_DailyRow] | None = None


class _TradeRow(msgspec.Struct):
    stck_cntg_hour: str = ""
    stck_prpr: str = ""
    cntg_vol: str = ""


class _TradesAnswer(_Envelope):
    output: list[_TradeRow] | None = None


class _Price(msgspec.Struct):
    stck_prpr: str = ""
    stck_oprc: str = ""
    stck_hgpr: str = ""
    stck_lwpr: str = ""
    acml_vol: str = ""
    acml_tr_pbmn: str = ""
    prdy_vrss: str = ""


class _PriceAnswer(_Envelope):
    output: _Price | None = None


_ENVELOPE: Final = msgspec.json.Decoder(_Envelope)
_MINUTES: Final = msgspec.json.Decoder(_MinuteAnswer)
_PERIODS: Final = msgspec.json.Decoder(_PeriodAnswer)
_DAILIES: Final = msgspec.json.Decoder(_DailyAnswer)
_TRADES: Final = msgspec.json.Decoder(_TradesAnswer)
_PRICE: Final = msgspec.json.Decoder(_PriceAnswer)


def symbol(params: Mapping[str, str]) -> str:
    """The symbol a KIS quote request asked for."""
    return param(params, SYMBOL_PARAM)


def _answered(envelope: _Envelope) -> None:
    if envelope.rt_cd is None:
        raise NormaliseError("missing_field", "the answer has no 'rt_cd'")
    if envelope.rt_cd != "0":
        raise NormaliseError(
            "broker_error", f"rt_cd {envelope.rt_cd!r} {envelope.msg_cd}: {envelope.msg1}"
        )


def minute_bars(ctx: Context, params: Mapping[str, str], body: bytes) -> MarketData:
    """FHKST03010200 / FHKST03010230: 1m candles, values from the cumulative traded value."""
    answer = decode(_MINUTES, body)
    _answered(answer)
    bars: list[RawBar] = []
    for index, row in enumerate(require(answer.output2, "output2")):
        if not row.stck_bsop_date:
            continue  # padding: KIS's way of saying "no rows"
        try:
            ts = minute_start(row.stck_bsop_date, row.stck_cntg_hour)
        except ValueError:
            raise bad_time(
                f"output2[{index}]",
                (("stck_bsop_date", row.stck_bsop_date), ("stck_cntg_hour", row.stck_cntg_hour)),
                "YYYYMMDD and minute HHMM00",
            ) from None
        try:
            plain(
                row.stck_oprc
                + row.stck_hgpr
                + row.stck_lwpr
                + row.stck_prpr
                + row.cntg_vol
                + row.acml_tr_pbmn
            )
            bar = (
                ts,
                int(row.stck_oprc),
                int(row.stck_hgpr),
                int(row.stck_lwpr),
                int(row.stck_prpr),
                int(row.cntg_vol),
                int(row.acml_tr_pbmn) if row.acml_tr_pbmn else None,
                index,
            )
        except ValueError:
            raise bad_number(
                f"output2[{index}]",
                (
                    ("stck_oprc", row.stck_oprc),
                    ("stck_hgpr", row.stck_hgpr),
                    ("stck_lwpr", row.stck_lwpr),
                    ("stck_prpr", row.stck_prpr),
                    ("cntg_vol", row.cntg_vol),
                    ("acml_tr_pbmn", row.acml_tr_pbmn),
                ),
            ) from None
        bars.append(bar)
    settled = settle(bars, "output2")
    return MarketData(candles=ctx.candles("1m", settled, _bar_values(ctx, settled)))


def _bar_values(ctx: Context, bars: list[RawBar]) -> list[int | None]:
    values: list[int | None] = []
    previous: RawBar | None = None
    for bar in bars:
        ts, cum = bar[0], bar[6]
        if previous is not None and previous[0].date() == ts.date():
            before = previous[6]
            if cum is None or before is None:
                values.append(None)
            elif cum < before:
                raise NormaliseError(
                    "inconsistent_bar",
                    f"output2[{bar[7]}]: acml_tr_pbmn {cum} is below the {before} of the bar "
                    f"before it (output2[{previous[7]}])",
                )
            else:
                values.append(cum - before)
        elif ts == ctx.session_open(ts.date()):
            values.append(cum)
        else:
            values.append(None)
        previous = bar
    return values


def _period(params: Mapping[str, str]) -> str:
    return param(params, PERIOD_PARAM).upper()


def period_bars(ctx: Context, params: Mapping[str, str], body: bytes) -> MarketData:
    """FHKST03010100: daily candles (``D`` only) with the day's traded value."""
    if _period(params) != "D":
        _answered(decode(_ENVELOPE, body))
        return _EMPTY
    answer = decode(_PERIODS, body)
    _answered(answer)
    bars: list[RawBar] = []
    for index, row in enumerate(require(answer.output2, "output2")):
        if not row.stck_bsop_date:
            continue
        bars.append(
            _day_bar(
                f"output2[{index}]",
                index,
                row.stck_bsop_date,
                (
                    ("stck_oprc", row.stck_oprc),
                    ("stck_hgpr", row.stck_hgpr),
                    ("stck_lwpr", row.stck_lwpr),
                    ("stck_clpr", row.stck_clpr),
                    ("acml_vol", row.acml_vol),
                ),
                row.acml_tr_pbmn,
            )
        )
    settled = settle(bars, "output2")
    return MarketData(candles=ctx.candles("1d", settled))


def daily_bars(ctx: Context, params: Mapping[str, str], body: bytes) -> MarketData:
    """FHKST01010400: daily candles (``D`` only), no traded value in the answer."""
    if _period(params) != "D":
        _answered(decode(_ENVELOPE, body))
        return _EMPTY
    answer = decode(_DAILIES, body)
    _answered(answer)
    bars: list[RawBar] = []
    for index, row in enumerate(require(answer.output, "output")):
        if not row.stck_bsop_date:
            continue
        bars.append(
            _day_bar(
                f"output[{index}]",
                index,
                row.stck_bsop_date,
                (
                    ("stck_oprc", row.stck_oprc),
                    ("stck_hgpr", row.stck_hgpr),
                    ("stck_lwpr", row.stck_lwpr),
                    ("stck_clpr", row.stck_clpr),
                    ("acml_vol", row.acml_vol),
                ),
                "",
            )
        )
    settled = settle(bars, "output")
    return MarketData(candles=ctx.candles("1d", settled))


def _day_bar(
    where: str, index: int, day: str, ohlcv: tuple[tuple[str, str], ...], value: str
) -> RawBar:
    try:
        ts = day_start(day)
    except ValueError:
        raise bad_time(where, (("stck_bsop_date", day),), "date YYYYMMDD") from None
    try:
        (_, o), (_, h), (_, low), (_, c), (_, v) = ohlcv
        return (
            ts,
            whole(o),
            whole(h),
            whole(low),
            whole(c),
            whole(v),
            whole(value) if value else None,
            index,
        )
    except ValueError:
        raise bad_number(where, (*ohlcv, ("acml_tr_pbmn", value))) from None


def trades(ctx: Context, params: Mapping[str, str], body: bytes) -> MarketData:
    """FHKST01010300: the last trades as ticks, dated from ``received_at``."""
    answer = decode(_TRADES, body)
    _answered(answer)
    rows = [
        (index, row)
        for index, row in enumerate(require(answer.output, "output"))
        if row.stck_cntg_hour
    ]
    if not rows:
        return _EMPTY
    date_of = tick_day_resolver(ctx)
    prints: list[tuple[datetime, int, int]] = []
    for index, row in reversed(rows):  # oldest first, so trades of one second keep their order
        where = f"output[{index}]"
        try:
            ts = date_of(parse_time(row.stck_cntg_hour))
        except ValueError:
            fields = (("stck_cntg_hour", row.stck_cntg_hour),)
            raise bad_time(where, fields, "time HHMMSS") from None
        try:
            price, volume = whole(row.stck_prpr), whole(row.cntg_vol)
        except ValueError:
            raise bad_number(
                where, (("stck_prpr", row.stck_prpr), ("cntg_vol", row.cntg_vol))
            ) from None
        check_print(where, price, volume)
        prints.append((ts, price, volume))
    return MarketData(ticks=ctx.ticks(prints))


def current_price(ctx: Context, params: Mapping[str, str], body: bytes) -> MarketData:
    """FHKST01010100: one snapshot, timed by ``received_at`` (the answer has no time)."""
    answer = decode(_PRICE, body)
    _answered(answer)
    out = require(answer.output, "output")
    if not out.stck_prpr:
        return _EMPTY
    if ctx.received_at is None:
        raise NormaliseError("missing_time", "a current price carries no time: give received_at")
    fields = (
        ("stck_prpr", out.stck_prpr),
        ("stck_oprc", out.stck_oprc),
        ("stck_hgpr", out.stck_hgpr),
        ("stck_lwpr", out.stck_lwpr),
        ("acml_vol", out.acml_vol),
        ("prdy_vrss", out.prdy_vrss),
    )
    try:
        price, o, h, low, volume, change = (whole(text) for _, text in fields)
        value = whole(out.acml_tr_pbmn) if out.acml_tr_pbmn else None
    except ValueError:
        raise bad_number("output", (*fields, ("acml_tr_pbmn", out.acml_tr_pbmn))) from None
    _check_snapshot(price, o, h, low, volume, value)
    return MarketData(
        snapshots=(
            Snapshot(
                provider=ctx.provider,
                symbol=ctx.symbol,
                ts=ctx.received_at.astimezone(KST),
                price=price,
                open=o,
                high=h,
                low=low,
                cum_volume=volume,
                cum_value=value,
                change=change,
                source_type=ctx.source_type,
                lineage=ctx.lineage,
            ),
        )
    )


def _check_snapshot(price: int, o: int, h: int, low: int, volume: int, value: int | None) -> None:
    """Before the day's first trade KIS shows open/high/low as 0; once they are set, they hold
    the current price."""
    if price <= 0 or min(o, h, low) < 0 or volume < 0 or (value is not None and value < 0):
        raise NormaliseError(
            "inconsistent_bar",
            f"output: price {price}, open {o}, high {h}, low {low}, "
            f"volume {volume}, value {value} cannot be a quote",
        )
    if min(o, h, low) > 0 and (h < max(o, price) or low > min(o, price)):
        raise NormaliseError(
            "inconsistent_bar",
            f"output: high {h} / low {low} do not hold open {o} and price {price}",
        )
