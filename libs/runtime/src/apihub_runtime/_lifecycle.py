"""Process lifecycle shared by every service: logging set-up and drain-on-signal."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable

import anyio

log = logging.getLogger("apihub.lifecycle")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def stop_on_signal(*stops: Callable[[], None]) -> None:
    """Wait for SIGINT or SIGTERM, then call every ``stop`` (each begins a graceful drain).

    A second signal while draining is left to the default handler's successor: the caller's
    bounded grace period, so a stuck drain cannot hang the process forever.
    """
    with anyio.open_signal_receiver(*STOP_SIGNALS) as received:
        async for signum in received:
            log.info("received %s: draining", signal.Signals(signum).name)
            for stop in stops:
                stop()
            return


def configure_logging(level: str = "INFO") -> None:
    """One-line log records on stderr; secrets never reach them (see ``Secret``)."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # httpx logs full request URLs at INFO; keep the hub's own lines readable.
    logging.getLogger("httpx").setLevel(logging.WARNING)
