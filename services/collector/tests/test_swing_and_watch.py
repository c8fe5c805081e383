"""Swing page decisions and the watchlist, pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import Any

from apihub_collector._swing import (
    KIS_PAGE_ROWS,
    MAX_PAGES,
    hhmmss,
    kis_bar_starts,
    next_page_hour,
    swing_params,
    swing_tr,
    window_truncated,
)
from apihub_collector._watch import Target, targets
from apihub_core import Provider
from apihub_marketdata import KST, Session
from apihub_runtime import DEMO_WATCHLIST, CollectorSettings, Settings, WatchEntry, load_settings

DAY = date(2025, 3, 21)
SESSION = Session(
    DAY,
    datetime.combine(DAY, time(9, 0), tzinfo=KST),
    datetime.combine(DAY, time(15, 30), tzinfo=KST),
)


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime.combine(DAY, time(hour, minute, second), tzinfo=KST)


def page(newest: datetime, rows: int = KIS_PAGE_ROWS) -> list[datetime]:
    return [newest - timedelta(minutes=i) for i in range(rows)]


def test_the_trs_and_their_parameters() -> None:
    assert swing_tr(Provider.KIS) == "FHKST03010200"
    assert swing_tr(Provider.KIWOOM) == "ka10080"
    assert swing_params(Provider.KIS, "005930", "103000") == {
        "FID_COND_MRKT_DIV_CODE": "J",
        "FID_INPUT_ISCD": "005930",
        "FID_INPUT_HOUR_1": "103000",
        "FID_PW_DATA_INCU_YN": "N",
        "FID_ETC_CLS_CODE": "",
    }
    assert swing_params(Provider.KIWOOM, "005930", "103000") == {
        "stk_cd": "005930",
        "tic_scope": "1",
        "upd_stkpc_tp": "1",
    }
    assert hhmmss(at(9, 5, 7)) == "090507"


def test_bar_starts_of_an_answer() -> None:
    body: dict[str, Any] = {
        "output2": [
            {"stck_bsop_date": "20250321", "stck_cntg_hour": "103000"},
            {"stck_bsop_date": "20250321", "stck_cntg_hour": "1029"},  # unreadable: left out
            "not a row",
            {"stck_bsop_date": "20250321", "stck_cntg_hour": "102800"},
        ]
    }
    assert kis_bar_starts(body) == [at(10, 30), at(10, 28)]
    assert kis_bar_starts({"output2": {}}) == []
    assert kis_bar_starts("nothing") == []


def test_one_page_when_there_is_nothing_to_continue() -> None:
    assert next_page_hour(page(at(10, 30)), start=None, session=SESSION, pages=1) is None


def test_older_pages_until_the_window_is_reached() -> None:
    start = at(9, 26)
    first = page(at(10, 30))  # 10:01 … 10:30
    assert next_page_hour(first, start=start, session=SESSION, pages=1) == "100059"
    second = page(at(10, 0))  # 09:31 … 10:00
    assert next_page_hour(second, start=start, session=SESSION, pages=2) == "093059"
    third = page(at(9, 30))  # 09:01 … 09:30 reaches 09:26
    assert next_page_hour(third, start=start, session=SESSION, pages=3) is None
    assert not window_truncated(third, start=start, pages=3)


def test_paging_stops_at_the_open_at_a_short_page_and_at_the_bound() -> None:
    start = at(9, 0)
    assert next_page_hour(page(at(9, 29)), start=start, session=SESSION, pages=1) is None
    assert next_page_hour(page(at(9, 40), 10), start=start, session=SESSION, pages=1) is None
    assert next_page_hour([], start=start, session=SESSION, pages=1) is None
    deep = page(at(13, 0))
    assert next_page_hour(deep, start=start, session=SESSION, pages=MAX_PAGES) is None
    assert window_truncated(deep, start=start, pages=MAX_PAGES)
    assert not window_truncated(deep, start=None, pages=MAX_PAGES)


# -- the watchlist ----------------------------------------------------------------------------


def demo_settings(**collector: Any) -> Settings:
    settings = load_settings(env={})
    return replace(settings, collector=replace(settings.collector, **collector))


def test_the_demo_watchlist_without_one_configured_on_the_simulator() -> None:
    assert demo_settings().watchlist == DEMO_WATCHLIST
    polled, unsupported = targets(DEMO_WATCHLIST)
    assert [t.symbol for t in polled if t.mode == "swing"] == [
        "005930",
        "000660",
        "035720",
        "035420",
        "005380",
    ]
    assert [t.key for t in polled if t.mode == "scalp"] == ["KIS:005930"]
    assert unsupported == ()


def test_a_configured_watchlist_wins() -> None:
    entry = WatchEntry(provider=Provider.KIWOOM, symbols=("000660",), mode="swing")
    assert demo_settings(watch=(entry,)).watchlist == (entry,)


def test_real_accounts_without_a_watchlist_watch_nothing() -> None:
    env = {"APIHUB_KIS_APP_KEY": "k" * 36, "APIHUB_KIS_APP_SECRET": "s" * 180}
    assert load_settings(env=env).watchlist == ()
    assert replace(load_settings(env={}), accounts={}).watchlist == ()
    assert CollectorSettings().watch == ()


def test_targets_once_per_mode_and_kiwoom_scalp_left_out() -> None:
    entries = (
        WatchEntry(provider=Provider.KIS, symbols=("005930", "000660"), mode="swing"),
        WatchEntry(provider=Provider.KIS, symbols=("005930",), mode="swing", account="other"),
        WatchEntry(provider=Provider.KIS, symbols=("005930",), mode="scalp", account="paper"),
        WatchEntry(provider=Provider.KIWOOM, symbols=("005930",), mode="scalp"),
    )
    polled, unsupported = targets(entries)
    assert polled == (
        Target(Provider.KIS, "005930", "swing"),
        Target(Provider.KIS, "000660", "swing"),
        Target(Provider.KIS, "005930", "scalp", "paper"),
    )
    assert unsupported == (Target(Provider.KIWOOM, "005930", "scalp"),)
