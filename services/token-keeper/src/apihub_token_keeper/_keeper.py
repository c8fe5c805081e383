"""The token-keeper: the only process of the fleet that issues access tokens.

It reads the token stream as a member of its own consumer group and runs a refresh scheduler:

* ``token.requested`` (a dispatcher has no usable token): issue unless the store already holds
  one that is not due for refresh;
* ``token.invalidated`` (the broker rejected the token written under ``fence``): replace it
  once per fence - a report naming an older fence than the stored token's is ignored;
* its own ``token.issued`` / ``token.refreshed`` / ``token.failed``: acknowledged, nothing else;
* every ``scan_interval_s``: refresh each stored token with less than ``refresh_before_s`` left.

Jobs of one account run one at a time in a process (an ``anyio.Lock``) and one at a time in the
fleet (the fenced lock, see :mod:`._issuer`), so a herd of requests costs one issuance.

Drain on :meth:`TokenKeeper.stop`: stop reading and scheduling → in-flight jobs get
``SHUTDOWN_GRACE_S`` → the rest is cancelled (their entries stay pending for another replica,
their locks are released in shielded ``finally`` blocks).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import nullcontext
from typing import Final

import anyio
import redis.asyncio as aioredis
from anyio.abc import TaskGroup, TaskStatus
from redis.exceptions import RedisError

from apihub_brokers import BrokerClient
from apihub_core import (
    DEAD_LETTER_MAXLEN,
    EntryDecodeError,
    Keys,
    Provider,
    TokenFailed,
    TokenInvalidated,
    TokenRequested,
    decode_token_event,
    encode_entry,
    now_ms,
)
from apihub_runtime import (
    AccountConfig,
    Delivery,
    Settings,
    StreamConsumer,
    TokenStore,
    consumer_name,
    dead_letter_event,
)

from ._issuer import Issuer, Result, Waiting
from ._need import Need
from ._stream import TokenStream

log = logging.getLogger("apihub.token_keeper")

SHUTDOWN_GRACE_S: Final = 5.0
"""How long in-flight jobs may finish after :meth:`TokenKeeper.stop` before they are cancelled."""

_MAX_DELIVERIES: Final = 5


class TokenKeeper:
    """One token-keeper replica: consumer of the token stream plus the refresh scheduler."""

    def __init__(
        self,
        redis: aioredis.Redis,
        settings: Settings,
        clients: Mapping[Provider, BrokerClient],
        store: TokenStore,
        *,
        consumer: str | None = None,
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._tuning = settings.token_keeper
        self.keys = Keys(settings.namespace)
        self._store = store
        self.events = TokenStream(redis, self.keys)
        self.issuer = Issuer(redis, self.keys, store, clients, self._tuning, self.events)
        self.consumer = StreamConsumer(
            redis,
            stream=self.keys.tokens,
            group=self._tuning.group,
            consumer=consumer or consumer_name("token-keeper"),
            handler=self._handle,
            on_poison=self._poison,
            block_ms=self._tuning.block_ms,
            # A job may hold its entry through a whole KIS window; the consumer renews the
            # lease of entries it is working on, so only a dead replica's entries are reclaimed.
            reclaim_idle_ms=self._tuning.lock_ttl_ms,
            reclaim_interval_s=self._tuning.scan_interval_s,
            max_deliveries=_MAX_DELIVERIES,
            shutdown_grace_s=SHUTDOWN_GRACE_S,
            progress_key=self.keys.group_progress(self.keys.tokens, self._tuning.group),
            members_key=self.keys.group_members(self.keys.tokens, self._tuning.group),
        )
        self._locks: dict[tuple[Provider, str], anyio.Lock] = {}
        self._not_before: dict[tuple[Provider, str], float] = {}
        self._stopping = anyio.Event()
        self._consumer_done = anyio.Event()
        self._jobs_running = 0
        self._jobs_idle = anyio.Event()
        self._jobs: TaskGroup | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Consume and schedule until :meth:`stop`; readiness once the group exists."""
        async with anyio.create_task_group() as tg:
            self._jobs = tg
            await tg.start(self._consume)
            scheduler = anyio.CancelScope()
            tg.start_soon(self._schedule, scheduler)
            if self._tuning.eager:
                for account in self.accounts():
                    self._spawn(account, Need("startup"))
            log.info(
                "token-keeper %s ready: %d accounts, %s",
                self.consumer.consumer,
                sum(1 for _ in self.accounts()),
                "eager" if self._tuning.eager else "lazy",
            )
            task_status.started()
            await self._stopping.wait()
            scheduler.cancel()
            self.consumer.stop()
            with anyio.move_on_after(SHUTDOWN_GRACE_S + 1.0):
                await self._consumer_done.wait()
                while self._jobs_running:
                    await self._jobs_idle.wait()
            if self._jobs_running:
                log.warning("cancelling %d refresh jobs after the grace", self._jobs_running)
            tg.cancel_scope.cancel()

    def stop(self) -> None:
        """Stop reading and scheduling; :meth:`run` returns once in-flight jobs are done."""
        self._stopping.set()

    async def _consume(self, *, task_status: TaskStatus[None]) -> None:
        try:
            await self.consumer.run(task_status=task_status)
        finally:
            self._consumer_done.set()

    # -- accounts and jobs -----------------------------------------------------------------

    def accounts(self) -> Iterator[AccountConfig]:
        """The accounts this keeper serves: every configured one with a broker URL."""
        for account in self._settings.accounts.values():
            if account.base_url:
                yield account

    def _account(self, provider: str, name: str) -> AccountConfig | None:
        try:
            account = self._settings.accounts.get((Provider(provider), name))
        except ValueError:
            return None
        return account if account is not None and account.base_url else None

    async def ensure(
        self, account: AccountConfig, need: Need, *, waiting: Waiting = nullcontext
    ) -> Result:
        """Run one job for ``account``; jobs of one account never overlap in this process.
        ``waiting`` marks the job's waits (see :meth:`Issuer.ensure`)."""
        lock = self._locks.setdefault((account.provider, account.name), anyio.Lock())
        with waiting():
            await lock.acquire()
        try:
            return await self.issuer.ensure(account, need, waiting=waiting)
        finally:
            lock.release()

    def _spawn(self, account: AccountConfig, need: Need) -> None:
        if self._jobs is None:
            raise RuntimeError("the token-keeper is not running")
        self._jobs_running += 1
        if self._jobs_idle.is_set():
            self._jobs_idle = anyio.Event()
        self._jobs.start_soon(self._job, account, need)

    async def _job(self, account: AccountConfig, need: Need) -> None:
        key = (account.provider, account.name)
        try:
            result = await self.ensure(account, need)
        except Exception:
            # One account's failure must never stop the keeper; the next scan tries again.
            log.exception("%s job of %s/%s failed", need.reason, account.provider.value, key[1])
            result = "failed"
        finally:
            self._jobs_running -= 1
            if not self._jobs_running:
                self._jobs_idle.set()
        if result != "stored":
            # Back off this account's scheduled refresh: at least one issuance window.
            window_s = self.issuer.window(account).window_ms / 1000
            wait = max(self._tuning.scan_interval_s, window_s)
            self._not_before[key] = anyio.current_time() + wait

    # -- the scheduler ---------------------------------------------------------------------

    async def _schedule(self, scope: anyio.CancelScope) -> None:
        with scope:
            while True:
                try:
                    await self.scan_once()
                except (RedisError, OSError) as exc:
                    log.warning("refresh scan failed (%s); next scan as usual", exc)
                await anyio.sleep(self._tuning.scan_interval_s)

    async def scan_once(self) -> int:
        """Start a refresh for every stored token due for one; returns how many started."""
        started = 0
        need = Need("expiring")
        for account in self.accounts():
            key = (account.provider, account.name)
            lock = self._locks.get(key)
            if (lock is not None and lock.locked()) or self._not_before.get(
                key, 0.0
            ) > anyio.current_time():
                continue
            stored = await self._store.get(self.issuer.token_key(account))
            # Lazy by design: an account that never had a token gets none until asked for.
            if stored is None or self.issuer.met(need, stored):
                continue
            self._spawn(account, need)
            started += 1
        return started

    # -- the token stream ------------------------------------------------------------------

    async def _handle(self, delivery: Delivery) -> None:
        try:
            event = decode_token_event(delivery.fields)
        except EntryDecodeError as exc:
            await self._dead_letter(delivery, exc.reason, exc.detail)
            return
        if isinstance(event, TokenRequested):
            await self._on_need(event.provider, event.account, Need("requested"), delivery)
        elif isinstance(event, TokenInvalidated):
            log.info(
                "%s token of account %s (fence %d) reported rejected [%s] by %s",
                event.provider,
                event.account,
                event.fence,
                event.code,
                event.reported_by or "?",
            )
            await self._on_need(
                event.provider,
                event.account,
                Need("invalidated", stale_fence=event.fence),
                delivery,
            )
        # token.issued / refreshed / failed are our own announcements: nothing to do.
        await self._redis.xack(self.keys.tokens, self._tuning.group, delivery.entry_id)

    async def _on_need(self, provider: str, name: str, need: Need, delivery: Delivery) -> None:
        account = self._account(provider, name)
        if account is None:
            log.warning("token asked for unknown account %s/%s", provider, name)
            await self.events.append(
                TokenFailed(
                    provider=provider,
                    account=name,
                    error_class="invalid",
                    code="APIHUB-UNKNOWN-ACCOUNT",
                    message=f"the token-keeper has no {provider} account {name!r} configured",
                    retry_in_ms=None,
                    failed_at_ms=now_ms(),
                )
            )
            return
        # Waiting out a window or a retry is only waiting: a drain hands the request back to
        # the group at once instead of sitting out its grace (the next keeper takes it over).
        result = await self.ensure(account, need, waiting=delivery.releasable)
        if result == "met" and need.reason == "invalidated":
            log.info(
                "%s token of account %s: fence %s already replaced; report ignored",
                provider,
                name,
                need.stale_fence,
            )

    async def _poison(self, delivery: Delivery) -> None:
        if delivery.fields:
            await self._dead_letter(
                delivery,
                "too_many_deliveries",
                f"delivered {delivery.deliveries} times (limit {_MAX_DELIVERIES})",
            )
        else:
            await self._redis.xack(self.keys.tokens, self._tuning.group, delivery.entry_id)

    async def _dead_letter(self, delivery: Delivery, reason: str, detail: str) -> None:
        log.warning("dead-lettering token entry %s (%s): %s", delivery.id_text, reason, detail)
        letter = dead_letter_event(
            source_stream=delivery.stream,
            entry_id=delivery.id_text,
            fields=delivery.fields,
            reason=reason,
            detail=detail,
            group=self._tuning.group,
            deliveries=delivery.deliveries,
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self.keys.dead_letter,
                encode_entry(letter),
                maxlen=DEAD_LETTER_MAXLEN,
                approximate=True,
            )
            pipe.xack(self.keys.tokens, self._tuning.group, delivery.entry_id)
            await pipe.execute()
