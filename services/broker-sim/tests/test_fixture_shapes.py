"""The simulator answers with the same keys and value types as the recorded fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import httpx


class SimHarness(Protocol):
    """The conftest's ``frozen_sim`` harness, as far as these tests use it."""

    def kis_minutes(self, hour: str) -> httpx.Response: ...
    def kiwoom(self, path: str, api_id: str, body: dict[str, Any]) -> httpx.Response: ...


FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "api_responses"


def _shape(value: Any) -> Any:
    """Keys and leaf types, with lists reduced to the shape of their first item."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def test_kis_minute_chart_matches_the_fixture(frozen_sim: SimHarness) -> None:
    expected = _load("kis_candle_response.json")
    actual = frozen_sim.kis_minutes("130000").json()
    assert _shape(actual) == _shape(expected)
    assert list(actual) == list(expected)
    assert len(actual["output2"]) == 30


def test_kiwoom_daily_chart_matches_the_fixture(frozen_sim: SimHarness) -> None:
    expected = _load("kiwoom_candle_response.json")
    body = {"stk_cd": "005930", "base_dt": "20250321", "upd_stkpc_tp": "1"}
    actual = frozen_sim.kiwoom("/api/dostk/chart", "ka10081", body).json()
    assert _shape(actual) == _shape(expected)
    assert list(actual) == list(expected)
