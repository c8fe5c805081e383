"""The service of docs/writing-a-service.md runs as written: the guide cannot drift from the
runtime it describes."""

from __future__ import annotations

import re
import types
from pathlib import Path

import anyio
import pytest
import redis.asyncio as aioredis

from apihub_core import Keys, RequestFailed, ResponseReceived, encode_entry
from apihub_runtime import load_settings
from apihub_testing import async_wait_until

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "writing-a-service.md"

pytestmark = pytest.mark.anyio


def _example() -> types.ModuleType:
    (code,) = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    module = types.ModuleType("outcome_counter_example")
    exec(compile(code, str(GUIDE), "exec"), module.__dict__)  # noqa: S102 - our own docs
    return module


async def test_the_guides_service_counts_outcomes_and_dead_letters_the_rest(
    redis_url: str, hub_namespace: str, aredis: aioredis.Redis
) -> None:
    example = _example()
    settings = load_settings(env={"REDIS_URL": redis_url, "APIHUB_NAMESPACE": hub_namespace})
    keys = Keys(hub_namespace)
    ok = ResponseReceived(
        request_id="r1", provider="KIS", tr_id="FHKST01010100", account="default", status=200
    )
    failed = RequestFailed(
        request_id="r2", provider="KIS", tr_id="TTTC0012U", error_class="outcome_unknown"
    )
    for event in (ok, ok, failed):
        await aredis.xadd(keys.responses, encode_entry(event))
    await aredis.xadd(keys.responses, {"data": "not json"})

    async with example.open_outcome_counter(settings) as counter, anyio.create_task_group() as tg:
        await tg.start(counter.run)

        async def counted() -> bool:
            return (
                await aredis.hlen(counter.counts) == 2 and await aredis.xlen(keys.dead_letter) == 1
            )

        await async_wait_until(counted, timeout=10)
        counter.stop()

    counts = await aredis.hgetall(f"{hub_namespace}:outcome-counts")
    assert counts == {b"KIS:FHKST01010100:ok": b"2", b"KIS:TTTC0012U:outcome_unknown": b"1"}
    assert (await aredis.xpending(keys.responses, "outcome-counter"))["pending"] == 0
