"""No error path may leak the app key, the app secret or the token.

Every reply below is hostile: it echoes the credentials back in every field a message is built
from. The exception's str, repr, args, code and full traceback text must still be clean.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import anyio
import httpx
import pytest

from apihub_brokers import KisClient, KiwoomClient, lookup_tr
from apihub_core import HubError, Provider
from apihub_runtime import AccessToken, AccountConfig

pytestmark = pytest.mark.anyio

Reply = Callable[[httpx.Request, tuple[str, str, str]], httpx.Response]


def leak(secrets: tuple[str, str, str]) -> str:
    key, secret, token = secrets
    return f"key={key} secret={secret} Bearer {token}"


def kis_envelope(code: str) -> Reply:
    return lambda _, s: httpx.Response(500, json={"rt_cd": "1", "msg_cd": code, "msg1": leak(s)})


def kis_token_error(_: httpx.Request, s: tuple[str, str, str]) -> httpx.Response:
    return httpx.Response(403, json={"error_code": s[0], "error_description": leak(s)})


def kiwoom_envelope(return_code: int, bracket: str) -> Reply:
    return lambda _, s: httpx.Response(
        200, json={"return_code": return_code, "return_msg": f"{leak(s)}[{bracket}:{leak(s)}]"}
    )


def raw(status: int) -> Reply:
    return lambda _, s: httpx.Response(status, content=f"<html>{leak(s)}</html>".encode())


def token_only_reply(field: str) -> Reply:
    # a "successful" token answer that is unusable but carries the new token
    return lambda _, s: httpx.Response(200, json={field: s[2], "expires_in": "soon"})


def truncated_token_reply(field: str) -> Reply:
    return lambda _, s: httpx.Response(200, content=f'{{"{field}":"{s[2]}","exp'.encode())


def html_token_reply(_: httpx.Request, s: tuple[str, str, str]) -> httpx.Response:
    return httpx.Response(502, content=f"<html>upstream said {s[2]}</html>".encode())


def transport_error(_: httpx.Request, s: tuple[str, str, str]) -> httpx.Response:
    raise httpx.ConnectError(f"cannot connect: {leak(s)}")


def os_error(_: httpx.Request, s: tuple[str, str, str]) -> httpx.Response:
    raise OSError(f"socket trouble {leak(s)}")


CASES: list[tuple[str, Provider, Reply]] = [
    ("kis-rate", Provider.KIS, kis_envelope("EGW00201")),
    ("kis-auth", Provider.KIS, kis_envelope("EGW00123")),
    ("kis-transient", Provider.KIS, kis_envelope("EGW00002")),
    ("kis-rejected", Provider.KIS, kis_envelope("40570000")),
    ("kis-token-endpoint", Provider.KIS, kis_token_error),
    ("kis-5xx-html", Provider.KIS, raw(502)),
    ("kis-4xx-html", Provider.KIS, raw(404)),
    ("kis-401-html", Provider.KIS, raw(401)),
    ("kis-2xx-html", Provider.KIS, raw(200)),
    ("kis-network", Provider.KIS, transport_error),
    ("kis-oserror", Provider.KIS, os_error),
    ("kiwoom-rate", Provider.KIWOOM, kiwoom_envelope(5, "1700")),
    ("kiwoom-auth", Provider.KIWOOM, kiwoom_envelope(3, "8005")),
    ("kiwoom-rejected", Provider.KIWOOM, kiwoom_envelope(3, "8001")),
    ("kiwoom-transient", Provider.KIWOOM, kiwoom_envelope(2, "1999")),
    ("kiwoom-429-html", Provider.KIWOOM, raw(429)),
    ("kiwoom-5xx-html", Provider.KIWOOM, raw(500)),
    ("kiwoom-network", Provider.KIWOOM, transport_error),
]


def assert_clean(exc: BaseException, secrets: tuple[str, ...]) -> None:
    rendered = [
        str(exc),
        repr(exc),
        repr(exc.args),
        "".join(traceback.format_exception(exc)),
        str(getattr(exc, "code", "")),
    ]
    for text in rendered:
        for value in secrets:
            assert value not in text, f"{value[:12]}… leaked into {text!r}"


def each_operation(
    client: KisClient | KiwoomClient,
    account: AccountConfig,
    token: AccessToken,
    secrets: tuple[str, str, str],
) -> list[tuple[Callable[[], Awaitable[Any]], tuple[str, ...]]]:
    """Each operation and the secrets it knows: issuing a token knows no token to scrub."""
    tr_id = "FHKST01010100" if account.provider is Provider.KIS else "ka10081"
    spec = lookup_tr(account.provider, tr_id)
    assert spec is not None
    return [
        (lambda: client.issue_token(account), secrets[:2]),
        (lambda: client.revoke_token(account, token), secrets),
        (
            lambda: client.call(spec, {"stk_cd": "1"}, account=account, token=token, cont=True),
            secrets,
        ),
    ]


@pytest.mark.parametrize(("name", "provider", "reply"), CASES, ids=[c[0] for c in CASES])
async def test_no_secret_in_any_error(
    name: str,
    provider: Provider,
    reply: Reply,
    account_factory: Callable[..., AccountConfig],
    token: AccessToken,
    secret_values: tuple[str, str, str],
) -> None:
    account = account_factory(provider)
    transport = httpx.MockTransport(lambda request: reply(request, secret_values))
    async with httpx.AsyncClient(transport=transport) as http:
        client = KisClient(http) if provider is Provider.KIS else KiwoomClient(http)
        for operation, known in each_operation(client, account, token, secret_values):
            with pytest.raises(HubError) as info:
                await operation()
            assert_clean(info.value, known)
        await client.aclose()


@pytest.mark.parametrize("provider", list(Provider))
@pytest.mark.parametrize(
    "reply",
    [
        token_only_reply("access_token"),
        token_only_reply("token"),
        truncated_token_reply("access_token"),
        truncated_token_reply("token"),
        html_token_reply,
    ],
)
async def test_no_new_token_in_token_errors(
    provider: Provider,
    reply: Reply,
    account_factory: Callable[..., AccountConfig],
    secret_values: tuple[str, str, str],
) -> None:
    transport = httpx.MockTransport(lambda request: reply(request, secret_values))
    async with httpx.AsyncClient(transport=transport) as http:
        client = KisClient(http) if provider is Provider.KIS else KiwoomClient(http)
        with pytest.raises(HubError) as info:
            await client.issue_token(account_factory(provider))
        assert_clean(info.value, secret_values)


async def test_no_secret_in_timeouts_or_config_errors(
    kis_account: AccountConfig, token: AccessToken, secret_values: tuple[str, str, str]
) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep_forever()  # a broker that never answers: only the deadline ends it
        raise AssertionError("unreachable")  # pragma: no cover

    spec = lookup_tr(Provider.KIS, "FHKST01010100")
    assert spec is not None
    async with httpx.AsyncClient(transport=httpx.MockTransport(slow)) as http:
        kis = KisClient(http)
        with anyio.fail_after(5), pytest.raises(HubError) as timeout:
            await kis.call(spec, {}, account=kis_account, token=token, timeout=0.05)
        assert_clean(timeout.value, secret_values)
        bad = replace(kis_account, base_url=f"{secret_values[0]}-no-scheme")
        with pytest.raises(HubError) as config:
            await kis.call(spec, {}, account=bad, token=token)
        assert_clean(config.value, secret_values)


def test_scrub_masks_longest_first_and_spares_tiny_values() -> None:
    from apihub_brokers._base import scrub

    assert scrub("key ABCDEFGH and ABCD", ["ABCD", "ABCDEFGH"]) == "key *** and ***"
    assert scrub("a token of abc", ["abc", ""]) == "a token of abc"
