"""Standing conditions (latency with jitter, error rates, outages) seen over real sockets.

Nothing here asserts on wall-clock durations: delays are checked through the values the
simulator records per call, and outages are ended by removing them, never by waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import httpx
import pytest

from apihub_broker_sim import SimConfig, ThreadedSimServer, appkey_fingerprint, create_app
from apihub_testing import wait_until

PRICE = "FHKST01010100"
CCNL = "FHKST01010300"
QUOTES = "/uapi/domestic-stock/v1/quotations"


class SimHarness(Protocol):
    """The conftest's simulator harness (``frozen_sim``, ``make_sim``), as these tests use it."""

    server: ThreadedSimServer
    client: httpx.Client

    def forget_tokens(self) -> None: ...
    def kis_issue(self) -> httpx.Response: ...
    def kis_token(self) -> str: ...
    def kis_headers(self, tr_id: str) -> dict[str, str]: ...
    def kis_price(self) -> httpx.Response: ...
    def kiwoom_token(self) -> str: ...
    def kiwoom(self, path: str, api_id: str, body: dict[str, Any]) -> httpx.Response: ...


class Defaults(Protocol):
    """The conftest's ``harness_defaults``, as far as these tests use it."""

    kis_appkey: str
    kis_secret: str


def _add(frozen_sim: SimHarness, spec: dict[str, Any]) -> dict[str, Any]:
    response = frozen_sim.client.post("/__sim/conditions", json=spec)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _calls(frozen_sim: SimHarness, tr_id: str = PRICE) -> list[dict[str, Any]]:
    return list(frozen_sim.client.get("/__sim/calls", params={"tr_id": tr_id}).json())


def _stats(frozen_sim: SimHarness) -> dict[str, Any]:
    return dict(frozen_sim.client.get("/__sim/stats").json())


def _delays(frozen_sim: SimHarness, calls: int = 15) -> list[float]:
    frozen_sim.kis_token()
    for _ in range(calls):
        assert frozen_sim.kis_price().status_code == 200
    return [call["latency_ms"] for call in _calls(frozen_sim)]


# --- latency ---


def test_jitter_stays_in_bounds_and_repeats_with_the_seed(
    make_sim: Callable[..., SimHarness],
) -> None:
    spec = {"latency": {"base_ms": 2, "jitter_ms": 6, "match": {"tr_id": PRICE}}}
    first, second, other = (make_sim(conditions_seed=s) for s in (11, 11, 12))
    for frozen_sim in (first, second, other):
        added = _add(frozen_sim, spec)
        assert added["type"] == "latency"
        assert (added["base_ms"], added["jitter_ms"], added["match"]) == (
            2.0,
            6.0,
            {"tr_id": PRICE},
        )
    delays = _delays(first)
    assert all(2.0 <= delay <= 8.0 for delay in delays)
    assert len(set(delays)) > 10  # really jittered, not a constant
    assert _delays(second) == delays
    assert _delays(other) != delays
    # The token call did not match, so it went through undelayed.
    token_call = first.client.get("/__sim/calls").json()[0]
    assert (token_call["path"], token_call["latency_ms"]) == ("/oauth2/tokenP", 0.0)
    view = first.client.get("/__sim/conditions").json()
    assert view["seed"] == 11
    assert view["latency"][0]["applied"] == 15


def test_configured_latency_survives_reset_and_can_be_cleared(
    make_sim: Callable[..., SimHarness],
) -> None:
    frozen_sim = make_sim(
        conditions=({"latency": {"base_ms": 1, "jitter_ms": 3}},), conditions_seed=5
    )
    delays = _delays(frozen_sim, 5)
    assert all(1.0 <= delay <= 4.0 for delay in delays)
    # reset: same conditions, same seed, so the same delays again.
    assert frozen_sim.client.post("/__sim/reset").json() == {"reset": True}
    frozen_sim.forget_tokens()
    assert _delays(frozen_sim, 5) == delays
    assert frozen_sim.client.delete("/__sim/conditions").json() == {"cleared": True}
    frozen_sim.client.delete("/__sim/calls")
    assert set(_delays(frozen_sim, 3)) == {0.0}
    assert frozen_sim.client.get("/__sim/conditions").json() == {
        "seed": 5,
        "latency": [],
        "error_rate": [],
        "outage": [],
    }


