"""A producer that knows only docs/wire-format.md: plain redis-py, no apihub imports."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import redis as redis_sync
import redis.asyncio as aioredis

from apihub_core import REQUEST_STREAM_MAXLEN
from apihub_dispatcher import Dispatcher, open_dispatcher
from apihub_runtime import Settings
from apihub_testing import async_wait_until

pytestmark = pytest.mark.anyio


async def test_raw_xadd_gets_its_answer(
    dispatcher: Dispatcher, redis_url: str, hub_namespace: str
) -> None:
    # Everything below follows the document, not the code: stream names, the `data` field,
    # the request fields and the reply stream.
    ns = hub_namespace
    reply_to = f"{ns}:reply:raw-{uuid.uuid4().hex[:8]}"
    request_id = str(uuid.uuid4())
    request = {
        "type": "request.submitted",
        "request_id": request_id,
        "provider": "KIWOOM",
        "tr_id": "ka10081",
        "params": {"stk_cd": "005930", "base_dt": "20250321", "upd_stkpc_tp": "1"},
        "reply_to": reply_to,
    }

    # A blocking client in a thread would do as well; the sync client shows there is no magic.
    def produce_and_wait() -> dict[str, object]:
        with redis_sync.Redis.from_url(redis_url) as r:
            r.xadd(f"{ns}:requests", {"data": json.dumps(request)})
            last = "0-0"
            while True:
                batches = r.xread({reply_to: last}, block=10_000, count=10)
                assert batches, "an answer within 10 s"
                for entry_id, fields in batches[0][1]:
                    last = entry_id
                    answer = json.loads(fields[b"data"])
                    if answer["request_id"] == request_id:
                        r.delete(reply_to)
                        return answer  # type: ignore[no-any-return]

    answer = await anyio.to_thread.run_sync(produce_and_wait)
    assert answer["type"] == "response.received"
    assert answer["status"] == 200
    body = answer["body"]
    assert isinstance(body, dict)
    assert body["return_code"] == 0
    assert body["stk_dt_pole_chart_qry"]
    headers = answer["headers"]
    assert isinstance(headers, dict)
    assert headers["api-id"] == "ka10081"
    assert answer["has_more"] in (True, False)


# -- the rest of the contract: every answer below is one a producer would otherwise guess ----
# Only what docs/wire-format.md says is used: the stream names, `XADD … MAXLEN ~ <n> * data
# <json>`, XREAD on the reply stream, XREVRANGE on the dead-letter stream.

DOC = (Path(__file__).parents[2] / "docs" / "wire-format.md").read_text(encoding="utf-8")
_EXAMPLE = re.search(r"XADD apihub:requests MAXLEN ~ (\d+) \* data", DOC)
MAXLEN = int(_EXAMPLE.group(1)) if _EXAMPLE else -1
PRICE = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}
Doc = dict[str, Any]


def _request(ns: str, **fields: object) -> Doc:
    doc: Doc = {
        "type": "request.submitted",
        "request_id": uuid.uuid4().hex,
        "provider": "KIS",
        "tr_id": "FHKST01010100",
        "params": PRICE,
        "reply_to": f"{ns}:reply:wire-{uuid.uuid4().hex[:8]}",
    }
    doc.update(fields)
    return doc


async def _xadd(redis: aioredis.Redis, ns: str, doc: Doc | str) -> None:
    assert MAXLEN > 0, "the doc's XADD example carries MAXLEN ~ <n>"
    data = doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False)
    await redis.xadd(f"{ns}:requests", {"data": data}, maxlen=MAXLEN, approximate=True)


async def _answers(redis: aioredis.Redis, reply_to: str, count: int = 1) -> list[Doc]:
    """The first ``count`` answers on ``reply_to``, read with XREAD as the doc says."""
    found: list[Doc] = []
    last = "0-0"
    with anyio.fail_after(15):
        while len(found) < count:
            for _stream, entries in await redis.xread({reply_to: last}, block=1_000) or ():
                for entry_id, fields in entries:
                    last = entry_id
                    found.append(json.loads(fields[b"data"]))
    return found


async def _ask(redis: aioredis.Redis, ns: str, doc: Doc) -> Doc:
    await _xadd(redis, ns, doc)
    (answer,) = await _answers(redis, doc["reply_to"])
    assert answer["request_id"] == doc["request_id"]
    return answer


async def _dead_letter(redis: aioredis.Redis, ns: str, request_id: str) -> Doc:
    """Find a request's dead letter the documented way: XREVRANGE, match `request_id`."""
    stream = f"{ns}:dead-letter"
    with anyio.fail_after(15):
        while True:
            for _entry_id, fields in await redis.xrevrange(stream, "+", "-", count=100):
                letter: Doc = json.loads(fields[b"data"])
                if letter.get("request_id") == request_id:
                    return letter
            await redis.xread({stream: "$"}, block=500)


