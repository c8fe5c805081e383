"""A blocking facade over :class:`HubClient` for scripts and notebooks."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack
from types import TracebackType
from typing import Any, Self

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._client import HubClient, Response
from ._connections import DEFAULT_MAX_CONNECTIONS
from ._events import Passthrough
from ._providers import Priority, Provider


class SyncHubClient:
    """``with SyncHubClient(url) as hub: hub.execute("KIS", "FHKST01010100", {...})``.

    Runs a :class:`HubClient` on an event loop in a background thread; every method blocks the
    calling thread only.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "apihub",
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self._url = url
        self._namespace = namespace
        self._max_connections = max_connections
        self._stack = ExitStack()
        self._portal: BlockingPortal | None = None
        self._client: HubClient | None = None

    def __enter__(self) -> Self:
        portal_cm: AbstractContextManager[BlockingPortal] = start_blocking_portal()
        self._portal = self._stack.enter_context(portal_cm)
        client = HubClient.from_url(
            self._url, namespace=self._namespace, max_connections=self._max_connections
        )
        try:
            self._client = self._stack.enter_context(
                self._portal.wrap_async_context_manager(client)
            )
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the reply reader, delete the reply stream and stop the background loop."""
        self._client = None
        self._portal = None
        self._stack.close()

    def execute(
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
        """Blocking :meth:`HubClient.execute`."""
        if self._portal is None or self._client is None:
            raise RuntimeError("SyncHubClient must be used as `with SyncHubClient(url) as hub`")
        call = functools.partial(
            self._client.execute,
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
            request_id=request_id,
            tags=tags,
        )
        return self._portal.call(call)

    def paginate(
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
    ) -> Iterator[Response]:
        """Blocking :meth:`HubClient.paginate`: a generator of pages, each fetched on demand."""
        if self._portal is None or self._client is None:
            raise RuntimeError("SyncHubClient must be used as `with SyncHubClient(url) as hub`")
        portal = self._portal
        pages = self._client.paginate(
            provider,
            tr_id,
            params,
            account=account,
            priority=priority,
            timeout=timeout,
            max_pages=max_pages,
            passthrough=passthrough,
        )
        try:
            while True:
                try:
                    page = portal.call(pages.__anext__)
                except StopAsyncIteration:
                    return
                yield page
        finally:
            portal.call(pages.aclose)
