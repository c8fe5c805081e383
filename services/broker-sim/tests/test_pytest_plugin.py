"""The simulator's pytest fixtures (registered by the root conftest; an inner session here)."""

from __future__ import annotations

import textwrap

import httpx
import pytest

pytest_plugins = ["pytester"]

INNER_CONFTEST = 'pytest_plugins = ["apihub_broker_sim.pytest_plugin"]\n'

INNER_TESTS = """
import httpx


def _url(sim_url, path):
    return f"{sim_url}{path}"


def test_leaves_state_behind(sim, sim_url, tmp_path_factory):
    assert sim_url == str(sim.url).rstrip("/")
    assert not sim_url.endswith("/")
    (tmp_path_factory.getbasetemp() / "first-url").write_text(sim_url)
    fault = {"match": {"path": "/oauth2/tokenP"}, "count": -1, "action": "http_503"}
    httpx.post(_url(sim_url, "/__sim/faults"), json=fault).raise_for_status()
    latency = {"latency": {"base_ms": 1}}
    httpx.post(_url(sim_url, "/__sim/conditions"), json=latency).raise_for_status()
    assert httpx.post(_url(sim_url, "/oauth2/tokenP"), json={}).status_code == 503
    assert httpx.get(_url(sim_url, "/__sim/stats")).json()["total_calls"] == 1


def test_starts_with_a_reset_simulator(sim, sim_url, tmp_path_factory):
    assert sim_url == (tmp_path_factory.getbasetemp() / "first-url").read_text(), "one per session"
    assert httpx.get(_url(sim_url, "/__sim/faults")).json() == []
    assert httpx.get(_url(sim_url, "/__sim/conditions")).json()["latency"] == []
    assert httpx.get(_url(sim_url, "/__sim/calls")).json() == []
    assert httpx.get(_url(sim_url, "/__sim/stats")).json()["total_calls"] == 0
"""


@pytest.mark.timeout(120)  # a fresh interpreter builds the KRX calendar (seconds) first
def test_sim_url_is_the_reset_simulator(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=textwrap.dedent(INNER_TESTS))
    # Node ids run in the order given: the second test comes after the first one's mess.
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-W",
        "error",
        "test_inner.py::test_leaves_state_behind",
        "test_inner.py::test_starts_with_a_reset_simulator",
        timeout=90,
    )
    result.assert_outcomes(passed=2)


@pytest.mark.anyio
async def test_sim_admin_talks_to_the_same_simulator(
    sim_admin: httpx.AsyncClient, sim_url: str
) -> None:
    assert str(sim_admin.base_url).rstrip("/") == sim_url
    armed = await sim_admin.post("/__sim/faults", json={"match": {}, "action": "reset"})
    assert armed.status_code == 201
    async with httpx.AsyncClient() as other:
        listed = (await other.get(f"{sim_url}/__sim/faults")).json()
    assert [fault["id"] for fault in listed] == [armed.json()["id"]]
