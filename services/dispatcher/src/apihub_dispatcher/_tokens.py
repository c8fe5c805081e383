"""Where the dispatcher gets access tokens from.

This is the seam the governed token path plugs into: today a per-process cache that issues a
token on first use; later a reader of the token-keeper's shared, encrypted token. The dispatcher
only sees :class:`TokenSource`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC
from typing import Protocol

import anyio

from apihub_brokers import AccessToken, BrokerClient
from apihub_core import AccountConfig, Provider, UpstreamRateLimited

log = logging.getLogger("apihub.dispatcher.tokens")

REFRESH_BEFORE_S = 300.0
"""A cached token this close to expiry is replaced before use."""

ISSUANCE_BACKOFF_S = 60.0
"""After KIS refuses an issuance (EGW00133, one per app key per minute), ask again only after
this long: every request in between fails fast instead of hammering the token endpoint."""


class TokenSource(Protocol):
    """Gives the dispatcher a valid token for an account and hears when one was rejected."""

    async def get(self, account: AccountConfig) -> AccessToken:
        """A token believed valid for ``account``."""
        ...

    async def invalidate(self, account: AccountConfig, token: AccessToken) -> None:
        """``token`` was rejected by the broker; the next :meth:`get` must not return it."""
        ...


class LocalTokenCache:
    """One token per (provider, account) in this process, issued on first use.

    Concurrent callers share a single issuance (one lock per account), so a burst of requests
    at start-up costs one token call, not one per request.
    """

    def __init__(self, clients: Mapping[Provider, BrokerClient]) -> None:
        self._clients = clients
        self._tokens: dict[tuple[Provider, str], AccessToken] = {}
        self._locks: dict[tuple[Provider, str], anyio.Lock] = {}
        self._refused_until: dict[tuple[Provider, str], float] = {}
        self.issued = 0

    async def get(self, account: AccountConfig) -> AccessToken:
        """The cached token, or a new one if missing or about to expire."""
        key = (account.provider, account.name)
        token = self._tokens.get(key)
        if token is not None and token.expires_in() > REFRESH_BEFORE_S:
            return token
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            token = self._tokens.get(key)
            if token is not None and token.expires_in() > REFRESH_BEFORE_S:
                return token
            token = await self._issue(key, account)
            self.issued += 1
            self._tokens[key] = token
            log.info(
                "issued %s token for account %s (app key %s), expires %s",
                account.provider.value,
                account.name,
                account.app_key.fingerprint(),
                token.expires_at.astimezone(UTC).isoformat(timespec="seconds"),
            )
            return token

    async def _issue(self, key: tuple[Provider, str], account: AccountConfig) -> AccessToken:
        wait = self._refused_until.get(key, 0.0) - anyio.current_time()
        if wait > 0:
            raise UpstreamRateLimited(
                f"token issuance was refused by the broker; not asking again for {wait:.0f} s",
                code="EGW00133",
                provider=account.provider.value,
            )
        try:
            return await self._clients[account.provider].issue_token(account)
        except UpstreamRateLimited as exc:
            if exc.code == "EGW00133":
                self._refused_until[key] = anyio.current_time() + ISSUANCE_BACKOFF_S
                log.warning(
                    "%s refused a token for account %s (EGW00133); waiting %.0f s",
                    account.provider.value,
                    account.name,
                    ISSUANCE_BACKOFF_S,
                )
            raise

    async def invalidate(self, account: AccountConfig, token: AccessToken) -> None:
        """Forget ``token`` if it is still the cached one (a newer token is kept)."""
        key = (account.provider, account.name)
        if self._tokens.get(key) == token:
            del self._tokens[key]
            log.info(
                "dropped rejected %s token of account %s", account.provider.value, account.name
            )
