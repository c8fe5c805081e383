"""The simulated clock: the class itself, the admin API, and "as of now" answers."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta
from typing import Protocol

import httpx
import pytest

from apihub_broker_sim import KST, SimClock, ThreadedSimServer
from apihub_broker_sim import _clock as clock_module


class SimHarness(Protocol):
    """The conftest's ``frozen_sim`` harness, as far as these tests use it."""

    client: httpx.Client

    def kis_token(self) -> str: ...
    def kis_price(self) -> httpx.Response: ...
    def kis_minutes(self, hour: str) -> httpx.Response: ...


class Defaults(Protocol):
    """The conftest's ``harness_defaults``, as far as these tests use it."""

    start_time: datetime


class FakeMonotonic:
    """A ``time`` stand-in for the clock module whose ``monotonic()`` moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_sim_clock_freeze_set_advance_unfreeze(monkeypatch: pytest.MonkeyPatch) -> None:
    host = FakeMonotonic()
    monkeypatch.setattr(clock_module, "time", host)
    clock = SimClock(datetime(2025, 3, 21, 9, 0), frozen=True)  # naive means KST
    assert clock.now() == datetime(2025, 3, 21, 9, 0, tzinfo=KST)
    assert clock.frozen
    host.now += 5
    assert clock.now() == datetime(2025, 3, 21, 9, 0, tzinfo=KST), "frozen: the host clock moved"
    clock.advance(90)
    assert clock.now() == datetime(2025, 3, 21, 9, 1, 30, tzinfo=KST)
    clock.set(datetime(2025, 3, 21, 0, 0, tzinfo=UTC))
    assert clock.now() == datetime(2025, 3, 21, 9, 0, tzinfo=KST)
    assert clock.now().utcoffset() == timedelta(hours=9)
    clock.unfreeze()
    assert not clock.frozen
    assert clock.now() == datetime(2025, 3, 21, 9, 0, tzinfo=KST), "runs on from where it stood"
    host.now += 1.5
    assert clock.now() == datetime(2025, 3, 21, 9, 0, 1, 500_000, tzinfo=KST)
    clock.advance(60)  # a running clock advances too, and keeps running
    host.now += 1
    assert clock.now() == datetime(2025, 3, 21, 9, 1, 2, 500_000, tzinfo=KST)

    before = datetime.now(KST)
    running = SimClock()
    after = datetime.now(KST)
    assert before <= running.now() <= after, "by default it starts at the real current time"


def test_a_clock_rate_runs_simulated_time_faster(monkeypatch: pytest.MonkeyPatch) -> None:
    host = FakeMonotonic()
    monkeypatch.setattr(clock_module, "time", host)
    start = datetime(2025, 3, 21, 9, 0, tzinfo=KST)
    clock = SimClock(start, rate=10)
    assert clock.rate == 10.0
    host.now += 6
    assert clock.now() == start + timedelta(minutes=1), "6 real seconds are a simulated minute"
    assert clock.pacing_now() == start + timedelta(seconds=6), "pacing keeps real speed"
    clock.set_rate(0.5)  # no jump at the change
    assert clock.now() == start + timedelta(minutes=1)
    host.now += 4
    assert clock.now() == start + timedelta(minutes=1, seconds=2)
    # Freezing, setting and advancing keep the rate; a frozen clock ignores it.
    clock.set(datetime(2025, 3, 21, 10, 0), frozen=True)
    host.now += 100
    assert clock.now() == datetime(2025, 3, 21, 10, 0, tzinfo=KST)
    clock.advance(30)
    clock.unfreeze()
    host.now += 2
    assert clock.now() == datetime(2025, 3, 21, 10, 0, 31, tzinfo=KST)
    assert clock.rate == 0.5
    for bad in (0, -1.0, float("inf"), float("nan"), True):
        with pytest.raises(ValueError, match="rate"):
            SimClock(start, rate=bad)
        with pytest.raises(ValueError, match="rate"):
            clock.set_rate(bad)
    assert clock.rate == 0.5


def test_pacing_time_moves_at_real_speed_and_with_explicit_jumps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = FakeMonotonic()
    monkeypatch.setattr(clock_module, "time", host)
    start = datetime(2025, 3, 21, 9, 0, tzinfo=KST)
    clock = SimClock(start, frozen=True, rate=100)
    host.now += 5
    assert clock.now() == start
    assert clock.pacing_now() == start + timedelta(seconds=5), "runs while the clock is frozen"
    clock.advance(61)
    assert clock.pacing_now() == start + timedelta(seconds=66), "an advance is a jump of both"
    clock.set(start - timedelta(days=1))  # 61 s of simulated time before: a day and 61 s back
    assert clock.pacing_now() == start + timedelta(seconds=5) - timedelta(days=1)
    clock.unfreeze()
    host.now += 1
    assert clock.now() == start - timedelta(days=1) + timedelta(seconds=100)
    assert clock.pacing_now() == start - timedelta(days=1) + timedelta(seconds=6)


def test_clock_endpoints(frozen_sim: SimHarness, harness_defaults: Defaults) -> None:
    start = harness_defaults.start_time
    assert frozen_sim.client.get("/__sim/health").json() == {"ok": True}
    assert frozen_sim.client.get("/__sim/clock").json() == {
        "now": start.isoformat(),
        "frozen": True,
        "rate": 1.0,
    }
    moved = frozen_sim.client.post("/__sim/clock", json={"advance_s": 30}).json()
    assert moved["now"] == "2025-03-21T13:01:00+09:00"
    set_to = frozen_sim.client.post(
        "/__sim/clock", json={"now": "2025-03-20T10:00:00+09:00"}
    ).json()
    assert set_to == {"now": "2025-03-20T10:00:00+09:00", "frozen": True, "rate": 1.0}
    running = frozen_sim.client.post("/__sim/clock", json={"frozen": False}).json()
    assert running["frozen"] is False
    refrozen = frozen_sim.client.post(
        "/__sim/clock", json={"now": "2025-03-21T13:00:30+09:00", "frozen": True}
    ).json()
    assert refrozen["now"] == start.isoformat()
    faster = frozen_sim.client.post("/__sim/clock", json={"rate": 10}).json()
    assert (faster["now"], faster["frozen"], faster["rate"]) == (start.isoformat(), True, 10.0)
    bad_bodies = (
        {"now": "yesterday"},
        {"advance_s": "x"},
        {"advance_s": True},
        {"frozen": "no"},
        {"rate": 0},
        {"rate": -2},
        {"rate": "fast"},
        {"rate": True},
        {"rate": 3, "advance_s": "x"},  # nothing of a refused body is applied
    )
    for bad in bad_bodies:
        assert frozen_sim.client.post("/__sim/clock", json=bad).status_code == 400, bad
    assert frozen_sim.client.get("/__sim/clock").json()["rate"] == 10.0
    assert frozen_sim.client.post("/__sim/clock", content=b"{").status_code == 400


def test_answers_follow_the_clock(frozen_sim: SimHarness) -> None:
    before = frozen_sim.kis_minutes("153000").json()
    assert before["output2"][0]["stck_cntg_hour"] == "130000"
    frozen_sim.client.post("/__sim/clock", json={"advance_s": 600})
    after = frozen_sim.kis_minutes("153000").json()
    assert after["output2"][0]["stck_cntg_hour"] in ("130900", "131000")
    assert int(after["output1"]["acml_vol"]) > int(before["output1"]["acml_vol"])
    # Bars that were complete before do not change as time passes.
    old = {r["stck_cntg_hour"]: r for r in before["output2"][1:]}
    for row in after["output2"]:
        if row["stck_cntg_hour"] in old:
            assert row == old[row["stck_cntg_hour"]]


def test_reset_clears_everything_but_the_clock(frozen_sim: SimHarness) -> None:
    frozen_sim.kis_token()
    frozen_sim.client.post("/__sim/faults", json={"match": {}, "count": -1, "action": "delay"})
    frozen_sim.client.post("/__sim/clock", json={"advance_s": 5})
    assert frozen_sim.client.post("/__sim/reset").json() == {"reset": True}
    assert frozen_sim.client.get("/__sim/faults").json() == []
    assert frozen_sim.client.get("/__sim/stats").json()["total_calls"] == 0
    assert frozen_sim.kis_price().json()["msg_cd"] == "EGW00121"  # the token is gone
    assert frozen_sim.client.get("/__sim/clock").json()["now"] == "2025-03-21T13:00:35+09:00"


def test_the_date_header_follows_the_simulated_clock() -> None:
    with ThreadedSimServer() as server, httpx.Client(base_url=server.url) as client:
        client.post(
            "/__sim/clock", json={"now": "2025-03-21T16:00:00+09:00", "frozen": True}
        ).raise_for_status()
        reply = client.get("/__sim/clock")
        assert reply.headers.get_list("date") == ["Fri, 21 Mar 2025 07:00:00 GMT"]
        stamp = email.utils.parsedate_to_datetime(reply.headers["date"])
        assert stamp.isoformat() == "2025-03-21T07:00:00+00:00"
