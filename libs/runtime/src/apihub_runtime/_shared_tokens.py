"""A service's side of the governed token path: read the token-keeper's shared token.

A service never issues a token. :meth:`SharedTokenSource.get` returns the cached token while it
has more than a safety margin of life left, else reads the encrypted store; when the store has
nothing usable it appends one ``token.requested`` and waits - within the caller's deadline (its
cancel scope) - for the keeper's answer on the token stream: ``token.issued``/``refreshed``
(read the store again), ``token.deferred`` (the app key's issuance window is taken until a
known time) or ``token.failed`` (with the keeper's next try, or none). However many callers of
this process need the account at once, they share that one request.

Every caller decides by its own deadline: a token that cannot come before it (the keeper said
when it can try next, and that is later) is refused at once with the keeper's reason; one that
can come in time is waited for, however long the keeper itself has to wait. Only a keeper that
answers nothing at all within ``token_wait_s`` makes a caller give up early, as
:class:`~apihub_core.HubUnavailable` ("is the token-keeper running?").

:meth:`SharedTokenSource.invalidate` reports a rejected token (``token.invalidated`` with its
fence; once per fence per process) and stops using it. :meth:`SharedTokenSource.run` watches the
token stream: it drops a cached token as soon as a newer fence is announced (on Kiwoom a new
issuance revokes the old token at once, 8005) and remembers the keeper's announced delays.

No lost wake-up: the last entry id of the token stream is noted *before* the store is read, so a
token stored after that read is announced after that id and the wait sees it; a quiet
``block_ms`` re-reads the store anyway (a keeper may die between storing and announcing).
"""

from __future__ import annotations

import logging
import math
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
    RequestTimeout,
    StreamBatches,
    TokenDeferred,
    TokenEvent,
    TokenFailed,
    TokenInvalidated,
    TokenIssued,
    TokenRefreshed,
    TokenRequested,
    decode_token_event,
    describe_redis_failure,
    encode_entry,
    error_for,
    now_ms,
)

from ._settings import AccountConfig, TokenKeeperSettings
from ._token_store import StoredToken, TokenStore
from ._tokens import AccessToken

log = logging.getLogger("apihub.tokens")

SAFETY_MARGIN_S: Final = 30.0
"""A token with less life than this is not used: a call must not outlive its token. (Capped
at half of ``refresh_before_s``, so the keeper always refreshes before services give up on a
token.)"""

_READ_COUNT: Final = 100
_BACKOFF_MAX_S: Final = 2.0

_Key = tuple[str, str]


@dataclass(eq=False)
class _Flight:
    """One fetch of one account's token that every concurrent caller of this process shares."""

    done: anyio.Event = field(default_factory=anyio.Event)
    token: AccessToken | None = None
    error: HubError | None = None


@dataclass(frozen=True, slots=True)
class _Delay:
    """The keeper's word that no token comes before ``at`` (``anyio.current_time()`` clock)."""

    at: float
    event: TokenDeferred | TokenFailed

    def error(self, provider: str, account: str) -> HubError:
        """What a caller whose deadline comes before ``at`` is told."""
        wait_s = max(0.0, self.at - anyio.current_time())
        head = f"no {provider} token for account {account!r} before the deadline"
        event = self.event
        if isinstance(event, TokenDeferred):
            return RequestTimeout(
                f"{head}: the app key's issuance window reopens in {wait_s:.1f} s ({event.reason})",
                provider=provider,
            )
        return error_for(
            event.error_class,
            f"{head}: the token-keeper tries again in {wait_s:.1f} s "
            f"(attempt {event.attempt}: {event.message})",
            code=event.code,
            provider=provider,
        )


