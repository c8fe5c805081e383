"""Issuing one account's token: fenced lock → re-check → issuance window → broker → store.

The order matters:

1. Check the store. If the job's need is already met, nothing is issued (the common case for a
   herd of requests: one issuance, then every other request finds the token).
2. Take the account's :class:`~apihub_runtime.FencedLock`. If another replica holds
   it, poll the store until its token appears or the lock frees (bounded).
3. Re-check the store under the lock: the previous holder may have just written the token.
4. Reserve the fleet-wide issuance window (:mod:`._window`) and call the broker; on failure
   emit ``token.failed`` and retry (``max_retries``) with backoff, never inside a window.
5. Write the token with the lease's fence. The store refuses it if a newer fence wrote
   meanwhile (a stale holder whose lease ran out), so a stale writer always loses.
6. Announce ``token.issued`` / ``token.refreshed`` (never the token).

While the lock is held a heartbeat extends the lease every third of its TTL (a KIS window is
60 s, the lease 30 s); if the lease is lost the job is cancelled before it can call the broker
again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC
from typing import Final, Literal

import anyio
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from apihub_brokers import BrokerClient
from apihub_core import (
    HubError,
    Keys,
    Provider,
    TokenDeferred,
    TokenFailed,
    TokenIssued,
    TokenRefreshed,
    UpstreamRateLimited,
    UpstreamTransient,
    now_ms,
)
from apihub_runtime import (
    AccessToken,
    AccountConfig,
    FencedLock,
    Lease,
    StoredToken,
    TokenKeeperSettings,
    TokenStore,
)

from ._need import Need
from ._stream import TokenStream
from ._window import IssueWindow

log = logging.getLogger("apihub.token_keeper")

Result = Literal["met", "stored", "failed", "lost", "busy"]
"""How a job ended: ``met`` (nothing to do), ``stored`` (a token was issued and written),
``failed`` (the broker refused; ``token.failed`` was emitted), ``lost`` (the lease ran out or
a newer fence won: the token was not written), ``busy`` (another replica held the lock for
longer than a job may wait)."""

_POLL_START_S: Final = 0.02
_POLL_MAX_S: Final = 0.5
_BACKOFF_CAP_S: Final = 60.0
_RELEASE_TIMEOUT_S: Final = 2.0

Waiting = Callable[[], AbstractContextManager[None]]
"""Marks a stretch of a job that only waits (a delivery's ``releasable``): a drain may end the
job there, and its request stays pending for the next keeper."""


def to_stored(token: AccessToken, fence: int) -> StoredToken:
    """The broker's token as the store keeps it, under ``fence``."""
    return StoredToken(
        value=token.value,
        expires_at_ms=int(token.expires_at.astimezone(UTC).timestamp() * 1000),
        issued_at_ms=now_ms(),
        fence=fence,
        token_type=token.token_type,
    )


class Issuer:
    """Issues and stores the tokens of every account; one job per account at a time per
    process is the caller's job (:class:`~apihub_token_keeper.TokenKeeper` serialises them)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        store: TokenStore,
        clients: Mapping[Provider, BrokerClient],
        tuning: TokenKeeperSettings,
        events: TokenStream,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._store = store
        self._clients = clients
        self._tuning = tuning
        self._events = events
        self._refresh_before_ms = int(tuning.refresh_before_s * 1000)
        self.issuances = 0

    # -- names -----------------------------------------------------------------------------

    def token_key(self, account: AccountConfig) -> str:
        """The store key of ``account``'s token."""
        return self._keys.token(account.provider.value, account.name)

    def lock(self, account: AccountConfig) -> FencedLock:
        """The refresh lock of ``account`` (each account has its own lock, fence and window)."""
        provider, name = account.provider.value, account.name
        return FencedLock(
            self._redis,
            self._keys.token_lock(provider, name),
            self._keys.token_fence(provider, name),
            self._keys.lock_contention,
        )

    def window(self, account: AccountConfig) -> IssueWindow:
        """The issuance window of ``account``'s app key."""
        window_s = (
            self._tuning.kis_issue_window_s
            if account.provider is Provider.KIS
            else self._tuning.kiwoom_issue_window_s
        )
        return IssueWindow(
            self._redis,
            self._keys.token_issue_window(account.provider.value, account.name),
            window_s,
        )

    def met(self, need: Need, stored: StoredToken | None) -> bool:
        """Whether ``stored`` already satisfies ``need``."""
        return need.met_by(stored, now_ms=now_ms(), refresh_before_ms=self._refresh_before_ms)

    # -- one job ---------------------------------------------------------------------------

    async def ensure(
        self, account: AccountConfig, need: Need, *, waiting: Waiting = nullcontext
    ) -> Result:
        """Make the store satisfy ``need`` for ``account``, issuing at most once. Its waits (for
        another replica's lock, the issuance window, a retry) run inside ``waiting()``."""
        key = self.token_key(account)
        stored = await self._store.get(key)
        if self.met(need, stored):
            return "met"
        lock = self.lock(account)
        lease = await self._acquire(
            lock, key, need, account, above=stored.fence if stored else 0, waiting=waiting
        )
        if lease is None:
            return "met" if self.met(need, await self._store.get(key)) else "busy"
        result: Result = "lost"
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeat, lock, lease, tg.cancel_scope)
                result = await self._locked(account, need, lease, waiting)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_RELEASE_TIMEOUT_S):
                try:
                    await lock.release(lease)
                except (RedisError, OSError) as exc:
                    # The lease expires on its own; a successor takes over after its TTL.
                    log.warning("could not release %s (%s)", lock.key, type(exc).__name__)
        return result

    async def _acquire(
        self,
        lock: FencedLock,
        key: str,
        need: Need,
        account: AccountConfig,
        *,
        above: int,
        waiting: Waiting,
    ) -> Lease | None:
        # Another replica holding the lock is doing this very work: poll until its token shows
        # up or the lock frees. Bounded by what a holder may take: every attempt plus windows.
        attempts = self._tuning.max_retries + 1
        window_s = self.window(account).window_ms / 1000
        bound = self._tuning.lock_ttl_ms / 1000 + attempts * (window_s + 15.0)
        delay = _POLL_START_S
        with anyio.move_on_after(bound):
            while True:
                lease = await lock.try_acquire(self._tuning.lock_ttl_ms, above=above)
                if lease is not None:
                    return lease
                if self.met(need, await self._store.get(key)):
                    return None
                with waiting():
                    await anyio.sleep(delay)
                delay = min(delay * 2, _POLL_MAX_S)
        log.warning("%s stayed locked for %.0f s; leaving the job to its holder", lock.key, bound)
        return None

    async def _heartbeat(self, lock: FencedLock, lease: Lease, scope: anyio.CancelScope) -> None:
        ttl = self._tuning.lock_ttl_ms
        while True:
            await anyio.sleep(ttl / 3000)
            try:
                kept = await lock.extend(lease, ttl)
            except (RedisError, OSError) as exc:
                log.warning("could not extend %s (%s)", lease.key, type(exc).__name__)
                continue
            if not kept:
                log.warning("lost %s (fence %d); abandoning the job", lease.key, lease.fence)
                scope.cancel()
                return

    async def _locked(
        self, account: AccountConfig, need: Need, lease: Lease, waiting: Waiting
    ) -> Result:
        key = self.token_key(account)
        previous = await self._store.get(key)
        if self.met(need, previous):
            return "met"
        token = await self._issue(account, lease, waiting)
        if token is None:
            return "failed"
        return "stored" if await self.commit(account, lease, token, previous, need) else "lost"

    async def _issue(
        self, account: AccountConfig, lease: Lease, waiting: Waiting
    ) -> AccessToken | None:
        client = self._clients[account.provider]
        window = self.window(account)
        owner = f"fence-{lease.fence}"
        attempts = self._tuning.max_retries + 1

        async def announce_wait(wait_s: float) -> None:
            await self._events.append(
                TokenDeferred(
                    provider=account.provider.value,
                    account=account.name,
                    not_before_ms=now_ms() + int(wait_s * 1000),
                    at_ms=now_ms(),
                )
            )

        for attempt in range(1, attempts + 1):
            await window.reserve(owner, on_wait=announce_wait, waiting=waiting)
            try:
                token = await client.issue_token(account)
            except HubError as exc:
                error = exc
            else:
                # The broker's window started when our call arrived; ours restarts now, after.
                await window.restart(owner)
                self.issuances += 1
                return token
            await window.restart(owner)
            retry_in = self._retry_in(error, attempt) if attempt < attempts else None
            if retry_in is not None:
                retry_in = max(retry_in, await window.remaining_ms() / 1000)
            await self._failed(account, error, attempt, retry_in)
            if retry_in is None:
                return None
            with waiting():
                await anyio.sleep(retry_in)
        return None  # pragma: no cover - the loop returns on its last attempt

    def _retry_in(self, error: HubError, attempt: int) -> float | None:
        if isinstance(error, UpstreamRateLimited):
            # EGW00133 (someone outside the hub issued within the minute): the restarted window
            # already holds the next attempt back a full window; no extra backoff.
            return 0.0
        if isinstance(error, UpstreamTransient):
            backoff: float = self._tuning.retry_backoff_s * 2.0 ** (attempt - 1)
            return min(backoff, _BACKOFF_CAP_S)
        return None  # wrong app key or secret, bad URL: asking again cannot help

    async def _failed(
        self, account: AccountConfig, error: HubError, attempt: int, retry_in: float | None
    ) -> None:
        code = getattr(error, "code", "")
        log.warning(
            "%s token issuance for account %s (app key %s) failed, attempt %d: %s [%s]; %s",
            account.provider.value,
            account.name,
            account.app_key.fingerprint(),
            attempt,
            error.error_class,
            code,
            f"retrying in {retry_in:.1f} s" if retry_in is not None else "giving up",
        )
        await self._events.append(
            TokenFailed(
                provider=account.provider.value,
                account=account.name,
                error_class=error.error_class,
                code=code,
                message=error.message[:500],
                attempt=attempt,
                retry_in_ms=None if retry_in is None else int(retry_in * 1000),
                failed_at_ms=now_ms(),
            )
        )

    async def commit(
        self,
        account: AccountConfig,
        lease: Lease,
        token: AccessToken,
        previous: StoredToken | None,
        need: Need,
    ) -> bool:
        """Store ``token`` under ``lease``'s fence and announce it; ``False`` if the store
        refused it because a newer fence wrote first (this writer was stale)."""
        stored = to_stored(token, lease.fence)
        if not await self._store.put(self.token_key(account), stored):
            log.warning(
                "stale write refused: %s token of account %s under fence %d (a newer one exists)",
                account.provider.value,
                account.name,
                lease.fence,
            )
            return False
        replaced = previous is not None and previous.expires_at_ms > stored.issued_at_ms
        kind = TokenRefreshed if replaced else TokenIssued
        event = kind(
            provider=account.provider.value,
            account=account.name,
            fence=stored.fence,
            expires_at_ms=stored.expires_at_ms,
            issued_at_ms=stored.issued_at_ms,
            reason=need.reason,
            replaces_fence=previous.fence if previous is not None else None,
        )
        await self._events.append(event)
        log.info(
            "%s %s token for account %s (app key %s), fence %d, %s, expires in %.0f s",
            "refreshed" if replaced else "issued",
            account.provider.value,
            account.name,
            account.app_key.fingerprint(),
            stored.fence,
            need.reason,
            (stored.expires_at_ms - stored.issued_at_ms) / 1000,
        )
        return True
