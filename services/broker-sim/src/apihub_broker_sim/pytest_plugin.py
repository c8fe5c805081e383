"""The simulator as pytest fixtures.

Enable them with ``pytest_plugins = ["apihub_broker_sim.pytest_plugin"]`` in a ``conftest.py``.

Fixtures:

``sim`` (session)
    A running :class:`~apihub_broker_sim.ThreadedSimServer` (``.url``, ``.clock``, its state),
    shared by the whole session.
``sim_url`` (function)
    ``sim.url`` without a trailing slash, after ``POST /__sim/reset`` (recorded calls, tokens,
    faults and conditions cleared), so every test starts with a fresh broker.
``sim_admin`` (function, async)
    An ``httpx.AsyncClient`` on ``sim_url`` for the ``/__sim`` admin API, closed after the test.

Needs the ``pytest`` extra (``apihub-broker-sim[pytest]``: pytest and httpx).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from ._server import ThreadedSimServer


@pytest.fixture(scope="session")
def sim() -> Iterator[ThreadedSimServer]:
    """The broker simulator, running in a thread for the whole session."""
    with ThreadedSimServer() as server:
        yield server


@pytest.fixture
def sim_url(sim: ThreadedSimServer) -> str:
    """The simulator's base URL, after clearing its recorded calls, tokens and faults."""
    url = str(sim.url).rstrip("/")
    httpx.post(f"{url}/__sim/reset", timeout=10.0).raise_for_status()
    return url


@pytest.fixture
async def sim_admin(sim_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the simulator's base URL, for its ``/__sim`` admin API."""
    async with httpx.AsyncClient(base_url=sim_url, timeout=10.0) as client:
        yield client
