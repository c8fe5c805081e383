"""HubClient: submit a broker call to the request stream and wait for its own answer.

Each client owns one reply stream (``<ns>:reply:<client_id>``) and one reader task that blocks on
it with ``XREAD``. Answers are routed to waiters by request id, so a caller only ever reads its own
replies, however busy the hub is.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Any, Self, cast

import anyio
import msgspec
import redis.asyncio as aioredis
from anyio.abc import TaskGroup, TaskStatus
from opentelemetry.trace import SpanKind, StatusCode
from redis.exceptions import RedisError

from ._codec import EntryDecodeError, StreamBatches, decode_outcome, encode_entry
from ._connections import DEFAULT_MAX_CONNECTIONS, describe_redis_failure, redis_client
from ._errors import HubError, HubUnavailable, RequestInvalid, RequestTimeout, UpstreamRejected
from ._events import (
    Outcome,
    Passthrough,
    RequestFailed,
    RequestSubmitted,
    ResponseReceived,
    now_ms,
)
from ._failures import raise_for_failure
from ._keys import REQUEST_STREAM_MAXLEN, Keys
from ._providers import PRIORITIES, Priority, Provider
from ._telemetry import inject_trace, start_span

log = logging.getLogger("apihub.client")

_READ_BLOCK_MS = 1_000
_READ_COUNT = 256
_LOST_REPEAT_S = 30.0


@dataclass(frozen=True, slots=True)
class Response:
    """A successful broker answer as the caller sees it.

    ``body`` is the broker's JSON, parsed; ``headers`` the broker headers that matter for paging
    (KIS ``tr_cont``, Kiwoom ``cont-yn``/``next-key``). ``replay_of`` names the earlier request
    whose answer this is, when both carried the same idempotency key. Pass ``has_more`` and
    ``next_key`` back into :meth:`HubClient.execute` (``cont=True, next_key=...``) to fetch the
    next page.
    """

    request_id: str
    provider: str
    tr_id: str
    account: str
    status: int
    headers: Mapping[str, str]
    body: Any
    has_more: bool = False
    next_key: str = ""
    elapsed_ms: float = 0.0
    attempts: int = 1
    replay_of: str | None = None

    @classmethod
    def from_event(cls, event: ResponseReceived) -> Response:
        """Build the caller's view of a ``ResponseReceived`` event."""
        return cls(
            request_id=event.request_id,
            provider=event.provider,
            tr_id=event.tr_id,
            account=event.account,
            status=event.status,
            headers=dict(event.headers),
            body=msgspec.json.decode(event.body),
            has_more=event.has_more,
            next_key=event.next_key,
            elapsed_ms=event.elapsed_ms,
            attempts=event.attempts,
            replay_of=event.replay_of,
        )


@dataclass(slots=True)
class _Waiter:
    done: anyio.Event = field(default_factory=anyio.Event)
    outcome: Outcome | None = None


