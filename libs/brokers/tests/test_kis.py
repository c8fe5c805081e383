"""KisClient against ``httpx.MockTransport``: what goes on the wire and how answers are read."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from apihub_brokers import KisClient, TrSpec, lookup_tr
from apihub_core import (
    ConfigurationError,
    Provider,
    UpstreamAuthError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTransient,
)
from apihub_runtime import AccessToken, AccountConfig

pytestmark = pytest.mark.anyio

PRICE_BODY = (
    b'{"output":{"stck_prpr":"71500","prdy_vrss":"-600"},'
    b'"rt_cd":"0","msg_cd":"MCA00000","msg1":"\xec\xa0\x95\xec\x83\x81"}'
)


def spec(tr_id: str) -> TrSpec:
    found = lookup_tr(Provider.KIS, tr_id)
    assert found is not None
    return found


async def test_quote_is_a_get_with_kis_headers_and_query_params(
    kis: KisClient, broker, kis_account: AccountConfig, token: AccessToken
) -> None:
    broker.reply = lambda _: httpx.Response(
        200,
        content=PRICE_BODY,
        headers={"tr_id": "FHKST01010100", "tr_cont": "", "gt_uid": "G1", "x-other": "no"},
    )
    reply = await kis.call(
        spec("FHKST01010100"),
        {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"},
        account=kis_account,
        token=token,
    )
    sent = broker.last
    assert sent.method == "GET"
    assert str(sent.url) == (
        "https://openapi.test:9443/uapi/domestic-stock/v1/quotations/inquire-price"
        "?FID_COND_MRKT_DIV_CODE=J&FID_INPUT_ISCD=005930"
    )
    assert sent.headers["content-type"] == "application/json; charset=utf-8"
    assert sent.headers["authorization"] == f"Bearer {token.value.reveal()}"
    assert sent.headers["appkey"] == kis_account.app_key.reveal()
    assert sent.headers["appsecret"] == kis_account.app_secret.reveal()
    assert sent.headers["tr_id"] == "FHKST01010100"
    assert sent.headers["custtype"] == "P"
    assert "tr_cont" not in sent.headers
    assert sent.content == b""
    assert reply.status == 200
    assert reply.body == PRICE_BODY  # forwarded untouched
    assert reply.headers == {"tr_id": "FHKST01010100", "tr_cont": "", "gt_uid": "G1"}
    assert not reply.has_more
    assert reply.next_key == ""
    assert reply.elapsed_ms >= 0
    assert "body" not in repr(reply)


@pytest.mark.parametrize(
    ("tr_cont", "more"), [("F", True), ("M", True), ("D", False), ("E", False)]
)
async def test_tr_cont_header_drives_has_more(
    kis: KisClient, broker, kis_account: AccountConfig, token: AccessToken, tr_cont: str, more: bool
) -> None:
    broker.reply = lambda _: httpx.Response(200, json={"rt_cd": "0"}, headers={"tr_cont": tr_cont})
    reply = await kis.call(
        spec("FHKST01010300"),
        {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"},
        account=kis_account,
        token=token,
        cont=True,
    )
    assert broker.last.headers["tr_cont"] == "N"
    assert reply.has_more is more
    assert reply.headers["tr_cont"] == tr_cont


async def test_order_posts_an_upper_case_json_body(
    kis: KisClient, broker, kis_account: AccountConfig, token: AccessToken
) -> None:
    broker.reply = lambda _: httpx.Response(
        200, json={"rt_cd": "0", "msg_cd": "APBK0013", "output": {"ODNO": "1"}}
    )
    params = {
        "CANO": "50000000",
        "acnt_prdt_cd": "01",
        "PDNO": "005930",
        "ORD_DVSN": "00",
        "ORD_QTY": "1",
        "ORD_UNPR": "71500",
    }
    await kis.call(spec("TTTC0012U"), params, account=kis_account, token=token)
    sent = broker.last
    assert sent.method == "POST"
    assert sent.url.path == "/uapi/domestic-stock/v1/trading/order-cash"
    assert sent.url.query == b""
    assert sent.headers["tr_id"] == "TTTC0012U"
    body = json.loads(sent.content)
    assert body == {key.upper(): value for key, value in params.items()}


@pytest.mark.parametrize(
    ("tr_id", "wire"),
    [
        ("TTTC0012U", "VTTC0012U"),
        ("TTTC0801U", "VTTC0801U"),
        ("FHKST01010100", "FHKST01010100"),
    ],
)
async def test_virtual_accounts_send_v_prefixed_trading_ids(
    kis: KisClient,
    broker,
    account_factory: Callable[..., AccountConfig],
    token: AccessToken,
    tr_id: str,
    wire: str,
) -> None:
    account = account_factory(Provider.KIS, virtual=True, base_url="https://vps.test:29443/")
    await kis.call(spec(tr_id), {}, account=account, token=token)
    assert broker.last.headers["tr_id"] == wire
    assert str(broker.last.url).startswith("https://vps.test:29443/uapi/")


async def test_issue_token_measures_the_lifetime_from_expires_in(
    kis: KisClient, broker, kis_account: AccountConfig
) -> None:
    broker.reply = lambda _: httpx.Response(
        200,
        json={
            "access_token": "eyJ0eXAiOiJKV1Qi.fresh",
            "access_token_token_expired": "2023-12-22 08:16:59",
            "token_type": "Bearer",
            "expires_in": 86400,
        },
    )
    token = await kis.issue_token(kis_account)
    sent = broker.last
    assert (sent.method, sent.url.path) == ("POST", "/oauth2/tokenP")
    assert "authorization" not in sent.headers
    assert sent.headers["content-type"].startswith("application/json")
    assert json.loads(sent.content) == {
        "grant_type": "client_credentials",
        "appkey": kis_account.app_key.reveal(),
        "appsecret": kis_account.app_secret.reveal(),
    }
    assert token.value.reveal() == "eyJ0eXAiOiJKV1Qi.fresh"
    # The relative lifetime wins over the absolute KST date (2023 here): clock skew between the
    # broker and us cannot make a fresh token look expired.
    assert 86390 < token.expires_in() <= 86400
    assert token.token_type == "Bearer"
    assert "fresh" not in repr(token)


async def test_issue_token_falls_back_on_the_kst_expiry_on_the_brokers_clock(
    kis: KisClient, broker, kis_account: AccountConfig
) -> None:
    # Broker clock says 2023-12-21 08:16:59 KST; the token expires a day later on that clock.
    broker.reply = lambda _: httpx.Response(
        200,
        json={
            "access_token": "tok",
            "token_type": "bearer",
            "access_token_token_expired": "2023-12-22 08:16:59",
        },
        headers={"date": "Wed, 20 Dec 2023 23:16:59 GMT"},
    )
    token = await kis.issue_token(kis_account)
    assert 86390 < token.expires_in() <= 86400
    assert token.token_type == "Bearer"


async def test_issue_token_without_a_date_header_trusts_the_kst_expiry(
    kis: KisClient, broker, kis_account: AccountConfig
) -> None:
    broker.reply = lambda _: httpx.Response(
        200, json={"access_token": "tok", "access_token_token_expired": "2023-12-22 08:16:59"}
    )
    token = await kis.issue_token(kis_account)
    assert token.expires_at == datetime(2023, 12, 21, 23, 16, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    "body",
    [
        {"token_type": "Bearer", "expires_in": 86400},
        {"access_token": "", "expires_in": 86400},
        {"access_token": "tok-9f8e7d", "access_token_token_expired": "tomorrow"},
        {"access_token": "tok-9f8e7d", "expires_in": "86400"},
        {"access_token": "tok-9f8e7d", "expires_in": True},
    ],
)
async def test_malformed_token_responses_are_transient(
    kis: KisClient, broker, kis_account: AccountConfig, body: dict[str, object]
) -> None:
    broker.reply = lambda _: httpx.Response(200, json=body)
    with pytest.raises(UpstreamTransient, match="malformed token response") as info:
        await kis.issue_token(kis_account)
    assert "tok-9f8e7d" not in str(info.value)


async def test_token_throttle_and_bad_credentials(
    kis: KisClient, broker, kis_account: AccountConfig
) -> None:
    broker.reply = lambda _: httpx.Response(
        403,
        json={
            "error_code": "EGW00133",
            "error_description": "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)",
        },
    )
    with pytest.raises(UpstreamRateLimited) as info:
        await kis.issue_token(kis_account)
    assert (info.value.code, info.value.status, info.value.provider) == ("EGW00133", 403, "KIS")
    broker.reply = lambda _: httpx.Response(
        403, json={"error_code": "EGW00105", "error_description": "유효하지 않은 AppSecret입니다."}
    )
    with pytest.raises(UpstreamRejected, match="AppSecret"):
        await kis.issue_token(kis_account)


async def test_revoke_token(
    kis: KisClient, broker, kis_account: AccountConfig, token: AccessToken
) -> None:
    broker.reply = lambda _: httpx.Response(
        200, json={"code": 200, "message": "접근토큰 폐기에 성공하였습니다"}
    )
    await kis.revoke_token(kis_account, token)
    assert broker.last.url.path == "/oauth2/revokeP"
    assert json.loads(broker.last.content) == {
        "appkey": kis_account.app_key.reveal(),
        "appsecret": kis_account.app_secret.reveal(),
        "token": token.value.reveal(),
    }


async def test_gateway_errors_carry_the_tr_id_and_provider(
    kis: KisClient, broker, kis_account: AccountConfig, token: AccessToken
) -> None:
    broker.reply = lambda _: httpx.Response(
        500, json={"rt_cd": "1", "msg_cd": "EGW00123", "msg1": "기간이 만료된 token 입니다."}
    )
    with pytest.raises(UpstreamAuthError) as info:
        await kis.call(spec("FHKST01010100"), {}, account=kis_account, token=token)
    exc = info.value
    assert (exc.code, exc.status, exc.provider, exc.tr_id) == (
        "EGW00123",
        500,
        "KIS",
        "FHKST01010100",
    )
    assert exc.__context__ is None
    assert exc.__cause__ is None
    assert (
        str(exc)
        == "[EGW00123] 기간이 만료된 token 입니다. (provider=KIS, tr_id=FHKST01010100) HTTP 500"
    )


async def test_a_kiwoom_spec_is_refused(
    kis: KisClient, broker, kis_account: AccountConfig, token: AccessToken
) -> None:
    kiwoom_spec = lookup_tr(Provider.KIWOOM, "ka10001")
    assert kiwoom_spec is not None
    with pytest.raises(ValueError, match="KIWOOM"):
        await kis.call(kiwoom_spec, {}, account=kis_account, token=token)
    assert broker.requests == []


@pytest.mark.parametrize("base_url", ["openapi.test", "https://", "http://[::1"])
async def test_a_bad_base_url_is_a_configuration_error(
    kis: KisClient,
    broker,
    account_factory: Callable[..., AccountConfig],
    token: AccessToken,
    base_url: str,
) -> None:
    account = account_factory(Provider.KIS, base_url=base_url)
    with pytest.raises(ConfigurationError, match="bad base URL"):
        await kis.call(spec("FHKST01010100"), {}, account=account, token=token)
    assert broker.requests == []


async def test_a_missing_base_url_is_a_configuration_error(
    kis: KisClient, kis_account: AccountConfig, token: AccessToken
) -> None:
    from dataclasses import replace

    with pytest.raises(ConfigurationError, match="APIHUB_KIS_BASE_URL"):
        await kis.call(
            spec("FHKST01010100"), {}, account=replace(kis_account, base_url=None), token=token
        )


def test_access_token_expiry_arithmetic() -> None:
    from apihub_runtime import Secret

    now = datetime(2025, 1, 1, tzinfo=UTC)
    token = AccessToken(Secret("x"), now + timedelta(seconds=90))
    assert token.expires_in(now) == 90.0
    assert token.expires_in(now + timedelta(minutes=2)) == -30.0
