"""A simulator with a state file remembers tokens and issuance windows across a restart, as a
broker does; the file never holds a token."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx


class SimHarness(Protocol):
    """The conftest's simulator harness, as these tests use it."""

    server: Any
    client: httpx.Client

    def kis_issue(self, appkey: str | None = None) -> httpx.Response: ...
    def kis_headers(self, tr_id: str, token: str | None = None) -> dict[str, str]: ...
    def kiwoom_issue(self) -> httpx.Response: ...
    def kiwoom(
        self, path: str, api_id: str, body: dict[str, Any], *, token: str | None = None
    ) -> httpx.Response: ...


Make = Callable[..., SimHarness]
PRICE = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}


def _kis_price(sim: SimHarness, token: str) -> dict[str, Any]:
    reply = sim.client.get(
        "/uapi/domestic-stock/v1/quotations/inquire-price",
        params=PRICE,
        headers=sim.kis_headers("FHKST01010100", token=token),
    )
    body: dict[str, Any] = reply.json()
    return body


def _kiwoom_info(sim: SimHarness, token: str) -> dict[str, Any]:
    body: dict[str, Any] = sim.kiwoom(
        "/api/dostk/stkinfo", "ka10001", {"stk_cd": "005930"}, token=token
    ).json()
    return body


def test_a_restarted_simulator_keeps_the_tokens_it_issued(make_sim: Make, tmp_path: Path) -> None:
    state = tmp_path / "sim-state.json"
    first = make_sim(state_file=state)
    kis = first.kis_issue().json()["access_token"]
    old_kiwoom = first.kiwoom_issue().json()["token"]
    kiwoom = first.kiwoom_issue().json()["token"]  # revokes the first
    first.server.stop()

    second = make_sim(state_file=state)
    assert _kis_price(second, kis)["rt_cd"] == "0"
    assert _kiwoom_info(second, kiwoom)["return_code"] == 0
    assert _kiwoom_info(second, old_kiwoom)["return_code"] != 0, "a revoked token stays dead"
    # The KIS issuance window survived too: a second tokenP within the minute is refused.
    assert second.kis_issue().json()["error_code"] == "EGW00133"
    # A Kiwoom issuance after the restart still kills the token issued before it.
    newest = second.kiwoom_issue().json()["token"]
    assert _kiwoom_info(second, kiwoom)["return_code"] != 0
    assert _kiwoom_info(second, newest)["return_code"] == 0

    text = state.read_text()
    for token in (kis, old_kiwoom, kiwoom, newest):
        assert token not in text
    assert state.stat().st_mode & 0o077 == 0, "only the owner may read it"


def test_without_a_state_file_a_restart_forgets(make_sim: Make, tmp_path: Path) -> None:
    first = make_sim()
    kis = first.kis_issue().json()["access_token"]
    first.server.stop()
    second = make_sim()
    assert _kis_price(second, kis)["msg_cd"] == "EGW00121"
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_state_file_is_a_fresh_start(make_sim: Make, tmp_path: Path) -> None:
    state = tmp_path / "sim-state.json"
    for junk in ("not json", json.dumps({"version": 99}), json.dumps({"version": 1})):
        state.write_text(junk)
        sim = make_sim(state_file=state)
        assert sim.kis_issue().status_code == 200
        sim.server.stop()


def test_a_reset_forgets_the_file_too(make_sim: Make, tmp_path: Path) -> None:
    state = tmp_path / "sim-state.json"
    first = make_sim(state_file=state)
    kis = first.kis_issue().json()["access_token"]
    first.client.post("/__sim/reset").raise_for_status()
    first.server.stop()
    second = make_sim(state_file=state)
    assert _kis_price(second, kis)["msg_cd"] == "EGW00121"
    assert second.kis_issue().status_code == 200  # no window left over either
