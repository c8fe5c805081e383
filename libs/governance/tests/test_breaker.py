"""The shared circuit breaker against a real Redis: states, probes, events, fail-open."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import anyio
import pytest
import redis.asyncio as aioredis

from apihub_core import (
    BreakerState,
    BreakerStateChanged,
    ConfigurationError,
    Keys,
    StreamEntry,
    decode_any,
)
from apihub_governance import Admission, CircuitBreaker
from apihub_runtime import BreakerSettings
from apihub_testing import async_wait_until

pytestmark = pytest.mark.anyio

P, F = "KIS", "quotations"
FAST = BreakerSettings(failure_threshold=5, open_s=0.3, probe_timeout_s=0.3)
SLOW = BreakerSettings(failure_threshold=5, open_s=60.0, probe_timeout_s=60.0)

MakeBreaker = Callable[..., Awaitable[CircuitBreaker]]


@pytest.fixture
async def make_breaker(redis_url: str, hub_namespace: str) -> AsyncIterator[MakeBreaker]:
    """Breakers on the same namespace, each with its own Redis client (as separate processes)."""
    clients: list[aioredis.Redis] = []

    async def make(settings: BreakerSettings = FAST, member: str = "d1") -> CircuitBreaker:
        client = aioredis.from_url(redis_url)
        clients.append(client)
        return CircuitBreaker(client, Keys(hub_namespace), settings, member=member)

    try:
        yield make
    finally:
        for client in clients:
            await client.aclose()


async def _fail(breaker: CircuitBreaker, times: int, provider: str = P, family: str = F) -> None:
    for _ in range(times):
        admission = await breaker.admit(provider, family)
        assert admission.allowed
        await breaker.record(provider, family, admission, "failure")


async def _entries(aredis: aioredis.Redis, keys: Keys) -> list[StreamEntry]:
    return cast(list[StreamEntry], await aredis.xrange(keys.breakers))


async def _events(aredis: aioredis.Redis, keys: Keys) -> list[BreakerStateChanged]:
    events = []
    for _id, fields in await _entries(aredis, keys):
        event = decode_any(fields)
        assert isinstance(event, BreakerStateChanged)
        events.append(event)
    return events


async def _transitions(
    aredis: aioredis.Redis, keys: Keys
) -> list[tuple[str, str, BreakerState, BreakerState]]:
    return [(e.provider, e.family, e.from_state, e.to_state) for e in await _events(aredis, keys)]


async def _wait_state(breaker: CircuitBreaker, state: BreakerState) -> None:
    async def reached() -> bool:
        return await breaker.state(P, F) == state

    await async_wait_until(reached, timeout=10.0, message=f"breaker never became {state}")


async def _open(breaker: CircuitBreaker) -> None:
    await _fail(breaker, 5)
    assert await breaker.state(P, F) == "open"


async def _take_probe(breaker: CircuitBreaker) -> Admission:
    """Wait out the open period and take the probe."""
    await _wait_state(breaker, "half_open")
    admission = await breaker.admit(P, F)
    assert admission.allowed
    assert admission.probe
    assert admission.state == "half_open"
    return admission


async def test_opens_after_threshold_consecutive_failures(make_breaker: MakeBreaker) -> None:
    breaker = await make_breaker()
    await _fail(breaker, 4)
    assert await breaker.state(P, F) == "closed"
    assert (await breaker.admit(P, F)).allowed
    await _fail(breaker, 1)
    assert await breaker.state(P, F) == "open"
    refused = await breaker.admit(P, F)
    assert not refused.allowed
    assert not refused.probe
    assert refused.state == "open"


async def test_a_success_resets_the_count(make_breaker: MakeBreaker) -> None:
    breaker = await make_breaker()
    await _fail(breaker, 4)
    ok = await breaker.admit(P, F)
    await breaker.record(P, F, ok, "success")
    await _fail(breaker, 4)
    assert await breaker.state(P, F) == "closed"
    await _fail(breaker, 1)
    assert await breaker.state(P, F) == "open"


async def _script_calls(aredis: aioredis.Redis) -> int:
    stats = await aredis.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("eval", "evalsha")
    )


async def test_a_success_with_nothing_to_reset_costs_no_round_trip(
    make_breaker: MakeBreaker, aredis: aioredis.Redis
) -> None:
    first = await make_breaker(member="d1")
    second = await make_breaker(member="d2")
    clean = await first.admit(P, F)
    assert clean.clean, "closed, no failure counted"
    await _fail(second, 4)  # counted elsewhere after our admission
    scripts = await _script_calls(aredis)
    await first.record(P, F, clean, "success")  # the fast path: nothing sent
    assert await _script_calls(aredis) == scripts
    await _fail(second, 1)
    assert await first.state(P, F) == "open", "the late success did not reset the count"


async def test_a_success_resets_what_was_counted_at_admission(make_breaker: MakeBreaker) -> None:
    breaker = await make_breaker()
    await _fail(breaker, 4)
    dirty = await breaker.admit(P, F)
    assert not dirty.clean
    await breaker.record(P, F, dirty, "success")
    assert (await breaker.admit(P, F)).clean


async def test_neutral_outcomes_neither_count_nor_reset(make_breaker: MakeBreaker) -> None:
    breaker = await make_breaker()
    await _fail(breaker, 4)
    for _ in range(10):
        admission = await breaker.admit(P, F)
        await breaker.record(P, F, admission, "neutral")
    assert await breaker.state(P, F) == "closed"
    await _fail(breaker, 1)
    assert await breaker.state(P, F) == "open"


async def test_failures_from_two_processes_add_up(make_breaker: MakeBreaker) -> None:
    first = await make_breaker(member="d1")
    second = await make_breaker(member="d2")
    await _fail(first, 2)
    await _fail(second, 2)
    assert await first.state(P, F) == "closed"
    await _fail(first, 1)
    assert await second.state(P, F) == "open"
    assert not (await second.admit(P, F)).allowed


async def test_a_success_elsewhere_resets_everyones_count(make_breaker: MakeBreaker) -> None:
    first = await make_breaker(member="d1")
    second = await make_breaker(member="d2")
    await _fail(first, 4)
    ok = await second.admit(P, F)
    await second.record(P, F, ok, "success")
    await _fail(first, 4)
    assert await second.state(P, F) == "closed"


async def test_while_open_admit_refuses_with_the_remaining_time(
    make_breaker: MakeBreaker,
) -> None:
    breaker = await make_breaker(SLOW)
    await _open(breaker)
    refused = await breaker.admit(P, F)
    assert not refused.allowed
    assert 0 < refused.retry_after_s <= SLOW.open_s
    assert refused.retry_after_s > SLOW.open_s - 30, "only a little of the 60 s has passed"
    again = await breaker.admit(P, F)
    assert again.retry_after_s <= refused.retry_after_s, "the remaining time only shrinks"


async def test_exactly_one_probe_among_concurrent_admits(
    make_breaker: MakeBreaker, aredis: aioredis.Redis, hub_namespace: str
) -> None:
    first = await make_breaker(member="d1")
    second = await make_breaker(member="d2")
    await _open(first)
    await _wait_state(first, "half_open")
    admissions: list[Admission] = []

    async def admit(breaker: CircuitBreaker) -> None:
        admissions.append(await breaker.admit(P, F))

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(admit, first if i % 2 else second)
    probes = [a for a in admissions if a.probe]
    assert len(probes) == 1
    assert probes[0].allowed
    refused = [a for a in admissions if not a.allowed]
    assert len(refused) == 19
    assert all(a.state == "half_open" and a.retry_after_s > 0 for a in refused)
    key = Keys(hub_namespace).breaker(P, F)
    assert await aredis.hget(key, "probe_member") in (b"d1", b"d2")


async def test_probe_success_closes(make_breaker: MakeBreaker) -> None:
    breaker = await make_breaker()
    await _open(breaker)
    probe = await _take_probe(breaker)
    await breaker.record(P, F, probe, "success")
    assert await breaker.state(P, F) == "closed"
    after = await breaker.admit(P, F)
    assert after.allowed
    assert not after.probe
    # the count starts from zero again
    await _fail(breaker, 4)
    assert await breaker.state(P, F) == "closed"


async def test_a_neutral_probe_closes(
    make_breaker: MakeBreaker, aredis: aioredis.Redis, hub_namespace: str
) -> None:
    breaker = await make_breaker()
    await _open(breaker)
    probe = await _take_probe(breaker)
    await breaker.record(P, F, probe, "neutral")
    assert await breaker.state(P, F) == "closed"
    last = (await _events(aredis, Keys(hub_namespace)))[-1]
    assert (last.to_state, last.reason) == ("closed", "probe_answered")


async def test_probe_failure_reopens_and_restarts_the_timer(make_breaker: MakeBreaker) -> None:
    breaker = await make_breaker(BreakerSettings(open_s=0.3, probe_timeout_s=60.0))
    await _open(breaker)
    probe = await _take_probe(breaker)
    await breaker.record(P, F, probe, "failure")
    assert await breaker.state(P, F) == "open"
    refused = await breaker.admit(P, F)
    assert not refused.allowed
    assert 0 < refused.retry_after_s <= 0.3
    # and after another open period, another probe
    await _take_probe(breaker)


async def test_an_expired_probe_lease_lets_another_caller_probe(
    make_breaker: MakeBreaker,
) -> None:
    settings = BreakerSettings(open_s=0.2, probe_timeout_s=0.3)
    crashed = await make_breaker(settings, member="d1")
    other = await make_breaker(settings, member="d2")
    await _open(crashed)
    stale = await _take_probe(crashed)
    held = await other.admit(P, F)
    assert not held.allowed, "the lease is still held"
    assert 0 < held.retry_after_s <= 0.3

    async def probe_granted() -> Admission | None:
        admission = await other.admit(P, F)
        return admission if admission.probe else None

    fresh = await async_wait_until(probe_granted, timeout=10.0)
    assert fresh.token != stale.token
    # the crashed prober's late verdict belongs to a lease that is gone: ignored
    await crashed.record(P, F, stale, "success")
    assert await other.state(P, F) == "half_open"
    await other.record(P, F, fresh, "success")
    assert await other.state(P, F) == "closed"


async def test_a_late_failure_does_not_restart_the_open_timer(
    make_breaker: MakeBreaker, aredis: aioredis.Redis, hub_namespace: str
) -> None:
    breaker = await make_breaker(SLOW)
    key = Keys(hub_namespace).breaker(P, F)
    in_flight = [await breaker.admit(P, F) for _ in range(3)]
    await _open(breaker)
    open_until = await aredis.hget(key, "open_until_ms")
    failures = await aredis.hget(key, "failures")
    for admission in in_flight:
        await breaker.record(P, F, admission, "failure")
        await breaker.record(P, F, admission, "success")
    assert await aredis.hget(key, "open_until_ms") == open_until
    assert await aredis.hget(key, "failures") == failures
    assert await breaker.state(P, F) == "open"
    assert len(await _entries(aredis, Keys(hub_namespace))) == 1


async def test_outcomes_from_before_a_trip_do_not_count_after_it_closes(
    make_breaker: MakeBreaker,
) -> None:
    breaker = await make_breaker()
    in_flight = [await breaker.admit(P, F) for _ in range(5)]
    await _open(breaker)
    probe = await _take_probe(breaker)
    await breaker.record(P, F, probe, "success")
    for admission in in_flight:
        await breaker.record(P, F, admission, "failure")
    assert await breaker.state(P, F) == "closed"
    await _fail(breaker, 4)
    assert await breaker.state(P, F) == "closed"


async def test_every_transition_is_on_the_stream_once_and_in_order(
    make_breaker: MakeBreaker, aredis: aioredis.Redis, hub_namespace: str
) -> None:
    keys = Keys(hub_namespace)
    first = await make_breaker(BreakerSettings(open_s=0.2, probe_timeout_s=60.0), member="d1")
    second = await make_breaker(BreakerSettings(open_s=0.2, probe_timeout_s=60.0), member="d2")
    # 30 concurrent failures from two processes: one trip
    admissions = [await (first if i % 2 else second).admit(P, F) for i in range(30)]
    async with anyio.create_task_group() as tg:
        for i, admission in enumerate(admissions):
            tg.start_soon((first if i % 2 else second).record, P, F, admission, "failure")
    probe = await _take_probe(first)
    await first.record(P, F, probe, "failure")
    probe = await _take_probe(second)
    async with anyio.create_task_group() as tg:  # a duplicate verdict changes nothing
        tg.start_soon(second.record, P, F, probe, "success")
        tg.start_soon(first.record, P, F, probe, "success")
    assert await first.state(P, F) == "closed"

    assert await _transitions(aredis, keys) == [
        (P, F, "closed", "open"),
        (P, F, "open", "half_open"),
        (P, F, "half_open", "open"),
        (P, F, "open", "half_open"),
        (P, F, "half_open", "closed"),
    ]
    entries = await _entries(aredis, keys)
    assert all(fields[b"type"] == b"breaker.state_changed" for _id, fields in entries)
    events = await _events(aredis, keys)
    assert [e.reason for e in events] == [
        "failure_threshold",
        "open_elapsed",
        "probe_failed",
        "open_elapsed",
        "probe_succeeded",
    ]
    assert events[0].failures == 5
    assert events[2].failures == 6, "the failed probe is one more consecutive failure"
    assert events[4].failures == 0
    at = [e.at_ms for e in events]
    assert at == sorted(at)
    assert at[0] > 1_600_000_000_000, "Redis server time in Unix ms"


async def test_disabled_always_admits_and_records_nothing(
    make_breaker: MakeBreaker, aredis: aioredis.Redis, hub_namespace: str
) -> None:
    breaker = await make_breaker(BreakerSettings(enabled=False))
    for _ in range(20):
        admission = await breaker.admit(P, F)
        assert admission.allowed
        assert not admission.probe
        assert admission.retry_after_s == 0
        await breaker.record(P, F, admission, "failure")
    assert await aredis.keys(f"{hub_namespace}:*") == []


async def test_families_and_providers_are_independent(make_breaker: MakeBreaker) -> None:
    breaker = await make_breaker(SLOW)
    await _open(breaker)
    assert (await breaker.admit(P, "chart")).allowed
    assert (await breaker.admit("KIWOOM", F)).allowed
    await _fail(breaker, 4, P, "chart")
    await _fail(breaker, 4, "KIWOOM", F)
    assert await breaker.state(P, "chart") == "closed"
    assert await breaker.state("KIWOOM", F) == "closed"
    assert await breaker.state(P, F) == "open"


async def test_refused_admissions_record_nothing(
    make_breaker: MakeBreaker, aredis: aioredis.Redis, hub_namespace: str
) -> None:
    breaker = await make_breaker(SLOW)
    await _open(breaker)
    key = Keys(hub_namespace).breaker(P, F)
    before = await aredis.hgetall(key)
    refused = await breaker.admit(P, F)
    await breaker.record(P, F, refused, "failure")
    await breaker.record(P, F, refused, "success")
    assert await aredis.hgetall(key) == before


async def test_redis_down_fails_open(hub_namespace: str, caplog: pytest.LogCaptureFixture) -> None:
    client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        breaker = CircuitBreaker(client, Keys(hub_namespace), FAST, member="d1")
        with caplog.at_level(logging.DEBUG, logger="apihub.breaker"):
            admission = await breaker.admit(P, F)
            await breaker.record(P, F, admission, "failure")
            again = await breaker.admit(P, F)
        assert admission.allowed
        assert not admission.probe
        assert again.allowed
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, "one warning per outage, not one per call"
        assert "failed open" in warnings[0].getMessage()
    finally:
        await client.aclose()


async def test_bad_settings_and_outcomes_are_refused(make_breaker: MakeBreaker) -> None:
    with pytest.raises(ConfigurationError, match="failure_threshold"):
        await make_breaker(BreakerSettings(failure_threshold=0))
    with pytest.raises(ConfigurationError, match="open_s"):
        await make_breaker(BreakerSettings(open_s=0))
    breaker = await make_breaker()
    admission = await breaker.admit(P, F)
    with pytest.raises(ValueError, match="outcome"):
        await breaker.record(P, F, admission, "timeout")  # type: ignore[arg-type]


async def test_script_errors_fail_open_and_recovery_is_logged(
    make_breaker: MakeBreaker,
    aredis: aioredis.Redis,
    hub_namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    breaker = await make_breaker()
    key = Keys(hub_namespace).breaker(P, F)
    admitted = await breaker.admit(P, F)
    await aredis.set(key, "not a hash")  # every script on this key now fails with WRONGTYPE
    with caplog.at_level(logging.DEBUG, logger="apihub.breaker"):
        await breaker.record(P, F, admitted, "failure")
        assert (await breaker.admit(P, F)).allowed
        await aredis.delete(key)
        assert (await breaker.admit(P, F)).allowed
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.WARNING, logging.DEBUG, logging.INFO]
    assert "reachable again" in caplog.records[-1].getMessage()


# -- the local view ------------------------------------------------------------------------------


@pytest.fixture
async def watched(make_breaker: MakeBreaker) -> AsyncIterator[CircuitBreaker]:
    """A breaker whose watcher runs, as in a dispatcher."""
    breaker = await make_breaker(SLOW, member="watched")
    async with anyio.create_task_group() as tg:
        await tg.start(breaker.run)
        yield breaker
        breaker.stop()


async def test_a_healthy_family_is_admitted_without_a_round_trip(watched: CircuitBreaker) -> None:
    first = await watched.admit(P, F)
    assert first.allowed
    assert watched.local_admissions == 0, "the first admission asks Redis"
    for _ in range(5):
        admission = await watched.admit(P, F)
        assert admission.allowed
        assert admission.clean
        await watched.record(P, F, admission, "success")
    assert watched.local_admissions == 5
    assert (await watched.admit(P, "chart")).allowed
    assert watched.local_admissions == 5, "another family is learnt on its own"


async def test_a_breaker_opened_elsewhere_is_seen_at_once(
    watched: CircuitBreaker, make_breaker: MakeBreaker
) -> None:
    await watched.admit(P, F)
    other = await make_breaker(SLOW, member="other")
    await _fail(other, 5)

    async def refused() -> bool:
        return not (await watched.admit(P, F)).allowed

    await async_wait_until(refused, timeout=10, message="the open breaker was never seen")
    admission = await watched.admit(P, F)
    assert admission.state == "open"
    assert admission.retry_after_s > 0


async def test_a_failure_recorded_here_makes_the_next_admission_ask_again(
    watched: CircuitBreaker,
) -> None:
    await watched.admit(P, F)
    admission = await watched.admit(P, F)
    assert watched.local_admissions == 1
    await watched.record(P, F, admission, "failure")
    after = await watched.admit(P, F)
    assert watched.local_admissions == 1, "asked Redis: a failure is counted there"
    assert not after.clean
    await watched.record(P, F, after, "success")  # resets the count ...
    await watched.admit(P, F)  # ... which the next script admission sees
    await watched.admit(P, F)
    assert watched.local_admissions == 2


async def test_without_its_watcher_every_admission_asks_redis(make_breaker: MakeBreaker) -> None:
    breaker = await make_breaker(SLOW)
    for _ in range(3):
        assert (await breaker.admit(P, F)).allowed
    assert breaker.local_admissions == 0


async def test_a_stopped_watcher_stops_the_local_view(make_breaker: MakeBreaker) -> None:
    breaker = await make_breaker(SLOW)
    async with anyio.create_task_group() as tg:
        await tg.start(breaker.run)
        await breaker.admit(P, F)
        await breaker.admit(P, F)
        assert breaker.local_admissions == 1
        breaker.stop()
    await breaker.admit(P, F)
    assert breaker.local_admissions == 1
