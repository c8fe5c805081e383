"""The HTTP ``Date`` header on the simulated clock.

A real broker's ``Date`` and its token expiry times come from the same clock; clients (apihub's
among them) measure a token's lifetime as ``expiry - Date``. Serving the wall clock here while
tokens expire on the simulated clock would make every token look expired, or immortal, the
moment a test moves the clock.
"""

from __future__ import annotations

from email.utils import formatdate

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._clock import SimClock


class SimulatedDateMiddleware:
    """Pure ASGI middleware that sets ``Date`` from :class:`SimClock` on every response."""

    def __init__(self, app: ASGIApp, clock: SimClock) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request through; stamp the response start with the simulated date."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_date(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                stamp = formatdate(self.clock.now().timestamp(), usegmt=True)
                headers.append((b"date", stamp.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_date)
