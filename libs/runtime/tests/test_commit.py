"""The commit script: outcome events and the XACK land together."""

from __future__ import annotations

import anyio
import pytest
import redis.asyncio as aioredis

from apihub_core import Keys, RequestFailed, decode_outcome, encode_entry
from apihub_runtime import COMMIT_NOTE_FIELD, Append, Committer, ensure_group

pytestmark = pytest.mark.anyio


def _failure(request_id: str) -> RequestFailed:
    return RequestFailed(request_id=request_id, provider="KIS", tr_id="T", error_class="invalid")


async def test_appends_every_event_and_acks_the_entry(
    aredis: aioredis.Redis, hub_namespace: str
) -> None:
    keys = Keys(hub_namespace)
    await ensure_group(aredis, keys.requests, "g")
    await aredis.xadd(keys.requests, {"data": "{}"})
    ((_, [(entry_id, _fields)]),) = await aredis.xreadgroup("g", "c", {keys.requests: ">"})
    entry = encode_entry(_failure("r1"))
    reply = keys.reply("me")

    acked = await Committer(aredis).commit(
        keys.requests,
        "g",
        entry_id,
        [Append(keys.responses, entry, 1000), Append(reply, entry, 10, ttl_s=60)],
    )

    assert acked == 1
    assert (await aredis.xpending(keys.requests, "g"))["pending"] == 0
    for stream in (keys.responses, reply):
        ((_, fields),) = await aredis.xrange(stream)
        assert fields[b"type"] == b"request.failed"
        assert decode_outcome(fields).request_id == "r1"
    assert 0 < await aredis.ttl(reply) <= 60
    assert await aredis.ttl(keys.responses) == -1, "audit streams never expire"


async def test_a_note_records_the_appended_id_only_in_a_hash_that_exists(
    aredis: aioredis.Redis, hub_namespace: str
) -> None:
    keys = Keys(hub_namespace)
    await ensure_group(aredis, keys.requests, "g")
    for _ in range(2):
        await aredis.xadd(keys.requests, {"data": "{}"})
    ((_, entries),) = await aredis.xreadgroup("g", "c", {keys.requests: ">"})
    kept, gone = keys.request_record("kept"), keys.request_record("gone")
    await aredis.hset(kept, "entry", "1-0")
    committer = Committer(aredis)
    for (entry_id, _fields), note in zip(entries, (kept, gone), strict=True):
        await committer.commit(
            keys.requests,
            "g",
            entry_id,
            [
                Append(keys.reply("me"), encode_entry(_failure("r")), 10, ttl_s=60),
                Append(keys.responses, encode_entry(_failure("r")), 1000, note=note),
            ],
        )
    first, _second = [entry_id for entry_id, _ in await aredis.xrange(keys.responses)]
    assert await aredis.hgetall(kept) == {b"entry": b"1-0", COMMIT_NOTE_FIELD.encode(): first}
    assert not await aredis.exists(gone), "a note never creates the hash (it would never expire)"
    assert (await aredis.xpending(keys.requests, "g"))["pending"] == 0


async def test_nothing_is_appended_when_the_script_fails(
    aredis: aioredis.Redis, hub_namespace: str
) -> None:
    keys = Keys(hub_namespace)
    await ensure_group(aredis, keys.requests, "g")
    await aredis.xadd(keys.requests, {"data": "{}"})
    ((_, [(entry_id, _fields)]),) = await aredis.xreadgroup("g", "c", {keys.requests: ">"})
    # A key of the wrong type makes the second XADD fail: the script stops, Redis keeps what
    # ran before the error, so the XACK (last) never happens and the entry stays pending.
    await aredis.set(keys.reply("broken"), "not a stream")
    entry = encode_entry(_failure("r2"))
    with pytest.raises(aioredis.ResponseError):
        await Committer(aredis).commit(
            keys.requests,
            "g",
            entry_id,
            [Append(keys.responses, entry, 1000), Append(keys.reply("broken"), entry, 10)],
        )
    assert (await aredis.xpending(keys.requests, "g"))["pending"] == 1


async def _deliver(aredis: aioredis.Redis, keys: Keys, n: int) -> list[bytes]:
    await ensure_group(aredis, keys.requests, "g")
    for _ in range(n):
        await aredis.xadd(keys.requests, {"data": "{}"})
    ((_, entries),) = await aredis.xreadgroup("g", "c", {keys.requests: ">"}, count=n)
    return [entry_id for entry_id, _fields in entries]