async def _outcomes_on_responses(redis: aioredis.Redis, ns: str, request_id: str) -> list[Doc]:
    entries = await redis.xrange(f"{ns}:responses")
    docs = [json.loads(fields[b"data"]) for _id, fields in entries]
    return [doc for doc in docs if doc["request_id"] == request_id]


async def _broker_calls(sim_admin: httpx.AsyncClient, tr_id: str = "FHKST01010100") -> int:
    calls = (await sim_admin.get("/__sim/calls", params={"tr_id": tr_id})).json()
    return len(calls)


async def _delay(sim_admin: httpx.AsyncClient, delay_ms: int, tr_id: str = "FHKST01010100") -> None:
    fault = {
        "match": {"tr_id": tr_id},
        "count": -1,
        "action": {"kind": "delay", "delay_ms": delay_ms},
    }
    (await sim_admin.post("/__sim/faults", json=fault)).raise_for_status()


# 1. trimming


def test_the_xadd_example_trims_like_the_hub() -> None:
    assert _EXAMPLE, "the doc's XADD example carries MAXLEN ~ <n>"
    assert MAXLEN == REQUEST_STREAM_MAXLEN, "the doc's cap is the hub's own"
    assert f"MAXLEN ~ {REQUEST_STREAM_MAXLEN}" in DOC


async def test_an_entry_trimmed_while_pending_is_dropped_unanswered(
    settings: Settings, token_keeper: object, redis: aioredis.Redis, hub_namespace: str
) -> None:
    ns = hub_namespace
    stream = f"{ns}:requests"
    await redis.xgroup_create(stream, "dispatcher", id="0", mkstream=True)
    doc = _request(ns)
    await _xadd(redis, ns, doc)
    # A dispatcher took it and died; then the stream was trimmed past it.
    await redis.xreadgroup("dispatcher", "ghost", {stream: ">"})
    await redis.xtrim(stream, maxlen=0)
    async with open_dispatcher(settings) as running, anyio.create_task_group() as tg:
        await tg.start(running.run)

        async def nothing_pending() -> bool:
            return (await redis.xpending(stream, "dispatcher"))["pending"] == 0

        await async_wait_until(nothing_pending, timeout=10)
        running.stop()
    assert await redis.xlen(doc["reply_to"]) == 0, "a trimmed request is never answered"
    assert await redis.xlen(f"{ns}:dead-letter") == 0


# 2. a request_id used twice


async def test_a_repeated_request_id_gets_the_first_answer_as_a_replay(
    dispatcher: Dispatcher, redis: aioredis.Redis, hub_namespace: str, sim_admin: httpx.AsyncClient
) -> None:
    ns = hub_namespace
    first = _request(ns)
    answer = await _ask(redis, ns, first)
    assert answer["type"] == "response.received"
    assert answer["replay_of"] is None
    # The same content again (a retry: another reply stream, priority and deadline may change).
    again = {**first, "reply_to": f"{ns}:reply:retry", "priority": "collector"}
    replay = await _ask(redis, ns, again)
    assert replay["type"] == "response.received"
    assert replay["replay_of"] == first["request_id"]
    assert replay["body"] == answer["body"]
    assert await _broker_calls(sim_admin) == 1, "a repeat never calls the broker"
    assert len(await _outcomes_on_responses(redis, ns, first["request_id"])) == 1


async def test_a_repeat_after_the_first_answer_was_trimmed_is_refused(
    dispatcher: Dispatcher, redis: aioredis.Redis, hub_namespace: str, sim_admin: httpx.AsyncClient
) -> None:
    ns = hub_namespace
    first = _request(ns)
    await _ask(redis, ns, first)
    # The answer is read from the response stream (no copy is kept): trimmed, it is gone.
    await redis.xtrim(f"{ns}:responses", maxlen=0)
    refusal = await _ask(redis, ns, {**first, "reply_to": f"{ns}:reply:late"})
    assert refusal["code"] == "APIHUB-REQUEST-ID-REUSED"
    assert "no longer on" in refusal["message"]
    assert await _broker_calls(sim_admin) == 1, "still never a second call"


