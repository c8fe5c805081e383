"""Fixtures for the broker client unit tests: accounts with distinctive secrets, a recording
``httpx.MockTransport`` and clients that are always closed. ``anyio_backend`` (asyncio) comes
from the root ``conftest.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from apihub_brokers import KisClient, KiwoomClient
from apihub_core import Provider
from apihub_runtime import AccessToken, AccountConfig, Secret

APP_KEY = "PSappkeyZZZ-unique-7f3a9c-0000000000000"
APP_SECRET = "SECRETzzz-unique-b81e44-" + "s" * 40
TOKEN = "eyJTOKENzzz-unique-c0ffee-jwt-value"
KIS_URL = "https://openapi.test:9443"
KIWOOM_URL = "https://api.kiwoom.test"

Handler = Callable[[httpx.Request], httpx.Response]


def make_account(
    provider: Provider, *, virtual: bool = False, base_url: str | None = None
) -> AccountConfig:
    return AccountConfig(
        provider=provider,
        name="test",
        app_key=Secret(APP_KEY),
        app_secret=Secret(APP_SECRET),
        base_url=base_url or (KIS_URL if provider is Provider.KIS else KIWOOM_URL),
        virtual=virtual,
        account_no="50000000-01",
    )


@pytest.fixture
def secret_values() -> tuple[str, str, str]:
    """The app key, app secret and token every fixture uses: none may appear in an error."""
    return (APP_KEY, APP_SECRET, TOKEN)


@pytest.fixture
def account_factory() -> Callable[..., AccountConfig]:
    return make_account


@pytest.fixture
def kis_account() -> AccountConfig:
    return make_account(Provider.KIS)


@pytest.fixture
def kiwoom_account() -> AccountConfig:
    return make_account(Provider.KIWOOM)


@pytest.fixture
def token() -> AccessToken:
    return AccessToken(Secret(TOKEN), datetime.now(UTC) + timedelta(hours=1))


@dataclass
class FakeBroker:
    """Answers every request with ``reply`` and keeps what was sent."""

    reply: Handler = field(default=lambda _: httpx.Response(200, json={"rt_cd": "0"}))
    requests: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.reply(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


@pytest.fixture
def broker() -> FakeBroker:
    return FakeBroker()


@pytest.fixture
async def http(broker: FakeBroker) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(broker.handle)) as client:
        yield client


@pytest.fixture
async def kis(http: httpx.AsyncClient) -> AsyncIterator[KisClient]:
    async with KisClient(http) as client:
        yield client


@pytest.fixture
async def kiwoom(http: httpx.AsyncClient) -> AsyncIterator[KiwoomClient]:
    async with KiwoomClient(http) as client:
        yield client