def test_reseeding_restarts_the_draws(frozen_sim: SimHarness) -> None:
    frozen_sim.kis_token()  # before the draws: the unmatched latency delays token calls too
    _add(frozen_sim, {"latency": {"jitter_ms": 5}})
    assert frozen_sim.client.post("/__sim/conditions/seed", json={"seed": 99}).json() == {
        "seed": 99
    }
    delays = _delays(frozen_sim, 5)
    frozen_sim.client.delete("/__sim/calls")
    frozen_sim.client.post("/__sim/conditions/seed", json={"seed": 99})
    assert _delays(frozen_sim, 5) == delays
    assert frozen_sim.client.post("/__sim/conditions/seed", json={"seed": "x"}).status_code == 400


def test_rate_window_counts_arrivals_after_the_latency(
    make_sim: Callable[..., SimHarness], harness_defaults: Defaults
) -> None:
    # The slow call is sent first but arrives 900 ms later, so with one call per second the
    # broker accepts the fast one and rejects the slow one. The fast call is sent only once the
    # simulator holds the slow one (its latency was applied), so the order of arrival does not
    # depend on thread scheduling; it has 900 ms to arrive, and both arrivals fall within one
    # 1-second window whatever the fast call's timing.
    frozen_sim = make_sim(kis_rate_limit_per_s=1)
    _add(frozen_sim, {"latency": {"base_ms": 900, "match": {"tr_id": CCNL}}})
    params = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}

    def send(name: str, tr_id: str) -> httpx.Response:
        with httpx.Client(base_url=frozen_sim.server.url, timeout=10.0) as client:
            return client.get(
                f"{QUOTES}/{name}", params=params, headers=frozen_sim.kis_headers(tr_id)
            )

    def slow_is_held() -> bool:
        with httpx.Client(base_url=frozen_sim.server.url, timeout=10.0) as client:
            latency = client.get("/__sim/conditions").json()["latency"]
        return bool(latency and latency[0]["applied"] == 1)

    frozen_sim.kis_token()
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(send, "inquire-ccnl", CCNL)
        wait_until(slow_is_held, timeout=10, message="the simulator never held the slow call")
        assert send("inquire-price", PRICE).status_code == 200
        assert slow.result().json()["msg_cd"] == "EGW00201"
    (slow_call,) = _calls(frozen_sim, CCNL)
    assert (slow_call["latency_ms"], slow_call["rate_limited"]) == (900.0, True)
    assert _calls(frozen_sim, PRICE)[0]["rate_limited"] is False
    stats = _stats(frozen_sim)
    assert stats["rate_limit_rejections"] == 1
    fp = appkey_fingerprint(harness_defaults.kis_appkey)
    assert stats["rate_limit_rejections_by_key"] == {f"KIS:{fp}": 1}
    assert stats["max_calls_in_any_1s_window_by_key"] == {f"KIS:{fp}": 2}
    assert stats["token_issuances"] == {"KIS": {fp: 1}}


# --- error rate ---


def _error_run(frozen_sim: SimHarness) -> int:
    _add(
        frozen_sim,
        {
            "error_rate": {
                "p": 0.3,
                "action": "egw00201",
                "match": {"provider": "KIS", "tr_id": PRICE},
            }
        },
    )
    frozen_sim.kis_token()
    failed = 0
    for _ in range(200):
        response = frozen_sim.kis_price()
        if response.status_code == 500:
            assert response.json()["msg_cd"] == "EGW00201"
            failed += 1
        else:
            assert response.json()["rt_cd"] == "0"
    return failed


