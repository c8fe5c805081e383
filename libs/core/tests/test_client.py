"""HubClient and SyncHubClient against a real Redis and a tiny fake dispatcher.

The fake dispatcher below is plain redis-py in a thread: it reads ``<ns>:requests`` with
``XREADGROUP`` and appends an outcome to each request's ``reply_to``, exactly what the real
dispatcher does on the wire (docs/wire-format.md).
"""

from __future__ import annotations

import math
import socket
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Self

import anyio
import msgspec
import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, TimeoutError

from apihub_core import (
    ErrorClass,
    Event,
    HubClient,
    HubUnavailable,
    Keys,
    Passthrough,
    Provider,
    RequestFailed,
    RequestInvalid,
    RequestSubmitted,
    RequestTimeout,
    Response,
    ResponseReceived,
    SyncHubClient,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    decode_request,
    describe_redis_failure,
    encode_entry,
    error_type_for,
    pool_exhausted,
    redis_client,
)

# --- the fake dispatcher ------------------------------------------------------------------------

Answer = Callable[[RequestSubmitted], Event | None]

BROKER_BODY = (
    b'{"rt_cd": "0", "msg1": "\xec\xa0\x95\xec\x83\x81", "output": {"stck_prpr": "71500"}}'
)


def ok(request: RequestSubmitted) -> Event:
    """A 200 carrying BROKER_BODY and paging headers."""
    return ResponseReceived(
        request_id=request.request_id,
        provider=request.provider,
        tr_id=request.tr_id,
        account=request.account or "default",
        status=200,
        headers={"tr_cont": "M"},
        body=msgspec.Raw(BROKER_BODY),
        has_more=True,
        next_key="page-2",
        elapsed_ms=12.5,
        attempts=2,
    )


def echo(request: RequestSubmitted) -> Event:
    """A 200 whose body is the request's own id and params."""
    body = msgspec.json.encode({"request_id": request.request_id, "params": request.params})
    return ResponseReceived(
        request_id=request.request_id,
        provider=request.provider,
        tr_id=request.tr_id,
        account="default",
        status=200,
        body=msgspec.Raw(body),
    )


def fail(error_class: ErrorClass, code: str, status: int | None) -> Answer:
    """A RequestFailed of ``error_class`` for every request."""

    def answer(request: RequestSubmitted) -> Event:
        return RequestFailed(
            request_id=request.request_id,
            provider=request.provider,
            tr_id=request.tr_id,
            error_class=error_class,
            code=code,
            message="broker said no",
            status=status,
        )

    return answer


def silent(request: RequestSubmitted) -> None:
    """Never answer."""


