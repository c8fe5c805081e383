"""The collector against a real hub: Redis, the simulator over HTTP, an in-process dispatcher
and token-keeper, with the simulator's clock (and the published market clock) standing still
where each test puts it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, cast

import httpx
import pytest
import redis.asyncio as aioredis

from apihub_collector import Collector, read_status
from apihub_collector import _collector as collector_module
from apihub_core import (
    CollectorCycleSkipped,
    CollectorEvent,
    Keys,
    Provider,
    RequestSubmitted,
    ResponseReceived,
    SnapshotQuarantined,
    SnapshotRecorded,
    decode_collector_event,
    decode_outcome,
    decode_request,
)
from apihub_dispatcher import Dispatcher
from apihub_marketdata import KST
from apihub_runtime import WatchEntry
from apihub_testing import async_wait_until

pytestmark = pytest.mark.anyio

StartCollector = Callable[..., AbstractAsyncContextManager[Collector]]
"""The conftest's ``start_collector`` fixture."""
IN_SESSION = datetime(2025, 3, 21, 10, 30, tzinfo=KST)
"""Where the conftest's ``market_clock`` stands the clocks first (a Friday morning)."""

SWING = (WatchEntry(provider=Provider.KIS, symbols=("005930", "000660"), mode="swing"),)
SCALP = (WatchEntry(provider=Provider.KIS, symbols=("005930",), mode="scalp"),)
HOUR = 3600.0  # a cadence no test waits for: one cycle, then the next one far away

Fields = dict[bytes, bytes]


async def requests(redis: aioredis.Redis, keys: Keys) -> list[RequestSubmitted]:
    return [decode_request(cast(Fields, f)) for _, f in await redis.xrange(keys.requests)]


async def events(redis: aioredis.Redis, keys: Keys) -> list[CollectorEvent]:
    return [decode_collector_event(cast(Fields, f)) for _, f in await redis.xrange(keys.collector)]


async def counts(redis: aioredis.Redis, collector: Collector) -> dict[str, str]:
    raw = await redis.hgetall(collector.counts_key)
    return {k.decode(): v.decode() for k, v in raw.items()}


def counter(name: str, at_least: int = 1) -> Callable[[aioredis.Redis, Collector], Awaitable[bool]]:
    async def reached(redis: aioredis.Redis, collector: Collector) -> bool:
        return int((await counts(redis, collector)).get(name, 0)) >= at_least

    return reached


async def until(
    redis: aioredis.Redis, collector: Collector, name: str, at_least: int = 1
) -> dict[str, str]:
    check = counter(name, at_least)
    await async_wait_until(lambda: check(redis, collector), timeout=20)
    return await counts(redis, collector)


async def arm(sim_admin_api: httpx.AsyncClient, tr_id: str, action: Any, count: int = 1) -> None:
    fault = {"match": {"tr_id": tr_id}, "count": count, "action": action}
    (await sim_admin_api.post("/__sim/faults", json=fault)).raise_for_status()


# -- swing ----------------------------------------------------------------------------------------


async def test_one_swing_cycle_asks_each_symbol_at_collector_priority_with_tags(
    hub: Dispatcher, start_collector: StartCollector, aredis: aioredis.Redis, keys: Keys
) -> None:
    watch = (*SWING, WatchEntry(provider=Provider.KIWOOM, symbols=("035720",), mode="swing"))
    async with start_collector(watch=watch, swing_interval_s=HOUR) as collector:
        seen = await until(aredis, collector, "swing_cycles")
    assert (seen["calls"], seen.get("failures", "0"), seen["state"]) == ("3", "0", "in_session")
    assert (await counts(aredis, collector))["state"] == "stopped"
    asked = await requests(aredis, keys)
    assert sorted(
        (r.provider, r.tr_id, r.params.get("FID_INPUT_ISCD") or r.params["stk_cd"]) for r in asked
    ) == [
        ("KIS", "FHKST03010200", "000660"),
        ("KIS", "FHKST03010200", "005930"),
        ("KIWOOM", "ka10080", "035720"),
    ]
    assert {r.priority for r in asked} == {"collector"}
    assert all(r.tags == {"collector": "collector", "mode": "swing"} for r in asked)
    kis = [r for r in asked if r.provider == "KIS"]
    assert {r.params["FID_INPUT_HOUR_1"] for r in kis} == {"103000"}  # the market's now
    # The answers carry the tags too: that is how the archiver tells the collector's apart.
    answers = [decode_outcome(cast(Fields, f)) for _, f in await aredis.xrange(keys.responses)]
    assert all(isinstance(a, ResponseReceived) for a in answers)
    assert {a.tags["mode"] for a in answers} == {"swing"}
    # The last poll is kept for a restart.
    polls = await aredis.hgetall(collector.polls_key)
    stamp = int(IN_SESSION.timestamp() * 1000)
    assert polls == {
        b"KIS:005930": str(stamp).encode(),
        b"KIS:000660": str(stamp).encode(),
        b"KIWOOM:035720": str(stamp).encode(),
    }


