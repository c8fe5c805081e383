"""Shared fixtures: a simulator on a real loopback socket plus small client helpers."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from apihub_broker_sim import SimConfig, ThreadedSimServer

# --import-mode=importlib keeps test directories off sys.path; the helpers live next door.
sys.path.insert(0, str(Path(__file__).parent))

from broker_sim_harness import NOW, Harness


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_sim() -> Iterator[Callable[..., Harness]]:
    """Start simulators with custom settings; all are stopped after the test."""
    started: list[Harness] = []

    def make(**overrides: Any) -> Harness:
        settings: dict[str, Any] = {"start_time": NOW, "frozen": True}
        settings.update(overrides)
        server = ThreadedSimServer(SimConfig(**settings))
        server.start()
        harness = Harness(server)
        started.append(harness)
        return harness

    yield make
    for harness in started:
        harness.client.close()
        harness.server.stop()


@pytest.fixture
def frozen_sim(make_sim: Callable[..., Harness]) -> Harness:
    """A simulator frozen at Friday 2025-03-21 13:00:30 KST with default settings."""
    return make_sim()