async def test_a_request_id_reused_for_other_content_is_refused(
    dispatcher: Dispatcher, redis: aioredis.Redis, hub_namespace: str, sim_admin: httpx.AsyncClient
) -> None:
    ns = hub_namespace
    first = _request(ns)
    await _ask(redis, ns, first)
    other = {**first, "params": {**PRICE, "FID_INPUT_ISCD": "000660"}, "reply_to": f"{ns}:reply:o"}
    refusal = await _ask(redis, ns, other)
    assert refusal["type"] == "request.failed"
    assert refusal["error_class"] == "invalid"
    assert refusal["code"] == "APIHUB-REQUEST-ID-REUSED"
    assert refusal["message"].startswith("request_id_reused: ")
    letter = await _dead_letter(redis, ns, first["request_id"])
    assert letter["reason"] == "request_id_reused"
    assert await _broker_calls(sim_admin) == 1
    # The response stream's entry for this id stays the first request's answer alone.
    (audit,) = await _outcomes_on_responses(redis, ns, first["request_id"])
    assert audit["type"] == "response.received"


async def test_a_request_id_repeated_at_once_on_two_dispatchers_calls_once(
    dispatcher: Dispatcher,
    settings: Settings,
    redis: aioredis.Redis,
    hub_namespace: str,
    sim_admin: httpx.AsyncClient,
) -> None:
    ns = hub_namespace
    await _delay(sim_admin, 300)
    doc = _request(ns)
    async with open_dispatcher(settings) as second, anyio.create_task_group() as tg:
        await tg.start(second.run)
        for _ in range(4):
            await _xadd(redis, ns, doc)
        answers = await _answers(redis, doc["reply_to"], count=4)
        second.stop()
    assert await _broker_calls(sim_admin) == 1
    assert all(a["type"] == "response.received" for a in answers)
    replays = [a["replay_of"] for a in answers]
    assert replays.count(None) == 1
    assert replays.count(doc["request_id"]) == 3
    assert len({json.dumps(a["body"]) for a in answers}) == 1


# 3. deadline_ms: a budget on the producer's clock, counted on the hub's


async def test_a_producer_clock_an_hour_behind_keeps_its_budget(
    dispatcher: Dispatcher, redis: aioredis.Redis, hub_namespace: str
) -> None:
    behind = int(time.time() * 1000) - 3_600_000
    doc = _request(hub_namespace, submitted_at_ms=behind, deadline_ms=behind + 10_000)
    answer = await _ask(redis, hub_namespace, doc)
    assert answer["type"] == "response.received"


async def test_a_producer_clock_an_hour_ahead_gets_no_extra_time(
    dispatcher: Dispatcher, redis: aioredis.Redis, hub_namespace: str, sim_admin: httpx.AsyncClient
) -> None:
    await _delay(sim_admin, 5_000)
    ahead = int(time.time() * 1000) + 3_600_000
    doc = _request(hub_namespace, submitted_at_ms=ahead, deadline_ms=ahead + 300)
    started = time.monotonic()
    answer = await _ask(redis, hub_namespace, doc)
    assert answer["type"] == "request.failed"
    assert answer["error_class"] == "timeout"
    assert time.monotonic() - started < 4, "the 300 ms budget, not the producer's clock"


async def test_a_deadline_passed_on_submission_never_reaches_the_broker(
    dispatcher: Dispatcher, redis: aioredis.Redis, hub_namespace: str, sim_admin: httpx.AsyncClient
) -> None:
    now = int(time.time() * 1000)
    answer = await _ask(
        redis, hub_namespace, _request(hub_namespace, submitted_at_ms=now, deadline_ms=now - 1)
    )
    assert answer["error_class"] == "timeout"
    assert answer["status"] is None
    assert await _broker_calls(sim_admin) == 0


