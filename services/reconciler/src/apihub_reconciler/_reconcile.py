"""One reconciliation: read back the order request, ask the broker's inquiries through the
hub, judge the rows and append ``order.reconciled``. Used by the service and by
``apihub orders reconcile``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, cast

import redis.asyncio as aioredis

from apihub_brokers import (
    Candidate,
    candidate_rows,
    configured_catalog,
    judge,
    order_terms,
    reconciliation_inquiries,
    rows_of,
)
from apihub_core import (
    HubClient,
    Keys,
    OrderReconciled,
    Provider,
    RequestInvalid,
    RequestSubmitted,
    decode_request,
    encode_entry,
    now_ms,
)
from apihub_runtime import COMMIT_NOTE_FIELD, Settings

ORDERS_STREAM_MAXLEN: Final = 100_000
WINDOW_SLACK_S: Final = 60.0
"""Seconds added on each side of [accepted, failed]: the broker's clock may differ from ours."""
INQUIRY_TIMEOUT_S: Final = 15.0


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """The order request as the hub accepted it, and when."""

    request: RequestSubmitted
    accepted_at: datetime
    failed_at: datetime | None


def _ms(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


def _when(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


async def load_order_request(redis: aioredis.Redis, keys: Keys, request_id: str) -> OrderRequest:
    """The request ``request_id`` from the request stream (via its request-id record)."""
    record = keys.request_record(request_id)
    entry, outcome = cast(
        list[bytes | None], await redis.hmget(record, ["entry", COMMIT_NOTE_FIELD])
    )
    if entry is None:
        raise RequestInvalid(
            f"no request {request_id!r} on this hub (request records are kept 24 h)",
            request_id=request_id,
        )
    found = await redis.xrange(keys.requests, entry, entry)
    if not found:
        raise RequestInvalid(
            f"request {request_id!r} was trimmed from {keys.requests}; reconcile it by hand",
            request_id=request_id,
        )
    request = decode_request(cast(dict[bytes, bytes], found[0][1]))
    failed_at = _when(_ms(outcome)) if outcome else None
    return OrderRequest(request, _when(_ms(entry)), failed_at)


async def reconcile(
    hub: HubClient,
    redis: aioredis.Redis,
    settings: Settings,
    order: OrderRequest,
    *,
    trigger: Literal["auto", "manual"],
    checks: int = 1,
    now: datetime | None = None,
    inquiry_timeout_s: float = INQUIRY_TIMEOUT_S,
) -> OrderReconciled:
    """Ask the broker what became of ``order`` and append the verdict to the order stream.

    Raises :class:`~apihub_core.RequestInvalid` for a request that is not an order of a TR this
    knows how to find, and the hub's typed errors when an inquiry fails.
    """
    request = order.request
    provider = Provider.parse(request.provider)
    spec = configured_catalog(settings).lookup(provider, request.tr_id)
    terms = order_terms(spec, request.params) if spec is not None else None
    if terms is None:
        raise RequestInvalid(
            f"{request.tr_id} is not an order apihub can look up (known: the cash orders and "
            "their modify/cancel)",
            request_id=request.request_id,
        )
    slack = timedelta(seconds=WINDOW_SLACK_S)
    end = order.failed_at or now or datetime.now(UTC)
    window = (order.accepted_at - slack, end + slack)
    inquiries = reconciliation_inquiries(terms, order.accepted_at)
    rows: list[Candidate] = []
    for inquiry in inquiries:
        async for page in hub.paginate(
            provider,
            inquiry.tr_id,
            inquiry.params,
            account=request.account,
            priority="order",
            timeout=inquiry_timeout_s,
        ):
            rows += rows_of(inquiry.tr_id, cast(Any, page.body))
    verdict = judge(terms, rows, window=window)
    event = OrderReconciled(
        request_id=request.request_id,
        provider=provider.value,
        tr_id=request.tr_id,
        account=request.account,
        status=verdict.status,
        order_no=verdict.order_no,
        candidates=candidate_rows(verdict.candidates),
        detail=verdict.detail,
        inquiries=[inquiry.tr_id for inquiry in inquiries],
        trigger=trigger,
        checks=checks,
        reconciled_at_ms=now_ms(),
    )
    keys = Keys(settings.namespace)
    await redis.xadd(
        keys.orders, encode_entry(event), maxlen=ORDERS_STREAM_MAXLEN, approximate=True
    )
    return event
