"""The reconciler service: a consumer group on the response stream that follows up every
``outcome_unknown`` order by asking the broker's own inquiries (through the hub, governed like
any call) and appending ``order.reconciled`` to ``<ns>:orders``. It never resends an order.

Brokers may list today's orders late, so a ``not_found`` is checked again after each of
:data:`RECHECK_AFTER_S` before it stands; ``found`` and ``ambiguous`` stand at once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Final

import anyio
import redis.asyncio as aioredis
from anyio.abc import TaskStatus

from apihub_brokers import configured_catalog
from apihub_core import (
    DEAD_LETTER_MAXLEN,
    TYPE_FIELD,
    ConfigurationError,
    EntryDecodeError,
    HubClient,
    HubError,
    Keys,
    OrderReconciled,
    Provider,
    RequestFailed,
    decode_outcome,
    encode_entry,
    redis_client,
)
from apihub_runtime import (
    Delivery,
    Settings,
    StreamConsumer,
    consumer_name,
    dead_letter_event,
    serve,
)

from ._reconcile import INQUIRY_TIMEOUT_S, load_order_request, reconcile

log = logging.getLogger("apihub.reconciler")

GROUP: Final = "reconciler"
_TYPE: Final = TYPE_FIELD.encode()
_SUCCESS: Final = b"response.received"
RECHECK_AFTER_S: Final = (5.0, 30.0, 120.0)
CONCURRENCY: Final = 8


class Reconciler:
    """One member of the ``reconciler`` group on the response stream."""

    def __init__(
        self,
        redis: aioredis.Redis,
        hub: HubClient,
        settings: Settings,
        *,
        recheck_after_s: Sequence[float] = RECHECK_AFTER_S,
        inquiry_timeout_s: float = INQUIRY_TIMEOUT_S,
    ) -> None:
        self._redis = redis
        self._inquiry_timeout_s = inquiry_timeout_s
        self._hub = hub
        self._settings = settings
        self._recheck = tuple(recheck_after_s)
        self.keys = Keys(settings.namespace)
        self.consumer = StreamConsumer(
            redis,
            stream=self.keys.responses,
            group=GROUP,
            consumer=consumer_name(GROUP),
            handler=self._handle,
            on_poison=self._poison,
            concurrency=CONCURRENCY,
            progress_key=self.keys.group_progress(self.keys.responses, GROUP),
            members_key=self.keys.group_members(self.keys.responses, GROUP),
        )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Consume until :meth:`stop`, then drain."""
        await self.consumer.run(task_status=task_status)

    def stop(self) -> None:
        """Begin the drain: entries not yet reconciled stay pending for the next member."""
        self.consumer.stop()

    def _is_order(self, outcome: RequestFailed) -> bool:
        try:
            provider = Provider.parse(outcome.provider)
        except ValueError:
            return False
        spec = configured_catalog(self._settings).lookup(provider, outcome.tr_id)
        return spec is not None and spec.is_order

    async def _handle(self, delivery: Delivery) -> None:
        if delivery.fields.get(_TYPE) == _SUCCESS:
            # Most of the stream: answered calls. The entry's type field says so without a decode.
            await self._ack(delivery)
            return
        try:
            outcome = decode_outcome(delivery.fields)
        except EntryDecodeError as exc:
            # Not ours to judge: the response stream's own readers dead-letter bad entries.
            log.debug("skipping %s (%s)", delivery.id_text, exc.reason)
            await self._ack(delivery)
            return
        if (
            isinstance(outcome, RequestFailed)
            and outcome.error_class == "outcome_unknown"
            and self._is_order(outcome)
        ):
            # Only inquiries and waits: a drain may release it, and the next member starts over.
            with delivery.releasable():
                await self._follow_up(outcome.request_id)
        await self._ack(delivery)

    async def _follow_up(self, request_id: str) -> None:
        try:
            order = await load_order_request(self._redis, self.keys, request_id)
        except HubError as exc:
            log.warning("cannot reconcile %s: %s", request_id, exc)
            return
        event: OrderReconciled | None = None
        for check, delay in enumerate((0.0, *self._recheck), start=1):
            await anyio.sleep(delay)
            try:
                event = await reconcile(
                    self._hub,
                    self._redis,
                    self._settings,
                    order,
                    trigger="auto",
                    checks=check,
                    inquiry_timeout_s=self._inquiry_timeout_s,
                )
            except HubError as exc:
                # An inquiry that failed says nothing about the order: try again later.
                log.warning("reconciling %s: inquiry failed (%s)", request_id, exc)
                continue
            if event.status != "not_found":
                break
        if event is not None:
            log.info(
                "reconciled %s: %s%s",
                request_id,
                event.status,
                f" as order {event.order_no}" if event.order_no else "",
            )

    async def _ack(self, delivery: Delivery) -> None:
        await self._redis.xack(self.keys.responses, GROUP, delivery.entry_id)

    async def _poison(self, delivery: Delivery) -> None:
        if not delivery.fields:
            await self._ack(delivery)
            return
        letter = dead_letter_event(
            source_stream=delivery.stream,
            entry_id=delivery.id_text,
            fields=delivery.fields,
            reason="too_many_deliveries",
            detail="reconciling kept failing",
            group=GROUP,
            deliveries=delivery.deliveries,
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self.keys.dead_letter,
                encode_entry(letter),
                maxlen=DEAD_LETTER_MAXLEN,
                approximate=True,
            )
            pipe.xack(self.keys.responses, GROUP, delivery.entry_id)
            await pipe.execute()


@asynccontextmanager
async def open_reconciler(
    settings: Settings,
    *,
    recheck_after_s: Sequence[float] = RECHECK_AFTER_S,
    inquiry_timeout_s: float = INQUIRY_TIMEOUT_S,
) -> AsyncIterator[Reconciler]:
    """The composition root: a Redis pool, a hub client for the inquiries, the reconciler."""
    if not settings.redis_url:
        raise ConfigurationError(
            "the reconciler needs REDIS_URL (or run everything with `apihub up`)"
        )
    # Handlers plus the loop's reads and the hub client's own connections.
    redis = redis_client(settings.redis_url, max_connections=CONCURRENCY * 2 + 8)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(redis.aclose)
        hub = await stack.enter_async_context(
            HubClient.from_url(
                settings.redis_url,
                namespace=settings.namespace,
                max_connections=CONCURRENCY * 2 + 4,
            )
        )
        yield Reconciler(
            redis,
            hub,
            settings,
            recheck_after_s=recheck_after_s,
            inquiry_timeout_s=inquiry_timeout_s,
        )


async def run_reconciler(settings: Settings) -> int:
    """Run one reconciler until SIGINT/SIGTERM, drain it, and return the exit status."""
    return await serve(open_reconciler(settings), name="reconciler")