async def test_without_deadline_ms_max_request_s_applies(
    make_settings: Callable[..., Settings],
    sim_url: str,
    token_keeper: object,
    redis: aioredis.Redis,
    hub_namespace: str,
    sim_admin: httpx.AsyncClient,
) -> None:
    await _delay(sim_admin, 5_000)
    async with (
        open_dispatcher(make_settings(sim_url, max_request_s=0.5)) as running,
        anyio.create_task_group() as tg,
    ):
        await tg.start(running.run)
        started = time.monotonic()
        answer = await _ask(redis, hub_namespace, _request(hub_namespace))
        running.stop()
    assert answer["error_class"] == "timeout"
    assert time.monotonic() - started < 4


# 4. elapsed_ms


async def test_elapsed_ms_covers_the_broker_call_and_not_more_than_the_round_trip(
    dispatcher: Dispatcher, redis: aioredis.Redis, hub_namespace: str, sim_admin: httpx.AsyncClient
) -> None:
    await _delay(sim_admin, 300)
    started = time.monotonic()
    answer = await _ask(redis, hub_namespace, _request(hub_namespace))
    round_trip_ms = (time.monotonic() - started) * 1000
    assert answer["type"] == "response.received"
    assert 300 <= answer["elapsed_ms"] <= round_trip_ms
    assert isinstance(answer["received_at_ms"], int)


# 5. schema and type


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"schema": 2}, "unsupported_schema"),
        ({"schema": 0}, "unsupported_schema"),
        ({"type": None}, "missing_type"),
    ],
    ids=["schema-2", "schema-0", "no-type"],
)
async def test_an_unknown_schema_or_a_missing_type_is_refused_with_a_reason(
    dispatcher: Dispatcher, redis: aioredis.Redis, hub_namespace: str, change: Doc, reason: str
) -> None:
    doc = _request(hub_namespace, **change)
    if doc["type"] is None:
        del doc["type"]
    answer = await _ask(redis, hub_namespace, doc)
    assert answer["type"] == "request.failed"
    assert answer["error_class"] == "invalid"
    assert answer["code"] == "APIHUB-" + reason.upper().replace("_", "-")
    assert answer["message"].startswith(f"{reason}: ")
    letter = await _dead_letter(redis, hub_namespace, doc["request_id"])
    assert letter["reason"] == reason


# 6. status on failures


async def test_status_is_the_brokers_http_status_or_null(
    dispatcher: Dispatcher, redis: aioredis.Redis, hub_namespace: str, sim_admin: httpx.AsyncClient
) -> None:
    ns = hub_namespace
    refused = await _ask(redis, ns, _request(ns, tr_id="ZZZZ9999"))
    assert refused["error_class"] == "invalid"
    assert refused["status"] is None, "no HTTP answer behind a hub-side failure"
    body = {"rt_cd": "1", "msg_cd": "40570000", "msg1": "모의투자 장시작전 입니다."}
    fault = {
        "match": {"tr_id": "FHKST01010100"},
        "count": 1,
        "action": {"kind": "error", "status": 200, "body": body},
    }
    (await sim_admin.post("/__sim/faults", json=fault)).raise_for_status()
    rejected = await _ask(redis, ns, _request(ns))
    assert rejected["error_class"] == "permanent"
    assert rejected["code"] == "40570000"
    assert rejected["status"] == 200, "the broker's own HTTP status, even for a KIS 200 envelope"


# 7. the account and provider echoed


async def test_the_account_comes_back_as_sent_or_as_the_default_used(
    dispatcher: Dispatcher, redis: aioredis.Redis, hub_namespace: str, sim_admin: httpx.AsyncClient
) -> None:
    ns = hub_namespace
    omitted = await _ask(redis, ns, _request(ns, provider="kis"))
    assert (omitted["account"], omitted["provider"]) == ("default", "KIS")
    named = await _ask(redis, ns, _request(ns, account="default"))
    assert named["account"] == "default"
    unknown = await _ask(redis, ns, _request(ns, account="Main"))
    assert unknown["code"] == "APIHUB-UNKNOWN-ACCOUNT"
    assert unknown["account"] == "Main", "a refusal echoes the name exactly as sent"
    body = {"rt_cd": "1", "msg_cd": "40570000", "msg1": "모의투자 장시작전 입니다."}
    fault = {
        "match": {"tr_id": "FHKST01010100"},
        "count": 1,
        "action": {"kind": "error", "status": 200, "body": body},
    }
    (await sim_admin.post("/__sim/faults", json=fault)).raise_for_status()
    failed = await _ask(redis, ns, _request(ns, provider="kis"))
    assert failed["error_class"] == "permanent"
    assert (failed["account"], failed["provider"]) == ("default", "KIS")


