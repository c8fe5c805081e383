"""Broker error envelopes arrive at the caller as the right typed errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from apihub_broker_sim import KIS_ORDER, KIS_PRICE, KIWOOM_DAILY
from apihub_core import (
    HubClient,
    OutcomeUnknown,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTransient,
)
from apihub_dispatcher import Dispatcher
from apihub_runtime import Settings

pytestmark = pytest.mark.anyio


async def _arm(
    sim_admin: httpx.AsyncClient, tr_id: str, action: dict[str, Any], count: int = -1
) -> None:
    (
        await sim_admin.post(
            "/__sim/faults", json={"match": {"tr_id": tr_id}, "count": count, "action": action}
        )
    ).raise_for_status()


@pytest.mark.parametrize(
    ("provider", "tr_id", "params", "action", "error", "code"),
    [
        ("KIS", "FHKST01010100", KIS_PRICE, {"kind": "egw00201"}, UpstreamRateLimited, "EGW00201"),
        # No broker code on a bare 503 or a reset: the hub's own APIHUB-<class> code.
        (
            "KIS",
            "FHKST01010100",
            KIS_PRICE,
            {"kind": "http_503"},
            UpstreamTransient,
            "APIHUB-TRANSIENT",
        ),
        (
            "KIS",
            "FHKST01010100",
            KIS_PRICE,
            {"kind": "reset"},
            UpstreamTransient,
            "APIHUB-TRANSIENT",
        ),
        (
            "KIS",
            "FHKST01010100",
            KIS_PRICE,
            {
                "kind": "error",
                "status": 200,
                "body": {"rt_cd": "1", "msg_cd": "40570000", "msg1": "모의투자 장시작전 입니다."},
            },
            UpstreamRejected,
            "40570000",
        ),
        ("KIWOOM", "ka10081", KIWOOM_DAILY, {"kind": "kiwoom_1700"}, UpstreamRateLimited, "1700"),
        ("KIWOOM", "ka10081", KIWOOM_DAILY, {"kind": "kiwoom_8005"}, UpstreamAuthError, "8005"),
    ],
    ids=["egw00201", "http503", "reset", "business-reject", "kiwoom1700", "kiwoom8005"],
)
async def test_error_envelopes_map_to_typed_errors(
    hub: HubClient,
    dispatcher: Dispatcher,
    sim_admin: httpx.AsyncClient,
    provider: str,
    tr_id: str,
    params: dict[str, str],
    action: dict[str, Any],
    error: type[UpstreamError],
    code: str,
) -> None:
    await _arm(sim_admin, tr_id, action)
    with pytest.raises(error) as caught:
        await hub.execute(provider, tr_id, params, timeout=15)
    exc = caught.value
    assert exc.code == code
    assert exc.request_id
    assert exc.provider == provider
    assert exc.tr_id == tr_id


async def test_business_rejection_is_not_retried(
    hub: HubClient, dispatcher: Dispatcher, sim_admin: httpx.AsyncClient
) -> None:
    body = {"rt_cd": "1", "msg_cd": "40570000", "msg1": "모의투자 장시작전 입니다."}
    await _arm(sim_admin, "FHKST01010100", {"kind": "error", "status": 200, "body": body})
    with pytest.raises(UpstreamRejected) as caught:
        await hub.execute("KIS", "FHKST01010100", KIS_PRICE)
    assert caught.value.message == "모의투자 장시작전 입니다."
    calls = (await sim_admin.get("/__sim/calls")).json()
    calls = calls.get("calls", calls) if isinstance(calls, dict) else calls
    assert len([c for c in calls if c["tr_id"] == "FHKST01010100"]) == 1


async def test_transient_failure_is_retried_transparently(
    hub: HubClient, dispatcher: Dispatcher, sim_admin: httpx.AsyncClient
) -> None:
    await _arm(sim_admin, "FHKST01010100", {"kind": "http_503"}, count=1)
    response = await hub.execute("KIS", "FHKST01010100", KIS_PRICE)
    assert response.body["rt_cd"] == "0"
    assert response.attempts == 2


async def test_rejected_token_is_replaced_and_the_call_retried(
    hub: HubClient, dispatcher: Dispatcher, sim_admin: httpx.AsyncClient
) -> None:
    # Kiwoom lets a new token replace the old one at once, so one retry heals an 8005.
    await _arm(sim_admin, "ka10081", {"kind": "kiwoom_8005"}, count=1)
    response = await hub.execute("KIWOOM", "ka10081", KIWOOM_DAILY)
    assert response.body["return_code"] == 0
    assert response.attempts == 2
    stats = (await sim_admin.get("/__sim/stats")).json()
    assert stats["token_issuances"], stats


async def test_an_order_lost_in_the_network_is_not_retried(
    hub: HubClient, dispatcher: Dispatcher, sim_admin: httpx.AsyncClient
) -> None:
    # The connection drops after the broker got the order: it may have been executed.
    await _arm(sim_admin, "TTTC0012U", {"kind": "reset"})
    with pytest.raises(OutcomeUnknown) as caught:
        await hub.execute("KIS", "TTTC0012U", KIS_ORDER, priority="order")
    assert "reconcile" in str(caught.value).lower()
    calls = (await sim_admin.get("/__sim/calls", params={"tr_id": "TTTC0012U"})).json()
    calls = calls.get("calls", calls) if isinstance(calls, dict) else calls
    assert len(calls) == 1, "sent once, never retried"


async def test_an_order_the_broker_rejected_is_reported_not_retried(
    hub: HubClient, dispatcher: Dispatcher, sim_admin: httpx.AsyncClient
) -> None:
    rejection = {"rt_cd": "1", "msg_cd": "40570000", "msg1": "모의투자 장시작전 입니다."}
    await _arm(sim_admin, "TTTC0012U", {"kind": "error", "status": 200, "body": rejection})
    with pytest.raises(UpstreamRejected) as caught:
        await hub.execute("KIS", "TTTC0012U", KIS_ORDER, priority="order")
    assert caught.value.code == "40570000"
    calls = (await sim_admin.get("/__sim/calls", params={"tr_id": "TTTC0012U"})).json()
    calls = calls.get("calls", calls) if isinstance(calls, dict) else calls
    assert len(calls) == 1


async def test_an_order_refused_for_rate_is_requeued_a_bounded_number_of_times(
    hub: HubClient, dispatcher: Dispatcher, sim_admin: httpx.AsyncClient, settings: Settings
) -> None:
    # EGW00201 means the gateway refused the order before executing it: re-queueing it through
    # the limiter is safe. A broker that keeps refusing ends the request after max_requeues.
    await _arm(sim_admin, "TTTC0012U", {"kind": "egw00201"})
    with pytest.raises(UpstreamRateLimited):
        await hub.execute("KIS", "TTTC0012U", KIS_ORDER, priority="order", timeout=30)
    calls = (await sim_admin.get("/__sim/calls", params={"tr_id": "TTTC0012U"})).json()
    calls = calls.get("calls", calls) if isinstance(calls, dict) else calls
    assert len(calls) == 1 + settings.rate_limiter.max_requeues
    orders = (await sim_admin.get("/__sim/orders")).json()
    assert orders == []


async def test_an_order_goes_through(hub: HubClient, dispatcher: Dispatcher) -> None:
    response = await hub.execute("KIS", "TTTC0012U", KIS_ORDER, priority="order")
    assert response.body["msg_cd"] == "APBK0013"
    assert response.body["output"]["ODNO"]


async def test_a_refused_token_issuance_is_waited_out_not_hammered(
    hub: HubClient, dispatcher: Dispatcher, sim_admin: httpx.AsyncClient
) -> None:
    fault = {"match": {"path": "/oauth2/tokenP"}, "count": -1, "action": {"kind": "egw00133"}}
    (await sim_admin.post("/__sim/faults", json=fault)).raise_for_status()
    for _ in range(3):
        with pytest.raises(UpstreamRateLimited) as caught:
            await hub.execute("KIS", "FHKST01010100", KIS_PRICE)
        assert caught.value.code == "EGW00133"
    calls = (await sim_admin.get("/__sim/calls")).json()
    calls = calls.get("calls", calls) if isinstance(calls, dict) else calls
    assert [c["path"] for c in calls] == ["/oauth2/tokenP"], "asked the broker once, not 9 times"


async def test_an_order_whose_token_could_not_be_had_was_not_sent(
    hub: HubClient, dispatcher: Dispatcher, sim_admin: httpx.AsyncClient
) -> None:
    fault = {"match": {"path": "/oauth2/tokenP"}, "count": -1, "action": {"kind": "reset"}}
    (await sim_admin.post("/__sim/faults", json=fault)).raise_for_status()
    with pytest.raises(UpstreamTransient):
        await hub.execute("KIS", "TTTC0012U", KIS_ORDER, priority="order")
    calls = (await sim_admin.get("/__sim/calls", params={"tr_id": "TTTC0012U"})).json()
    calls = calls.get("calls", calls) if isinstance(calls, dict) else calls
    assert calls == []
