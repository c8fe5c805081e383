"""Access tokens as services see them, and where a service gets one.

:class:`AccessToken` is what a broker client returns from issuance and what a call is made
with. :class:`TokenSource` is all a service needs to know about getting one: the runtime's
implementation, :class:`~apihub_runtime.SharedTokenSource`, reads the token-keeper's shared,
encrypted token; a service never issues tokens itself, because one issuance per process is
exactly what trips KIS's EGW00133 and Kiwoom's 8005.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from ._secret import Secret
from ._settings import AccountConfig


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An access token of one app key; ``expires_at`` is timezone-aware UTC.

    ``fence`` is the fence number under which the token-keeper stored it (0 for a token fresh
    from the broker): an invalidation names it so the keeper replaces each token only once.
    """

    value: Secret
    expires_at: datetime
    token_type: str = "Bearer"  # noqa: S105  (a scheme name)
    fence: int = 0

    def expires_in(self, now: datetime | None = None) -> float:
        """Seconds until the token expires (negative once it has)."""
        return (self.expires_at - (now or datetime.now(UTC))).total_seconds()


class TokenSource(Protocol):
    """Gives a service a valid token for an account and hears when one was rejected."""

    async def get(self, account: AccountConfig) -> AccessToken:
        """A token believed valid for ``account``; waits for one within the caller's cancel
        scope (its deadline)."""
        ...

    async def invalidate(
        self, account: AccountConfig, token: AccessToken, *, code: str = ""
    ) -> None:
        """``token`` was rejected by the broker (``code``); the next :meth:`get` must not
        return it."""
        ...