async def test_after_a_gap_the_poll_pages_back_to_overlap_the_last_one(
    hub: Dispatcher, start_collector: StartCollector, aredis: aioredis.Redis, keys: Keys
) -> None:
    # A restart an hour after the last poll: 10:30 now, 09:30 then, five bars of overlap.
    last = IN_SESSION - timedelta(hours=1)
    await aredis.hset(
        f"{keys.namespace}:collector-polls:collector",
        "KIS:005930",
        str(int(last.timestamp() * 1000)),
    )
    watch = (WatchEntry(provider=Provider.KIS, symbols=("005930",), mode="swing"),)
    async with start_collector(watch=watch, swing_interval_s=HOUR) as collector:
        await until(aredis, collector, "swing_cycles")
    hours = [r.params["FID_INPUT_HOUR_1"] for r in await requests(aredis, keys)]
    # At 10:30:00 sharp the newest bar is 10:29: pages 10:00–10:29, 09:30–09:59, then
    # 09:00–09:29, which reaches 09:26 (the 09:30 bar of the last poll and the four before it).
    assert hours == ["103000", "095959", "092959"]


# -- skipping instead of piling up ----------------------------------------------------------------


async def test_a_cycle_still_in_flight_makes_the_next_one_skip(
    hub: Dispatcher,
    start_collector: StartCollector,
    aredis: aioredis.Redis,
    keys: Keys,
    sim_admin_api: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "apihub.collector")
    await arm(sim_admin_api, "FHKST03010200", {"kind": "delay", "delay_ms": 500}, count=-1)
    async with start_collector(watch=SWING, swing_interval_s=0.05) as collector:
        await until(aredis, collector, "skipped_overrun")
        await (await sim_admin_api.delete("/__sim/faults")).aread()
        seen = await until(aredis, collector, "swing_cycles", 2)
    skipped = [e for e in await events(aredis, keys) if isinstance(e, CollectorCycleSkipped)]
    assert skipped
    assert {(e.collector, e.mode, e.reason, e.symbols) for e in skipped} == {
        ("collector", "swing", "overrun", 2)
    }
    assert int(seen["skipped"]) >= len(skipped) >= 1
    assert "skipping swing cycles (overrun" in caplog.text
    assert "swing cycles resume after" in caplog.text


async def test_a_spent_budget_makes_a_cycle_skip(
    hub: Dispatcher,
    start_collector: StartCollector,
    aredis: aioredis.Redis,
    keys: Keys,
    sim_admin_api: httpx.AsyncClient,
) -> None:
    # One request may be outstanding; each mode's first cycle holds it for a while.
    for tr_id in ("FHKST03010200", "FHKST01010100"):
        await arm(sim_admin_api, tr_id, {"kind": "delay", "delay_ms": 300}, count=-1)
    watch = (
        WatchEntry(provider=Provider.KIS, symbols=("005930",), mode="swing"),
        *SCALP,
    )
    async with start_collector(
        watch=watch, swing_interval_s=0.05, scalp_interval_s=0.05, max_in_flight=1
    ) as collector:
        await until(aredis, collector, "skipped_budget_saturated")
    reasons = {e.reason for e in await events(aredis, keys) if isinstance(e, CollectorCycleSkipped)}
    assert "budget_saturated" in reasons


