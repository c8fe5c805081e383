"""Paging through the hub: Kiwoom cont-yn/next-key, KIS hour and date windows."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from apihub_core import HubClient
from apihub_dispatcher import Dispatcher

pytestmark = pytest.mark.anyio

# A Friday afternoon after the close: a full session of minute bars exists.
AFTER_CLOSE = "2025-03-21T16:00:00+09:00"


@pytest.fixture
async def market_closed(sim_admin: httpx.AsyncClient) -> AsyncIterator[None]:
    """Freeze the simulator's clock after the 2025-03-21 close; restore real time after."""
    (
        await sim_admin.post("/__sim/clock", json={"now": AFTER_CLOSE, "frozen": True})
    ).raise_for_status()
    try:
        yield
    finally:
        (
            await sim_admin.post(
                "/__sim/clock", json={"now": datetime.now(UTC).isoformat(), "frozen": False}
            )
        ).raise_for_status()


async def test_kiwoom_pages_with_cont_yn_and_next_key(
    hub: HubClient, dispatcher: Dispatcher, market_closed: None, sim_admin: httpx.AsyncClient
) -> None:
    # One-minute bars: ~390 a session, 900 a page, so the walk crosses trading days.
    params = {"stk_cd": "005930", "tic_scope": "1", "upd_stkpc_tp": "1"}
    pages: list[list[str]] = []
    response = await hub.execute("KIWOOM", "ka10080", params)
    pages.append([row["cntr_tm"] for row in response.body["stk_min_pole_chart_qry"]])
    while response.has_more and len(pages) < 20:
        assert response.next_key
        assert response.headers["cont-yn"] == "Y"
        response = await hub.execute(
            "KIWOOM", "ka10080", params, cont=True, next_key=response.next_key
        )
        pages.append([row["cntr_tm"] for row in response.body["stk_min_pole_chart_qry"]])
    assert not response.has_more, "the walk reaches the end of the simulator's history"
    assert len(pages) >= 3, "a minute chart spans several pages"
    assert all(len(page) == 900 for page in pages[:-1])
    assert 0 < len(pages[-1]) <= 900
    every = [stamp for page in pages for stamp in page]
    assert len(every) == len(set(every)), "no bar twice"
    # The broker's clock says 2025 and ours 2026: the token's lifetime is measured on the
    # broker's clock (its Date header), so one token serves the whole walk.
    stats = (await sim_admin.get("/__sim/stats")).json()
    assert sum(stats["token_issuances"]["KIWOOM"].values()) == 1
    for newer, older in itertools.pairwise(pages):
        assert min(newer) > max(older), "each page continues where the previous one stopped"
    assert pages[0][0] == "20250321153000", "the newest bar is the closing minute"


async def test_kis_minute_bars_page_back_over_the_whole_session(
    hub: HubClient, dispatcher: Dispatcher, market_closed: None
) -> None:
    hour = "153000"
    seen: dict[str, dict[str, str]] = {}
    for _ in range(30):
        response = await hub.execute(
            "KIS",
            "FHKST03010200",
            {
                "FID_ETC_CLS_CODE": "",
                "FID_COND_MRKT_DIV_CODE": "J",
                "FID_INPUT_ISCD": "005930",
                "FID_INPUT_HOUR_1": hour,
                "FID_PW_DATA_INCU_YN": "Y",
            },
        )
        rows = response.body["output2"]
        assert len(rows) <= 30
        for row in rows:
            seen[row["stck_cntg_hour"]] = row
        earliest = rows[-1]["stck_cntg_hour"]
        if earliest <= "090000" or earliest == hour:
            break
        hour = earliest
    minutes = sorted(seen)
    assert minutes[0] == "090000"
    # Every minute of the session is present exactly once: no gaps from paging.
    assert len(minutes) == len(set(minutes))
    assert minutes[-1] >= "152000"


async def test_kis_daily_bars_page_by_moving_the_end_date(
    hub: HubClient, dispatcher: Dispatcher, market_closed: None
) -> None:
    base = {
        "FID_COND_MRKT_DIV_CODE": "J",
        "FID_INPUT_ISCD": "005930",
        "FID_INPUT_DATE_1": "20240101",
        "FID_PERIOD_DIV_CODE": "D",
        "FID_ORG_ADJ_PRC": "0",
    }
    first = await hub.execute("KIS", "FHKST03010100", {**base, "FID_INPUT_DATE_2": "20250321"})
    rows = first.body["output2"]
    assert len(rows) == 100
    oldest = rows[-1]["stck_bsop_date"]
    second = await hub.execute("KIS", "FHKST03010100", {**base, "FID_INPUT_DATE_2": oldest})
    rows2 = second.body["output2"]
    assert rows2
    assert rows2[0]["stck_bsop_date"] <= oldest


async def test_paginate_walks_a_kis_date_window_to_its_lower_bound(
    hub: HubClient, dispatcher: Dispatcher, market_closed: None
) -> None:
    params = {
        "FID_COND_MRKT_DIV_CODE": "J",
        "FID_INPUT_ISCD": "005930",
        "FID_INPUT_DATE_1": "20240101",
        "FID_INPUT_DATE_2": "20250321",
        "FID_PERIOD_DIV_CODE": "D",
        "FID_ORG_ADJ_PRC": "0",
    }
    pages = [page async for page in hub.paginate("KIS", "FHKST03010100", params)]
    days = [row["stck_bsop_date"] for page in pages for row in page.body["output2"]]
    assert len(days) > 250, "over a year of trading days"
    assert len(pages) == -(-len(days) // 100), "full pages of 100, then the rest"
    oldest_first_page = pages[0].body["output2"][-1]["stck_bsop_date"]
    assert pages[0].next_key < oldest_first_page, "the next page ends before this one's oldest"
    assert not pages[-1].has_more
    assert days == sorted(set(days), reverse=True), "every day once, newest first"
    assert days[0] == "20250321"
    assert min(days) >= "20240101"
    assert min(days) <= "20240105", "the walk reaches the first trading days of 2024"


async def test_paginate_walks_kis_minute_bars_back_to_the_open(
    hub: HubClient, dispatcher: Dispatcher, market_closed: None
) -> None:
    params = {
        "FID_ETC_CLS_CODE": "",
        "FID_COND_MRKT_DIV_CODE": "J",
        "FID_INPUT_ISCD": "005930",
        "FID_INPUT_HOUR_1": "153000",
        "FID_PW_DATA_INCU_YN": "Y",
    }
    minutes = [
        row["stck_cntg_hour"]
        async for page in hub.paginate("KIS", "FHKST03010200", params)
        for row in page.body["output2"]
    ]
    assert minutes == sorted(set(minutes), reverse=True), "every minute once, newest first"
    assert (minutes[0], minutes[-1]) == ("153000", "090000")


async def test_paginate_stops_at_max_pages_and_on_kiwoom_cont_yn(
    hub: HubClient, dispatcher: Dispatcher, market_closed: None
) -> None:
    params = {"stk_cd": "005930", "tic_scope": "1", "upd_stkpc_tp": "1"}
    pages = [page async for page in hub.paginate("KIWOOM", "ka10080", params, max_pages=2)]
    assert len(pages) == 2
    assert pages[-1].has_more, "stopped by max_pages, not by the broker"
    stamps = [row["cntr_tm"] for page in pages for row in page.body["stk_min_pole_chart_qry"]]
    assert len(stamps) == len(set(stamps)) == 1800
