"""No token, app key or secret in Redis values, streams, logs or exceptions."""

from __future__ import annotations

import logging

import pytest

from apihub_core import Provider, UpstreamRejected
from apihub_testing import redis_strings

pytestmark = pytest.mark.anyio


async def test_no_secret_reaches_redis_or_the_logs(fleet, redis_url, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    await fleet.keeper()
    reader = await fleet.source()
    secrets: set[str] = set()
    for provider in Provider:
        account = fleet.account(provider)
        secrets |= {account.app_key.reveal(), account.app_secret.reveal()}
        token = await reader.get(account)
        secrets.add(token.value.reveal())
        await reader.invalidate(account, token, code="EGW00121")
        renewed = await reader.get(account)
        assert renewed.fence > token.fence
        secrets.add(renewed.value.reveal())
    await fleet.settled()

    assert len(secrets) == 8  # two app keys, two secrets, four tokens
    texts = list(redis_strings(redis_url))
    assert any(key == fleet.keys.tokens for key, _ in texts)  # the streams were scanned
    for secret in secrets:
        assert not any(secret in text for _key, text in texts)
        assert secret not in caplog.text
        for record in caplog.records:
            assert secret not in str(record.args)


async def test_a_refused_secret_surfaces_without_secrets(fleet, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    await fleet.arm(
        {
            "match": {"path": "/oauth2/tokenP"},
            "count": -1,
            "action": {
                "kind": "error",
                "status": 403,
                "body": {
                    "error_code": "EGW00105",
                    "error_description": "유효하지 않은 AppSecret입니다.",
                },
            },
        }
    )
    await fleet.keeper()
    reader = await fleet.source()
    account = fleet.account()

    with pytest.raises(UpstreamRejected) as caught:
        await reader.get(account)

    assert caught.value.code == "EGW00105"
    assert "gave up" in str(caught.value)
    assert await fleet.issuances(account) == 0
    for secret in (account.app_key.reveal(), account.app_secret.reveal()):
        assert secret not in str(caught.value)
        assert secret not in repr(caught.value)
        assert secret not in caplog.text
