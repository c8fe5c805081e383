"""Token rules: the KIS issuance window, same-token reissue, expiry and admin hooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import httpx

from apihub_broker_sim import ThreadedSimServer, appkey_fingerprint


class SimHarness(Protocol):
    """The conftest's simulator harness (``frozen_sim``, ``make_sim``), as these tests use it."""

    server: ThreadedSimServer
    client: httpx.Client

    def forget_tokens(self) -> None: ...
    def kis_issue(self, appkey: str | None = None) -> httpx.Response: ...
    def kis_token(self) -> str: ...
    def kis_headers(self, tr_id: str, token: str | None = None) -> dict[str, str]: ...
    def kis_price(self) -> httpx.Response: ...
    def kiwoom_token(self) -> str: ...
    def kiwoom(self, path: str, api_id: str, body: dict[str, Any]) -> httpx.Response: ...


class Defaults(Protocol):
    """The conftest's ``harness_defaults``, as far as these tests use it."""

    kis_appkey: str
    kis_secret: str
    kiwoom_appkey: str
    kiwoom_secret: str


def test_kis_issuance_window_and_same_token_within_six_hours(
    frozen_sim: SimHarness, harness_defaults: Defaults
) -> None:
    first = frozen_sim.kis_issue()
    assert first.status_code == 200
    token = first.json()["access_token"]
    throttled = frozen_sim.kis_issue()
    assert throttled.status_code == 403
    assert throttled.json() == {
        "error_code": "EGW00133",
        "error_description": "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)",
    }
    frozen_sim.server.clock.advance(59)
    assert frozen_sim.kis_issue().status_code == 403  # still inside the window
    frozen_sim.server.clock.advance(2)
    again = frozen_sim.kis_issue()
    assert again.status_code == 200
    assert again.json()["access_token"] == token
    assert again.json()["expires_in"] == 86400 - 61
    assert again.json()["access_token_token_expired"] == first.json()["access_token_token_expired"]
    other_app = frozen_sim.kis_issue(appkey="PS" + "q" * 34)
    assert other_app.status_code == 200  # the window is per appkey
    frozen_sim.server.clock.advance(6 * 3600)
    fresh = frozen_sim.kis_issue()
    assert fresh.json()["access_token"] != token
    assert fresh.json()["expires_in"] == 86400
    # Older KIS tokens stay valid until they expire.
    old_headers = frozen_sim.kis_headers("FHKST01010100", token=token)
    old = frozen_sim.client.get(
        "/uapi/domestic-stock/v1/quotations/inquire-price",
        params={"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"},
        headers=old_headers,
    )
    assert old.json()["rt_cd"] == "0"
    stats = frozen_sim.client.get("/__sim/stats").json()
    fingerprint = appkey_fingerprint(harness_defaults.kis_appkey)
    assert stats["token_issuances"]["KIS"][fingerprint] == 3
    assert stats["token_rejections"]["KIS"][fingerprint] == 2
    assert harness_defaults.kis_appkey not in str(stats)


def test_configurable_window(make_sim: Callable[..., SimHarness]) -> None:
    frozen_sim = make_sim(token_issue_window_s=300.0, token_lifetime_s=3600)
    assert frozen_sim.kis_issue().json()["expires_in"] == 3600
    frozen_sim.server.clock.advance(120)
    assert frozen_sim.kis_issue().status_code == 403
    frozen_sim.server.clock.advance(181)
    assert frozen_sim.kis_issue().status_code == 200


def test_admin_expire_and_revoke(frozen_sim: SimHarness, harness_defaults: Defaults) -> None:
    frozen_sim.kis_token()
    frozen_sim.kiwoom_token()
    expire = frozen_sim.client.post(
        "/__sim/tokens/expire", json={"provider": "KIS", "appkey": harness_defaults.kis_appkey}
    )
    assert expire.json() == {"affected": 1}
    assert frozen_sim.kis_price().json()["msg_cd"] == "EGW00123"
    revoke = frozen_sim.client.post("/__sim/tokens/revoke", json={"provider": "kiwoom"})
    assert revoke.json() == {"affected": 1}
    info = frozen_sim.kiwoom("/api/dostk/stkinfo", "ka10001", {"stk_cd": "005930"}).json()
    assert "[8005:" in info["return_msg"]
    assert frozen_sim.client.post("/__sim/tokens/revoke", json={"provider": "X"}).status_code == 400
    assert frozen_sim.client.post("/__sim/tokens/revoke", content=b"[]").status_code == 400
    bad_key = frozen_sim.client.post("/__sim/tokens/expire", json={"provider": "KIS", "appkey": 1})
    assert bad_key.status_code == 400
    # After the window, an expired KIS token is replaced, not handed out again.
    frozen_sim.server.clock.advance(61)
    frozen_sim.forget_tokens()
    assert frozen_sim.kis_price().json()["rt_cd"] == "0"


def test_calls_never_show_secrets_or_tokens(
    frozen_sim: SimHarness, harness_defaults: Defaults
) -> None:
    token = frozen_sim.kis_token()
    kw_token = frozen_sim.kiwoom_token()
    frozen_sim.kis_price()
    frozen_sim.kiwoom("/api/dostk/stkinfo", "ka10001", {"stk_cd": "005930"})
    calls = frozen_sim.client.get("/__sim/calls").text
    d = harness_defaults
    # Not even the first 40 characters of a secret.
    secrets = (d.kis_secret[:40], d.kiwoom_secret[:40])
    for secret in (d.kis_appkey, d.kiwoom_appkey, token, kw_token, *secrets):
        assert secret not in calls
    records = frozen_sim.client.get("/__sim/calls", params={"provider": "kiwoom"}).json()
    assert [r["tr_id"] for r in records] == ["au10001", "ka10001"]
    assert records[1]["appkey"] == appkey_fingerprint(d.kiwoom_appkey)
    assert (
        frozen_sim.client.get("/__sim/calls", params={"tr_id": "FHKST01010100"}).json()[0]["status"]
        == 200
    )
    assert len(frozen_sim.client.get("/__sim/calls", params={"limit": "1"}).json()) == 1
    assert frozen_sim.client.delete("/__sim/calls").json() == {"cleared": True}
    assert frozen_sim.client.get("/__sim/calls").json() == []
