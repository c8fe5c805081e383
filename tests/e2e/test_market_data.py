"""The market-data loop end to end, with every part real: the sentinel finds the morning missing,
asks for it through the hub, the dispatcher fetches it from the simulator, the archiver stores it,
and the archive then equals the broker's own answer, bar for bar."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx
import pytest
import redis.asyncio as aioredis

from apihub_archive import read_candles
from apihub_archiver import open_archiver
from apihub_core import GapHealed, HubClient, Keys, decode_gap_event
from apihub_dispatcher import Dispatcher
from apihub_marketdata import KST, krx_calendar, normalise
from apihub_runtime import MarketClock, Settings
from apihub_sentinel import Sentinel
from apihub_testing import async_wait_until

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 2, 10, 0, 30, tzinfo=KST)
SYMBOL = "035720"


@pytest.fixture
async def market(sim_admin: httpx.AsyncClient) -> AsyncIterator[MarketClock]:
    (await sim_admin.post("/__sim/clock", json={"now": NOW.isoformat()})).raise_for_status()
    try:
        yield MarketClock.anchored(NOW, frozen=True)
    finally:
        real = {"now": datetime.now(UTC).isoformat(), "frozen": False}
        (await sim_admin.post("/__sim/clock", json=real)).raise_for_status()


async def _truth(sim_url: str) -> dict[datetime, tuple[int | None, ...]]:
    """The broker's own minute bars of today up to now, asked directly over HTTP (no hub), 30
    at a time, paging back by the earliest bar's time."""
    bars: dict[datetime, tuple[int | None, ...]] = {}
    appkey = "t" * 36
    async with httpx.AsyncClient(base_url=sim_url, timeout=10) as http:
        grant = {"grant_type": "client_credentials", "appkey": appkey, "appsecret": "s"}
        token = (await http.post("/oauth2/tokenP", json=grant)).json()["access_token"]
        headers = {
            "authorization": f"Bearer {token}",
            "appkey": appkey,
            "appsecret": "s",
            "tr_id": "FHKST03010200",
            "custtype": "P",
        }
        hour = NOW.strftime("%H%M%S")
        while True:
            params = {
                "FID_COND_MRKT_DIV_CODE": "J",
                "FID_INPUT_ISCD": SYMBOL,
                "FID_INPUT_HOUR_1": hour,
                "FID_PW_DATA_INCU_YN": "N",
                "FID_ETC_CLS_CODE": "",
            }
            answer = await http.get(
                "/uapi/domestic-stock/v1/quotations/inquire-time-itemchartprice",
                params=params,
                headers=headers,
            )
            candles = normalise(
                "KIS", "FHKST03010200", params, answer.content, lineage="truth"
            ).candles
            # Pages overlap by a row: the oldest row of an answer has no traded value (it is a
            # difference to the row before), the next page's newest has it.
            fresh = [c for c in candles if c.ts not in bars or bars[c.ts][-1] is None]
            if not [c for c in fresh if c.ts not in bars]:
                return bars
            bars.update({c.ts: (c.open, c.high, c.low, c.close, c.volume, c.value) for c in fresh})
            hour = candles[0].ts.strftime("%H%M%S")


async def test_the_sentinel_heals_the_morning_and_the_archive_equals_the_broker(
    redis: aioredis.Redis,
    keys: Keys,
    settings: Settings,
    hub: HubClient,
    dispatcher: Dispatcher,
    market: MarketClock,
    sim_url: str,
    tmp_path: Path,
) -> None:
    tuned = replace(
        settings,
        data_dir=tmp_path,
        archive=replace(settings.archive, batch_wait_ms=20),
        sentinel=replace(settings.sentinel, grace_s=60.0, lookback_days=1, check_daily=False),
    )

    async def clock() -> MarketClock:
        return market

    sentinel = Sentinel(
        redis, hub, tuned, calendar=krx_calendar(), clock=clock, series=[("KIS", SYMBOL, "1m")]
    )
    async with open_archiver(tuned) as archiver, anyio.create_task_group() as tg:
        await tg.start(archiver.run)
        await tg.start(sentinel.run)

        async def healed() -> list[GapHealed]:
            events = [decode_gap_event(f) for _, f in await redis.xrange(keys.gaps)]
            return [e for e in events if isinstance(e, GapHealed)]

        (gap,) = await async_wait_until(healed, timeout=30, message="the morning is healed")
        sentinel.stop()
        archiver.stop()
    assert (gap.first, gap.last) == (
        NOW.replace(hour=9, minute=0, second=0),
        NOW.replace(minute=58, hour=9, second=0),
    )
    archived = read_candles(
        tmp_path / "archive", "KIS", SYMBOL, "1m", NOW.replace(hour=9, minute=0, second=0), NOW
    )
    truth = await _truth(sim_url)
    expected = [bar for bar in krx_calendar().expected_minutes(NOW.date()) if bar <= gap.last]
    assert len(expected) == 59
    stored = {c.ts: (c.open, c.high, c.low, c.close, c.volume, c.value) for c in archived}
    assert {ts: stored.get(ts) for ts in expected} == {ts: truth.get(ts) for ts in expected}
    assert {c.source_type for c in archived} == {"backfill"}
