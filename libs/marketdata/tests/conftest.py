"""Fixtures for the market-data tests: broker answers from ``fixtures/`` (synthetic values,
the brokers' real field names; generated with the simulator and edited where a case needs it)
and the KRX calendar, built once per session."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apihub_marketdata import TradingCalendar, krx_calendar

FIXTURES = Path(__file__).parent / "fixtures"

Answer = dict[str, Any]


@pytest.fixture(scope="session")
def krx() -> TradingCalendar:
    """The real KRX calendar (exchange-calendars plus the built-in overrides)."""
    return krx_calendar()


@pytest.fixture
def answer(krx: TradingCalendar) -> Callable[[str], Answer]:
    """A fixture answer as a fresh, editable dict (the calendar is warmed first)."""

    def load(name: str) -> Answer:
        data: Answer = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
        return data

    return load


@pytest.fixture
def raw() -> Callable[[str], bytes]:
    """A fixture answer's bytes exactly as stored."""
    return lambda name: (FIXTURES / f"{name}.json").read_bytes()