class SharedTokenSource:
    """A :class:`~apihub_runtime.TokenSource` reading the token-keeper's encrypted tokens.

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
        self._delays: dict[_Key, _Delay] = {}
        self._asked_at: dict[_Key, float] = {}
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

        Waits within the caller's cancel scope (its deadline; ``token_wait_s`` when it has
        none). Raises the keeper's typed error when it gave up (``UpstreamAuthError`` for a
        wrong app secret) or when its next try comes after the deadline, and
        :class:`~apihub_core.HubUnavailable` when the keeper answers nothing within
        ``token_wait_s`` or Redis cannot be read.
        """
        key = _key(account)
        deadline = anyio.current_effective_deadline()
        if not math.isinf(deadline):
            return await self._get(key, account, deadline)
        wait_s = self._settings.token_wait_s
        with anyio.move_on_after(wait_s):
            return await self._get(key, account, anyio.current_time() + wait_s)
        delay = self._delays.get(key)
        if delay is not None and isinstance(delay.event, TokenFailed):
            raise error_for(
                delay.event.error_class,
                f"no {key[0]} token for account {key[1]!r} within {wait_s:g} s: the "
                f"token-keeper is still retrying (attempt {delay.event.attempt}: "
                f"{delay.event.message})",
                code=delay.event.code,
                provider=key[0],
            )
        raise HubUnavailable(
            f"no {key[0]} token for account {key[1]!r} within {wait_s:g} s", provider=key[0]
        )

    async def _get(self, key: _Key, account: AccountConfig, deadline: float) -> AccessToken:
        while True:
            token = self._usable(self._cache.get(key))
            if token is not None:
                return token
            delay = self._delays.get(key)
            if delay is not None and delay.at > deadline:
                raise delay.error(*key)
            flight = self._flights.get(key)
            if flight is None:
                return await self._lead(key, account, deadline)
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error
            if flight.token is not None:
                return flight.token
            # The leader gave up by its own deadline (or was cancelled): the next one leads.

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
        """Watch the token stream until :meth:`stop`: drop tokens the keeper replaced, note the
        delays it announces."""
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
                        elif isinstance(event, TokenDeferred | TokenFailed):
                            self._note_delay(event)
        self._scope = None

    def stop(self) -> None:
        """End :meth:`run`."""
        self._stopped = True
        if self._scope is not None:
            self._scope.cancel()

    def _replaced(self, event: TokenIssued | TokenRefreshed) -> None:
        key = (event.provider, event.account)
        self._delays.pop(key, None)
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

    def _note_delay(self, event: TokenDeferred | TokenFailed) -> _Delay | None:
        """Remember when the keeper can deliver at the earliest; ``None`` for a keeper that
        gave up (no time to remember)."""
        if isinstance(event, TokenDeferred):
            at = anyio.current_time() + max(0, event.not_before_ms - now_ms()) / 1000
        elif event.retry_in_ms is not None:
            at = anyio.current_time() + event.retry_in_ms / 1000
        else:
            return None
        delay = _Delay(at, event)
        self._delays[(event.provider, event.account)] = delay
        return delay

    # -- fetching --------------------------------------------------------------------------

    async def _lead(self, key: _Key, account: AccountConfig, deadline: float) -> AccessToken:
        flight = _Flight()
        self._flights[key] = flight
        try:
            flight.token = await self._fetch(key, deadline)
        except _TooLate as late:
            # Only this caller's deadline is too early; later callers decide for themselves.
            raise late.error from None
        except HubError as exc:
            flight.error = exc
            raise
        except (RedisError, OSError) as exc:
            flight.error = HubUnavailable(
                f"could not read the {account.provider.value} token of account "
                f"{account.name!r}: {describe_redis_failure(exc)}",
                provider=account.provider.value,
            )
            raise flight.error from None
        finally:
            del self._flights[key]
            flight.done.set()
        return flight.token

    async def _fetch(self, key: _Key, deadline: float) -> AccessToken:
        provider, name = key
        redis_key = self._keys.token(provider, name)
        since = await self._start_id()
        token = self._accept(key, await self._store.get(redis_key))
        if token is not None:
            return token
        wait_s = self._settings.token_wait_s
        asked = self._asked_at.get(key)
        if asked is None or anyio.current_time() - asked > wait_s:
            await self._append(
                TokenRequested(
                    provider=provider,
                    account=name,
                    requested_by=self.member,
                    requested_at_ms=now_ms(),
                )
            )
            self.requests_sent += 1
            asked = self._asked_at[key] = anyio.current_time()
        # Anything the keeper said about this account counts as an answer (a delay the watcher
        # noted, or one a previous leader saw): only total silence means it is not running.
        heard = key in self._delays
        while True:
            if not heard and anyio.current_time() - asked > wait_s:
                raise HubUnavailable(
                    f"no answer about the {provider} token of account {name!r} within "
                    f"{wait_s:g} s: is the token-keeper running?",
                    provider=provider,
                )
            batches = await self._read(since)
            announced = False
            for _stream, entries in batches or ():
                for entry_id, fields in entries:
                    since = entry_id
                    event = _decode(fields)
                    if event is None or (event.provider, event.account) != key:
                        continue
                    if isinstance(event, TokenDeferred | TokenFailed):
                        heard = True
                        delay = self._note_delay(event)
                        if delay is None:
                            assert isinstance(event, TokenFailed)  # noqa: S101 - see _note_delay
                            self._asked_at.pop(key, None)
                            raise _gave_up(event)
                        if delay.at > deadline:
                            raise _TooLate(delay.error(provider, name))
                    elif isinstance(event, TokenIssued | TokenRefreshed):
                        heard = announced = True
            if announced or not batches:
                token = self._accept(key, await self._store.get(redis_key))
                if token is not None:
                    return token

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
            self._delays.pop(key, None)
            self._asked_at.pop(key, None)
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


class _TooLate(Exception):
    """The keeper's next chance is after the leading caller's deadline (carries its error)."""

    def __init__(self, error: HubError) -> None:
        super().__init__(str(error))
        self.error = error


def _key(account: AccountConfig) -> _Key:
    return (account.provider.value, account.name)


def _decode(fields: dict[bytes, bytes]) -> TokenEvent | None:
    try:
        return decode_token_event(fields)
    except EntryDecodeError:
        return None  # not ours to judge: the keeper dead-letters malformed entries


def _gave_up(event: TokenFailed) -> HubError:
    return error_for(
        event.error_class,
        f"no {event.provider} token for account {event.account!r}: the token-keeper gave up "
        f"(attempt {event.attempt}: {event.message})",
        code=event.code,
        provider=event.provider,
    )