def test_error_rate_is_seeded(make_sim: Callable[..., SimHarness]) -> None:
    first, second = make_sim(conditions_seed=3), make_sim(conditions_seed=3)
    failed = _error_run(first)
    assert _error_run(second) == failed
    assert 40 <= failed <= 80  # p = 0.3 of 200; mean 60, sd ~6.5
    (rate,) = first.client.get("/__sim/conditions").json()["error_rate"]
    assert (rate["matched"], rate["fired"], rate["kind"]) == (200, failed, "egw00201")
    assert sum(call["fault_source"] == "error_rate" for call in _calls(first)) == failed
    stats = _stats(first)
    assert stats["faults_by_source"] == {"error_rate": failed}
    # Injected EGW00201s are not the simulator's own limiter at work.
    assert stats["rate_limit_rejections"] == 0


def test_error_rate_extremes_and_actions(frozen_sim: SimHarness) -> None:
    body = {"stk_cd": "005930"}
    frozen_sim.kiwoom_token()
    _add(frozen_sim, {"error_rate": {"p": 0, "match": {"provider": "KIS"}}})
    _add(
        frozen_sim,
        {"error_rate": {"p": 1, "action": "kiwoom_1700", "match": {"provider": "KIWOOM"}}},
    )
    assert frozen_sim.kis_price().status_code == 200
    limited = frozen_sim.kiwoom("/api/dostk/stkinfo", "ka10001", body)
    assert (limited.status_code, limited.json()["return_code"]) == (429, 5)
    frozen_sim.client.delete("/__sim/conditions")
    _add(frozen_sim, {"error_rate": {"p": 1, "action": "reset", "match": {"tr_id": PRICE}}})
    with pytest.raises(httpx.TransportError):
        frozen_sim.kis_price()


# --- outages ---


def test_outage_window_until_removed(frozen_sim: SimHarness, harness_defaults: Defaults) -> None:
    frozen_sim.kis_token()
    frozen_sim.kiwoom_token()
    _arm = frozen_sim.client.post(
        "/__sim/faults", json={"match": {"tr_id": PRICE}, "action": "egw00123"}
    )
    assert _arm.status_code == 201
    outage = _add(frozen_sim, {"outage": {"duration_s": 3600, "match": {"provider": "KIS"}}})
    assert outage["kind"] == "http_503"
    assert 3590 < outage["remaining_s"] <= 3600
    for _ in range(3):
        response = frozen_sim.kis_price()
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("text/html")
    assert (
        frozen_sim.kiwoom("/api/dostk/stkinfo", "ka10001", {"stk_cd": "005930"}).status_code == 200
    )
    (live,) = frozen_sim.client.get("/__sim/conditions").json()["outage"]
    assert (live["id"], live["fired"], live["duration_s"]) == (outage["id"], 3, 3600.0)
    assert 0 < live["remaining_s"] <= outage["remaining_s"]
    assert frozen_sim.client.delete(f"/__sim/conditions/{outage['id']}").json() == {
        "removed": outage["id"]
    }
    assert frozen_sim.client.delete(f"/__sim/conditions/{outage['id']}").status_code == 404
    assert frozen_sim.client.delete("/__sim/conditions/abc").status_code == 400
    # The armed fault was hidden by the outage, not used up by it.
    assert frozen_sim.kis_price().json()["msg_cd"] == "EGW00123"
    assert frozen_sim.kis_price().status_code == 200
    stats = _stats(frozen_sim)
    assert stats["outage_calls"] == 3
    fp = appkey_fingerprint(harness_defaults.kis_appkey)
    assert stats["outage_calls_by_key"] == {f"KIS:{fp}": 3}
    assert stats["faults_by_source"] == {"outage": 3, "fault": 1}


def test_open_ended_outage_is_cleared_with_the_faults(frozen_sim: SimHarness) -> None:
    frozen_sim.kis_token()
    outage = _add(frozen_sim, {"outage": {"action": {"kind": "egw00201", "status": 200}}})
    assert (outage["duration_s"], outage["remaining_s"]) == (None, None)
    assert frozen_sim.kis_price().json()["msg_cd"] == "EGW00201"
    assert frozen_sim.kis_issue().json()["msg_cd"] == "EGW00201"  # no match: token calls too
    assert frozen_sim.client.delete("/__sim/faults").json() == {"cleared": True}
    assert frozen_sim.client.get("/__sim/conditions").json()["outage"] == []
    assert frozen_sim.kis_price().json()["rt_cd"] == "0"


