"""HTTP plumbing shared by the KIS and Kiwoom clients: deadlines, error mapping, timing.

Every request runs inside an ``anyio.fail_after`` scope (and carries the same httpx timeout),
every failure leaves as an ``Upstream*`` error with the secrets of that call scrubbed from its
message, and the error is raised outside the ``except`` block so no exception holding the
request (and its headers) hangs off it as ``__context__``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, ClassVar, Final, Self
from urllib.parse import quote, urlencode

import aiohttp
import anyio
import httpx
import msgspec

from apihub_core import ConfigurationError, HubError, Provider, UpstreamError, UpstreamTransient
from apihub_runtime import AccountConfig

from ._errors_map import ErrorCodes, decode_object
from ._transport import TransportName, make_http_client

KST: Final = timezone(timedelta(hours=9), "KST")
_MASK: Final = "***"
_MIN_SCRUB: Final = 4


@functools.lru_cache(maxsize=64)
def _host_of(base_url: str) -> str:
    """The host of a broker base URL ("" when it has none); parsed once per URL, not per call."""
    try:
        return httpx.URL(base_url).host
    except httpx.InvalidURL:
        return ""


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by a mask.

    Values shorter than four characters are left alone: masking them would shred the message
    and protect nothing (real keys are 36+, tokens 80+ characters).
    """
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _MIN_SCRUB:
            text = text.replace(secret, _MASK)
    return text


def kst_to_utc(value: str, fmt: str) -> datetime | None:
    """Parse a broker timestamp given in KST; ``None`` when it does not match ``fmt``."""
    try:
        return datetime.strptime(value.strip(), fmt).replace(tzinfo=KST).astimezone(UTC)
    except ValueError:
        return None


def on_local_clock(broker_expiry: datetime, response: httpx.Response) -> datetime:
    """``broker_expiry`` moved onto this machine's clock.

    The lifetime is measured against the broker's own clock (its ``Date`` header) and added to
    ours, so a skewed clock on either side, or a simulator whose clock was set to another day,
    cannot make a fresh token look expired (or an expired one fresh).
    """
    date = response.headers.get("date")
    if not date:
        return broker_expiry
    try:
        broker_now = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return broker_expiry
    if broker_now.tzinfo is None:
        broker_now = broker_now.replace(tzinfo=UTC)
    return datetime.now(UTC) + (broker_expiry - broker_now)


class _BaseBrokerClient:
    """Owns (or borrows) the ``httpx.AsyncClient`` and sends every broker request through it."""

    provider: Provider
    _default_codes: ClassVar[ErrorCodes]

    def __init__(
        self,
        http: httpx.AsyncClient | httpx.AsyncBaseTransport | None = None,
        *,
        transport: TransportName = "aiohttp",
        max_connections: int = 256,
        error_codes: ErrorCodes | None = None,
    ) -> None:
        self._owns_http = http is None
        self._http: httpx.AsyncClient | httpx.AsyncBaseTransport = (
            http
            if http is not None
            else make_http_client(transport, max_connections=max_connections)
        )
        self.error_codes = error_codes or self._default_codes

    async def aclose(self) -> None:
        """Close the HTTP client if this broker client created it; a passed-in one stays open."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _classify(self, status: int, body: bytes) -> UpstreamError | None:
        raise NotImplementedError

    async def _request(
        self,
        method: str,
        account: AccountConfig,
        path: str,
        *,
        headers: Mapping[str, str],
        secrets: tuple[str, ...],
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        timeout: float,  # noqa: ASYNC109  (applied below with anyio.fail_after)
        tr_id: str | None = None,
        quote_body: bool = True,
    ) -> tuple[httpx.Response, float]:
        """Send one request; return the response and elapsed ms, or raise ``Upstream*``.

        ``quote_body=False`` (token issuance) keeps raw body snippets out of error messages: a
        truncated or mangled token answer would otherwise quote the new token.
        """
        base = account.require_base_url().rstrip("/")
        url = base + path
        content = msgspec.json.encode(body) if body is not None else None
        failure: HubError | None
        host = _host_of(base)
        if not host:
            raise self._finish(self._bad_url(account), secrets, tr_id)
        started = time.perf_counter()
        try:
            with anyio.fail_after(timeout):
                response = await self._send(method, url, headers, params, content, timeout)
        except httpx.UnsupportedProtocol:
            failure = self._bad_url(account)
        except TimeoutError:
            failure = UpstreamTransient(f"no answer from {host} within {timeout:g} s")
        except (httpx.RequestError, aiohttp.ClientError, OSError) as exc:
            detail = scrub(str(exc), secrets)[:200]
            failure = UpstreamTransient(
                f"{type(exc).__name__} talking to {host}" + (f": {detail}" if detail else "")
            )
        else:
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            failure = self._classify(response.status_code, response.content)
            if failure is None:
                return response, elapsed_ms
            if not quote_body and not failure.code:
                failure = type(failure)(
                    f"HTTP {response.status_code} without a broker error code (body not quoted)",
                    status=response.status_code,
                )
        raise self._finish(failure, secrets, tr_id)

    async def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None,
        content: bytes | None,
        timeout: float,  # noqa: ASYNC109  (handed to the transport; fail_after keeps it)
    ) -> httpx.Response:
        http = self._http
        if isinstance(http, httpx.AsyncClient):
            return await http.request(
                method, url, headers=headers, params=params, content=content, timeout=timeout
            )
        # Straight to the transport: httpx's own request and response objects, without the
        # client's cookie, auth, redirect and merging machinery, which costs more CPU per call
        # than the transport itself (docs/benchmarks.md).
        if params:
            # One parse of the whole URL instead of a parse plus a merge of the query.
            url = f"{url}?{urlencode(params, quote_via=quote)}"
        request = httpx.Request(
            method,
            url,
            headers=headers,
            content=content,
            extensions={"timeout": httpx.Timeout(timeout).as_dict()},
        )
        response = await http.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    def _bad_url(self, account: AccountConfig) -> ConfigurationError:
        return ConfigurationError(
            f"bad base URL for {self.provider.value} account {account.name!r}: "
            "it needs an http(s) scheme and a host, e.g. https://api.kiwoom.com"
        )

    def _finish(self, error: HubError, secrets: tuple[str, ...], tr_id: str | None) -> HubError:
        # Broker text is echoed into messages, so scrub it too: a broker could quote a key back.
        message = scrub(error.message, secrets)
        if isinstance(error, UpstreamError):
            return type(error)(
                message,
                code=scrub(error.code, secrets),
                status=error.status,
                provider=self.provider.value,
                tr_id=tr_id,
            )
        return type(error)(message, provider=self.provider.value, tr_id=tr_id)

    def _malformed(self, what: str, status: int, secrets: tuple[str, ...]) -> HubError:
        # Deliberately no body snippet: a token response carries the token.
        return self._finish(
            UpstreamTransient(f"malformed token response: {what}", status=status), secrets, None
        )

    @staticmethod
    def _decode(body: bytes) -> dict[str, Any]:
        return decode_object(body) or {}

    @staticmethod
    def _secrets(account: AccountConfig, *tokens: str) -> tuple[str, ...]:
        return (account.app_key.reveal(), account.app_secret.reveal(), *tokens)
