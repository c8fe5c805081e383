"""KiwoomClient against ``httpx.MockTransport``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from apihub_brokers import KiwoomClient, TrSpec, lookup_tr
from apihub_core import (
    Provider,
    UpstreamAuthError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTransient,
)
from apihub_runtime import AccessToken, AccountConfig

pytestmark = pytest.mark.anyio

CHART_BODY = (
    b'{"stk_cd":"005930","stk_dt_pole_chart_qry":[{"cur_prc":"71500","dt":"20250321"}],'
    b'"return_code":0,"return_msg":"ok"}'
)
DAILY = {"stk_cd": "005930", "base_dt": "20250321", "upd_stkpc_tp": "1"}


def spec(tr_id: str) -> TrSpec:
    found = lookup_tr(Provider.KIWOOM, tr_id)
    assert found is not None
    return found


async def test_first_page_posts_the_body_with_api_id(
    kiwoom: KiwoomClient, broker, kiwoom_account: AccountConfig, token: AccessToken
) -> None:
    broker.reply = lambda _: httpx.Response(
        200,
        content=CHART_BODY,
        headers={"api-id": "ka10081", "cont-yn": "Y", "next-key": "K20250101", "server": "x"},
    )
    reply = await kiwoom.call(spec("ka10081"), DAILY, account=kiwoom_account, token=token)
    sent = broker.last
    assert (sent.method, str(sent.url)) == ("POST", "https://api.kiwoom.test/api/dostk/chart")
    assert sent.headers["content-type"] == "application/json;charset=UTF-8"
    assert sent.headers["api-id"] == "ka10081"
    assert sent.headers["authorization"] == f"Bearer {token.value.reveal()}"
    assert "cont-yn" not in sent.headers
    assert "next-key" not in sent.headers
    assert "appkey" not in sent.headers
    assert json.loads(sent.content) == DAILY
    assert reply.body == CHART_BODY
    assert reply.headers == {"api-id": "ka10081", "cont-yn": "Y", "next-key": "K20250101"}
    assert reply.has_more
    assert reply.next_key == "K20250101"


async def test_next_page_sends_cont_yn_and_next_key(
    kiwoom: KiwoomClient, broker, kiwoom_account: AccountConfig, token: AccessToken
) -> None:
    broker.reply = lambda _: httpx.Response(
        200, content=CHART_BODY, headers={"api-id": "ka10081", "cont-yn": "N", "next-key": ""}
    )
    reply = await kiwoom.call(
        spec("ka10081"),
        DAILY,
        account=kiwoom_account,
        token=token,
        cont=True,
        next_key="K20250101",
    )
    assert broker.last.headers["cont-yn"] == "Y"
    assert broker.last.headers["next-key"] == "K20250101"
    assert json.loads(broker.last.content) == DAILY  # the same body on every page
    assert not reply.has_more
    assert reply.next_key == ""


async def test_order_posts_to_ordr(
    kiwoom: KiwoomClient, broker, kiwoom_account: AccountConfig, token: AccessToken
) -> None:
    broker.reply = lambda _: httpx.Response(
        200, json={"ord_no": "0000139", "return_code": 0, "return_msg": "매수주문이 완료되었습니다"}
    )
    params = {"dmst_stex_tp": "KRX", "stk_cd": "005930", "ord_qty": "1", "trde_tp": "3"}
    reply = await kiwoom.call(spec("kt10000"), params, account=kiwoom_account, token=token)
    assert broker.last.url.path == "/api/dostk/ordr"
    assert broker.last.headers["api-id"] == "kt10000"
    assert json.loads(broker.last.content) == params
    assert json.loads(reply.body)["ord_no"] == "0000139"
    assert reply.headers == {}
    assert not reply.has_more


async def test_issue_token(kiwoom: KiwoomClient, broker, kiwoom_account: AccountConfig) -> None:
    broker.reply = lambda _: httpx.Response(
        200,
        json={
            "expires_dt": "20241107083713",
            "token_type": "bearer",
            "token": "WQJCwyqInphKnR3bSRtB9NE1lv",
            "return_code": 0,
            "return_msg": "정상적으로 처리되었습니다",
        },
    )
    token = await kiwoom.issue_token(kiwoom_account)
    sent = broker.last
    assert (sent.method, sent.url.path) == ("POST", "/oauth2/token")
    assert sent.headers["content-type"] == "application/json;charset=UTF-8"
    assert "authorization" not in sent.headers
    assert json.loads(sent.content) == {
        "grant_type": "client_credentials",
        "appkey": kiwoom_account.app_key.reveal(),
        "secretkey": kiwoom_account.app_secret.reveal(),
    }
    assert token.value.reveal() == "WQJCwyqInphKnR3bSRtB9NE1lv"
    assert token.expires_at == datetime(2024, 11, 6, 23, 37, 13, tzinfo=UTC)
    assert token.token_type == "Bearer"


async def test_token_lifetime_is_measured_on_the_brokers_clock(
    kiwoom: KiwoomClient, broker, kiwoom_account: AccountConfig
) -> None:
    # The broker's Date says 2024-11-06 08:37:13 KST, a day before expires_dt: whatever our own
    # clock says, the token has about a day left.
    broker.reply = lambda _: httpx.Response(
        200,
        json={"expires_dt": "20241107083713", "token": "tok", "return_code": 0},
        headers={"date": "Tue, 05 Nov 2024 23:37:13 GMT"},
    )
    token = await kiwoom.issue_token(kiwoom_account)
    assert 86390 < token.expires_in() <= 86400


async def test_an_unparseable_date_header_falls_back_on_expires_dt(
    kiwoom: KiwoomClient, broker, kiwoom_account: AccountConfig
) -> None:
    broker.reply = lambda _: httpx.Response(
        200,
        json={"expires_dt": "20241107083713", "token": "tok", "return_code": 0},
        headers={"date": "yesterday-ish"},
    )
    token = await kiwoom.issue_token(kiwoom_account)
    assert token.expires_at == datetime(2024, 11, 6, 23, 37, 13, tzinfo=UTC)


@pytest.mark.parametrize(
    "body",
    [
        {"return_code": 0, "expires_dt": "20241107083713"},
        {"return_code": 0, "token": "WQJCwyqInph", "expires_dt": "2024-11-07"},
        {"return_code": 0, "token": "WQJCwyqInph"},
    ],
)
async def test_malformed_token_responses_are_transient(
    kiwoom: KiwoomClient, broker, kiwoom_account: AccountConfig, body: dict[str, object]
) -> None:
    broker.reply = lambda _: httpx.Response(200, json=body)
    with pytest.raises(UpstreamTransient, match="malformed token response") as info:
        await kiwoom.issue_token(kiwoom_account)
    assert "WQJCwyqInph" not in str(info.value)


async def test_token_with_bad_app_key_is_rejected(
    kiwoom: KiwoomClient, broker, kiwoom_account: AccountConfig
) -> None:
    broker.reply = lambda _: httpx.Response(
        200,
        json={
            "return_code": 3,
            "return_msg": "인증에 실패했습니다[8001:App Key와 Secret Key 검증에 실패했습니다]",
        },
    )
    with pytest.raises(UpstreamRejected) as info:
        await kiwoom.issue_token(kiwoom_account)
    assert (info.value.code, info.value.provider) == ("8001", "KIWOOM")


async def test_revoke_token(
    kiwoom: KiwoomClient, broker, kiwoom_account: AccountConfig, token: AccessToken
) -> None:
    broker.reply = lambda _: httpx.Response(
        200, json={"return_code": 0, "return_msg": "정상적으로 처리되었습니다"}
    )
    await kiwoom.revoke_token(kiwoom_account, token)
    assert broker.last.url.path == "/oauth2/revoke"
    assert json.loads(broker.last.content) == {
        "appkey": kiwoom_account.app_key.reveal(),
        "secretkey": kiwoom_account.app_secret.reveal(),
        "token": token.value.reveal(),
    }


async def test_auth_and_rate_errors_in_http_200(
    kiwoom: KiwoomClient, broker, kiwoom_account: AccountConfig, token: AccessToken
) -> None:
    broker.reply = lambda _: httpx.Response(
        200,
        json={
            "return_code": 3,
            "return_msg": "인증에 실패했습니다[8005:Token이 유효하지 않습니다]",
        },
    )
    with pytest.raises(UpstreamAuthError) as auth:
        await kiwoom.call(
            spec("ka10001"), {"stk_cd": "005930"}, account=kiwoom_account, token=token
        )
    assert (auth.value.code, auth.value.tr_id, auth.value.status) == ("8005", "ka10001", 200)
    broker.reply = lambda _: httpx.Response(
        429,
        json={
            "return_code": 5,
            "return_msg": "허용된 요청 개수를 초과하였습니다"
            "[1700:허용된 요청 개수를 초과하였습니다. API ID=ka10081]",
        },
    )
    with pytest.raises(UpstreamRateLimited) as rate:
        await kiwoom.call(spec("ka10081"), DAILY, account=kiwoom_account, token=token)
    assert (rate.value.code, rate.value.tr_id, rate.value.status) == ("1700", "ka10081", 429)


async def test_a_kis_spec_is_refused(
    kiwoom: KiwoomClient, kiwoom_account: AccountConfig, token: AccessToken
) -> None:
    kis_spec = lookup_tr(Provider.KIS, "FHKST01010100")
    assert kis_spec is not None
    with pytest.raises(ValueError, match="KIS TR"):
        await kiwoom.call(kis_spec, {}, account=kiwoom_account, token=token)