# -- the session ----------------------------------------------------------------------------------


async def test_outside_the_session_nothing_is_asked(
    hub: Dispatcher,
    start_collector: StartCollector,
    aredis: aioredis.Redis,
    keys: Keys,
    market_clock: Callable[[datetime], Awaitable[None]],
) -> None:
    await market_clock(datetime(2025, 3, 21, 16, 0, tzinfo=KST))
    async with start_collector(watch=SWING + SCALP) as collector:
        await async_wait_until(lambda: _state_is(aredis, collector, "closed"), timeout=20)
        detail = (await counts(aredis, collector))["detail"]
    assert detail == "after close; next session opens 2025-03-24T09:00:00+09:00"
    assert await aredis.xlen(keys.requests) == 0


async def _state_is(redis: aioredis.Redis, collector: Collector, state: str) -> bool:
    return (await counts(redis, collector)).get("state") == state


async def test_the_collector_follows_the_clock_out_of_the_session_and_back(
    hub: Dispatcher,
    start_collector: StartCollector,
    aredis: aioredis.Redis,
    keys: Keys,
    market_clock: Callable[[datetime], Awaitable[None]],
) -> None:
    async with start_collector(watch=SWING, swing_interval_s=HOUR) as collector:
        await until(aredis, collector, "swing_cycles")
        await market_clock(datetime(2025, 3, 22, 10, 0, tzinfo=KST))  # Saturday
        await async_wait_until(lambda: _state_is(aredis, collector, "closed"), timeout=20)
        asked = await aredis.xlen(keys.requests)
        await market_clock(datetime(2025, 3, 24, 9, 1, tzinfo=KST))  # Monday's session
        # A new session starts with a cycle at once, whatever the cadence.
        await until(aredis, collector, "swing_cycles", 2)
    assert asked == 2
    hours = [r.params["FID_INPUT_HOUR_1"] for r in await requests(aredis, keys)]
    assert hours == ["103000", "103000", "090100", "090100"]


# -- scalp and the observer pipeline --------------------------------------------------------------


async def test_scalp_snapshots_are_recorded_and_enriched(
    hub: Dispatcher,
    start_collector: StartCollector,
    aredis: aioredis.Redis,
    keys: Keys,
    market_clock: Callable[[datetime], Awaitable[None]],
) -> None:
    async with start_collector(watch=SCALP, scalp_interval_s=0.05) as collector:
        await until(aredis, collector, "snapshots")
        await market_clock(IN_SESSION + timedelta(minutes=2))  # the market moves on

        async def moved() -> bool:
            return any(
                isinstance(e, SnapshotRecorded) and e.volume_delta > 0
                for e in await events(aredis, keys)
            )

        await async_wait_until(moved, timeout=20)
    recorded = [e for e in await events(aredis, keys) if isinstance(e, SnapshotRecorded)]
    first, later = recorded[0], next(e for e in recorded if e.volume_delta > 0)
    assert (first.collector, first.provider, first.symbol) == ("collector", "KIS", "005930")
    assert first.ts == IN_SESSION
    assert (first.volume_delta, first.price_change) == (0, 0)
    before = recorded[recorded.index(later) - 1]
    assert later.volume_delta == later.cum_volume - before.cum_volume
    assert later.price_change == later.price - before.price
    assert later.ts == IN_SESSION + timedelta(minutes=2)
    asked = {r.request_id: r for r in await requests(aredis, keys)}
    assert asked[first.lineage].tr_id == "FHKST01010100"
    assert asked[first.lineage].tags == {"collector": "collector", "mode": "scalp"}
    assert asked[first.lineage].priority == "collector"


