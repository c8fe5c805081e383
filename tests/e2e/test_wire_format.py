"""A producer that knows only docs/wire-format.md: plain redis-py, no apihub imports."""

from __future__ import annotations

import json
import uuid

import pytest
import redis as redis_sync

from apihub_dispatcher import Dispatcher

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
    import anyio

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
