"""The sentinel against a real Redis, a real dispatcher and the simulator: gaps found against the
calendar, healed with backfill requests at backfill priority, never asked for twice.

The archive's side is played by ``_archive_answers``: it normalises the answers on the response
stream and appends the ``archive.written`` the archiver would (the archiver has its own tests).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import pytest
import redis.asyncio as aioredis

from apihub_core import (
    ArchiveWritten,
    GapBackfillFailed,
    GapBackfillRequested,
    GapConfirmedEmpty,
    GapDetected,
    GapHealed,
    HubClient,
    Keys,
    RequestFailed,
    ResponseReceived,
    decode_gap_event,
    decode_outcome,
    encode_entry,
)
from apihub_dispatcher import Dispatcher
from apihub_marketdata import KST, krx_calendar, normalise
from apihub_runtime import MarketClock, Settings
from apihub_sentinel import Sentinel
from apihub_testing import async_wait_until

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 2, 10, 30, 30, tzinfo=KST)  # a Wednesday, mid-morning
SYMBOL = "005930"


@pytest.fixture
async def market(sim_admin: httpx.AsyncClient) -> AsyncIterator[MarketClock]:
    """The simulator frozen at :data:`NOW`, and the same market clock for the hub."""
    (
        await sim_admin.post("/__sim/clock", json={"now": NOW.isoformat(), "frozen": True})
    ).raise_for_status()
    try:
        yield MarketClock.anchored(NOW, frozen=True)
    finally:
        real = {"now": datetime.now(UTC).isoformat(), "frozen": False}
        (await sim_admin.post("/__sim/clock", json=real)).raise_for_status()


def _sentinel(
    redis: aioredis.Redis, hub: HubClient, settings: Settings, clock: MarketClock
) -> Sentinel:
    tuned = replace(
        settings,
        sentinel=replace(
            settings.sentinel,
            grace_s=60.0,
            lookback_days=1,
            chunk_ttl_s=30.0,
            retry_backoff_s=(0.2,),
            scan_interval_s=3600.0,  # tests scan by hand
        ),
    )

    async def fixed() -> MarketClock:
        return clock

    return Sentinel(
        redis,
        hub,
        tuned,
        calendar=krx_calendar(),
        clock=fixed,
        series=[("KIS", SYMBOL, "1m")],
    )


async def _written(redis: aioredis.Redis, keys: Keys, bars: list[datetime], lineage: str) -> None:
    event = ArchiveWritten(
        provider="KIS",
        symbol=SYMBOL,
        interval="1m",
        first=bars[0],
        last=bars[-1],
        count=len(bars),
        inserted=len(bars),
        bars=bars,
        lineage=[lineage],
    )
    await redis.xadd(keys.archive, encode_entry(event))


async def _archive_answers(redis: aioredis.Redis, keys: Keys, seen: set[bytes]) -> int:
    """Append ``archive.written`` for every candle answer not yet seen; returns how many."""
    count = 0
    for entry_id, fields in await redis.xrange(keys.responses):
        if entry_id in seen:
            continue
        seen.add(entry_id)
        outcome = decode_outcome(fields)
        if not isinstance(outcome, ResponseReceived):
            continue
        data = normalise(
            outcome.provider,
            outcome.tr_id,
            outcome.params,
            bytes(outcome.body),
            lineage=outcome.request_id,
        )
        bars = [candle.ts for candle in data.candles]
        if bars:
            await _written(redis, keys, bars, outcome.request_id)
            count += 1
    return count


async def _gap_events(redis: aioredis.Redis, keys: Keys) -> list[object]:
    return [decode_gap_event(fields) for _, fields in await redis.xrange(keys.gaps)]


async def _of(kind: type, redis: aioredis.Redis, keys: Keys) -> list[object]:
    return [event for event in await _gap_events(redis, keys) if isinstance(event, kind)]


def _morning(until: datetime) -> list[datetime]:
    day = krx_calendar().expected_minutes(NOW.date())
    return [bar for bar in day if bar <= until]


async def test_a_missing_range_becomes_one_gap_and_is_healed_through_the_hub(
    redis: aioredis.Redis,
    keys: Keys,
    settings: Settings,
    hub: HubClient,
    dispatcher: Dispatcher,
    market: MarketClock,
    sim_admin: httpx.AsyncClient,
) -> None:
    hole = [NOW.replace(hour=10, minute=m, second=0) for m in range(5)]
    present = [bar for bar in _morning(NOW - timedelta(minutes=2)) if bar not in hole]
    await _written(redis, keys, present, "collector")
    sentinel = _sentinel(redis, hub, settings, market)
    seen: set[bytes] = set()
    async with anyio.create_task_group() as tg:
        await tg.start(sentinel.run)
        # The first scan waits for the coverage to catch up with the archive stream.
        (gap,) = await async_wait_until(
            lambda: _of(GapDetected, redis, keys), message="the gap is detected"
        )
        assert isinstance(gap, GapDetected)
        assert (gap.first, gap.last, gap.missing) == (hole[0], hole[-1], 5)

        (request,) = await async_wait_until(
            lambda: _of(GapBackfillRequested, redis, keys), message="the gap asks for its page"
        )
        # The answer reaches the archive; the gap closes.
        await async_wait_until(lambda: _archive_answers(redis, keys, seen))

        (done,) = await async_wait_until(
            lambda: _of(GapHealed, redis, keys), message="the gap is healed"
        )
        sentinel.stop()
    assert isinstance(done, GapHealed)
    assert done.gap_id == gap.gap_id
    assert done.heal_ms >= 0
    assert isinstance(request, GapBackfillRequested)
    assert len(request.request_ids) == 1
    # One page, fetched once, at backfill priority, tagged with the gap.
    ((_, fields),) = list(await redis.xrange(keys.responses))
    outcome = decode_outcome(fields)
    assert outcome.priority == "backfill"
    assert outcome.tags["gap"] == gap.gap_id
    # The grid's page holding 10:00-10:04: 09:58-10:26 (29 bars a page from the open).
    assert outcome.params["FID_INPUT_HOUR_1"] == "102600"
    calls = (await sim_admin.get("/__sim/calls", params={"tr_id": "FHKST03010200"})).json()
    assert len(calls["calls"] if isinstance(calls, dict) else calls) == 1
    # A scan after healing finds nothing: the bars are covered.
    assert await sentinel.scan() == []
    assert [type(e) for e in await _gap_events(redis, keys)] == [
        GapDetected,
        GapBackfillRequested,
        GapHealed,
    ]


async def test_two_replicas_open_one_gap_and_ask_for_its_page_once(
    redis: aioredis.Redis,
    keys: Keys,
    settings: Settings,
    hub: HubClient,
    dispatcher: Dispatcher,
    market: MarketClock,
    sim_admin: httpx.AsyncClient,
) -> None:
    hole = [NOW.replace(hour=9, minute=m, second=0) for m in range(40, 50)]
    present = [bar for bar in _morning(NOW - timedelta(minutes=2)) if bar not in hole]
    await _written(redis, keys, present, "collector")
    one = _sentinel(redis, hub, settings, market)
    two = _sentinel(redis, hub, settings, market)
    async with anyio.create_task_group() as tg:
        await tg.start(one.run)
        await tg.start(two.run)
        # Both scan at start and work their due gaps; then both scan again, at once.
        await async_wait_until(lambda: one.scans and two.scans, message="both have scanned")
        async with anyio.create_task_group() as again:
            again.start_soon(one.scan)
            again.start_soon(two.scan)
            again.start_soon(one.work_due_gaps)
            again.start_soon(two.work_due_gaps)
        await async_wait_until(lambda: redis.xlen(keys.responses), message="the page was asked")
        one.stop()
        two.stop()
    events = await _gap_events(redis, keys)
    assert sum(isinstance(e, GapDetected) for e in events) == 1
    asked = [e for e in events if isinstance(e, GapBackfillRequested)]
    assert sum(len(e.request_ids) for e in asked) == 1
    calls = (await sim_admin.get("/__sim/calls", params={"tr_id": "FHKST03010200"})).json()
    assert len(calls["calls"] if isinstance(calls, dict) else calls) == 1


@pytest.mark.parametrize(
    ("action", "count", "error_class"),
    [
        # Three 503s: the dispatcher's own tries of the first request all fail.
        pytest.param("http_503", 3, "transient", id="transient"),
        # The broker refuses the symbol's quotation once (as while it is halted): a permanent
        # answer for that call, not for the bars, so it is asked again too.
        pytest.param("quote_refused", 1, "permanent", id="refused"),
    ],
)
async def test_a_failed_backfill_is_retried_after_its_backoff(
    redis: aioredis.Redis,
    keys: Keys,
    settings: Settings,
    hub: HubClient,
    dispatcher: Dispatcher,
    market: MarketClock,
    sim_admin: httpx.AsyncClient,
    action: str,
    count: int,
    error_class: str,
) -> None:
    fault = {"match": {"tr_id": "FHKST03010200"}, "count": count, "action": action}
    (await sim_admin.post("/__sim/faults", json=fault)).raise_for_status()
    hole = [NOW.replace(hour=9, minute=m, second=0) for m in (10, 11)]
    present = [bar for bar in _morning(NOW - timedelta(minutes=2)) if bar not in hole]
    await _written(redis, keys, present, "collector")
    sentinel = _sentinel(redis, hub, settings, market)
    seen: set[bytes] = set()
    async with anyio.create_task_group() as tg:
        await tg.start(sentinel.run)
        (failed,) = await async_wait_until(
            lambda: _of(GapBackfillFailed, redis, keys), message="the first try fails"
        )
        asked = await async_wait_until(
            lambda: _more_than(1, GapBackfillRequested, redis, keys), message="asked again"
        )
        await async_wait_until(lambda: _archive_answers(redis, keys, seen))
        await async_wait_until(lambda: _of(GapHealed, redis, keys), message="healed")
        sentinel.stop()
    assert isinstance(failed, GapBackfillFailed)
    assert not failed.gave_up
    assert failed.retry_at_ms > 0
    assert [e.attempt for e in asked if isinstance(e, GapBackfillRequested)] == [1, 2]
    ((_, fields), *_) = list(await redis.xrange(keys.responses))
    first = decode_outcome(fields)
    assert isinstance(first, RequestFailed)
    assert first.error_class == error_class


async def test_a_gap_is_given_up_after_max_attempts(
    redis: aioredis.Redis,
    keys: Keys,
    settings: Settings,
    hub: HubClient,
    dispatcher: Dispatcher,
    market: MarketClock,
    sim_admin: httpx.AsyncClient,
) -> None:
    fault = {"match": {"tr_id": "FHKST03010200"}, "count": 50, "action": "quote_refused"}
    (await sim_admin.post("/__sim/faults", json=fault)).raise_for_status()
    hole = [NOW.replace(hour=9, minute=30, second=0)]
    present = [bar for bar in _morning(NOW - timedelta(minutes=2)) if bar not in hole]
    await _written(redis, keys, present, "collector")
    patient = replace(settings, sentinel=replace(settings.sentinel, max_attempts=2))
    sentinel = _sentinel(redis, hub, patient, market)
    async with anyio.create_task_group() as tg:
        await tg.start(sentinel.run)
        failures = await async_wait_until(
            lambda: _more_than(1, GapBackfillFailed, redis, keys), message="two tries fail"
        )
        await async_wait_until(lambda: _closed(redis, keys), message="the gap is closed")
        sentinel.stop()
    assert [(f.attempt, f.gave_up) for f in failures if isinstance(f, GapBackfillFailed)] == [
        (1, False),
        (2, True),
    ]
    assert await redis.zcard(keys.open_gaps) == 0
    assert len(await _of(GapBackfillRequested, redis, keys)) == 2
    # Given up, not forgotten: the next scan does not open the same bars again.
    assert await sentinel.scan() == []


async def test_bars_the_broker_does_not_have_are_confirmed_empty_not_asked_forever(
    redis: aioredis.Redis,
    keys: Keys,
    settings: Settings,
    hub: HubClient,
    dispatcher: Dispatcher,
    sim_admin: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    # The hub's calendar says the session ran until 16:00; the broker traded until 15:30 as
    # usual, so it has no bar between 15:40 and 15:45 (like an illiquid minute or a halt).
    late = datetime(2026, 12, 2, 16, 10, tzinfo=KST)
    (await sim_admin.post("/__sim/clock", json={"now": late.isoformat()})).raise_for_status()
    override = tmp_path / "days.toml"
    override.write_text('[[day]]\ndate = 2026-12-02\nopen = "09:00"\nclose = "16:00"\n')
    calendar = krx_calendar(override)
    hole = [late.replace(hour=15, minute=m) for m in range(40, 46)]
    present = [bar for bar in calendar.expected_minutes(late.date()) if bar not in hole]
    await _written(redis, keys, present, "collector")
    sentinel = _sentinel(redis, hub, settings, MarketClock.anchored(late, frozen=True))
    sentinel._calendar = calendar
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(sentinel.run)
            (empty,) = await async_wait_until(
                lambda: _of(GapConfirmedEmpty, redis, keys), message="confirmed empty"
            )
            await async_wait_until(
                lambda: _closed(redis, keys), message="the gap is closed, not asked again"
            )
            sentinel.stop()
    finally:
        real = {"now": datetime.now(UTC).isoformat(), "frozen": False}
        (await sim_admin.post("/__sim/clock", json=real)).raise_for_status()
    assert isinstance(empty, GapConfirmedEmpty)
    assert empty.bars == hole
    # Two answers without the bars (confirm_empty_after = 2), then nothing more.
    asked = await _of(GapBackfillRequested, redis, keys)
    assert len(asked) == 2
    assert not await _of(GapHealed, redis, keys)
    assert await sentinel.scan() == []
    assert await sentinel.empty.which("KIS", SYMBOL, "1m", hole) == set(hole)


async def _more_than(count: int, kind: type, redis: aioredis.Redis, keys: Keys) -> list[object]:
    found = await _of(kind, redis, keys)
    return found if len(found) > count else []


async def _closed(redis: aioredis.Redis, keys: Keys) -> bool:
    return await redis.zcard(keys.open_gaps) == 0
