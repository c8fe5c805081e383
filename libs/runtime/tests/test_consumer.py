"""StreamConsumer against a real Redis: delivery, drain, reclaim, poison, recovery, cancellation.

Every wait is bounded (``anyio.fail_after`` / ``async_wait_until``); small ``block_ms`` values let
the loops notice shutdown quickly, and the reclaim loop is kept out of tests that do not want it
with a long ``reclaim_interval_s``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis
from anyio.abc import TaskStatus
from redis.exceptions import ResponseError

from apihub_core import Keys
from apihub_runtime import Delivery, StreamConsumer, consumer_name, ensure_group
from apihub_testing import async_wait_until

GROUP = "workers"
WAIT = 10  # seconds: the bound of every wait below; never reached when the code works


@pytest.fixture
def stream(hub_namespace: str) -> str:
    return Keys(hub_namespace).requests


class Recorder:
    """Handler and poison handler that record deliveries and acknowledge them."""

    def __init__(self, redis: aioredis.Redis, stream: str) -> None:
        self.redis = redis
        self.stream = stream
        self.handled: list[Delivery] = []
        self.poisoned: list[Delivery] = []

    async def handle(self, delivery: Delivery) -> None:
        # The final XACK is shielded, so "acknowledged" and "recorded" never disagree.
        with anyio.CancelScope(shield=True):
            await self.redis.xack(self.stream, GROUP, delivery.entry_id)
            self.handled.append(delivery)

    async def poison(self, delivery: Delivery) -> None:
        await self.redis.xack(self.stream, GROUP, delivery.entry_id)
        self.poisoned.append(delivery)

    def handled_ids(self) -> set[bytes]:
        return {d.entry_id for d in self.handled}


def make_consumer(
    redis: aioredis.Redis,
    stream: str,
    recorder: Recorder,
    *,
    name: str = "c1",
    handler: Any = None,
    **options: Any,
) -> StreamConsumer:
    settings: dict[str, Any] = {
        "block_ms": 50,
        "reclaim_idle_ms": 60_000,
        "reclaim_interval_s": 3600.0,
        "shutdown_grace_s": 10.0,
    }
    settings.update(options)
    return StreamConsumer(
        redis,
        stream=stream,
        group=GROUP,
        consumer=name,
        handler=handler or recorder.handle,
        on_poison=recorder.poison,
        **settings,
    )


async def add(redis: aioredis.Redis, stream: str, n: int, start: int = 0) -> list[bytes]:
    return [await redis.xadd(stream, {"data": f"entry-{start + i}"}) for i in range(n)]


async def read_as(redis: aioredis.Redis, stream: str, consumer: str, n: int) -> list[bytes]:
    """Deliver ``n`` new entries to ``consumer`` (a consumer that then dies)."""
    batches = await redis.xreadgroup(GROUP, consumer, {stream: ">"}, count=n)
    return [entry_id for _stream, entries in batches for entry_id, _fields in entries]


async def pending_by_consumer(redis: aioredis.Redis, stream: str) -> dict[bytes, bytes]:
    rows = await redis.xpending_range(stream, GROUP, min="-", max="+", count=1000)
    return {row["message_id"]: row["consumer"] for row in rows}


# --- delivery -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_handles_old_and_new_entries(aredis: aioredis.Redis, stream: str) -> None:
    recorder = Recorder(aredis, stream)
    await ensure_group(aredis, stream, GROUP)
    before = await add(aredis, stream, 3)
    consumer = make_consumer(aredis, stream, recorder)
    async with anyio.create_task_group() as tg:
        await tg.start(consumer.run)
        after = await add(aredis, stream, 2, start=3)
        await async_wait_until(lambda: len(recorder.handled) == 5, timeout=WAIT)
        consumer.stop()
    assert recorder.handled_ids() == {*before, *after}
    (first,) = [d for d in recorder.handled if d.entry_id == before[0]]
    assert first.stream == stream
    assert first.fields == {b"data": b"entry-0"}
    assert first.deliveries == 1
    assert first.reclaimed is False
    assert first.id_text == before[0].decode()
    assert consumer.handled == 5
    assert consumer.in_flight == 0
    assert await pending_by_consumer(aredis, stream) == {}


@pytest.mark.anyio
async def test_run_creates_the_group_before_signalling_ready(
    aredis: aioredis.Redis, stream: str
) -> None:
    consumer = make_consumer(aredis, stream, Recorder(aredis, stream))
    async with anyio.create_task_group() as tg:
        await tg.start(consumer.run)
        groups = await aredis.xinfo_groups(stream)
        consumer.stop()
    assert [g["name"] for g in groups] == [GROUP.encode()]


@pytest.mark.anyio
async def test_stop_before_any_entry_returns_promptly(aredis: aioredis.Redis, stream: str) -> None:
    consumer = make_consumer(aredis, stream, Recorder(aredis, stream), block_ms=60_000)
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            await tg.start(consumer.run)
            consumer.stop()


@pytest.mark.anyio
async def test_concurrency_is_bounded(aredis: aioredis.Redis, stream: str) -> None:
    recorder = Recorder(aredis, stream)
    release = anyio.Event()
    running = 0
    most = 0

    async def slow(delivery: Delivery) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        await recorder.handle(delivery)

    await ensure_group(aredis, stream, GROUP)
    await add(aredis, stream, 6)
    consumer = make_consumer(aredis, stream, recorder, handler=slow, concurrency=2)
    async with anyio.create_task_group() as tg:
        await tg.start(consumer.run)
        await async_wait_until(lambda: running == 2, timeout=WAIT)
        await anyio.wait_all_tasks_blocked()
        assert running == 2
        release.set()
        await async_wait_until(lambda: len(recorder.handled) == 6, timeout=WAIT)
        consumer.stop()
    assert most == 2


# --- graceful drain -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_stop_waits_for_the_in_flight_handler(aredis: aioredis.Redis, stream: str) -> None:
    recorder = Recorder(aredis, stream)
    started = anyio.Event()
    release = anyio.Event()
    order: list[str] = []

    async def blocking(delivery: Delivery) -> None:
        started.set()
        await release.wait()
        await recorder.handle(delivery)
        order.append("handler finished")

    consumer = make_consumer(aredis, stream, recorder, handler=blocking)

    async def run_then_record(*, task_status: TaskStatus[None]) -> None:
        await consumer.run(task_status=task_status)
        order.append("run returned")

    async with anyio.create_task_group() as tg:
        await tg.start(run_then_record)
        (entry_id,) = await add(aredis, stream, 1)
        with anyio.fail_after(WAIT):
            await started.wait()
        consumer.stop()
        await anyio.wait_all_tasks_blocked()  # run() has seen stop() and is draining
        assert order == []
        assert consumer.in_flight == 1
        release.set()
    assert order == ["handler finished", "run returned"]
    assert recorder.handled_ids() == {entry_id}
    assert await pending_by_consumer(aredis, stream) == {}


@pytest.mark.anyio
async def test_handler_exceeding_the_grace_is_cancelled_and_stays_pending(
    aredis: aioredis.Redis, stream: str, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(aredis, stream)
    started = anyio.Event()
    cancelled = False

    async def stuck(delivery: Delivery) -> None:
        nonlocal cancelled
        started.set()
        try:
            await anyio.Event().wait()
        except anyio.get_cancelled_exc_class():
            cancelled = True
            raise

    consumer = make_consumer(aredis, stream, recorder, handler=stuck, shutdown_grace_s=0.1)
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            await tg.start(consumer.run)
            (entry_id,) = await add(aredis, stream, 1)
            await started.wait()
            consumer.stop()
    assert cancelled
    assert consumer.handled == 0
    assert await pending_by_consumer(aredis, stream) == {entry_id: b"c1"}
    assert "still running after" in caplog.text


@pytest.mark.anyio
async def test_raising_handler_leaves_its_entry_pending_and_the_loop_goes_on(
    aredis: aioredis.Redis, stream: str, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(aredis, stream)

    async def picky(delivery: Delivery) -> None:
        if delivery.fields[b"data"] == b"entry-0":
            raise RuntimeError("cannot handle this one")
        await recorder.handle(delivery)

    await ensure_group(aredis, stream, GROUP)
    bad, *good = await add(aredis, stream, 3)
    consumer = make_consumer(aredis, stream, recorder, handler=picky)
    with caplog.at_level(logging.ERROR, logger="apihub.consumer"):
        async with anyio.create_task_group() as tg:
            await tg.start(consumer.run)
            await async_wait_until(lambda: len(recorder.handled) == 2, timeout=WAIT)
            more = await add(aredis, stream, 1, start=3)
            await async_wait_until(lambda: len(recorder.handled) == 3, timeout=WAIT)
            consumer.stop()
    assert recorder.handled_ids() == {*good, *more}
    assert await pending_by_consumer(aredis, stream) == {bad: b"c1"}
    assert f"handler failed on {bad.decode()}" in caplog.text


# --- reclaim ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_reclaim_once_hands_over_entries_of_a_dead_consumer(
    aredis: aioredis.Redis, stream: str
) -> None:
    recorder = Recorder(aredis, stream)
    await ensure_group(aredis, stream, GROUP)
    await add(aredis, stream, 2)
    dead = await read_as(aredis, stream, "dead", 2)
    consumer = make_consumer(aredis, stream, recorder, reclaim_idle_ms=0)
    async with anyio.create_task_group() as work:
        assert await consumer.reclaim_once(work) == 2
    by_id = {d.entry_id: d for d in recorder.handled}
    assert sorted(by_id) == sorted(dead)
    assert all(d.reclaimed for d in recorder.handled)
    assert [by_id[entry_id].deliveries for entry_id in dead] == [2, 2]
    assert by_id[dead[0]].fields == {b"data": b"entry-0"}
    assert await pending_by_consumer(aredis, stream) == {}


@pytest.mark.anyio
async def test_reclaim_once_leaves_entries_not_idle_long_enough(
    aredis: aioredis.Redis, stream: str
) -> None:
    recorder = Recorder(aredis, stream)
    await ensure_group(aredis, stream, GROUP)
    await add(aredis, stream, 2)
    dead = await read_as(aredis, stream, "busy", 2)
    consumer = make_consumer(aredis, stream, recorder, reclaim_idle_ms=60_000)
    async with anyio.create_task_group() as work:
        assert await consumer.reclaim_once(work) == 0
    assert recorder.handled == []
    assert await pending_by_consumer(aredis, stream) == dict.fromkeys(dead, b"busy")


@pytest.mark.anyio
async def test_reclaim_once_walks_every_batch(aredis: aioredis.Redis, stream: str) -> None:
    recorder = Recorder(aredis, stream)
    await ensure_group(aredis, stream, GROUP)
    await add(aredis, stream, 5)
    dead = await read_as(aredis, stream, "dead", 5)
    consumer = make_consumer(aredis, stream, recorder, reclaim_idle_ms=0, read_count=2)
    async with anyio.create_task_group() as work:
        assert await consumer.reclaim_once(work) == 5
    assert recorder.handled_ids() == set(dead)


@pytest.mark.anyio
async def test_reclaim_once_with_nothing_pending(aredis: aioredis.Redis, stream: str) -> None:
    await ensure_group(aredis, stream, GROUP)
    consumer = make_consumer(aredis, stream, Recorder(aredis, stream), reclaim_idle_ms=0)
    async with anyio.create_task_group() as work:
        assert await consumer.reclaim_once(work) == 0


@pytest.mark.anyio
async def test_reclaim_loop_picks_up_a_dead_consumers_entries_while_running(
    aredis: aioredis.Redis, stream: str
) -> None:
    recorder = Recorder(aredis, stream)
    await ensure_group(aredis, stream, GROUP)
    await add(aredis, stream, 2)
    dead = await read_as(aredis, stream, "dead", 2)
    consumer = make_consumer(aredis, stream, recorder, reclaim_idle_ms=20, reclaim_interval_s=0.05)
    async with anyio.create_task_group() as tg:
        await tg.start(consumer.run)
        await async_wait_until(lambda: recorder.handled_ids() == set(dead), timeout=WAIT)
        consumer.stop()
    assert all(d.reclaimed and d.deliveries >= 2 for d in recorder.handled)
    assert await pending_by_consumer(aredis, stream) == {}


# --- poison -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_entry_beyond_max_deliveries_goes_to_on_poison(
    aredis: aioredis.Redis, stream: str
) -> None:
    recorder = Recorder(aredis, stream)
    await ensure_group(aredis, stream, GROUP)
    await add(aredis, stream, 1)
    (entry_id,) = await read_as(aredis, stream, "dead", 1)  # delivery 1
    await aredis.xclaim(stream, GROUP, "dead-2", 0, [entry_id])  # delivery 2
    consumer = make_consumer(aredis, stream, recorder, reclaim_idle_ms=0, max_deliveries=2)
    async with anyio.create_task_group() as work:
        assert await consumer.reclaim_once(work) == 1  # delivery 3
    assert recorder.handled == []
    (poisoned,) = recorder.poisoned
    assert poisoned.entry_id == entry_id
    assert poisoned.deliveries == 3
    assert poisoned.reclaimed is True
    assert poisoned.fields == {b"data": b"entry-0"}
    assert consumer.handled == 1
    assert await pending_by_consumer(aredis, stream) == {}


@pytest.mark.anyio
async def test_entry_at_max_deliveries_still_goes_to_the_handler(
    aredis: aioredis.Redis, stream: str
) -> None:
    recorder = Recorder(aredis, stream)
    await ensure_group(aredis, stream, GROUP)
    await add(aredis, stream, 1)
    await read_as(aredis, stream, "dead", 1)  # delivery 1
    consumer = make_consumer(aredis, stream, recorder, reclaim_idle_ms=0, max_deliveries=2)
    async with anyio.create_task_group() as work:
        await consumer.reclaim_once(work)  # delivery 2
    assert [d.deliveries for d in recorder.handled] == [2]
    assert recorder.poisoned == []


@pytest.mark.anyio
async def test_a_failing_entry_is_retried_then_poisoned(
    aredis: aioredis.Redis, stream: str
) -> None:
    recorder = Recorder(aredis, stream)
    attempts: list[int] = []

    async def always_fails(delivery: Delivery) -> None:
        attempts.append(delivery.deliveries)
        raise RuntimeError("never works")

    consumer = make_consumer(
        aredis,
        stream,
        recorder,
        handler=always_fails,
        max_deliveries=3,
        reclaim_idle_ms=10,
        reclaim_interval_s=0.02,
    )
    async with anyio.create_task_group() as tg:
        await tg.start(consumer.run)
        (entry_id,) = await add(aredis, stream, 1)
        await async_wait_until(lambda: recorder.poisoned, timeout=WAIT)
        consumer.stop()
    assert attempts == [1, 2, 3]
    assert recorder.poisoned[0].entry_id == entry_id
    assert recorder.poisoned[0].deliveries == 4


@pytest.mark.anyio
async def test_deleted_pending_entry_is_released_from_the_pending_list(
    aredis: aioredis.Redis, stream: str
) -> None:
    recorder = Recorder(aredis, stream)
    await ensure_group(aredis, stream, GROUP)
    await add(aredis, stream, 1)
    (entry_id,) = await read_as(aredis, stream, "dead", 1)
    await aredis.xdel(stream, entry_id)
    consumer = make_consumer(aredis, stream, recorder, reclaim_idle_ms=0)
    async with anyio.create_task_group() as work:
        await consumer.reclaim_once(work)
    assert recorder.handled == []
    # Redis 6.2 reports the entry as nil and the consumer hands it to on_poison (which
    # acknowledges it); Redis 7 drops it from the pending list itself.
    assert [(p.entry_id, p.fields) for p in recorder.poisoned] in ([(entry_id, {})], [])
    assert (await aredis.xpending(stream, GROUP))["pending"] == 0


@pytest.mark.anyio
async def test_a_raising_on_poison_leaves_the_entry_pending(
    aredis: aioredis.Redis, stream: str
) -> None:
    recorder = Recorder(aredis, stream)

    async def broken_poison(delivery: Delivery) -> None:
        raise RuntimeError("dead-letter stream unavailable")

    await ensure_group(aredis, stream, GROUP)
    await add(aredis, stream, 1)
    (entry_id,) = await read_as(aredis, stream, "dead", 1)
    consumer = StreamConsumer(
        aredis,
        stream=stream,
        group=GROUP,
        consumer="c1",
        handler=recorder.handle,
        on_poison=broken_poison,
        reclaim_idle_ms=0,
        max_deliveries=1,
    )
    async with anyio.create_task_group() as work:
        assert await consumer.reclaim_once(work) == 1
    assert consumer.handled == 0
    assert consumer.in_flight == 0
    assert await pending_by_consumer(aredis, stream) == {entry_id: b"c1"}


# --- recovery -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_destroyed_group_is_recreated(
    aredis: aioredis.Redis, stream: str, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(aredis, stream)
    consumer = make_consumer(aredis, stream, recorder)
    async with anyio.create_task_group() as tg:
        await tg.start(consumer.run)
        (first,) = await add(aredis, stream, 1)
        await async_wait_until(lambda: first in recorder.handled_ids(), timeout=WAIT)
        await aredis.xgroup_destroy(stream, GROUP)
        (second,) = await add(aredis, stream, 1, start=1)
        await async_wait_until(lambda: second in recorder.handled_ids(), timeout=WAIT)
        consumer.stop()
    assert "vanished; recreating it" in caplog.text
    assert [g["name"] for g in await aredis.xinfo_groups(stream)] == [GROUP.encode()]


@pytest.mark.anyio
async def test_a_dropped_connection_is_recovered(
    aredis: aioredis.Redis, stream: str, redis_url: str
) -> None:
    recorder = Recorder(aredis, stream)
    reader = aioredis.from_url(redis_url)
    try:
        consumer = make_consumer(reader, stream, recorder, block_ms=5_000)
        async with anyio.create_task_group() as tg:
            await tg.start(consumer.run)
            await async_wait_until(_has_blocked_client(aredis), timeout=WAIT)
            killed = await aredis.execute_command(
                "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"
            )
            assert killed >= 1
            (entry_id,) = await add(aredis, stream, 1)
            await async_wait_until(lambda: entry_id in recorder.handled_ids(), timeout=WAIT)
            consumer.stop()
    finally:
        await reader.aclose()


def _has_blocked_client(client: aioredis.Redis) -> Any:
    async def check() -> bool:
        info = await client.info("clients")
        return int(info["blocked_clients"]) >= 1

    return check


# --- cancellation safety ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_cancelling_run_keeps_the_in_flight_entry_pending(
    aredis: aioredis.Redis, stream: str
) -> None:
    recorder = Recorder(aredis, stream)
    started = anyio.Event()

    async def stuck(delivery: Delivery) -> None:
        started.set()
        await anyio.Event().wait()

    consumer = make_consumer(aredis, stream, recorder, handler=stuck)
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            await tg.start(consumer.run)
            (entry_id,) = await add(aredis, stream, 1)
            await started.wait()
            tg.cancel_scope.cancel()
    assert await pending_by_consumer(aredis, stream) == {entry_id: b"c1"}

    # Nothing is lost: another consumer reclaims it and completes it.
    successor = make_consumer(aredis, stream, recorder, name="c2", reclaim_idle_ms=0)
    async with anyio.create_task_group() as work:
        assert await successor.reclaim_once(work) == 1
    assert [(d.entry_id, d.reclaimed) for d in recorder.handled] == [(entry_id, True)]
    assert await pending_by_consumer(aredis, stream) == {}


@pytest.mark.anyio
async def test_cancelling_run_mid_stream_loses_no_entry(
    aredis: aioredis.Redis, stream: str
) -> None:
    recorder = Recorder(aredis, stream)
    await ensure_group(aredis, stream, GROUP)
    entries = await add(aredis, stream, 40)
    consumer = make_consumer(aredis, stream, recorder, read_count=4, concurrency=4)
    async with anyio.create_task_group() as tg:
        await tg.start(consumer.run)
        await async_wait_until(lambda: len(recorder.handled) >= 5, timeout=WAIT)
        tg.cancel_scope.cancel()
    # Every entry is either acknowledged (handled) or pending: none vanished.
    pending = await pending_by_consumer(aredis, stream)
    assert recorder.handled_ids().isdisjoint(pending)

    successor = make_consumer(aredis, stream, recorder, name="c2", reclaim_idle_ms=0)
    async with anyio.create_task_group() as tg:
        await tg.start(successor.run)
        async with anyio.create_task_group() as work:
            await successor.reclaim_once(work)
        await async_wait_until(lambda: recorder.handled_ids() == set(entries), timeout=WAIT)
        successor.stop()
    assert await pending_by_consumer(aredis, stream) == {}


# --- helpers ------------------------------------------------------------------------------------


def test_consumer_name_is_readable_and_unique() -> None:
    first = consumer_name("dispatcher")
    assert first.startswith("dispatcher-")
    assert f"-{os.getpid()}-" in first
    assert first != consumer_name("dispatcher")


@pytest.mark.anyio
async def test_ensure_group_is_idempotent(aredis: aioredis.Redis, stream: str) -> None:
    await ensure_group(aredis, stream, GROUP)
    await ensure_group(aredis, stream, GROUP)
    groups = await aredis.xinfo_groups(stream)
    assert [(g["name"], g["last-delivered-id"]) for g in groups] == [(GROUP.encode(), b"0-0")]


@pytest.mark.anyio
async def test_ensure_group_reraises_other_errors(aredis: aioredis.Redis, stream: str) -> None:
    await aredis.set(stream, "not a stream")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await ensure_group(aredis, stream, GROUP)


def test_delivery_defaults() -> None:
    delivery = Delivery("s", b"1-0", {b"data": b"x"})
    assert delivery.deliveries == 1
    assert delivery.reclaimed is False
    assert delivery.id_text == "1-0"


@pytest.mark.anyio
async def test_a_slow_handler_keeps_its_lease_and_is_not_reclaimed(
    aredis: aioredis.Redis, stream: str
) -> None:
    release = anyio.Event()
    started: list[Delivery] = []
    recorder = Recorder(aredis, stream)

    async def slow(delivery: Delivery) -> None:
        started.append(delivery)
        await release.wait()
        await recorder.handle(delivery)

    owner = make_consumer(aredis, stream, recorder, name="owner", handler=slow, reclaim_idle_ms=150)
    thief = make_consumer(aredis, stream, recorder, name="thief", reclaim_idle_ms=150)

    async def idle_ms() -> int:
        rows = await aredis.xpending_range(stream, GROUP, min="-", max="+", count=1)
        return int(rows[0]["time_since_delivered"])

    async def long_idle() -> bool:
        return await idle_ms() >= 150

    async with anyio.create_task_group() as tg:
        await tg.start(owner.run)
        (entry_id,) = await add(aredis, stream, 1)
        await async_wait_until(lambda: started, timeout=WAIT)
        await async_wait_until(long_idle, timeout=WAIT)
        # The owner renews its lease before the thief looks: nothing is idle long enough.
        assert await owner.renew_leases() == 1
        assert await idle_ms() < 150
        async with anyio.create_task_group() as work:
            assert await thief.reclaim_once(work) == 0
        release.set()
        await async_wait_until(lambda: recorder.handled, timeout=WAIT)
        owner.stop()
    assert [d.entry_id for d in recorder.handled] == [entry_id]
    rows = await aredis.xpending(stream, GROUP)
    assert rows["pending"] == 0


@pytest.mark.anyio
async def test_renewing_with_nothing_in_flight_is_free(aredis: aioredis.Redis, stream: str) -> None:
    consumer = make_consumer(aredis, stream, Recorder(aredis, stream))
    assert await consumer.renew_leases() == 0


# --- the group's watermark ----------------------------------------------------------------------


@pytest.fixture
def progress_key(hub_namespace: str, stream: str) -> str:
    return Keys(hub_namespace).group_progress(stream, GROUP)


@pytest.mark.anyio
async def test_a_recreated_group_delivers_nothing_twice(
    aredis: aioredis.Redis, stream: str, progress_key: str
) -> None:
    recorder = Recorder(aredis, stream)
    consumer = make_consumer(aredis, stream, recorder, progress_key=progress_key)
    async with anyio.create_task_group() as tg:
        await tg.start(consumer.run)
        before = await add(aredis, stream, 5)
        await async_wait_until(lambda: recorder.handled_ids() == set(before), timeout=WAIT)
        await aredis.xgroup_destroy(stream, GROUP)
        after = await add(aredis, stream, 3, start=5)
        await async_wait_until(lambda: recorder.handled_ids() == {*before, *after}, timeout=WAIT)
        consumer.stop()
    handled = [d.entry_id for d in recorder.handled]
    assert sorted(handled) == sorted([*before, *after]), "an entry was handled twice"
    (group,) = await aredis.xinfo_groups(stream)
    assert group["last-delivered-id"] == after[-1]


@pytest.mark.anyio
async def test_the_watermark_follows_every_delivery(
    aredis: aioredis.Redis, stream: str, progress_key: str
) -> None:
    recorder = Recorder(aredis, stream)
    consumer = make_consumer(aredis, stream, recorder, progress_key=progress_key)
    async with anyio.create_task_group() as tg:
        await tg.start(consumer.run)
        entries = await add(aredis, stream, 4)
        await async_wait_until(lambda: len(recorder.handled) == 4, timeout=WAIT)
        # The last batch's mark travels with the next (blocking) read.
        await async_wait_until(
            lambda: aredis.get(progress_key), timeout=WAIT, message="watermark written"
        )

        async def caught_up() -> bool:
            return await aredis.get(progress_key) == entries[-1]

        await async_wait_until(caught_up, timeout=WAIT)
        consumer.stop()


@pytest.mark.anyio
async def test_a_group_created_while_a_watermark_exists_starts_after_it(
    aredis: aioredis.Redis, stream: str, progress_key: str
) -> None:
    done = await add(aredis, stream, 3)
    await aredis.set(progress_key, done[-1])
    fresh = await add(aredis, stream, 2, start=3)
    assert await ensure_group(aredis, stream, GROUP, progress_key=progress_key)
    assert not await ensure_group(aredis, stream, GROUP, progress_key=progress_key)
    batches = await aredis.xreadgroup(GROUP, "c1", {stream: ">"}, count=10)
    assert [entry_id for entry_id, _ in batches[0][1]] == fresh


@pytest.mark.anyio
async def test_a_newer_id_seen_by_the_recreating_consumer_raises_the_watermark(
    aredis: aioredis.Redis, stream: str, progress_key: str
) -> None:
    entries = await add(aredis, stream, 4)
    await aredis.set(progress_key, entries[0])
    await ensure_group(aredis, stream, GROUP, progress_key=progress_key, seen=entries[2])
    assert await aredis.get(progress_key) == entries[2]
    batches = await aredis.xreadgroup(GROUP, "c1", {stream: ">"}, count=10)
    assert [entry_id for entry_id, _ in batches[0][1]] == [entries[3]]
    # An older id never lowers it.
    await aredis.xgroup_destroy(stream, GROUP)
    await ensure_group(aredis, stream, GROUP, progress_key=progress_key, seen=entries[1])
    assert await aredis.get(progress_key) == entries[2]


# --- the drain ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_drain_releases_waiting_handlers_and_lets_working_ones_finish(
    aredis: aioredis.Redis, stream: str, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(aredis, stream)
    waiting: set[bytes] = set()
    working = anyio.Event()
    finish = anyio.Event()

    async def handler(delivery: Delivery) -> None:
        if delivery.fields[b"data"] == b"entry-0":
            working.set()
            await finish.wait()  # at the broker: seen through
            await recorder.handle(delivery)
            return
        with delivery.releasable():
            waiting.add(delivery.entry_id)
            await anyio.Event().wait()  # waiting for a permit that never comes

    caplog.set_level(logging.INFO, logger="apihub.consumer")
    await ensure_group(aredis, stream, GROUP)
    busy, *idle = await add(aredis, stream, 4)
    consumer = make_consumer(aredis, stream, recorder, handler=handler, reclaim_idle_ms=60_000)
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            await tg.start(consumer.run)
            await working.wait()
            await async_wait_until(lambda: waiting == set(idle), timeout=WAIT)
            consumer.stop()
            await anyio.wait_all_tasks_blocked()
            assert consumer.in_flight == 1, "the waiting handlers were released at once"
            finish.set()
    assert recorder.handled_ids() == {busy}
    assert (consumer.drain.finished, consumer.drain.released, consumer.drain.cancelled) == (1, 3, 0)
    assert consumer.drain.handed_back == 3
    assert "draining: 4 in flight (3 only waiting" in caplog.text
    assert "drained: 1 finished, 3 released, 0 cancelled; 3 entries left pending" in caplog.text

    # Handed back: the next consumer takes them on its first pass, without the 60 s idle wait.
    successor = make_consumer(aredis, stream, recorder, name="c2", reclaim_idle_ms=60_000)
    async with anyio.create_task_group() as work:
        assert await successor.reclaim_once(work) == 3
    assert recorder.handled_ids() == {busy, *idle}
    assert await pending_by_consumer(aredis, stream) == {}


@pytest.mark.anyio
async def test_a_handler_entering_a_releasable_wait_during_the_drain_is_released(
    aredis: aioredis.Redis, stream: str
) -> None:
    recorder = Recorder(aredis, stream)
    started = anyio.Event()
    go_on = anyio.Event()

    async def handler(delivery: Delivery) -> None:
        started.set()
        await go_on.wait()  # not releasable: the drain lets it run on ...
        with delivery.releasable():  # ... until it would wait again
            await recorder.handle(delivery)  # pragma: no cover - never reached

    (entry_id,) = await add(aredis, stream, 1)
    consumer = make_consumer(aredis, stream, recorder, handler=handler)
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            await tg.start(consumer.run)
            await started.wait()
            consumer.stop()
            go_on.set()
    assert recorder.handled == []
    assert consumer.drain.released == 1
    assert await pending_by_consumer(aredis, stream) == {entry_id: b"c1"}


@pytest.mark.anyio
async def test_entries_waiting_for_a_slot_are_released_by_the_drain(
    aredis: aioredis.Redis, stream: str
) -> None:
    recorder = Recorder(aredis, stream)
    started = anyio.Event()
    finish = anyio.Event()

    async def one_at_a_time(delivery: Delivery) -> None:
        started.set()
        await finish.wait()
        await recorder.handle(delivery)

    await ensure_group(aredis, stream, GROUP)
    await add(aredis, stream, 3)
    dead = await read_as(aredis, stream, "dead", 3)
    # The first reclaim pass takes all three, but there is one slot: two wait for it.
    consumer = make_consumer(
        aredis, stream, recorder, handler=one_at_a_time, concurrency=1, reclaim_idle_ms=0
    )
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            await tg.start(consumer.run)
            await started.wait()
            await async_wait_until(lambda: consumer.in_flight == 3, timeout=WAIT)
            consumer.stop()
            await anyio.wait_all_tasks_blocked()
            assert consumer.in_flight == 1
            finish.set()
    assert len(recorder.handled) == 1
    assert (consumer.drain.finished, consumer.drain.released) == (1, 2)
    pending = await pending_by_consumer(aredis, stream)
    assert set(pending) == set(dead) - recorder.handled_ids()


# --- dead consumers -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_idle_consumers_with_nothing_pending_are_removed(
    aredis: aioredis.Redis, stream: str
) -> None:
    await ensure_group(aredis, stream, GROUP)
    await add(aredis, stream, 1)
    await read_as(aredis, stream, "holds-an-entry", 1)
    await aredis.xgroup_createconsumer(stream, GROUP, "gone")  # 0 pending
    consumer = make_consumer(aredis, stream, Recorder(aredis, stream), reclaim_idle_ms=0)
    await aredis.xgroup_createconsumer(stream, GROUP, "c1")  # this consumer itself

    async def idle_past_zero() -> bool:
        rows = await aredis.xinfo_consumers(stream, GROUP)
        return all(int(row["idle"]) > 0 for row in rows)

    await async_wait_until(idle_past_zero, timeout=WAIT)
    assert await consumer.forget_dead_consumers() == ["gone"]
    names = {row["name"] for row in await aredis.xinfo_consumers(stream, GROUP)}
    assert names == {b"holds-an-entry", b"c1"}


@pytest.mark.anyio
async def test_recently_active_consumers_are_kept(aredis: aioredis.Redis, stream: str) -> None:
    await ensure_group(aredis, stream, GROUP)
    await aredis.xgroup_createconsumer(stream, GROUP, "alive")
    consumer = make_consumer(aredis, stream, Recorder(aredis, stream), reclaim_idle_ms=60_000)
    assert await consumer.forget_dead_consumers() == []
    assert [row["name"] for row in await aredis.xinfo_consumers(stream, GROUP)] == [b"alive"]


@pytest.mark.anyio
async def test_a_live_consumer_idle_on_an_empty_stream_keeps_its_place(
    aredis: aioredis.Redis, stream: str, hub_namespace: str
) -> None:
    # Redis's idle time grows for a consumer that blocks on an empty stream: only the
    # heartbeat tells a live one from a dead one.
    members = Keys(hub_namespace).group_members(stream, GROUP)
    await ensure_group(aredis, stream, GROUP)
    recorder = Recorder(aredis, stream)
    quiet = make_consumer(aredis, stream, recorder, name="quiet", members_key=members)
    other = make_consumer(aredis, stream, recorder, name="other", members_key=members)
    await aredis.xgroup_createconsumer(stream, GROUP, "quiet")
    await aredis.xgroup_createconsumer(stream, GROUP, "dead")
    assert await quiet.forget_dead_consumers() == []  # its heartbeat, written now

    async def idle_past(threshold: int) -> bool:
        rows = await aredis.xinfo_consumers(stream, GROUP)
        return all(int(row["idle"]) > threshold for row in rows)

    await async_wait_until(lambda: idle_past(50), timeout=WAIT)
    other._reclaim_idle_ms = 50  # both idle past it now; only "quiet" has a heartbeat
    assert await other.forget_dead_consumers() == ["dead"]
    names = {row["name"] for row in await aredis.xinfo_consumers(stream, GROUP)}
    assert b"quiet" in names
    assert b"dead" not in names
