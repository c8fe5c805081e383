"""The commit script: outcome events and the XACK land together."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from apihub_core import Keys, RequestFailed, decode_outcome, encode_entry
from apihub_runtime import Append, Committer, ensure_group

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
