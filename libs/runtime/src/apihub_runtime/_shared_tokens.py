"""The dispatcher's side of the governed token path: read the token-keeper's shared token.

A dispatcher never issues a token. :meth:`SharedTokenSource.get` returns the cached token
while it has more than a safety margin of life left, else reads the encrypted store; when the
store has nothing usable it appends one ``token.requested`` and waits - bounded by
``token_wait_s`` - for the keeper's ``token.issued``/``token.refreshed``/``token.failed`` on
the token stream. However many requests of this process need the account at once, they share
that one request and that one wait.

:meth:`SharedTokenSource.invalidate` reports a rejected token (``token.invalidated`` with its
fence; once per fence per process) and stops using it. :meth:`SharedTokenSource.run` watches
the token stream and drops a cached token as soon as a newer fence is announced, because on
Kiwoom a new issuance revokes the old token at once (8005).

No lost wake-up: the last entry id of the token stream is noted *before* the store is read, so
a token stored after that read is announced after that id and the wait sees it; a quiet
``block_ms`` re-reads the store anyway (a keeper may die between storing and announcing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, cast

import anyio
import redis.asyncio as aioredis
from anyio.abc import TaskStatus
from redis.exceptions import RedisError

from apihub_core import (
    TOKEN_STREAM_MAXLEN,
    EntryDecodeError,
    HubError,
    HubUnavailable,
    Keys,
    StreamBatches,
    TokenFailed,
    TokenInvalidated,
    TokenIssued,
    TokenRefreshed,
    TokenRequested,
    UpstreamError,
    decode_token_event,
    encode_entry,
    error_type_for,
    now_ms,
)

from ._settings import AccountConfig, TokenKeeperSettings
from ._token_store import StoredToken, TokenStore
from ._tokens import AccessToken

log = logging.getLogger("apihub.dispatcher.tokens")

SAFETY_MARGIN_S: Final = 30.0
"""A token with less life than this is not used: a call must not outlive its token. (Capped
at half of ``refresh_before_s``, so the keeper always refreshes before dispatchers give up
on a token.)"""

_READ_COUNT: Final = 100
_BACKOFF_MAX_S: Final = 2.0

_Key = tuple[str, str]


@dataclass(eq=False)
class _Flight:
    """One fetch of one account's token that every concurrent caller of this process shares."""

    done: anyio.Event = field(default_factory=anyio.Event)
    token: AccessToken | None = None
    error: Exception | None = None


