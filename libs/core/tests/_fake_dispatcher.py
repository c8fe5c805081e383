"""A tiny stand-in for the dispatcher, for HubClient tests: plain redis-py in a thread.

It reads ``<ns>:requests`` with ``XREADGROUP`` and, for every request, appends whatever
``answer(request)`` returns to the request's ``reply_to``. With ``batch=N`` it collects N requests
and answers them in reverse arrival order, so replies arrive out of order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

import redis

from apihub_core import (
    Event,
    Keys,
    RequestFailed,
    RequestSubmitted,
    ResponseReceived,
    decode_request,
    encode_entry,
)

Answer = Callable[[RequestSubmitted], Event | None]

GROUP = "fake-dispatcher"


def ok(body: bytes = b'{"rt_cd": "0", "output": {"stck_prpr": "71500"}}') -> Answer:
    """Answer every request with a 200 carrying ``body``."""
    import msgspec

    def answer(request: RequestSubmitted) -> Event:
        return ResponseReceived(
            request_id=request.request_id,
            provider=request.provider,
            tr_id=request.tr_id,
            account=request.account or "default",
            status=200,
            headers={"tr_cont": "M"},
            body=msgspec.Raw(body),
            has_more=True,
            next_key="page-2",
            elapsed_ms=12.5,
            attempts=2,
        )

    return answer


def echo_params(request: RequestSubmitted) -> Event:
    """Answer with the request's own params and id as the body."""
    import msgspec

    body = msgspec.json.encode({"request_id": request.request_id, "params": request.params})
    return ResponseReceived(
        request_id=request.request_id,
        provider=request.provider,
        tr_id=request.tr_id,
        account="default",
        status=200,
        body=msgspec.Raw(body),
    )


def fail(error_class: str, code: str = "EGW00201", status: int | None = 500) -> Answer:
    """Answer every request with a ``RequestFailed`` of ``error_class``."""

    def answer(request: RequestSubmitted) -> Event:
        return RequestFailed(
            request_id=request.request_id,
            provider=request.provider,
            tr_id=request.tr_id,
            error_class=error_class,  # type: ignore[arg-type]
            code=code,
            message="broker said no",
            status=status,
        )

    return answer


def silent(request: RequestSubmitted) -> None:
    """Never answer."""
    return None


class FakeDispatcher:
    """``with FakeDispatcher(url, namespace, answer) as d:`` answers until the block ends."""

    def __init__(self, url: str, namespace: str, answer: Answer, *, batch: int = 1) -> None:
        self.keys = Keys(namespace)
        self.requests: list[RequestSubmitted] = []
        self._answer = answer
        self._batch = batch
        self._redis = redis.Redis.from_url(url, socket_timeout=10)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fake-dispatcher", daemon=True)
        self._lock = threading.Lock()

    def __enter__(self) -> Self:
        self._redis.xgroup_create(self.keys.requests, GROUP, id="0", mkstream=True)
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

    def received(self) -> list[RequestSubmitted]:
        with self._lock:
            return list(self.requests)

    def _run(self) -> None:
        pending: list[RequestSubmitted] = []
        try:
            while not self._stop.is_set():
                batches = self._redis.xreadgroup(
                    GROUP, "fake-1", {self.keys.requests: ">"}, count=64, block=50
                )
                for _stream, entries in batches or ():
                    for entry_id, fields in entries:
                        request = decode_request(fields)
                        with self._lock:
                            self.requests.append(request)
                        pending.append(request)
                        self._redis.xack(self.keys.requests, GROUP, entry_id)
                if len(pending) >= self._batch:
                    for request in reversed(pending):
                        outcome = self._answer(request)
                        if outcome is not None and request.reply_to:
                            self._redis.xadd(request.reply_to, encode_entry(outcome))
                    pending.clear()
        except BaseException as exc:  # surfaced by __exit__
            self._error = exc
