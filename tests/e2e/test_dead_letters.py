"""Malformed entries are dead-lettered with their reason while good requests keep flowing."""

from __future__ import annotations

import json
import uuid

import anyio
import pytest
import redis.asyncio as aioredis

from apihub_broker_sim import KIS_PRICE
from apihub_core import DeadLettered, HubClient, Keys, RequestFailed, decode_any, decode_outcome
from apihub_dispatcher import Dispatcher

pytestmark = pytest.mark.anyio


def _request(reply_to: str, **overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "type": "request.submitted",
        "request_id": uuid.uuid4().hex,
        "provider": "KIS",
        "tr_id": "FHKST01010100",
        "params": KIS_PRICE,
        "reply_to": reply_to,
    }
    doc.update(overrides)
    return doc


async def _dead_letters(redis: aioredis.Redis, keys: Keys, count: int) -> list[DeadLettered]:
    with anyio.fail_after(15):
        while True:
            entries = await redis.xrange(keys.dead_letter)
            if len(entries) >= count:
                letters = [decode_any(fields) for _, fields in entries]
                assert all(isinstance(letter, DeadLettered) for letter in letters)
                return letters  # type: ignore[return-value]
            await redis.xread({keys.dead_letter: entries[-1][0] if entries else "0-0"}, block=500)


async def test_malformed_entries_go_to_the_dead_letter_stream(
    hub: HubClient, dispatcher: Dispatcher, redis: aioredis.Redis, keys: Keys
) -> None:
    reply = keys.reply("raw-producer")
    bad: list[tuple[str, dict[str, object]]] = [
        ("missing_data", {"payload": "x"}),
        ("bad_encoding", {"data": b"\xff{not json"}),
        ("invalid_event", {"data": json.dumps({"type": "request.submitted", "provider": "KIS"})}),
        ("invalid_event", {"data": json.dumps(_request(reply, params={"FID_INPUT_ISCD": 5930}))}),
        ("unknown_provider", {"data": json.dumps(_request(reply, provider="NYSE"))}),
        ("unknown_tr", {"data": json.dumps(_request(reply, tr_id="ZZZZ9999"))}),
        ("missing_params", {"data": json.dumps(_request(reply, params={}))}),
        ("unknown_account", {"data": json.dumps(_request(reply, account="nobody"))}),
        ("bad_reply_to", {"data": json.dumps(_request("somebody-elses-key"))}),
        ("oversized", {"data": json.dumps(_request(reply, params={"X": "y" * 70_000}))}),
    ]
    async with anyio.create_task_group() as tg:
        good_answers: list[str] = []

        async def good_call() -> None:
            response = await hub.execute("KIS", "FHKST01010100", KIS_PRICE, timeout=15)
            good_answers.append(response.body["rt_cd"])

        for _reason, fields in bad:
            await redis.xadd(keys.requests, fields)  # type: ignore[arg-type]
            tg.start_soon(good_call)

    assert good_answers == ["0"] * len(bad), "good requests keep flowing"
    letters = await _dead_letters(redis, keys, len(bad))
    assert sorted(letter.reason for letter in letters) == sorted(reason for reason, _ in bad)
    for letter in letters:
        assert letter.source_stream == keys.requests
        assert letter.group == "dispatcher"
        assert letter.detail
    oversized = next(letter for letter in letters if letter.reason == "oversized")
    assert len(oversized.fields["data"]) < 5_000, "dead letters are truncated"
    # Nothing is left pending: every bad entry was acknowledged.
    pending = await redis.xpending(keys.requests, "dispatcher")
    assert pending["pending"] == 0


async def test_addressable_callers_get_a_typed_error(
    dispatcher: Dispatcher, redis: aioredis.Redis, keys: Keys
) -> None:
    reply = keys.reply("raw-producer")
    doc = _request(reply, tr_id="ZZZZ9999")
    await redis.xadd(keys.requests, {"data": json.dumps(doc)})
    answer = await redis.xread({reply: "0-0"}, block=10_000)
    outcome = decode_outcome(answer[0][1][0][1])
    assert isinstance(outcome, RequestFailed)
    assert outcome.request_id == doc["request_id"]
    assert outcome.error_class == "invalid"
    assert outcome.code == "APIHUB-UNKNOWN-TR"
    assert "ZZZZ9999" in outcome.message


async def test_dead_letters_redact_credentials(
    dispatcher: Dispatcher, redis: aioredis.Redis, keys: Keys
) -> None:
    doc = _request(keys.reply("p"), tr_id="ZZZZ9999", params={"appsecret": "TOPSECRET-123"})
    await redis.xadd(keys.requests, {"data": json.dumps(doc), "token": "TOKEN-XYZ"})
    (letter,) = await _dead_letters(redis, keys, 1)
    text = json.dumps(letter.fields)
    assert "TOPSECRET-123" not in text
    assert "TOKEN-XYZ" not in text
    assert "ZZZZ9999" in text


async def test_poison_entry_is_dead_lettered_after_max_deliveries(
    settings: object, redis: aioredis.Redis, keys: Keys, redis_url: str
) -> None:
    # An entry whose handler keeps failing (here: its consumer keeps dying) is given up on.
    from apihub_runtime import consumer_name, ensure_group

    await ensure_group(redis, keys.requests, "dispatcher")
    entry_id = await redis.xadd(keys.requests, {"data": json.dumps(_request(keys.reply("p")))})
    ghost = consumer_name("ghost")
    # Each XREADGROUP/XCLAIM counts a delivery, as a dispatcher that crashes on it would.
    await redis.xreadgroup("dispatcher", ghost, {keys.requests: ">"})
    for _ in range(4):
        await redis.xclaim(keys.requests, "dispatcher", ghost, 0, [entry_id])
    from apihub_dispatcher import open_dispatcher

    async with open_dispatcher(settings) as poisoned, anyio.create_task_group() as tg:  # type: ignore[arg-type]
        await tg.start(poisoned.run)
        (letter,) = await _dead_letters(redis, keys, 1)
        poisoned.stop()
    assert letter.reason == "too_many_deliveries"
    assert letter.deliveries > 5
