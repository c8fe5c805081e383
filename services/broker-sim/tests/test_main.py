"""``python -m apihub_broker_sim`` wires its flags into the config."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette

from apihub_broker_sim import SimState
from apihub_broker_sim import __main__ as cli


def test_main_builds_the_configured_app(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(app: Starlette, **kwargs: Any) -> None:
        seen["state"] = app.state.sim
        seen.update(kwargs)

    monkeypatch.setattr(cli.uvicorn, "run", fake_run)
    cli.main(["--port", "9999", "--seed", "5", "--start", "2025-03-21T10:00:00+09:00", "--frozen"])
    state: SimState = seen["state"]
    assert seen["port"] == 9999
    assert state.config.seed == 5
    assert state.clock.frozen
    assert state.clock.now().isoformat() == "2025-03-21T10:00:00+09:00"


def test_main_latency_flags_become_a_condition(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(cli.uvicorn, "run", lambda app, **kwargs: seen.update(app=app))
    cli.main(["--latency-ms", "5", "--jitter-ms", "30"])
    state: SimState = seen["app"].state.sim
    assert state.config.conditions == ({"latency": {"base_ms": 5.0, "jitter_ms": 30.0}},)
    (latency,) = state.conditions.view()["latency"]
    assert (latency["base_ms"], latency["jitter_ms"]) == (5.0, 30.0)
    cli.main([])
    assert seen["app"].state.sim.config.conditions == ()
