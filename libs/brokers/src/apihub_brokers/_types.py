"""What a broker client hands back: tokens and replies, and the protocol both clients follow."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from apihub_core import AccountConfig, Provider, Secret

from ._catalog import TrSpec


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


@dataclass(frozen=True, slots=True)
class BrokerReply:
    """A successful broker answer, its body untouched.

    ``headers`` holds only the headers that matter, with lower-case names: KIS ``tr_id``,
    ``tr_cont``, ``gt_uid``; Kiwoom ``api-id``, ``cont-yn``, ``next-key``. ``has_more`` says
    another page follows (KIS ``tr_cont`` in F/M, Kiwoom ``cont-yn: Y``); ``next_key`` is the
    Kiwoom continuation key (KIS carries its cursors in the body).
    """

    status: int
    headers: dict[str, str]
    body: bytes = field(repr=False)
    has_more: bool
    next_key: str
    elapsed_ms: float


class BrokerClient(Protocol):
    """The one interface the hub uses to talk to a broker over HTTP."""

    provider: Provider

    async def issue_token(self, account: AccountConfig) -> AccessToken:
        """Issue (or, for KIS within 6 h, receive again) an access token for ``account``."""
        ...

    async def revoke_token(self, account: AccountConfig, token: AccessToken) -> None:
        """Revoke ``token`` at the broker."""
        ...

    async def call(
        self,
        spec: TrSpec,
        params: Mapping[str, str],
        *,
        account: AccountConfig,
        token: AccessToken,
        cont: bool = False,
        next_key: str = "",
        timeout: float = 10.0,  # noqa: ASYNC109  (the per-call deadline, kept by fail_after)
    ) -> BrokerReply:
        """Call ``spec`` once; raise an ``Upstream*`` error unless the broker reports success."""
        ...

    async def aclose(self) -> None:
        """Release the HTTP client if this broker client created it."""
        ...