async def test_bad_answers_are_quarantined_and_the_loop_goes_on(
    hub: Dispatcher,
    start_collector: StartCollector,
    aredis: aioredis.Redis,
    keys: Keys,
    sim_admin_api: httpx.AsyncClient,
) -> None:
    envelope = {"rt_cd": "0", "msg_cd": "MCA00000", "msg1": "정상처리 되었습니다."}
    malformed = {**envelope, "output": {"stck_prpr": "71,5OO", "acml_vol": "1"}}
    await arm(sim_admin_api, "FHKST01010100", {"kind": "error", "status": 200, "body": malformed})
    async with start_collector(watch=SCALP, scalp_interval_s=0.05) as collector:
        seen = await until(aredis, collector, "snapshots")
    quarantined = [e for e in await events(aredis, keys) if isinstance(e, SnapshotQuarantined)]
    assert [(e.reason, e.symbol, e.collector) for e in quarantined] == [
        ("bad_number", "005930", "collector")
    ]
    assert quarantined[0].request_id
    assert seen["quarantines"] == "1"


async def test_a_failed_call_is_counted_and_logged_and_the_loop_goes_on(
    hub: Dispatcher,
    start_collector: StartCollector,
    aredis: aioredis.Redis,
    sim_admin_api: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, "apihub.collector")
    monkeypatch.setattr(collector_module, "FAILURE_REPEAT_S", 0.0)  # say every repeat
    refusal = {"rt_cd": "1", "msg_cd": "OPSQ0002", "msg1": "없는 서비스 코드 입니다"}
    await arm(sim_admin_api, "FHKST01010100", {"kind": "error", "status": 200, "body": refusal}, 2)
    async with start_collector(watch=SCALP, scalp_interval_s=0.05) as collector:
        # A cycle's calls and failures are counted when it ends, with the cycle itself.
        seen = await until(aredis, collector, "scalp_cycles", 3)
    assert seen["failures"] == "2"
    assert int(seen["calls"]) >= 3
    assert int(seen["snapshots"]) >= 1
    assert caplog.text.count("KIS:005930 scalp poll failed: permanent: [OPSQ0002]") == 1
    assert "KIS:005930 scalp polls still failing (2 in a row): permanent" in caplog.text
    assert "KIS:005930 scalp polls answered again after 2 failure(s)" in caplog.text


# -- start, idle and drain --------------------------------------------------------------------


async def test_without_a_watchlist_on_real_accounts_it_idles(
    start_collector: StartCollector, aredis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "apihub.collector")
    async with start_collector(enabled=False) as collector:
        assert (await counts(aredis, collector))["state"] == "idle"
    assert "idle (nothing to collect: disabled ([collector] enabled = false))" in caplog.text
    (status,) = await read_status(aredis, collector.keys)
    assert (status.name, status.state) == ("collector", "idle")


async def test_a_stop_lets_the_cycle_in_flight_finish(
    hub: Dispatcher,
    start_collector: StartCollector,
    aredis: aioredis.Redis,
    keys: Keys,
    sim_admin_api: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "apihub.collector")
    await arm(sim_admin_api, "FHKST03010200", {"kind": "delay", "delay_ms": 300}, count=-1)
    async with start_collector(watch=SWING, swing_interval_s=HOUR, drain_grace_s=20) as collector:
        await async_wait_until(lambda: collector.in_flight == 2, timeout=20)
    assert collector.in_flight == 0
    seen = await counts(aredis, collector)
    assert (seen["swing_cycles"], seen["calls"], seen["state"]) == ("1", "2", "stopped")
    assert "collector collector draining: 1 cycle(s), 2 request(s) in flight" in caplog.text
    assert "collector collector drained" in caplog.text


async def test_a_drain_past_its_grace_cancels_what_is_left(
    hub: Dispatcher,
    start_collector: StartCollector,
    sim_admin_api: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "apihub.collector")
    await arm(sim_admin_api, "FHKST03010200", {"kind": "delay", "delay_ms": 1500}, count=-1)
    async with start_collector(watch=SWING, swing_interval_s=HOUR, drain_grace_s=0.1) as collector:
        await async_wait_until(lambda: collector.in_flight == 2, timeout=20)
    assert "2 request(s) still unanswered after 0.1 s, cancelled" in caplog.text
