"""A daily bar against its minute bars: compared on a real archive, reported once a day."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import msgspec
import pytest
import redis.asyncio as aioredis

from apihub_archive import ArchiveStore, Observation
from apihub_core import HubClient, Keys, MarketInconsistency, decode_gap_event
from apihub_marketdata import KST, Candle, MarketData, krx_calendar
from apihub_runtime import MarketClock, Settings, load_settings
from apihub_sentinel import Sentinel
from apihub_sentinel._consistency import compare_day

pytestmark = pytest.mark.anyio

DAY = datetime(2026, 12, 1, tzinfo=KST)
CAL = krx_calendar()


def minute(ts: datetime, o: int, h: int, lo: int, c: int, v: int) -> Candle:
    return Candle(
        provider="KIS",
        symbol="005930",
        interval="1m",
        ts=ts,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=v,
    )


def day_of(minutes: list[Candle], **wrong: int) -> Candle:
    bar = Candle(
        provider="KIS",
        symbol="005930",
        interval="1d",
        ts=DAY,
        open=minutes[0].open,
        high=max(m.high for m in minutes),
        low=min(m.low for m in minutes),
        close=minutes[-1].close,
        volume=sum(m.volume for m in minutes),
    )
    return msgspec.structs.replace(bar, **wrong) if wrong else bar


def a_day_of_minutes() -> list[Candle]:
    bars = []
    for n, ts in enumerate(CAL.expected_minutes(DAY.date())):
        price = 70_000 + 100 * (n % 7)
        bars.append(minute(ts, price, price + 100, price - 100, price, 10 + n))
    return bars


def test_a_day_that_adds_up_has_no_difference() -> None:
    minutes = a_day_of_minutes()
    assert compare_day(day_of(minutes), minutes) == []
    assert compare_day(day_of(minutes), []) == []


def test_every_field_that_differs_is_named() -> None:
    minutes = a_day_of_minutes()
    found = compare_day(day_of(minutes, volume=1, high=1), minutes)
    assert [(d.field, d.found) for d in found] == [("high", "1"), ("volume", "1")]
    assert found[1].expected == str(sum(m.volume for m in minutes))


@pytest.fixture
def settings(redis_url: str, hub_namespace: str, tmp_path: Path) -> Settings:
    settings = load_settings(env={"REDIS_URL": redis_url, "APIHUB_NAMESPACE": hub_namespace})
    return replace(settings, sentinel=replace(settings.sentinel, lookback_days=2))


async def test_the_sentinel_reports_a_daily_bar_that_disagrees_once(
    aredis: aioredis.Redis, settings: Settings, tmp_path: Path
) -> None:
    minutes = a_day_of_minutes()
    with ArchiveStore(tmp_path, fsync=False) as store:
        store.write(
            [
                Observation(
                    entry="1-0", data=MarketData(candles=(*minutes, day_of(minutes, volume=5)))
                )
            ]
        )
    now = datetime(2026, 12, 2, 10, 0, tzinfo=KST)

    async def clock() -> MarketClock:
        return MarketClock.anchored(now, frozen=True)

    keys = Keys(settings.namespace)
    async with HubClient.from_url(settings.redis_url or "", namespace=settings.namespace) as hub:
        sentinel = Sentinel(
            aredis,
            hub,
            settings,
            calendar=CAL,
            clock=clock,
            series=[("KIS", "005930", "1m"), ("KIS", "005930", "1d")],
            archive_root=tmp_path,
        )
        # Not complete in the coverage yet: nothing is compared.
        assert await sentinel.check_consistency(now) == []
        await sentinel.coverage.mark("KIS", "005930", "1m", [m.ts for m in minutes])
        await sentinel.coverage.mark("KIS", "005930", "1d", [DAY])
        (found,) = await sentinel.check_consistency(now)
        assert (found.field, found.found, found.day) == ("volume", "5", "2026-12-01")
        # Once a day: a second look reports nothing new.
        assert await sentinel.check_consistency(now) == []
    events = [decode_gap_event(f) for _, f in await aredis.xrange(keys.gaps)]
    assert [type(e) for e in events] == [MarketInconsistency]


async def test_an_archive_that_cannot_be_read_is_asked_again_later(
    aredis: aioredis.Redis, settings: Settings, tmp_path: Path
) -> None:
    now = datetime(2026, 12, 2, 10, 0, tzinfo=KST)

    async def clock() -> MarketClock:
        return MarketClock.anchored(now, frozen=True)

    async with HubClient.from_url(settings.redis_url or "", namespace=settings.namespace) as hub:
        sentinel = Sentinel(
            aredis,
            hub,
            settings,
            calendar=CAL,
            clock=clock,
            series=[("KIS", "005930", "1m"), ("KIS", "005930", "1d")],
            archive_root=tmp_path / "nowhere",
        )
        bars = CAL.expected_minutes(DAY.date())
        await sentinel.coverage.mark("KIS", "005930", "1m", bars)
        await sentinel.coverage.mark("KIS", "005930", "1d", [DAY])
        assert await sentinel.check_consistency(now) == []
        checked = Keys(settings.namespace).consistency_checked("KIS", "005930")
        assert await aredis.scard(checked) == 0
