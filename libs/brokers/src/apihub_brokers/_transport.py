"""The HTTP transport (and ``httpx.AsyncClient``) the broker clients send through."""

from __future__ import annotations

from typing import Literal

import httpx
from httpx_aiohttp import AiohttpTransport, HttpxAiohttpClient

TransportName = Literal["aiohttp", "httpx"]


def make_http_client(
    transport: TransportName = "aiohttp", *, max_connections: int = 256, timeout: float = 10.0
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` sized for many calls in flight.

    ``"aiohttp"`` keeps httpx's API over ``httpx-aiohttp``'s ``AiohttpTransport`` (about six
    times httpx's own transport under 64-way concurrency: measured on the 2-vCPU development
    VM against one local endpoint, ≈ 2,000 calls/s against ≈ 340 from one shared client);
    ``"httpx"`` is httpx's default transport. Both keep up to ``max_connections`` connections alive.
    """
    if max_connections < 1:
        raise ValueError("max_connections must be at least 1")
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    if transport == "aiohttp":
        # HttpxAiohttpClient builds an AiohttpTransport from these limits (and for env proxies).
        return HttpxAiohttpClient(limits=limits, timeout=timeout)
    if transport == "httpx":
        return httpx.AsyncClient(limits=limits, timeout=timeout)
    raise ValueError(f"unknown transport {transport!r} (known: aiohttp, httpx)")


def make_transport(
    transport: TransportName = "aiohttp", *, max_connections: int = 256
) -> httpx.AsyncBaseTransport:
    """An httpx transport for a broker client to send through directly (the dispatcher's hot
    path): ``"aiohttp"`` is httpx-aiohttp's ``AiohttpTransport``, ``"httpx"`` httpx's own.
    Close it with ``aclose()``."""
    if max_connections < 1:
        raise ValueError("max_connections must be at least 1")
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    if transport == "aiohttp":
        return AiohttpTransport(limits=limits)
    if transport == "httpx":
        return httpx.AsyncHTTPTransport(limits=limits)
    raise ValueError(f"unknown transport {transport!r} (known: aiohttp, httpx)")