class SharedTokenSource:
    """A :class:`~apihub_dispatcher.TokenSource` reading the token-keeper's encrypted tokens.

    ``member`` names this process in the events it writes (``requested_by``/``reported_by``).
    Start :meth:`run` in the service's task group (``await tg.start(source.run)``) so cached
    tokens are dropped as soon as the keeper replaces them; :meth:`stop` ends it.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        store: TokenStore,
        settings: TokenKeeperSettings,
        *,
        member: str,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._store = store
        self._settings = settings
        self.member = member
        self._margin_s = min(SAFETY_MARGIN_S, settings.refresh_before_s / 2)
        self._cache: dict[_Key, AccessToken] = {}
        self._rejected: dict[_Key, int] = {}
        self._flights: dict[_Key, _Flight] = {}
        # The keeper's last "not before" per account: until then a request fails fast with the
        # same error instead of waiting token_wait_s for a retry that cannot come sooner.
        self._refused: dict[_Key, tuple[float, TokenFailed]] = {}
        self._scope: anyio.CancelScope | None = None
        self._stopped = False
        self.requests_sent = 0
        self.invalidations_sent = 0
        self.switches = 0

    # -- TokenSource -----------------------------------------------------------------------

    def cached(self, account: AccountConfig) -> AccessToken | None:
        """The token this process would use for ``account`` without asking Redis, if any."""
        return self._usable(self._cache.get(_key(account)))

    async def get(self, account: AccountConfig) -> AccessToken:
        """A token for ``account`` with more than the safety margin of life left.

        Raises :class:`~apihub_core.HubUnavailable` when none appears within ``token_wait_s``
        (or Redis cannot be reached), or the typed error of a ``token.failed`` whose keeper
        gave up (``retry_in_ms`` null), e.g. ``UpstreamAuthError`` for a wrong app secret.
        """
        key = _key(account)
        while True:
            token = self._usable(self._cache.get(key))
            if token is not None:
                return token
            refused = self._refused.get(key)
            if refused is not None and anyio.current_time() < refused[0]:
                raise _failure_error(refused[1], self._settings.token_wait_s, gave_up=False)
            flight = self._flights.get(key)
            if flight is None:
                return await self._lead(key, account)
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error
            if flight.token is not None:
                return flight.token
            # The leading caller was cancelled before it finished: the next one leads.

    async def invalidate(
        self, account: AccountConfig, token: AccessToken, *, code: str = ""
    ) -> None:
        """Stop using ``token`` and report it (``token.invalidated`` with its fence) once."""
        key = _key(account)
        cached = self._cache.get(key)
        if cached is not None and cached.fence <= token.fence:
            del self._cache[key]
        if token.fence <= self._rejected.get(key, -1):
            return  # this process already reported this fence (or a newer one)
        self._rejected[key] = token.fence
        log.info(
            "%s token of account %s (fence %d) rejected [%s]; asking the token-keeper for another",
            account.provider.value,
            account.name,
            token.fence,
            code,
        )
        try:
            await self._append(
                TokenInvalidated(
                    provider=account.provider.value,
                    account=account.name,
                    fence=token.fence,
                    code=code,
                    reported_by=self.member,
                    reported_at_ms=now_ms(),
                )
            )
        except (RedisError, OSError) as exc:
            # The next get() still refuses this fence and asks for a token itself.
            log.warning("could not report a rejected token (%s)", type(exc).__name__)
            return
        self.invalidations_sent += 1

    # -- the watcher -----------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Watch the token stream until :meth:`stop`, dropping tokens the keeper replaced."""
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self._stopped:
                scope.cancel()
            since = await self._start_id()
            task_status.started()
            backoff = 0.05
            while True:
                try:
                    batches = await self._read(since)
                except (RedisError, OSError) as exc:
                    log.warning("token watcher: read failed (%s); retrying", type(exc).__name__)
                    await anyio.sleep(backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX_S)
                    continue
                backoff = 0.05
                for _stream, entries in batches or ():
                    for entry_id, fields in entries:
                        since = entry_id
                        event = _decode(fields)
                        if isinstance(event, TokenIssued | TokenRefreshed):
                            self._replaced(event)
        self._scope = None

    def stop(self) -> None:
        """End :meth:`run`."""
        self._stopped = True
        if self._scope is not None:
            self._scope.cancel()

    def _replaced(self, event: TokenIssued | TokenRefreshed) -> None:
        key = (event.provider, event.account)
        cached = self._cache.get(key)
        if cached is not None and cached.fence < event.fence:
            del self._cache[key]
            self.switches += 1
            log.info(
                "%s token of account %s replaced (fence %d → %d, %s); switching",
                event.provider,
                event.account,
                cached.fence,
                event.fence,
                event.reason,
            )

    # -- fetching --------------------------------------------------------------------------

    async def _lead(self, key: _Key, account: AccountConfig) -> AccessToken:
        flight = _Flight()
        self._flights[key] = flight
        try:
            flight.token = await self._fetch(key, account)
        except HubError as exc:
            flight.error = exc
            raise
        except (RedisError, OSError) as exc:
            flight.error = HubUnavailable(
                f"could not read the {account.provider.value} token of account "
                f"{account.name!r} from Redis ({type(exc).__name__})",
                provider=account.provider.value,
            )
            raise flight.error from None
        finally:
            del self._flights[key]
            flight.done.set()
        return flight.token

    async def _fetch(self, key: _Key, account: AccountConfig) -> AccessToken:
        provider, name = key
        redis_key = self._keys.token(provider, name)
        since = await self._start_id()
        token = self._accept(key, await self._store.get(redis_key))
        if token is not None:
            return token
        await self._append(
            TokenRequested(
                provider=provider,
                account=name,
                requested_by=self.member,
                requested_at_ms=now_ms(),
            )
        )
        self.requests_sent += 1
        wait_s = self._settings.token_wait_s
        deadline = anyio.current_time() + wait_s
        failure: TokenFailed | None = None
        with anyio.move_on_after(wait_s):
            while True:
                batches = await self._read(since)
                announced = False
                for _stream, entries in batches or ():
                    for entry_id, fields in entries:
                        since = entry_id
                        event = _decode(fields)
                        if event is None or (event.provider, event.account) != key:
                            continue
                        if isinstance(event, TokenFailed):
                            if event.retry_in_ms is None:
                                raise _failure_error(event, wait_s, gave_up=True)
                            retry_at = anyio.current_time() + event.retry_in_ms / 1000
                            if retry_at >= deadline:
                                # The keeper's next try (say, after an EGW00133 minute) is
                                # past our wait: answer now instead of waiting in vain.
                                self._refused[key] = (retry_at, event)
                                raise _failure_error(event, wait_s, gave_up=False)
                            failure = event
                        elif isinstance(event, TokenIssued | TokenRefreshed):
                            announced = True
                if announced or not batches:
                    token = self._accept(key, await self._store.get(redis_key))
                    if token is not None:
                        return token
        if failure is not None:
            raise _failure_error(failure, wait_s, gave_up=False)
        raise HubUnavailable(
            f"no token for {provider} account {name!r} within {wait_s:g} s: "
            "is the token-keeper running?",
            provider=provider,
        )

    def _accept(self, key: _Key, stored: StoredToken | None) -> AccessToken | None:
        if stored is None or stored.fence <= self._rejected.get(key, -1):
            return None
        token = self._usable(
            AccessToken(
                value=stored.value,
                expires_at=datetime.fromtimestamp(stored.expires_at_ms / 1000, UTC),
                token_type=stored.token_type,
                fence=stored.fence,
            )
        )
        if token is not None:
            self._cache[key] = token
        return token

    def _usable(self, token: AccessToken | None) -> AccessToken | None:
        if token is None or token.expires_in() <= self._margin_s:
            return None
        return token

    # -- the token stream ------------------------------------------------------------------

    async def _start_id(self) -> bytes:
        last = await self._redis.xrevrange(self._keys.tokens, count=1)
        return cast(bytes, last[0][0]) if last else b"0-0"

    async def _read(self, since: bytes) -> StreamBatches:
        return cast(
            StreamBatches,
            await self._redis.xread(
                {self._keys.tokens: since}, count=_READ_COUNT, block=self._settings.block_ms
            ),
        )

    async def _append(self, event: TokenRequested | TokenInvalidated) -> None:
        await self._redis.xadd(
            self._keys.tokens, encode_entry(event), maxlen=TOKEN_STREAM_MAXLEN, approximate=True
        )


def _key(account: AccountConfig) -> _Key:
    return (account.provider.value, account.name)


def _decode(
    fields: dict[bytes, bytes],
) -> TokenRequested | TokenInvalidated | TokenIssued | TokenRefreshed | TokenFailed | None:
    try:
        return decode_token_event(fields)
    except EntryDecodeError:
        return None  # not ours to judge: the keeper dead-letters malformed entries


def _failure_error(event: TokenFailed, wait_s: float, *, gave_up: bool) -> HubError:
    what = (
        "the token-keeper gave up"
        if gave_up
        else f"no token within {wait_s:g} s; the token-keeper is still retrying"
    )
    message = (
        f"no {event.provider} token for account {event.account!r}: {what} "
        f"(attempt {event.attempt}: {event.message})"
    )
    cls = error_type_for(event.error_class, event.code)
    if issubclass(cls, UpstreamError):
        return cls(message, code=event.code, provider=event.provider)
    return cls(message, provider=event.provider)