async def test_concurrent_commits_share_script_calls_and_all_land(
    aredis: aioredis.Redis, hub_namespace: str
) -> None:
    keys = Keys(hub_namespace)
    ids = await _deliver(aredis, keys, 40)
    committer = Committer(aredis)
    results: list[int] = []

    async def one(i: int, entry_id: bytes) -> None:
        entry = encode_entry(_failure(f"r{i}"))
        results.append(
            await committer.commit(
                keys.requests, "g", entry_id, [Append(keys.responses, entry, 1000)]
            )
        )

    async with anyio.create_task_group() as tg:
        for i, entry_id in enumerate(ids):
            tg.start_soon(one, i, entry_id)
    assert results == [1] * 40
    assert committer.calls < 40, "commits made meanwhile went out together"
    assert (await aredis.xpending(keys.requests, "g"))["pending"] == 0
    landed = [decode_outcome(f).request_id for _id, f in await aredis.xrange(keys.responses)]
    assert sorted(landed) == sorted(f"r{i}" for i in range(40))


async def test_one_failing_entry_does_not_hold_back_its_batch(
    aredis: aioredis.Redis, hub_namespace: str
) -> None:
    keys = Keys(hub_namespace)
    ids = await _deliver(aredis, keys, 6)
    await aredis.set(keys.reply("broken"), "not a stream")
    committer = Committer(aredis)
    outcomes: dict[int, object] = {}

    async def one(i: int, entry_id: bytes) -> None:
        target = keys.reply("broken") if i == 3 else keys.responses
        entry = encode_entry(_failure(f"r{i}"))
        try:
            outcomes[i] = await committer.commit(
                keys.requests, "g", entry_id, [Append(target, entry, 1000)]
            )
        except aioredis.ResponseError as exc:
            outcomes[i] = exc

    async with anyio.create_task_group() as tg:
        for i, entry_id in enumerate(ids):
            tg.start_soon(one, i, entry_id)
    assert isinstance(outcomes.pop(3), aioredis.ResponseError)
    assert set(outcomes.values()) == {1}
    pending = await aredis.xpending_range(keys.requests, "g", "-", "+", 10)
    assert [row["message_id"] for row in pending] == [ids[3]]


async def test_a_cancelled_waiter_never_strands_the_commits_behind_it(
    aredis: aioredis.Redis, hub_namespace: str
) -> None:
    keys = Keys(hub_namespace)
    ids = await _deliver(aredis, keys, 2)
    committer = Committer(aredis)
    entry = encode_entry(_failure("r"))
    results: list[int] = []
    # As if a commit were on its way: the next two wait their turn, in order.
    committer._sending = True
    doomed = anyio.CancelScope()

    async def commit(entry_id: bytes, scope: anyio.CancelScope | None = None) -> None:
        with scope or anyio.CancelScope():
            append = [Append(keys.responses, entry, 100)]
            results.append(await committer.commit(keys.requests, "g", entry_id, append))

    async with anyio.create_task_group() as tg:
        tg.start_soon(commit, ids[0], doomed)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(commit, ids[1])
        await anyio.wait_all_tasks_blocked()
        # The commit on its way returns and hands its turn to the head of the queue, which is
        # cancelled at that very moment: the commit behind it must still land.
        committer._pass_turn()
        doomed.cancel()
    assert 1 in results
    pending = await aredis.xpending_range(keys.requests, "g", "-", "+", 10)
    assert ids[1] not in [row["message_id"] for row in pending]
    assert not committer._sending, "nothing left on its way"


async def test_a_waiter_cancelled_before_its_turn_drops_out_of_the_queue(
    aredis: aioredis.Redis, hub_namespace: str
) -> None:
    keys = Keys(hub_namespace)
    ids = await _deliver(aredis, keys, 2)
    committer = Committer(aredis)
    entry = encode_entry(_failure("r"))
    committer._sending = True  # as if a commit were on its way
    doomed = anyio.CancelScope()
    results: list[int] = []

    async def commit(entry_id: bytes, scope: anyio.CancelScope | None = None) -> None:
        with scope or anyio.CancelScope():
            append = [Append(keys.responses, entry, 100)]
            results.append(await committer.commit(keys.requests, "g", entry_id, append))

    async with anyio.create_task_group() as tg:
        tg.start_soon(commit, ids[0], doomed)
        tg.start_soon(commit, ids[1])
        await anyio.wait_all_tasks_blocked()
        doomed.cancel()  # before anyone handed it the turn
        await anyio.wait_all_tasks_blocked()
        committer._pass_turn()  # the commit on its way returns
    assert results == [1]
    pending = await aredis.xpending_range(keys.requests, "g", "-", "+", 10)
    assert [row["message_id"] for row in pending] == [ids[0]]
