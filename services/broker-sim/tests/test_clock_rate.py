"""A clock that runs faster than real time: what follows it (market time, token lifetimes,
simulated windows) and what does not (rate limits, the KIS token issuance window).

The running-clock tests wait on conditions with a bound (``wait_until``), never on sleeps, and
assert nothing about wall-clock durations beyond "less than the real limit has passed".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx
import pytest

from apihub_broker_sim import KST, SimClock, SimConfig, ThreadedSimServer
from apihub_broker_sim import __main__ as cli
from apihub_broker_sim import _clock as clock_module
from apihub_broker_sim._tokens import TokenState, TokenStore
from apihub_testing import wait_until

START = datetime(2025, 3, 21, 13, 0, 30, tzinfo=KST)


class SimHarness(Protocol):
    """The conftest's simulator harness (``make_sim``), as these tests use it."""

    server: ThreadedSimServer
    client: httpx.Client

    def kis_issue(self) -> httpx.Response: ...
    def kis_token(self) -> str: ...
    def kis_price(self) -> httpx.Response: ...
    def kis_headers(self, tr_id: str, token: str | None = None) -> dict[str, str]: ...


class FakeMonotonic:
    """A ``time`` stand-in for the clock module whose ``monotonic()`` moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def _sim_now(sim: SimHarness) -> datetime:
    return datetime.fromisoformat(sim.client.get("/__sim/clock").json()["now"])


def test_the_token_window_keeps_real_time_and_the_lifetime_follows_the_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = FakeMonotonic()
    monkeypatch.setattr(clock_module, "time", host)
    clock = SimClock(START, rate=100)
    tokens = TokenStore(SimConfig(token_issue_window_s=60, token_lifetime_s=86400), clock)
    first = tokens.kis_issue("PSkey", "secret")
    assert first is not None
    assert first.expires_at == START + timedelta(days=1), "the lifetime is simulated time"
    host.now += 30  # 50 simulated minutes, 30 real seconds
    assert tokens.kis_issue("PSkey", "secret") is None, "the window is real time"
    host.now += 30
    again = tokens.kis_issue("PSkey", "secret")
    assert again is not None, "a real minute later the window is over"
    assert again.token == first.token, "the same token within 6 simulated hours"
    assert tokens.check("KIS", first.token)[0] is TokenState.VALID
    host.now += 804  # 86,400 simulated seconds after the issue: a real quarter of an hour
    assert tokens.check("KIS", first.token)[0] is TokenState.EXPIRED
    fresh = tokens.kis_issue("PSkey", "secret")
    assert fresh is not None
    assert fresh.token != first.token, "an expired token is not handed out again"
    # An explicit move of the clock counts as time waited, at any rate.
    assert tokens.kis_issue("PSkey", "secret") is None
    clock.advance(61)
    assert tokens.kis_issue("PSkey", "secret") is not None


def test_rate_limits_stay_in_real_time(make_sim: Callable[..., SimHarness]) -> None:
    sim = make_sim(frozen=False, clock_rate=1000, kis_rate_limit_per_s=1)
    assert sim.client.get("/__sim/clock").json()["rate"] == 1000.0
    before = _sim_now(sim)
    sim.kis_token()
    assert sim.kis_price().json()["rt_cd"] == "0"
    wait_until(
        lambda: _sim_now(sim) - before > timedelta(seconds=5),
        timeout=10,
        message="the fast clock did not run",
    )
    # More than a simulated second has passed, far less than a real one.
    limited = sim.kis_price()
    assert (limited.status_code, limited.json()["msg_cd"]) == (500, "EGW00201")


def test_the_issuance_window_is_not_shortened_by_a_fast_clock(
    make_sim: Callable[..., SimHarness],
) -> None:
    sim = make_sim(frozen=False, clock_rate=1000)
    before = _sim_now(sim)
    assert sim.kis_issue().status_code == 200
    wait_until(
        lambda: _sim_now(sim) - before > timedelta(seconds=120),
        timeout=10,
        message="the fast clock did not run",
    )
    # Two simulated minutes later, but well inside a real minute: still throttled.
    assert sim.kis_issue().json()["error_code"] == "EGW00133"
    sim.client.post("/__sim/clock", json={"advance_s": 61}).raise_for_status()
    assert sim.kis_issue().status_code == 200


def test_token_lifetimes_and_simulated_windows_run_at_the_rate(
    make_sim: Callable[..., SimHarness],
) -> None:
    sim = make_sim(frozen=False, clock_rate=1000, token_lifetime_s=120)
    sim.client.post("/__sim/conditions", json={"outage": {"for_s": 60}}).raise_for_status()
    assert sim.kis_issue().status_code == 503, "the outage holds every call, token ones too"
    wait_until(
        lambda: sim.client.get("/__sim/conditions").json()["outage"] == [],
        timeout=10,
        message="a 60 s simulated outage did not end at 1000x",
    )
    issued = sim.kis_issue().json()
    assert issued["expires_in"] <= 120
    headers = sim.kis_headers("FHKST01010100", issued["access_token"])

    def expired() -> bool:
        answer = sim.client.get(
            "/uapi/domestic-stock/v1/quotations/inquire-price",
            params={"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"},
            headers=headers,
        )
        return bool(answer.json()["msg_cd"] == "EGW00123")

    wait_until(expired, timeout=10, message="a 120 s token did not expire at 1000x")


def test_the_command_line_takes_a_clock_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(cli.uvicorn, "run", lambda app, **kwargs: seen.update(app=app))
    cli.main(["--clock-rate", "10", "--start", "2025-03-21T09:00:00+09:00", "--frozen"])
    state = seen["app"].state.sim
    assert (state.config.clock_rate, state.clock.rate) == (10.0, 10.0)
    for bad in ("0", "-3", "fast", "inf", "nan"):
        with pytest.raises(SystemExit):
            cli.main(["--clock-rate", bad])


def test_a_bad_configured_rate_fails_at_start() -> None:
    with pytest.raises(ValueError, match="rate"), ThreadedSimServer(SimConfig(clock_rate=0)):
        pass