# 8. idempotency_key


async def test_an_idempotency_key_gives_two_request_ids_one_call(
    dispatcher: Dispatcher, redis: aioredis.Redis, hub_namespace: str, sim_admin: httpx.AsyncClient
) -> None:
    ns = hub_namespace
    first = await _ask(redis, ns, _request(ns, idempotency_key="price-005930-am"))
    second_doc = _request(ns, idempotency_key="price-005930-am")
    second = await _ask(redis, ns, second_doc)
    assert second["request_id"] == second_doc["request_id"]
    assert second["replay_of"] == first["request_id"]
    assert second["body"] == first["body"]
    assert await _broker_calls(sim_admin) == 1
    other = await _ask(
        redis,
        ns,
        _request(
            ns, idempotency_key="price-005930-am", params={**PRICE, "FID_INPUT_ISCD": "000660"}
        ),
    )
    assert (other["error_class"], other["code"]) == ("invalid", "APIHUB-IDEMPOTENCY-MISMATCH")
    assert await _broker_calls(sim_admin) == 1


# 9. a reply_to that cannot be written


async def test_a_reply_to_of_another_type_is_answered_in_the_dead_letter_stream(
    dispatcher: Dispatcher, redis: aioredis.Redis, hub_namespace: str, sim_admin: httpx.AsyncClient
) -> None:
    ns = hub_namespace
    reply_to = f"{ns}:reply:a-string"
    await redis.set(reply_to, "not a stream")
    doc = _request(ns, reply_to=reply_to)
    await _xadd(redis, ns, doc)
    letter = await _dead_letter(redis, ns, doc["request_id"])
    assert letter["reason"] == "bad_reply_to"
    assert "string" in letter["detail"]
    (outcome,) = await _outcomes_on_responses(redis, ns, doc["request_id"])
    assert outcome["type"] == "response.received", "the answer itself is on the response stream"
    assert await redis.get(reply_to) == b"not a stream"
    assert (await redis.xpending(f"{ns}:requests", "dispatcher"))["pending"] == 0
    assert await _broker_calls(sim_admin) == 1


async def test_a_reply_to_outside_the_namespace_is_found_by_request_id(
    dispatcher: Dispatcher, redis: aioredis.Redis, hub_namespace: str
) -> None:
    doc = _request(hub_namespace, reply_to="somewhere:else")
    await _xadd(redis, hub_namespace, doc)
    letter = await _dead_letter(redis, hub_namespace, doc["request_id"])
    assert letter["reason"] == "bad_reply_to"
    assert f"{hub_namespace}:reply:" in letter["detail"]
    assert await redis.exists("somewhere:else") == 0


# 10. parameters must be strings, and the refusal names the parameter


@pytest.mark.parametrize(
    "value", [{"code": "005930"}, ["005930"], 5930, None], ids=["object", "array", "number", "null"]
)
async def test_a_parameter_that_is_not_a_string_is_refused_by_name(
    dispatcher: Dispatcher, redis: aioredis.Redis, hub_namespace: str, value: object
) -> None:
    doc = _request(hub_namespace, params={"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": value})
    answer = await _ask(redis, hub_namespace, doc)
    assert answer["code"] == "APIHUB-INVALID-EVENT"
    assert "params['FID_INPUT_ISCD'] must be a JSON string" in answer["message"]
    assert "FID_COND_MRKT_DIV_CODE" not in answer["message"]


# other guesses


async def test_utf8_json_with_unknown_fields_and_any_field_order_is_accepted(
    dispatcher: Dispatcher, redis: aioredis.Redis, hub_namespace: str
) -> None:
    doc = _request(hub_namespace, note="주문 메모", producer="go/1.22")
    reordered = dict(reversed(list(doc.items())))
    raw = json.dumps(reordered, ensure_ascii=False)
    await redis.xadd(f"{hub_namespace}:requests", {"data": raw.encode("utf-8"), "type": "x"})
    (answer,) = await _answers(redis, doc["reply_to"])
    assert answer["type"] == "response.received"