class HubClient:
    """Async client of the hub. Use as ``async with HubClient.from_url(url) as hub: ...``.

    ``execute`` appends a ``RequestSubmitted`` to the request stream and waits for the outcome on
    this client's reply stream; it returns a :class:`Response` or raises a typed
    :class:`~apihub_core.HubError` (``RequestTimeout``, ``RequestInvalid``, ``UpstreamError``
    subclasses carrying the broker's code and message, ``OutcomeUnknown`` for orders).
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        namespace: str = "apihub",
        client_id: str | None = None,
        owns_redis: bool = False,
    ) -> None:
        self._redis = redis
        self._owns_redis = owns_redis
        self.keys = Keys(namespace)
        self.client_id = client_id or uuid.uuid4().hex
        self.reply_stream = self.keys.reply(self.client_id)
        self._waiters: dict[str, _Waiter] = {}
        self._task_group: TaskGroup | None = None
        self._reader_error: BaseException | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = "apihub",
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        **kwargs: Any,
    ) -> HubClient:
        """A client with its own Redis connection pool, closed when the client closes.

        The pool holds ``max_connections`` (one is the reply reader's); when every connection
        is busy, further calls wait for one within their own timeout instead of failing, so a
        burst of any size is absorbed.
        """
        return cls(
            redis_client(url, max_connections=max_connections),
            namespace=namespace,
            owns_redis=True,
            **kwargs,
        )

    async def __aenter__(self) -> Self:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        try:
            await self._task_group.start(self._read_replies)
        except BaseException:
            await self._task_group.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task_group is not None  # noqa: S101 - entered above
        self._task_group.cancel_scope.cancel()
        try:
            # The body's own exception is not handed to the group: it would come back wrapped
            # in an ExceptionGroup, and callers expect the typed error itself.
            await self._task_group.__aexit__(None, None, None)
        finally:
            self._task_group = None
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                try:
                    await self._redis.delete(self.reply_stream)
                except RedisError:
                    log.debug("could not delete reply stream %s", self.reply_stream)
                if self._owns_redis:
                    await self._redis.aclose()

    async def _read_replies(self, *, task_status: TaskStatus[None]) -> None:
        last_id = b"0-0"
        task_status.started()
        backoff = 0.05
        lost_at: float | None = None
        warned_at = 0.0
        while True:
            try:
                batches = cast(
                    StreamBatches,
                    await self._redis.xread(
                        {self.reply_stream: last_id}, count=_READ_COUNT, block=_READ_BLOCK_MS
                    ),
                )
                backoff = 0.05
            except (RedisError, OSError) as exc:
                self._reader_error = exc
                now = anyio.current_time()
                # Said once when it happens, then every _LOST_REPEAT_S: one line per retry
                # would flood the caller's log for as long as Redis is away.
                if lost_at is None:
                    lost_at = warned_at = now
                    log.warning("reply reader lost Redis (%s); retrying", type(exc).__name__)
                elif now - warned_at >= _LOST_REPEAT_S:
                    warned_at = now
                    log.warning(
                        "reply reader still cannot reach Redis after %.0f s (%s); retrying",
                        now - lost_at,
                        type(exc).__name__,
                    )
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if lost_at is not None:
                log.info(
                    "reply reader reached Redis again after %.1f s",
                    anyio.current_time() - lost_at,
                )
                lost_at = None
            self._reader_error = None
            for _stream, entries in batches or ():
                for entry_id, fields in entries:
                    last_id = entry_id
                    self._deliver(fields)

    def _deliver(self, fields: Mapping[bytes, bytes]) -> None:
        try:
            outcome = decode_outcome(fields)
        except EntryDecodeError as exc:
            log.warning("undecodable reply on %s: %s", self.reply_stream, exc.reason)
            return
        waiter = self._waiters.pop(outcome.request_id, None)
        if waiter is None:
            # An answer that arrives after its caller gave up; the response stream still has it.
            return
        waiter.outcome = outcome
        waiter.done.set()

    def _request(
        self,
        provider: str | Provider,
        tr_id: str,
        params: Mapping[str, Any] | None,
        *,
        account: str | None,
        priority: Priority,
        timeout: float | None,
        cont: bool,
        next_key: str,
        idempotency_key: str | None,
        passthrough: Passthrough | None,
        reply: bool,
        request_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> RequestSubmitted:
        if priority not in PRIORITIES:
            raise RequestInvalid(f"unknown priority {priority!r} (known: {', '.join(PRIORITIES)})")
        try:
            provider_name = Provider.parse(str(provider)).value
        except ValueError as exc:
            raise RequestInvalid(str(exc), tr_id=tr_id) from None
        submitted = now_ms()
        return RequestSubmitted(
            request_id=request_id or uuid.uuid4().hex,
            provider=provider_name,
            tr_id=tr_id,
            # Brokers take strings only; converting here lets Python callers pass 10 for "10".
            params={str(k): _param_text(v) for k, v in (params or {}).items()},
            account=account,
            priority=priority,
            reply_to=self.reply_stream if reply else None,
            deadline_ms=(
                submitted + math.ceil(timeout * 1000)
                if timeout is not None and math.isfinite(timeout)
                else None
            ),
            submitted_at_ms=submitted,
            cont=cont,
            next_key=next_key,
            idempotency_key=idempotency_key,
            trace=inject_trace(),
            passthrough=passthrough,
            tags=dict(tags or {}),
        )

    async def _append(self, request: RequestSubmitted) -> None:
        try:
            await self._redis.xadd(
                self.keys.requests,
                encode_entry(request),
                maxlen=REQUEST_STREAM_MAXLEN,
                approximate=True,
            )
        except (RedisError, OSError) as exc:
            raise HubUnavailable(
                f"could not append to {self.keys.requests}: {describe_redis_failure(exc)}",
                request_id=request.request_id,
                provider=request.provider,
                tr_id=request.tr_id,
            ) from exc

    async def execute(
        self,
        provider: str | Provider,
        tr_id: str,
        params: Mapping[str, Any] | None = None,
        *,
        account: str | None = None,
        priority: Priority = "interactive",
        timeout: float = 10.0,
        cont: bool = False,
        next_key: str = "",
        idempotency_key: str | None = None,
        passthrough: Passthrough | None = None,
        request_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Response:
        """Call ``tr_id`` of ``provider`` through the hub and wait at most ``timeout`` seconds.

        ``passthrough`` calls a TR the hub's catalog does not know (its method, path and kind).
        ``request_id`` (default: a fresh one) names the call: the hub calls the broker once per
        id, so a caller that retries with the same id after a crash gets the first answer.
        ``tags`` are the caller's own labels, copied onto the outcome.
        Raises :class:`~apihub_core.RequestTimeout` when no answer arrives in time (the request
        may still run: its outcome lands on the response stream), or the typed error the hub
        reported.
        """
        if self._task_group is None:
            raise RuntimeError("HubClient must be used as `async with HubClient(...) as hub`")
        with start_span(f"apihub.execute {tr_id}", kind=SpanKind.PRODUCER) as span:
            request = self._request(
                provider,
                tr_id,
                params,
                account=account,
                priority=priority,
                timeout=timeout,
                cont=cont,
                next_key=next_key,
                idempotency_key=idempotency_key,
                passthrough=passthrough,
                reply=True,
                request_id=request_id,
                tags=tags,
            )
            span.set_attributes(
                {
                    "apihub.request_id": request.request_id,
                    "apihub.provider": request.provider,
                    "apihub.tr_id": tr_id,
                    "apihub.priority": priority,
                }
            )
            try:
                outcome = await self._round_trip(request, timeout)
            except HubError as exc:
                span.set_attribute("apihub.error_class", exc.error_class)
                span.set_status(StatusCode.ERROR, exc.error_class)
                raise
            if isinstance(outcome, RequestFailed):
                span.set_attribute("apihub.error_class", outcome.error_class)
                span.set_status(StatusCode.ERROR, outcome.error_class)
                raise_for_failure(outcome)
            assert isinstance(outcome, ResponseReceived)  # noqa: S101 - Outcome has two members
            span.set_attribute("apihub.attempts", outcome.attempts)
            return Response.from_event(outcome)

    async def paginate(
        self,
        provider: str | Provider,
        tr_id: str,
        params: Mapping[str, Any] | None = None,
        *,
        account: str | None = None,
        priority: Priority = "interactive",
        timeout: float = 10.0,
        max_pages: int | None = None,
        passthrough: Passthrough | None = None,
    ) -> AsyncGenerator[Response, None]:
        """Every page of a paged TR, first to last, each fetched when the previous one has
        been consumed (``timeout`` applies per page).

        Works for every paging style the hub knows: KIS ``tr_cont`` with its body cursors,
        Kiwoom ``cont-yn``/``next-key``, and KIS's date- and time-window charts, which the hub
        turns into the same ``has_more``/``next_key``. Stops after ``max_pages`` when given.
        """
        next_key, cont, pages = "", False, 0
        while True:
            response = await self.execute(
                provider,
                tr_id,
                params,
                account=account,
                priority=priority,
                timeout=timeout,
                cont=cont,
                next_key=next_key,
                passthrough=passthrough,
            )
            pages += 1
            yield response
            following = next_page_key(response, next_key, pages, max_pages)
            if following is None:
                return
            next_key, cont = following, True

    async def _round_trip(self, request: RequestSubmitted, timeout: float) -> Outcome:
        waiter = _Waiter()
        self._waiters[request.request_id] = waiter
        submitted = False
        try:
            with anyio.move_on_after(timeout):
                await self._append(request)
                submitted = True
                await waiter.done.wait()
        finally:
            self._waiters.pop(request.request_id, None)
        if waiter.outcome is None:
            if not submitted:
                what = (
                    f"no answer within {timeout:g}s, and the request was probably never "
                    "submitted: every connection of this client's Redis pool stayed busy "
                    "(raise max_connections, or make fewer calls at once)"
                )
            else:
                hint = " (the hub's Redis connection is failing)" if self._reader_error else ""
                what = f"no answer within {timeout:g}s{hint}"
            raise RequestTimeout(
                what,
                request_id=request.request_id,
                provider=request.provider,
                tr_id=request.tr_id,
            )
        return waiter.outcome

    async def submit(
        self,
        provider: str | Provider,
        tr_id: str,
        params: Mapping[str, Any] | None = None,
        *,
        account: str | None = None,
        priority: Priority = "collector",
        timeout: float | None = None,
        idempotency_key: str | None = None,
        passthrough: Passthrough | None = None,
        request_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Append a request without waiting; its outcome lands only on the response stream.

        Returns the request id (``request_id`` when given), which identifies the outcome there;
        ``tags`` travel with it onto the outcome.
        """
        request = self._request(
            provider,
            tr_id,
            params,
            account=account,
            priority=priority,
            timeout=timeout,
            cont=False,
            next_key="",
            idempotency_key=idempotency_key,
            passthrough=passthrough,
            reply=False,
            request_id=request_id,
            tags=tags,
        )
        await self._append(request)
        return request.request_id


def next_page_key(
    response: Response, previous_key: str, pages: int, max_pages: int | None
) -> str | None:
    """The ``next_key`` to ask for after ``response``, or ``None`` when paging is over.

    A broker that hands back the cursor it was given would page forever; that is refused.
    """
    if not response.has_more or (max_pages is not None and pages >= max_pages):
        return None
    if response.next_key and response.next_key == previous_key:
        raise UpstreamRejected(
            f"the broker returned the continuation it was given ({previous_key[:40]!r}) "
            f"after {pages} pages; stopping instead of looping",
            request_id=response.request_id,
        )
    return response.next_key


def _param_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    # bool is an int subclass, but True is no broker parameter; bytes, containers and other
    # objects have no single obvious text form either.
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return str(value)
    raise RequestInvalid(
        f"parameter values must be strings or numbers, got {value!r} ({type(value).__name__})"
    )
