"""The simulator's pytest fixtures (registered by the root conftest)."""

from __future__ import annotations

import httpx
import pytest

from apihub_broker_sim import ThreadedSimServer


def test_sim_url_is_the_reset_simulator(sim: ThreadedSimServer, sim_url: str) -> None:
    assert sim_url == str(sim.url).rstrip("/")
    assert not sim_url.endswith("/")
    response = httpx.post(f"{sim_url}/__sim/reset", timeout=10.0)
    assert response.is_success


@pytest.mark.anyio
async def test_sim_admin_talks_to_the_same_simulator(
    sim_admin: httpx.AsyncClient, sim_url: str
) -> None:
    assert str(sim_admin.base_url).rstrip("/") == sim_url
    response = await sim_admin.get("/__sim/stats")
    assert response.status_code == 200