class FakeDispatcher:
    """``with FakeDispatcher(url, ns, answer):`` answers requests until the block ends.

    With ``batch=N`` it waits for N requests and answers them in reverse arrival order.
    """

    GROUP = "fake-dispatcher"

    def __init__(self, url: str, namespace: str, answer: Answer, *, batch: int = 1) -> None:
        self.keys = Keys(namespace)
        self.answer = answer
        self._batch = batch
        self._requests: list[RequestSubmitted] = []
        self._lock = threading.Lock()
        self._redis = redis.Redis.from_url(url, socket_timeout=10)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="fake-dispatcher", daemon=True)

    def __enter__(self) -> Self:
        self._redis.xgroup_create(self.keys.requests, self.GROUP, id="0", mkstream=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._redis.close()
        assert not self._thread.is_alive(), "fake dispatcher did not stop"
        if self._error is not None and exc is None:
            raise self._error

    @property
    def requests(self) -> list[RequestSubmitted]:
        """Every request read so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def _serve(self) -> None:
        pending: list[RequestSubmitted] = []
        try:
            while not self._stop.is_set():
                batches = self._redis.xreadgroup(
                    self.GROUP, "fake-1", {self.keys.requests: ">"}, count=64, block=50
                )
                for _stream, entries in batches or ():
                    for entry_id, fields in entries:
                        request = decode_request(fields)
                        with self._lock:
                            self._requests.append(request)
                        pending.append(request)
                        self._redis.xack(self.keys.requests, self.GROUP, entry_id)
                if len(pending) >= self._batch:
                    for request in reversed(pending):
                        outcome = self.answer(request)
                        if outcome is not None and request.reply_to:
                            self._redis.xadd(request.reply_to, encode_entry(outcome))
                    pending.clear()
        except BaseException as exc:  # re-raised by __exit__ in the test's thread
            self._error = exc


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url, socket_timeout=10) as client:
        yield client


async def written_requests(client: aioredis.Redis, keys: Keys) -> list[RequestSubmitted]:
    entries = await client.xrange(keys.requests)
    return [decode_request(fields) for _id, fields in entries]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- success ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_execute_returns_the_parsed_response(redis_url: str, hub_namespace: str) -> None:
    with FakeDispatcher(redis_url, hub_namespace, ok) as dispatcher:
        async with HubClient.from_url(redis_url, namespace=hub_namespace) as hub:
            response = await hub.execute(
                "KIS", "FHKST01010100", {"FID_INPUT_ISCD": "005930"}, account="main"
            )
    assert isinstance(response, Response)
    assert response.request_id == dispatcher.requests[0].request_id
    assert response.body == msgspec.json.decode(BROKER_BODY)
    assert response.body["output"]["stck_prpr"] == "71500"
    assert (response.provider, response.tr_id, response.account) == (
        "KIS",
        "FHKST01010100",
        "main",
    )
    assert response.status == 200
    assert response.headers == {"tr_cont": "M"}
    assert response.has_more is True
    assert response.next_key == "page-2"
    assert response.elapsed_ms == 12.5
    assert response.attempts == 2


@pytest.mark.anyio
async def test_execute_writes_a_complete_request(redis_url: str, hub_namespace: str) -> None:
    with FakeDispatcher(redis_url, hub_namespace, ok) as dispatcher:
        async with HubClient.from_url(
            redis_url, namespace=hub_namespace, client_id="client-7"
        ) as hub:
            await hub.execute(
                Provider.KIWOOM,
                "ka10081",
                {"stk_cd": "005930"},
                account="paper",
                priority="order",
                timeout=7.5,
                cont=True,
                next_key="nk-1",
                idempotency_key="idem-1",
            )
    request = dispatcher.requests[0]
    assert request.provider == "KIWOOM"
    assert request.tr_id == "ka10081"
    assert request.params == {"stk_cd": "005930"}
    assert request.account == "paper"
    assert request.priority == "order"
    assert request.reply_to == f"{hub_namespace}:reply:client-7"
    assert Keys(hub_namespace).is_reply_stream(request.reply_to)
    assert request.deadline_ms is not None
    assert request.deadline_ms - request.submitted_at_ms == 7500
    assert request.cont is True
    assert request.next_key == "nk-1"
    assert request.idempotency_key == "idem-1"


@pytest.mark.anyio
async def test_provider_is_case_insensitive(redis_url: str, hub_namespace: str) -> None:
    with FakeDispatcher(redis_url, hub_namespace, ok) as dispatcher:
        async with HubClient.from_url(redis_url, namespace=hub_namespace) as hub:
            await hub.execute(" kis ", "FHKST01010100")
    assert dispatcher.requests[0].provider == "KIS"


# --- failures -----------------------------------------------------------------------------------

ERROR_CLASSES: list[ErrorClass] = [
    "invalid",
    "transient",
    "rate_limited",
    "auth",
    "permanent",
    "timeout",
    "outcome_unknown",
    "unavailable",
]


@pytest.mark.anyio
@pytest.mark.parametrize("error_class", ERROR_CLASSES)
async def test_each_failure_class_raises_its_exception(
    redis_url: str, hub_namespace: str, error_class: ErrorClass
) -> None:
    answer = fail(error_class, code="EGW00201", status=503)
    with FakeDispatcher(redis_url, hub_namespace, answer) as dispatcher:
        async with HubClient.from_url(redis_url, namespace=hub_namespace) as hub:
            with pytest.raises(error_type_for(error_class)) as caught:
                await hub.execute("KIS", "FHKST01010100", {"FID_INPUT_ISCD": "005930"})
    err = caught.value
    assert type(err) is error_type_for(error_class)
    assert err.error_class == error_class
    assert err.request_id == dispatcher.requests[0].request_id
    assert err.provider == "KIS"
    assert err.tr_id == "FHKST01010100"
    assert "broker said no" in str(err)
    assert "EGW00201" in str(err)
    if isinstance(err, UpstreamError):
        assert err.code == "EGW00201"
        assert err.status == 503
        assert "HTTP 503" in str(err)
    else:
        assert err.message == "[EGW00201] broker said no"


@pytest.mark.anyio
async def test_failure_without_code_keeps_the_bare_message(
    redis_url: str, hub_namespace: str
) -> None:
    with FakeDispatcher(redis_url, hub_namespace, fail("invalid", code="", status=None)):
        async with HubClient.from_url(redis_url, namespace=hub_namespace) as hub:
            with pytest.raises(RequestInvalid) as caught:
                await hub.execute("KIS", "FHKST01010100")
    assert caught.value.message == "broker said no"


@pytest.mark.anyio
async def test_rate_limit_without_status(redis_url: str, hub_namespace: str) -> None:
    with FakeDispatcher(redis_url, hub_namespace, fail("rate_limited", "1700", None)):
        async with HubClient.from_url(redis_url, namespace=hub_namespace) as hub:
            with pytest.raises(UpstreamRateLimited) as caught:
                await hub.execute("KIWOOM", "ka10081")
    assert caught.value.status is None
    assert caught.value.code == "1700"
    assert caught.value.retryable is True


@pytest.mark.anyio
async def test_no_answer_raises_request_timeout(redis_url: str, hub_namespace: str) -> None:
    with FakeDispatcher(redis_url, hub_namespace, silent):
        async with HubClient.from_url(redis_url, namespace=hub_namespace) as hub:
            with pytest.raises(RequestTimeout) as caught:
                await hub.execute("KIS", "FHKST01010100", timeout=0.2)
    err = caught.value
    assert err.request_id
    assert err.provider == "KIS"
    assert err.tr_id == "FHKST01010100"
    assert "no answer within 0.2s" in str(err)
    assert err.retryable is True


@pytest.mark.anyio
async def test_late_answer_after_timeout_is_ignored(
    redis_url: str, hub_namespace: str, aredis: aioredis.Redis
) -> None:
    answering = threading.Event()

    def answer_when_allowed(request: RequestSubmitted) -> Event | None:
        return echo(request) if answering.is_set() else None

    with FakeDispatcher(redis_url, hub_namespace, answer_when_allowed):
        async with HubClient.from_url(redis_url, namespace=hub_namespace) as hub:
            with pytest.raises(RequestTimeout) as caught:
                await hub.execute("KIS", "FHKST01010100", {"n": "1"}, timeout=0.2)
            late_id = caught.value.request_id
            assert late_id is not None
            late = fail("permanent", code="LATE", status=400)(
                RequestSubmitted(request_id=late_id, provider="KIS", tr_id="FHKST01010100")
            )
            await aredis.xadd(hub.reply_stream, encode_entry(late))

            answering.set()
            response = await hub.execute("KIS", "FHKST01010100", {"n": "2"}, timeout=10)
    assert response.request_id != late_id
    assert response.body == {"request_id": response.request_id, "params": {"n": "2"}}


@pytest.mark.anyio
async def test_undecodable_reply_does_not_stop_later_answers(
    redis_url: str, hub_namespace: str, aredis: aioredis.Redis
) -> None:
    with FakeDispatcher(redis_url, hub_namespace, echo):
        async with HubClient.from_url(redis_url, namespace=hub_namespace) as hub:
            await aredis.xadd(hub.reply_stream, {"data": b"{garbage"})
            await aredis.xadd(hub.reply_stream, {"nodata": b"x"})
            response = await hub.execute("KIS", "FHKST01010100", {"n": "1"})
    assert response.body["params"] == {"n": "1"}


# --- validation before anything is written ------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda hub: hub.execute("KIS", "T", priority="urgent"), "unknown priority 'urgent'"),
        (lambda hub: hub.execute("NASDAQ", "T"), "unknown provider 'NASDAQ'"),
        (lambda hub: hub.execute("KIS", "T", {"flag": True}), "got True"),
        (lambda hub: hub.execute("KIS", "T", {"nested": {"a": "b"}}), "got {'a': 'b'}"),
        (lambda hub: hub.execute("KIS", "T", {"many": ["a"]}), "got \\['a'\\]"),
        (lambda hub: hub.execute("KIS", "T", {"nothing": None}), "got None"),
        (lambda hub: hub.submit("KIS", "T", priority="urgent"), "unknown priority"),
        (lambda hub: hub.submit("kiwoom2", "T"), "unknown provider"),
        (lambda hub: hub.submit("KIS", "T", {"flag": False}), "got False"),
    ],
    ids=[
        "execute-priority",
        "execute-provider",
        "execute-bool",
        "execute-dict",
        "execute-list",
        "execute-none",
        "submit-priority",
        "submit-provider",
        "submit-bool",
    ],
)
async def test_invalid_requests_are_refused_before_anything_is_written(
    redis_url: str,
    hub_namespace: str,
    aredis: aioredis.Redis,
    call: Callable[[HubClient], Any],
    match: str,
) -> None:
    async with HubClient.from_url(redis_url, namespace=hub_namespace) as hub:
        with pytest.raises(RequestInvalid, match=match):
            await call(hub)
    assert await aredis.exists(Keys(hub_namespace).requests) == 0


@pytest.mark.anyio
async def test_unknown_provider_error_names_the_tr(redis_url: str, hub_namespace: str) -> None:
    async with HubClient.from_url(redis_url, namespace=hub_namespace) as hub:
        with pytest.raises(RequestInvalid) as caught:
            await hub.execute("NASDAQ", "FHKST01010100")
    assert caught.value.tr_id == "FHKST01010100"
    assert "known: KIS, KIWOOM" in str(caught.value)


@pytest.mark.anyio
async def test_numbers_are_converted_to_strings(
    redis_url: str, hub_namespace: str, aredis: aioredis.Redis
) -> None:
    async with HubClient.from_url(redis_url, namespace=hub_namespace) as hub:
        await hub.submit("KIS", "T", {"qty": 10, "price": 71500.5, "code": "005930", 7: "key"})
    (request,) = await written_requests(aredis, Keys(hub_namespace))
    assert request.params == {"qty": "10", "price": "71500.5", "code": "005930", "7": "key"}


@pytest.mark.anyio
async def test_bytes_param_is_refused(
    redis_url: str, hub_namespace: str, aredis: aioredis.Redis
) -> None:
    async with HubClient.from_url(redis_url, namespace=hub_namespace) as hub:
        with pytest.raises(RequestInvalid):
            await hub.submit("KIS", "T", {"FID_INPUT_ISCD": b"005930"})
    assert await aredis.exists(Keys(hub_namespace).requests) == 0


# --- submit -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_submit_writes_no_reply_to(
    redis_url: str, hub_namespace: str, aredis: aioredis.Redis
) -> None:
    async with HubClient.from_url(redis_url, namespace=hub_namespace) as hub:
        request_id = await hub.submit("KIS", "FHKST01010100", {"FID_INPUT_ISCD": "005930"})
        assert await aredis.exists(hub.reply_stream) == 0
    (request,) = await written_requests(aredis, Keys(hub_namespace))
    assert request.request_id == request_id
    assert request.reply_to is None
    assert request.priority == "collector"
    assert request.deadline_ms is None
    assert request.cont is False


@pytest.mark.anyio
async def test_submit_with_timeout_sets_a_deadline(
    redis_url: str, hub_namespace: str, aredis: aioredis.Redis
) -> None:
    async with HubClient.from_url(redis_url, namespace=hub_namespace) as hub:
        await hub.submit("KIS", "T", timeout=2.0001, priority="backfill", idempotency_key="k")
    (request,) = await written_requests(aredis, Keys(hub_namespace))
    assert request.deadline_ms is not None
    assert request.deadline_ms - request.submitted_at_ms == 2001
    assert request.priority == "backfill"
    assert request.idempotency_key == "k"


@pytest.mark.anyio
async def test_an_infinite_timeout_means_no_deadline(
    redis_url: str, hub_namespace: str, aredis: aioredis.Redis
) -> None:
    async with HubClient.from_url(redis_url, namespace=hub_namespace) as hub:
        await hub.submit("KIS", "T", timeout=math.inf)
    (request,) = await written_requests(aredis, Keys(hub_namespace))
    assert request.deadline_ms is None


@pytest.mark.anyio
async def test_submit_works_without_entering_the_client(
    redis_url: str, hub_namespace: str, aredis: aioredis.Redis
) -> None:
    hub = HubClient(aredis, namespace=hub_namespace)
    await hub.submit("KIS", "T")
    assert await aredis.xlen(Keys(hub_namespace).requests) == 1


@pytest.mark.anyio
async def test_submit_to_an_unreachable_redis_raises_hub_unavailable() -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"
    async with HubClient.from_url(url, namespace="ns") as hub:
        with pytest.raises(HubUnavailable) as caught:
            await hub.submit("KIS", "FHKST01010100")
    assert caught.value.retryable is True
    assert caught.value.request_id
    assert caught.value.tr_id == "FHKST01010100"
    assert "ns:requests" in str(caught.value)


# --- lifecycle ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_reply_stream_is_deleted_on_close(
    redis_url: str, hub_namespace: str, aredis: aioredis.Redis
) -> None:
    with FakeDispatcher(redis_url, hub_namespace, ok):
        async with HubClient.from_url(redis_url, namespace=hub_namespace) as hub:
            await hub.execute("KIS", "FHKST01010100")
            assert await aredis.exists(hub.reply_stream) == 1
    assert await aredis.exists(hub.reply_stream) == 0


@pytest.mark.anyio
async def test_an_error_in_the_body_propagates_unwrapped(
    redis_url: str, hub_namespace: str
) -> None:
    with (
        FakeDispatcher(redis_url, hub_namespace, fail("permanent", "APBK0919", 400)),
        pytest.raises(UpstreamRejected) as caught,
    ):
        async with HubClient.from_url(redis_url, namespace=hub_namespace) as hub:
            await hub.execute("KIS", "TTTC0802U")
    assert caught.value.code == "APBK0919"


@pytest.mark.anyio
async def test_a_borrowed_connection_is_left_open(
    redis_url: str, hub_namespace: str, aredis: aioredis.Redis
) -> None:
    async with HubClient(aredis, namespace=hub_namespace) as hub:
        assert hub.reply_stream.startswith(f"{hub_namespace}:reply:")
    assert await aredis.ping()


@pytest.mark.anyio
async def test_each_client_has_its_own_reply_stream(redis_url: str) -> None:
    async with (
        HubClient.from_url(redis_url) as first,
        HubClient.from_url(redis_url) as second,
    ):
        assert first.client_id != second.client_id
        assert first.reply_stream != second.reply_stream


@pytest.mark.anyio
async def test_execute_outside_async_with_raises_runtime_error(
    aredis: aioredis.Redis, hub_namespace: str
) -> None:
    hub = HubClient(aredis, namespace=hub_namespace)
    with pytest.raises(RuntimeError, match="async with"):
        await hub.execute("KIS", "FHKST01010100")
    assert await aredis.exists(Keys(hub_namespace).requests) == 0


@pytest.mark.anyio
async def test_execute_after_close_raises_runtime_error(
    aredis: aioredis.Redis, hub_namespace: str
) -> None:
    hub = HubClient(aredis, namespace=hub_namespace)
    async with hub:
        pass
    with pytest.raises(RuntimeError, match="async with"):
        await hub.execute("KIS", "FHKST01010100")


@pytest.mark.anyio
async def test_many_concurrent_executes_each_get_their_own_answer(
    redis_url: str, hub_namespace: str
) -> None:
    count = 20
    results: dict[int, Response] = {}

    async def call(hub: HubClient, i: int) -> None:
        results[i] = await hub.execute("KIS", "FHKST01010100", {"i": i}, timeout=30)

    with FakeDispatcher(redis_url, hub_namespace, echo, batch=count) as dispatcher:
        async with (
            HubClient.from_url(redis_url, namespace=hub_namespace) as hub,
            anyio.create_task_group() as tg,
        ):
            for i in range(count):
                tg.start_soon(call, hub, i)
    assert sorted(results) == list(range(count))
    for i, response in results.items():
        assert response.body == {"request_id": response.request_id, "params": {"i": str(i)}}
    assert {r.request_id for r in dispatcher.requests} == {r.request_id for r in results.values()}


@pytest.mark.anyio
async def test_execute_against_an_unreachable_redis_raises_hub_unavailable() -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"
    async with HubClient.from_url(url, namespace="ns") as hub:
        with pytest.raises(HubUnavailable) as caught:
            await hub.execute("KIS", "FHKST01010100", timeout=60)
    assert caught.value.provider == "KIS"


# --- SyncHubClient ------------------------------------------------------------------------------


def test_sync_client_returns_the_response(redis_url: str, hub_namespace: str) -> None:
    with (
        FakeDispatcher(redis_url, hub_namespace, ok) as dispatcher,
        SyncHubClient(redis_url, namespace=hub_namespace) as hub,
    ):
        response = hub.execute("KIS", "FHKST01010100", {"FID_INPUT_ISCD": "005930"})
    assert response.request_id == dispatcher.requests[0].request_id
    assert response.body["output"] == {"stck_prpr": "71500"}
    assert dispatcher.requests[0].params == {"FID_INPUT_ISCD": "005930"}


def test_sync_client_passes_every_option(redis_url: str, hub_namespace: str) -> None:
    with (
        FakeDispatcher(redis_url, hub_namespace, ok) as dispatcher,
        SyncHubClient(redis_url, namespace=hub_namespace) as hub,
    ):
        hub.execute(
            "KIWOOM",
            "ka10081",
            {"qty": 3},
            account="paper",
            priority="order",
            timeout=5,
            cont=True,
            next_key="nk",
            idempotency_key="idem",
        )
    request = dispatcher.requests[0]
    assert request.params == {"qty": "3"}
    assert (request.account, request.priority, request.cont) == ("paper", "order", True)
    assert (request.next_key, request.idempotency_key) == ("nk", "idem")


def test_sync_client_raises_typed_errors(redis_url: str, hub_namespace: str) -> None:
    with (
        FakeDispatcher(redis_url, hub_namespace, fail("rate_limited", "EGW00201", 500)),
        SyncHubClient(redis_url, namespace=hub_namespace) as hub,
        pytest.raises(UpstreamRateLimited) as caught,
    ):
        hub.execute("KIS", "FHKST01010100")
    assert caught.value.code == "EGW00201"


def test_sync_client_times_out(redis_url: str, hub_namespace: str) -> None:
    with (
        FakeDispatcher(redis_url, hub_namespace, silent),
        SyncHubClient(redis_url, namespace=hub_namespace) as hub,
        pytest.raises(RequestTimeout),
    ):
        hub.execute("KIS", "FHKST01010100", timeout=0.2)


def test_sync_client_refuses_invalid_requests(redis_url: str, hub_namespace: str) -> None:
    with (
        SyncHubClient(redis_url, namespace=hub_namespace) as hub,
        pytest.raises(RequestInvalid, match="unknown provider"),
    ):
        hub.execute("NYSE", "T")


def test_sync_client_deletes_its_reply_stream_on_close(
    redis_url: str, hub_namespace: str, sync_redis: redis.Redis
) -> None:
    with FakeDispatcher(redis_url, hub_namespace, ok) as dispatcher:
        with SyncHubClient(redis_url, namespace=hub_namespace) as hub:
            hub.execute("KIS", "FHKST01010100")
        reply_to = dispatcher.requests[0].reply_to
    assert reply_to is not None
    assert sync_redis.exists(reply_to) == 0


def test_sync_client_outside_with_raises_runtime_error(redis_url: str) -> None:
    hub = SyncHubClient(redis_url)
    with pytest.raises(RuntimeError, match="with SyncHubClient"):
        hub.execute("KIS", "FHKST01010100")


def test_sync_client_after_close_raises_runtime_error(redis_url: str) -> None:
    with SyncHubClient(redis_url) as hub:
        pass
    with pytest.raises(RuntimeError, match="with SyncHubClient"):
        hub.execute("KIS", "FHKST01010100")


def test_sync_client_close_is_idempotent(
    redis_url: str, hub_namespace: str, sync_redis: redis.Redis
) -> None:
    threads_before = set(threading.enumerate())
    with FakeDispatcher(redis_url, hub_namespace, ok) as dispatcher:
        hub = SyncHubClient(redis_url, namespace=hub_namespace)
        hub.__enter__()
        hub.execute("KIS", "FHKST01010100")
        hub.close()
        hub.close()  # a second close is a no-op, not an error
    reply_to = dispatcher.requests[0].reply_to
    assert reply_to is not None
    assert sync_redis.exists(reply_to) == 0, "the first close deleted the reply stream"
    assert set(threading.enumerate()) <= threads_before, "the event-loop thread is gone"
    with pytest.raises(RuntimeError, match="with SyncHubClient"):
        hub.execute("KIS", "FHKST01010100")


# --- connection pools ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_burst_far_larger_than_the_pool_is_answered_in_full(
    redis_url: str, hub_namespace: str
) -> None:
    # Two connections: one is the reply reader's, so 60 callers share the other one.
    count = 60
    results: dict[int, Response] = {}

    async def call(hub: HubClient, i: int) -> None:
        results[i] = await hub.execute("KIS", "FHKST01010100", {"i": i}, timeout=60)

    with FakeDispatcher(redis_url, hub_namespace, echo, batch=count):
        async with (
            HubClient.from_url(redis_url, namespace=hub_namespace, max_connections=2) as hub,
            anyio.create_task_group() as tg,
        ):
            for i in range(count):
                tg.start_soon(call, hub, i)
    assert sorted(results) == list(range(count))


@pytest.mark.anyio
async def test_a_waiting_pool_makes_the_next_command_wait_for_a_free_connection(
    redis_url: str, hub_namespace: str
) -> None:
    client = redis_client(redis_url, max_connections=1)
    key = f"{hub_namespace}:list"
    popped: list[object] = []
    order: list[str] = []
    try:
        async with anyio.create_task_group() as tg:

            async def pop() -> None:
                popped.append(await client.blpop([key], timeout=30))
                order.append("pop")

            async def ping() -> None:
                assert await client.ping()
                order.append("ping")

            tg.start_soon(pop)
            await anyio.wait_all_tasks_blocked()
            # The BLPOP holds the only connection: the PING waits for it instead of failing...
            tg.start_soon(ping)
            await anyio.wait_all_tasks_blocked()
            assert order == []
            # ...until the BLPOP is answered (through another client) and hands it back.
            async with aioredis.Redis.from_url(redis_url) as other:
                await other.rpush(key, b"x")
    finally:
        await client.aclose()
    assert popped == [(key.encode(), b"x")]
    assert order == ["pop", "ping"]


@pytest.mark.anyio
async def test_a_pool_that_ran_out_is_described_as_such(redis_url: str) -> None:
    waiting = redis_client(redis_url, max_connections=1, pool_wait_s=0.01)
    plain = redis_client(redis_url, max_connections=1, enough=True)
    failures: list[BaseException] = []
    try:
        for client in (waiting, plain):
            async with anyio.create_task_group() as tg:
                tg.start_soon(_hold_a_connection, client)
                await anyio.wait_all_tasks_blocked()
                with pytest.raises((RedisConnectionError, TimeoutError)) as caught:
                    await client.ping()
                failures.append(caught.value)
                tg.cancel_scope.cancel()
    finally:
        await waiting.aclose()
        await plain.aclose()
    assert isinstance(failures[1], MaxConnectionsError)
    for failure in failures:
        assert pool_exhausted(failure), repr(failure)
        assert "no free connection in this client's pool" in describe_redis_failure(failure)
        assert "unreachable" not in describe_redis_failure(failure)


async def _hold_a_connection(client: aioredis.Redis) -> None:
    await client.blpop(["apihub-test:never"], timeout=30)


def test_an_unreachable_redis_is_not_a_full_pool() -> None:
    refused = RedisConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")
    assert not pool_exhausted(refused)
    assert describe_redis_failure(refused) == "Redis unreachable (ConnectionError)"
    assert not pool_exhausted(OSError("network down"))
    assert pool_exhausted(MaxConnectionsError("Too many connections"))


def test_a_pool_needs_a_connection() -> None:
    with pytest.raises(ValueError, match="max_connections must be at least 1, got 0"):
        redis_client("redis://127.0.0.1:1/0", max_connections=0)


def three_pages(request: RequestSubmitted) -> Event:
    """Pages keyed "", "p2", "p3"; the third is the last."""
    following = {"": "p2", "p2": "p3"}.get(request.next_key, "")
    body = msgspec.json.encode({"page": request.next_key or "p1"})
    return ResponseReceived(
        request_id=request.request_id,
        provider=request.provider,
        tr_id=request.tr_id,
        account="default",
        status=200,
        body=msgspec.Raw(body),
        has_more=bool(following),
        next_key=following,
    )


def stuck(request: RequestSubmitted) -> Event:
    """A broker that hands back the cursor it was given, forever."""
    return ResponseReceived(
        request_id=request.request_id,
        provider=request.provider,
        tr_id=request.tr_id,
        account="default",
        status=200,
        has_more=True,
        next_key="same",
    )


def test_sync_paginate_walks_every_page_and_stops_at_max_pages(
    redis_url: str, hub_namespace: str
) -> None:
    passthrough = Passthrough(method="POST", path="/api/x", kind="query")
    with (
        FakeDispatcher(redis_url, hub_namespace, three_pages) as dispatcher,
        SyncHubClient(redis_url, namespace=hub_namespace) as hub,
    ):
        pages = [p.body["page"] for p in hub.paginate("KIWOOM", "ka10080", {"stk_cd": "1"})]
        first_two = list(
            hub.paginate("KIWOOM", "kt00004", {}, max_pages=2, passthrough=passthrough)
        )
    assert pages == ["p1", "p2", "p3"]
    assert [(r.cont, r.next_key) for r in dispatcher.requests[:3]] == [
        (False, ""),
        (True, "p2"),
        (True, "p3"),
    ]
    assert len(first_two) == 2
    assert first_two[-1].has_more
    assert dispatcher.requests[-1].passthrough == passthrough


@pytest.mark.anyio
async def test_paginate_refuses_a_cursor_that_does_not_move(
    redis_url: str, hub_namespace: str
) -> None:
    seen: list[str] = []

    async def walk(hub: HubClient) -> None:
        async for page in hub.paginate("KIWOOM", "ka10080", {}):
            seen.append(page.next_key)

    with FakeDispatcher(redis_url, hub_namespace, stuck):
        async with HubClient.from_url(redis_url, namespace=hub_namespace) as hub:
            with pytest.raises(UpstreamRejected, match="returned the continuation it was given"):
                await walk(hub)
    assert seen == ["same", "same"], "the first page, and the second that handed it back"
