"""The HTTP plumbing over real loopback sockets (both transports), deadlines and ownership.

The server here is a few lines of raw HTTP/1.1, not the broker simulator: it only proves that
requests leave through the chosen transport and that network failures map to UpstreamTransient.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import httpx
import pytest
from anyio.abc import SocketAttribute, SocketStream
from httpx_aiohttp import AiohttpTransport

from apihub_brokers import (
    KisClient,
    KiwoomClient,
    TransportName,
    TrSpec,
    client_for,
    lookup_tr,
    make_http_client,
)
from apihub_core import ConfigurationError, Provider, UpstreamTransient
from apihub_runtime import AccessToken, AccountConfig

pytestmark = pytest.mark.anyio

TRANSPORTS: list[TransportName] = ["aiohttp", "httpx"]
PRICE = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}


@dataclass
class LoopbackServer:
    url: str
    requests: list[bytes] = field(default_factory=list)


@asynccontextmanager
async def serve(respond: bool = True) -> AsyncIterator[LoopbackServer]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(SocketAttribute.local_port)  # noqa: S610  (anyio, not Django)
    server = LoopbackServer(f"http://127.0.0.1:{port}")

    async def handle(stream: SocketStream) -> None:
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(body) < length:
                body += await stream.receive()
            server.requests.append(head + b"\r\n\r\n" + body)
            if not respond:
                await anyio.sleep_forever()
            payload = b'{"rt_cd":"0","msg_cd":"MCA00000","output":{"stck_prpr":"71500"}}'
            await stream.send(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\n"
                b"tr_id: FHKST01010100\r\ntr_cont: M\r\nconnection: close\r\n"
                + f"content-length: {len(payload)}\r\n\r\n".encode()
                + payload
            )

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield server
        tg.cancel_scope.cancel()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def price_spec() -> TrSpec:
    spec = lookup_tr(Provider.KIS, "FHKST01010100")
    assert spec is not None
    return spec


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_call_over_real_sockets(
    transport: TransportName,
    account_factory: Callable[..., AccountConfig],
    token: AccessToken,
) -> None:
    async with serve() as server, KisClient(transport=transport) as kis:
        account = account_factory(Provider.KIS, base_url=server.url)
        reply = await kis.call(price_spec(), PRICE, account=account, token=token)
    assert reply.status == 200
    assert reply.has_more
    assert json.loads(reply.body)["output"]["stck_prpr"] == "71500"
    (request,) = server.requests
    head = request.decode().lower()
    assert head.startswith(
        "get /uapi/domestic-stock/v1/quotations/inquire-price"
        "?fid_cond_mrkt_div_code=j&fid_input_iscd=005930 http/1.1"
    )
    assert "\r\ntr_id: fhkst01010100\r\n" in head
    assert "\r\ncusttype: p\r\n" in head


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_connection_refused_is_transient(
    transport: TransportName,
    account_factory: Callable[..., AccountConfig],
    token: AccessToken,
) -> None:
    port = closed_port()
    account = account_factory(Provider.KIS, base_url=f"http://127.0.0.1:{port}")
    async with KisClient(transport=transport) as kis:
        with pytest.raises(UpstreamTransient) as info:
            await kis.call(price_spec(), PRICE, account=account, token=token)
    exc = info.value
    assert exc.code == ""
    assert exc.status is None
    assert "talking to 127.0.0.1" in exc.message
    assert exc.provider == "KIS"
    assert exc.tr_id == "FHKST01010100"
    assert exc.__context__ is None


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_scheme_the_transport_cannot_speak_is_a_configuration_error(
    transport: TransportName,
    account_factory: Callable[..., AccountConfig],
    token: AccessToken,
) -> None:
    account = account_factory(Provider.KIS, base_url="ftp://127.0.0.1:1")
    async with KisClient(transport=transport) as kis:
        with pytest.raises(ConfigurationError, match="bad base URL"):
            await kis.call(price_spec(), PRICE, account=account, token=token)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_silent_server_hits_the_deadline(
    transport: TransportName,
    account_factory: Callable[..., AccountConfig],
    token: AccessToken,
) -> None:
    async with serve(respond=False) as server, KiwoomClient(transport=transport) as kiwoom:
        spec = lookup_tr(Provider.KIWOOM, "ka10001")
        assert spec is not None
        account = account_factory(Provider.KIWOOM, base_url=server.url)
        with anyio.fail_after(5):
            with pytest.raises(UpstreamTransient) as info:
                await kiwoom.call(
                    spec, {"stk_cd": "005930"}, account=account, token=token, timeout=0.2
                )
    assert "127.0.0.1" in info.value.message
    assert info.value.provider == "KIWOOM"


async def test_the_anyio_deadline_bounds_a_slow_transport(
    kis_account: AccountConfig, token: AccessToken
) -> None:
    async def never(request: httpx.Request) -> httpx.Response:
        await anyio.sleep_forever()  # a broker that never answers: only the deadline ends it
        raise AssertionError("unreachable")  # pragma: no cover

    async with httpx.AsyncClient(transport=httpx.MockTransport(never)) as http:
        kis = KisClient(http)
        with anyio.fail_after(5), pytest.raises(UpstreamTransient, match=r"within 0\.1 s"):
            await kis.call(price_spec(), PRICE, account=kis_account, token=token, timeout=0.1)
        await kis.aclose()


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        OSError("network is unreachable"),
    ],
)
async def test_transport_errors_are_transient(
    kis_account: AccountConfig, token: AccessToken, error: Exception
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    transport = httpx.MockTransport(fail)
    async with httpx.AsyncClient(transport=transport) as http, KisClient(http) as kis:
        with pytest.raises(UpstreamTransient) as info:
            await kis.issue_token(kis_account)
    assert info.value.message.startswith(f"{type(error).__name__} talking to openapi.test")
    assert info.value.__context__ is None


async def test_make_http_client_picks_the_transport() -> None:
    aio = make_http_client("aiohttp", max_connections=8, timeout=3.0)
    plain = make_http_client("httpx", max_connections=8)
    try:
        assert isinstance(aio._transport, AiohttpTransport)
        assert aio._transport.limits.max_connections == 8
        assert aio.timeout == httpx.Timeout(3.0)
        assert isinstance(plain._transport, httpx.AsyncHTTPTransport)
        assert plain.timeout == httpx.Timeout(10.0)
    finally:
        await aio.aclose()
        await plain.aclose()
    with pytest.raises(ValueError, match="unknown transport"):
        make_http_client("curl")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_connections"):
        make_http_client(max_connections=0)


async def test_an_owned_client_is_closed_a_borrowed_one_is_not() -> None:
    owned = KisClient(transport="httpx")
    await owned.aclose()
    assert owned._http.is_closed
    async with httpx.AsyncClient() as http:
        async with KiwoomClient(http):
            pass
        assert not http.is_closed


async def test_client_for() -> None:
    async with httpx.AsyncClient() as http:
        kis = client_for(Provider.KIS, http)
        kiwoom = client_for(Provider.KIWOOM, http)
        assert isinstance(kis, KisClient)
        assert isinstance(kiwoom, KiwoomClient)
        assert (kis.provider, kiwoom.provider) == (Provider.KIS, Provider.KIWOOM)
        await kis.aclose()
        await kiwoom.aclose()
        assert not http.is_closed
    own = client_for(Provider.KIWOOM, transport="httpx", max_connections=4)
    await own.aclose()
