"""KIS and Kiwoom calls end to end: HubClient → request stream → dispatcher → simulator → reply."""

from __future__ import annotations

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from apihub_broker_sim import KIS_PRICE
from apihub_core import (
    HubClient,
    Keys,
    RequestFailed,
    RequestInvalid,
    RequestTimeout,
    ResponseReceived,
    decode_outcome,
)
from apihub_dispatcher import Dispatcher

pytestmark = pytest.mark.anyio


async def test_kis_current_price_through_the_hub(
    hub: HubClient, dispatcher: Dispatcher, sim_url: str, redis: aioredis.Redis, keys: Keys
) -> None:
    response = await hub.execute("KIS", "FHKST01010100", KIS_PRICE, timeout=10)

    assert response.status == 200
    assert response.body["rt_cd"] == "0"
    assert response.headers["tr_id"] == "FHKST01010100"
    output = response.body["output"]
    assert output["stck_shrn_iscd"] == "005930"
    assert isinstance(output["stck_prpr"], str)
    assert int(output["stck_prpr"]) > 0
    # The outcome is also on the audit stream, under the same request id.
    entries = await redis.xrange(keys.responses)
    assert [decode_outcome(fields).request_id for _, fields in entries] == [response.request_id]


async def test_hub_answer_equals_a_direct_call(
    hub: HubClient, dispatcher: Dispatcher, sim_url: str
) -> None:
    via_hub = await hub.execute("kis", "FHKST01010100", KIS_PRICE)
    # The simulator's answer is deterministic for a given clock, so a direct call must match.
    async with httpx.AsyncClient(base_url=sim_url) as http:
        token = (
            await http.post(
                "/oauth2/tokenP",
                json={"grant_type": "client_credentials", "appkey": "k" * 36, "appsecret": "s"},
            )
        ).json()["access_token"]
        direct = await http.get(
            "/uapi/domestic-stock/v1/quotations/inquire-price",
            params=KIS_PRICE,
            headers={
                "authorization": f"Bearer {token}",
                "appkey": "k" * 36,
                "appsecret": "s",
                "tr_id": "FHKST01010100",
                "custtype": "P",
            },
        )
    assert via_hub.body["output"]["stck_prpr"] == direct.json()["output"]["stck_prpr"]


async def test_kiwoom_daily_chart_through_the_hub(hub: HubClient, dispatcher: Dispatcher) -> None:
    response = await hub.execute(
        "KIWOOM", "ka10081", {"stk_cd": "005930", "base_dt": "20250321", "upd_stkpc_tp": "1"}
    )
    assert response.body["return_code"] == 0
    rows = response.body["stk_dt_pole_chart_qry"]
    assert rows, "a daily chart has rows"
    assert rows[0]["dt"] <= "20250321"
    dates = [row["dt"] for row in rows]
    assert dates == sorted(dates, reverse=True), "newest first"
    assert response.headers["api-id"] == "ka10081"


async def test_kiwoom_basic_info(hub: HubClient, dispatcher: Dispatcher) -> None:
    response = await hub.execute("KIWOOM", "ka10001", {"stk_cd": "005930"})
    assert response.body["stk_cd"] == "005930"
    assert response.body["return_code"] == 0


async def test_numbers_are_sent_as_strings(hub: HubClient, dispatcher: Dispatcher) -> None:
    response = await hub.execute(
        "KIWOOM", "ka10081", {"stk_cd": "005930", "base_dt": 20250321, "upd_stkpc_tp": 1}
    )
    assert response.body["stk_dt_pole_chart_qry"][0]["dt"] <= "20250321"


async def test_unknown_tr_is_a_typed_error(hub: HubClient, dispatcher: Dispatcher) -> None:
    with pytest.raises(RequestInvalid) as caught:
        await hub.execute("KIS", "NOPE0000", {})
    assert caught.value.request_id
    assert "unknown_tr" in str(caught.value)


async def test_missing_parameter_is_a_typed_error(hub: HubClient, dispatcher: Dispatcher) -> None:
    with pytest.raises(RequestInvalid, match="FID_INPUT_ISCD"):
        await hub.execute("KIS", "FHKST01010100", {"FID_COND_MRKT_DIV_CODE": "J"})


async def test_unknown_provider_is_refused_before_sending(hub: HubClient) -> None:
    with pytest.raises(RequestInvalid, match="unknown provider"):
        await hub.execute("NASDAQ", "X", {})


async def test_timeout_without_a_dispatcher(hub: HubClient) -> None:
    with pytest.raises(RequestTimeout) as caught:
        await hub.execute("KIS", "FHKST01010100", KIS_PRICE, timeout=0.2)
    assert caught.value.retryable


async def test_expired_deadline_is_answered_without_calling_the_broker(
    hub: HubClient,
    redis: aioredis.Redis,
    keys: Keys,
    dispatcher: Dispatcher,
    sim_admin: httpx.AsyncClient,
) -> None:
    # A request whose deadline passed while it waited in the stream.
    from apihub_core import RequestSubmitted, encode_entry, now_ms

    request = RequestSubmitted(
        request_id="late-1",
        provider="KIS",
        tr_id="FHKST01010100",
        params=KIS_PRICE,
        reply_to=hub.reply_stream,
        deadline_ms=now_ms() - 1,
    )
    await redis.xadd(keys.requests, encode_entry(request))
    answer = await redis.xread({hub.reply_stream: "0-0"}, block=10_000)
    # The hub's own reader may consume the answer too; the stream keeps it either way.
    outcome = decode_outcome(answer[0][1][0][1])
    assert outcome.request_id == "late-1"
    assert msgspec.structs.asdict(outcome)["error_class"] == "timeout"
    calls = (await sim_admin.get("/__sim/calls")).json()
    assert not [c for c in _as_list(calls) if c.get("tr_id") == "FHKST01010100"]


def _as_list(calls: object) -> list[dict[str, object]]:
    if isinstance(calls, dict):
        return list(calls.get("calls", []))
    return list(calls)  # type: ignore[arg-type]


async def test_the_outcome_repeats_the_requests_params_priority_and_tags(
    hub: HubClient, dispatcher: Dispatcher, redis: aioredis.Redis, keys: Keys
) -> None:
    # The response stream alone must be enough to project market data from it (the archiver)
    # and to tell whose answer it is (a backfill job, a gap, a collector).
    response = await hub.execute(
        "KIS",
        "FHKST01010100",
        KIS_PRICE,
        priority="collector",
        request_id="bf-job1-0001",
        tags={"backfill": "job1", "chunk": "c1"},
        timeout=10,
    )
    assert response.request_id == "bf-job1-0001"
    ((_, fields),) = await redis.xrange(keys.responses)
    outcome = decode_outcome(fields)
    assert isinstance(outcome, ResponseReceived)
    assert outcome.params == KIS_PRICE
    assert outcome.priority == "collector"
    assert outcome.tags == {"backfill": "job1", "chunk": "c1"}
    assert "date" in outcome.headers  # the broker's clock: the day of rows that carry only a time


async def test_a_failure_repeats_the_requests_priority_and_tags(
    hub: HubClient, dispatcher: Dispatcher, redis: aioredis.Redis, keys: Keys
) -> None:
    with pytest.raises(RequestInvalid):
        await hub.execute(
            "KIS", "FHKST01010100", {}, priority="backfill", tags={"gap": "g1"}, timeout=10
        )
    ((_, fields),) = await redis.xrange(keys.responses)
    outcome = decode_outcome(fields)
    assert isinstance(outcome, RequestFailed)
    assert (outcome.priority, outcome.tags) == ("backfill", {"gap": "g1"})
