"""What a broker client hands back (replies; tokens are :class:`apihub_runtime.AccessToken`) and
the protocol both clients follow."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from apihub_core import Provider
from apihub_runtime import AccessToken, AccountConfig, TrSpec


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
