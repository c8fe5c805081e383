"""Where the dispatcher gets access tokens from.

The dispatcher only sees :class:`TokenSource`. Its implementation, :class:`SharedTokenSource`,
reads the token-keeper's shared, encrypted token; a dispatcher never issues tokens itself,
because one issuance per process is exactly what trips KIS's EGW00133 and Kiwoom's 8005.
"""

from __future__ import annotations

from typing import Protocol

from apihub_brokers import AccessToken
from apihub_core import AccountConfig


class TokenSource(Protocol):
    """Gives the dispatcher a valid token for an account and hears when one was rejected."""

    async def get(self, account: AccountConfig) -> AccessToken:
        """A token believed valid for ``account``."""
        ...

    async def invalidate(
        self, account: AccountConfig, token: AccessToken, *, code: str = ""
    ) -> None:
        """``token`` was rejected by the broker (``code``); the next :meth:`get` must not
        return it."""
        ...
