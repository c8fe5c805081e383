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
