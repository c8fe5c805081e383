"""Token rules: the KIS issuance window, same-token reissue, expiry and admin hooks."""

from __future__ import annotations

from collections.abc import Callable

from broker_sim_harness import APPKEY, KW_APPKEY, Harness

from apihub_broker_sim import appkey_fingerprint


def test_kis_issuance_window_and_same_token_within_six_hours(sim: Harness) -> None:
    first = sim.kis_issue()
    assert first.status_code == 200
    token = first.json()["access_token"]
    throttled = sim.kis_issue()
    assert throttled.status_code == 403
    assert throttled.json() == {
        "error_code": "EGW00133",
        "error_description": "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)",
    }
    sim.server.clock.advance(59)
    assert sim.kis_issue().status_code == 403  # still inside the window
    sim.server.clock.advance(2)
    again = sim.kis_issue()
    assert again.status_code == 200
    assert again.json()["access_token"] == token
    assert again.json()["expires_in"] == 86400 - 61
    assert again.json()["access_token_token_expired"] == first.json()["access_token_token_expired"]
    other_app = sim.kis_issue(appkey="PS" + "q" * 34)
    assert other_app.status_code == 200  # the window is per appkey
    sim.server.clock.advance(6 * 3600)
    fresh = sim.kis_issue()
    assert fresh.json()["access_token"] != token
    assert fresh.json()["expires_in"] == 86400
    # Older KIS tokens stay valid until they expire.
    old_headers = sim.kis_headers("FHKST01010100", token=token)
    old = sim.client.get(
        "/uapi/domestic-stock/v1/quotations/inquire-price",
        params={"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"},
        headers=old_headers,
    )
    assert old.json()["rt_cd"] == "0"
    stats = sim.client.get("/__sim/stats").json()
    fingerprint = appkey_fingerprint(APPKEY)
    assert stats["token_issuances"]["KIS"][fingerprint] == 3
    assert stats["token_rejections"]["KIS"][fingerprint] == 2
    assert APPKEY not in str(stats)


def test_configurable_window(make_sim: Callable[..., Harness]) -> None:
    sim = make_sim(token_issue_window_s=300.0, token_lifetime_s=3600)
    assert sim.kis_issue().json()["expires_in"] == 3600
    sim.server.clock.advance(120)
    assert sim.kis_issue().status_code == 403
    sim.server.clock.advance(181)
    assert sim.kis_issue().status_code == 200


def test_admin_expire_and_revoke(sim: Harness) -> None:
    sim.kis_token()
    sim.kiwoom_token()
    expire = sim.client.post("/__sim/tokens/expire", json={"provider": "KIS", "appkey": APPKEY})
    assert expire.json() == {"affected": 1}
    assert sim.kis_price().json()["msg_cd"] == "EGW00123"
    revoke = sim.client.post("/__sim/tokens/revoke", json={"provider": "kiwoom"})
    assert revoke.json() == {"affected": 1}
    info = sim.kiwoom("/api/dostk/stkinfo", "ka10001", {"stk_cd": "005930"}).json()
    assert "[8005:" in info["return_msg"]
    assert sim.client.post("/__sim/tokens/revoke", json={"provider": "X"}).status_code == 400
    assert sim.client.post("/__sim/tokens/revoke", content=b"[]").status_code == 400
    bad_key = sim.client.post("/__sim/tokens/expire", json={"provider": "KIS", "appkey": 1})
    assert bad_key.status_code == 400
    # After the window, an expired KIS token is replaced, not handed out again.
    sim.server.clock.advance(61)
    sim.forget_tokens()
    assert sim.kis_price().json()["rt_cd"] == "0"


def test_calls_never_show_secrets_or_tokens(sim: Harness) -> None:
    token = sim.kis_token()
    kw_token = sim.kiwoom_token()
    sim.kis_price()
    sim.kiwoom("/api/dostk/stkinfo", "ka10001", {"stk_cd": "005930"})
    calls = sim.client.get("/__sim/calls").text
    for secret in (APPKEY, KW_APPKEY, token, kw_token, "s" * 40, "k" * 40):
        assert secret not in calls
    records = sim.client.get("/__sim/calls", params={"provider": "kiwoom"}).json()
    assert [r["tr_id"] for r in records] == ["au10001", "ka10001"]
    assert records[1]["appkey"] == appkey_fingerprint(KW_APPKEY)
    assert (
        sim.client.get("/__sim/calls", params={"tr_id": "FHKST01010100"}).json()[0]["status"] == 200
    )
    assert len(sim.client.get("/__sim/calls", params={"limit": "1"}).json()) == 1
    assert sim.client.delete("/__sim/calls").json() == {"cleared": True}
    assert sim.client.get("/__sim/calls").json() == []