def test_zero_length_outage_never_fires(frozen_sim: SimHarness) -> None:
    frozen_sim.kis_token()
    outage = _add(frozen_sim, {"outage": {"duration_s": 0}})
    assert outage["remaining_s"] == 0.0
    assert frozen_sim.client.get("/__sim/conditions").json()["outage"] == []
    assert frozen_sim.kis_price().status_code == 200
    assert _stats(frozen_sim)["outage_calls"] == 0


# --- stats, config, validation, secrecy ---


def test_fresh_stats_have_every_field(frozen_sim: SimHarness) -> None:
    stats = _stats(frozen_sim)
    assert {
        "rate_limit_rejections": 0,
        "rate_limit_rejections_by_key": {},
        "outage_calls": 0,
        "outage_calls_by_key": {},
        "faults_by_source": {},
        "max_calls_in_any_1s_window_by_key": {},
        "token_issuances": {},
    }.items() <= stats.items()


def test_kiwoom_rejections_are_counted_per_appkey_and_api_id(
    make_sim: Callable[..., SimHarness],
) -> None:
    frozen_sim = make_sim(kiwoom_rate_limit_per_s=1)
    body = {"stk_cd": "005930"}
    assert frozen_sim.kiwoom("/api/dostk/stkinfo", "ka10001", body).status_code == 200
    assert frozen_sim.kiwoom("/api/dostk/stkinfo", "ka10001", body).status_code == 429
    key = f"KIWOOM:{frozen_sim.client.get('/__sim/calls').json()[-1]['appkey']}"
    assert _stats(frozen_sim)["rate_limit_rejections_by_key"] == {key: 1, f"{key}:ka10001": 1}


def test_secrets_are_never_echoed(frozen_sim: SimHarness, harness_defaults: Defaults) -> None:
    appkey, secret = harness_defaults.kis_appkey, harness_defaults.kis_secret
    token = frozen_sim.kis_token()
    condition = _add(frozen_sim, {"outage": {"duration_s": 60, "match": {"appkey": appkey}}})
    assert condition["match"] == {"appkey": "***"}
    _add(frozen_sim, {"error_rate": {"p": 0.5, "match": {"appkey": appkey}}})
    _add(frozen_sim, {"latency": {"base_ms": 1, "match": {"appkey": appkey}}})
    assert frozen_sim.kis_price().status_code == 503
    for path in ("/__sim/conditions", "/__sim/calls", "/__sim/stats", "/__sim/faults"):
        text = frozen_sim.client.get(path).text
        for hidden in (appkey, secret, token):
            assert hidden not in text, path


@pytest.mark.parametrize(
    "spec",
    [
        [],
        {},
        {"latency": 1},
        {"latency": {}, "outage": {}},
        {"nope": {}},
        {"latency": {"base_ms": -1}},
        {"latency": {"jitter_ms": True}},
        {"latency": {"jitter": 3}},
        {"latency": {"match": {"nope": "x"}}},
        {"error_rate": {}},
        {"error_rate": {"p": 1.5}},
        {"error_rate": {"p": 0.5, "action": "boom"}},
        {"error_rate": {"p": 0.5, "action": {"kind": "error"}}},
        {"outage": {"duration_s": "x"}},
        {"outage": {"duration_s": -1}},
    ],
)
def test_malformed_condition_specs_are_rejected(frozen_sim: SimHarness, spec: object) -> None:
    response = frozen_sim.client.post("/__sim/conditions", json=spec)
    assert response.status_code == 400
    assert "error" in response.json()


def test_malformed_configured_conditions_fail_at_start() -> None:
    with pytest.raises(ValueError, match="latency"):
        create_app(SimConfig(conditions=({"latency": {"base_ms": "slow"}},)))
