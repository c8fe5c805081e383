"""Simulator settings. Every behaviour no official broker source confirms is a knob here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from apihub_marketdata import TradingCalendar

__all__ = ["SimConfig"]


@dataclass(frozen=True)
class SimConfig:
    """Settings for one simulator instance.

    Attributes:
        seed: Root seed of the market-data generator; same seed, same market.
        token_issue_window_s: KIS ``tokenP`` allows one issuance per appkey per window;
            a second call inside it gets ``EGW00133`` (HTTP 403).
        token_lifetime_s: Lifetime of KIS and Kiwoom access tokens.
        kis_reissue_same_within_s: A KIS ``tokenP`` call this soon after the token was
            minted returns the same token (6 h on the real service).
        kis_rate_limit_per_s: Sliding one-second limit per KIS appkey on REST calls,
            answered with ``EGW00201``; ``None`` disables it.
        kis_rate_limit_status: HTTP status of ``EGW00201`` (500 on the real service; one
            report saw 200).
        kiwoom_rate_limit_per_s: Sliding one-second limit per Kiwoom (appkey, api-id),
            answered with ``return_code`` 5 / ``[1700:...]``; ``None`` disables it.
        kiwoom_rate_limit_status: HTTP status of the Kiwoom ``1700`` answer (429 measured;
            some saw 200).
        kis_page_rows_minute: Rows per FHKST03010200 answer.
        kis_page_rows_daily: Rows per FHKST03010100 answer.
        kiwoom_page_rows_daily: Rows per ka10081 page.
        kiwoom_page_rows_minute: Rows per ka10080 page.
        kiwoom_page_rows_tick: Rows per ka10079 page.
        kis_time_chart_inclusive: Whether FHKST03010200 includes the bar at
            ``FID_INPUT_HOUR_1`` itself (unconfirmed on the real service).
        kis_page_rows_daily_minute: Rows per FHKST03010230 answer (120 on the real service).
        kis_daily_minute_history_days: Calendar days back from the simulated today for which
            FHKST03010230 has minute bars (KIS keeps about a year); older dates answer no rows.
        kis_daily_minute_crosses_days: Whether an FHKST03010230 answer that runs out of bars
            of ``FID_INPUT_DATE_1`` goes on with the previous trading days' (unconfirmed on the
            real service; off: only bars of ``FID_INPUT_DATE_1``).
        start_time: Initial simulated time (aware; naive means KST); ``None`` = real now.
        frozen: Keep the clock at ``start_time`` until it is set or advanced.
        clock_rate: Simulated seconds per real second while the clock runs (above 0; e.g. 10
            runs a session ten times faster). Rate limits and the KIS token issuance window
            stay in real time.
        apps: If given, the only valid appkey -> secret pairs (both brokers); otherwise any
            non-empty pair is accepted.
        calendar: The trading calendar (an ``apihub_marketdata.TradingCalendar``): trading
            days and session hours. ``None`` is the KRX calendar, ``krx_calendar()``.
        holidays: Extra non-trading days on top of the calendar's closures.
        history_days: Calendar days of daily history before the current date.
        kiwoom_intraday_history_days: Trading days of minute and tick history that
            ka10080 / ka10079 page through.
        conditions: Standing conditions armed at start and on reset, each in the admin
            API's JSON shape, e.g. ``{"latency": {"base_ms": 5, "jitter_ms": 30}}``,
            ``{"error_rate": {"p": 0.1, "action": "egw00201"}}`` or
            ``{"outage": {"duration_s": 30}}`` (see ``_conditions``).
        conditions_seed: Seed of the latency and error-rate draws; ``None`` uses ``seed``.
        account_cash: Won every simulated account opens with.
        account_holdings: Shares every simulated account opens with (code -> quantity),
            bought at the close of the trading day before the simulator started.
        kis_page_rows_balance: Rows per TTTC8434R page (50 on real accounts, 20 virtual).
        kis_page_rows_orders: Rows per TTTC0081R page (100 on real accounts, 15 virtual).
        kis_page_rows_cancellable: Rows per TTTC0084R page.
        kiwoom_page_rows_orders: Rows per ka10075 / ka10076 / kt00018 page (unconfirmed).
    """

    seed: int = 20250321
    token_issue_window_s: float = 60.0
    token_lifetime_s: int = 86400
    kis_reissue_same_within_s: float = 6 * 3600.0
    kis_rate_limit_per_s: int | None = None
    kis_rate_limit_status: int = 500
    kiwoom_rate_limit_per_s: int | None = None
    kiwoom_rate_limit_status: int = 429
    kis_page_rows_minute: int = 30
    kis_page_rows_daily: int = 100
    kiwoom_page_rows_daily: int = 600
    kiwoom_page_rows_minute: int = 900
    kiwoom_page_rows_tick: int = 900
    kis_time_chart_inclusive: bool = True
    kis_page_rows_daily_minute: int = 120
    kis_daily_minute_history_days: int = 365
    kis_daily_minute_crosses_days: bool = False
    start_time: datetime | None = None
    frozen: bool = False
    clock_rate: float = 1.0
    apps: Mapping[str, str] | None = None
    calendar: TradingCalendar | None = None
    holidays: frozenset[date] = field(default_factory=frozenset)
    history_days: int = 730
    kiwoom_intraday_history_days: int = 5
    conditions: tuple[Mapping[str, Any], ...] = ()
    conditions_seed: int | None = None
    account_cash: int = 100_000_000
    account_holdings: Mapping[str, int] = field(
        default_factory=lambda: {"005930": 100, "000660": 30, "035720": 50}
    )
    kis_page_rows_balance: int = 50
    kis_page_rows_orders: int = 100
    kis_page_rows_cancellable: int = 50
    kiwoom_page_rows_orders: int = 100
