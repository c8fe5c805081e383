"""Picking the broker client of a provider."""

from __future__ import annotations

import httpx

from apihub_core import Provider

from ._errors_map import ErrorCodes
from ._kis import KisClient
from ._kiwoom import KiwoomClient
from ._transport import TransportName
from ._types import BrokerClient


def client_for(
    provider: Provider,
    http: httpx.AsyncClient | httpx.AsyncBaseTransport | None = None,
    *,
    transport: TransportName = "aiohttp",
    max_connections: int = 256,
    error_codes: ErrorCodes | None = None,
) -> BrokerClient:
    """The broker client of ``provider``, sending through ``http`` (a client, or a transport
    for the leanest path); it closes ``http`` on ``aclose`` only if it made it."""
    cls = KisClient if provider is Provider.KIS else KiwoomClient
    return cls(http, transport=transport, max_connections=max_connections, error_codes=error_codes)
