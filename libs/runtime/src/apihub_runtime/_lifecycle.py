"""Process lifecycle shared by every service: logging, stop signals and the drain.

What a user sees when stopping a service (a terminal's Ctrl-C, ``kill``, an orchestrator):

====================================  ===========================================================
signal                                what happens
====================================  ===========================================================
the first SIGINT or SIGTERM           the drain starts: the service stops taking work and lets
                                      in-flight work finish (its own bounded grace)
another one                           absorbed and said so: ``uv run`` and some terminals deliver
                                      one Ctrl-C twice, and a drain must survive that
the third within ``FORCE_WINDOW_S``   forced: in-flight work is cancelled at once; consumer
                                      entries it held stay pending for the next consumer
====================================  ===========================================================

The exit status is 0 after a drain and ``128 + signal`` after a forced stop (every other status
is in :class:`~apihub_runtime.ExitCode`). The handlers are
installed before the service starts and stay until it has fully stopped, so no signal ever
reaches Python's default handler (a ``KeyboardInterrupt`` traceback) while there is work to
protect; :func:`run_process` covers the moments before and after.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Final, Protocol

import anyio
from anyio.abc import TaskStatus

from apihub_core import ConfigurationError, HubError

from ._exit_codes import exit_code_for

log = logging.getLogger("apihub.lifecycle")

STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)

FORCE_AFTER: Final = 3
"""Signals within :data:`FORCE_WINDOW_S` that force a stop instead of waiting for the drain."""

FORCE_WINDOW_S: Final = 5.0
"""The window in which :data:`FORCE_AFTER` signals force a stop."""


class Service(Protocol):
    """A long-lived component the runtime can run and drain (every apihub service is one).

    :meth:`run` does the work until :meth:`stop`, signalling readiness through ``task_status``;
    after :meth:`stop` it stops taking new work, lets in-flight work finish within its own
    bounded grace, and returns. :meth:`stop` may be called more than once, and before
    :meth:`run`.
    """

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Work until :meth:`stop`, then drain and return."""
        ...

    def stop(self) -> None:
        """Begin the drain."""
        ...


class StopSignals:
    """SIGINT/SIGTERM for the whole life of a service (see the module docstring).

    ``on_drain`` is called on the first signal, ``on_force`` on the :data:`FORCE_AFTER`-th within
    :data:`FORCE_WINDOW_S`; both may be replaced while the service runs (start-up has nothing to
    drain, so it is simply cancelled).
    """

    def __init__(
        self,
        name: str,
        *,
        on_drain: Callable[[], None] = lambda: None,
        on_force: Callable[[], None] = lambda: None,
        force_after: int = FORCE_AFTER,
        force_window_s: float = FORCE_WINDOW_S,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        self.name = name
        self._clock = clock
        self.on_drain = on_drain
        self.on_force = on_force
        self._force_after = force_after
        self._force_window_s = force_window_s
        self._recent: deque[float] = deque(maxlen=max(1, force_after))
        self.received = 0
        self.draining = False
        self.forced_by: signal.Signals | None = None

    @property
    def exit_status(self) -> int:
        """0, or ``128 + signal`` once a stop was forced."""
        return 0 if self.forced_by is None else 128 + int(self.forced_by)

    async def watch(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Receive stop signals until cancelled; readiness once the handlers are installed."""
        with anyio.open_signal_receiver(*STOP_SIGNALS) as received:
            task_status.started()
            async for signum in received:
                self.handle(signal.Signals(signum))

    def handle(self, signum: signal.Signals) -> None:
        """React to one stop signal (what :meth:`watch` does for each)."""
        now = self._clock()
        self.received += 1
        self._recent.append(now)
        if not self.draining:
            self.draining = True
            log.warning(
                "%s: received %s: draining (in-flight work finishes; send %s %d more times "
                "within %.0f s to force)",
                self.name,
                signum.name,
                signum.name,
                self._force_after - 1,
                self._force_window_s,
            )
            self.on_drain()
            return
        if self.forced_by is not None:
            log.warning("%s: received %s: already forcing the stop", self.name, signum.name)
            return
        burst = len(self._recent) >= self._force_after and now - self._recent[0] <= (
            self._force_window_s
        )
        if burst:
            self.forced_by = signum
            log.warning(
                "%s: received %s %d times within %.0f s: forcing the stop (in-flight work is "
                "cancelled; consumer entries stay pending for the next consumer)",
                self.name,
                signum.name,
                self._force_after,
                self._force_window_s,
            )
            self.on_force()
            return
        log.warning("%s: received %s: already draining", self.name, signum.name)


async def serve(
    service: AbstractAsyncContextManager[Service],
    *,
    name: str,
    on_ready: Callable[[], None] | None = None,
) -> int:
    """Open ``service``, run it until a stop signal, drain it, and return the exit status.

    The signal handlers are installed before ``service`` is opened, so a signal during
    start-up cancels the start-up cleanly, and they stay until the service is closed.
    """
    signals = StopSignals(name)
    async with anyio.create_task_group() as watcher:
        await watcher.start(signals.watch)
        with anyio.CancelScope() as work:
            signals.on_drain = signals.on_force = work.cancel
            async with service as running, anyio.create_task_group() as tg:
                signals.on_drain = running.stop
                await tg.start(running.run)
                if not signals.draining:
                    log.info("%s ready", name)
                    if on_ready is not None:
                        on_ready()
        if work.cancelled_caught and not signals.forced_by:
            log.info("%s: stopped before it was ready", name)
        log.info("%s stopped%s", name, " (forced)" if signals.forced_by else "")
        watcher.cancel_scope.cancel()
    return signals.exit_status


def run_process(main: Callable[[], Awaitable[int]], *, name: str) -> int:
    """Run ``main`` (usually :func:`serve`) on an event loop and turn every ending into an exit
    status with at most one line on stderr: no traceback for a configuration error, a hub
    error, or a Ctrl-C before the handlers are installed or after they are gone.

    The status of an error is :func:`exit_code_for` of it (:class:`ExitCode`, one table for
    every apihub process): ``CONFIGURATION`` (3) for a :class:`ConfigurationError`,
    ``HUB_UNAVAILABLE`` (24) when Redis cannot be reached, and so on."""
    try:
        status = anyio.run(main)
    except KeyboardInterrupt:
        # Only outside serve(): before its handlers were installed (nothing ran yet) or after
        # they were removed (everything had stopped).
        status = 128 + int(signal.SIGINT)
    except ConfigurationError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except HubError as exc:
        print(f"{name}: {exc.error_class}: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    # The loop has restored Python's handlers; a late duplicate (uv forwards a Ctrl-C ~200 ms
    # after the terminal delivered it) must not turn a clean exit into a traceback.
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    return status


def configure_logging(level: str = "INFO") -> None:
    """One-line log records on stderr; secrets never reach them (see ``Secret``)."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # httpx logs full request URLs at INFO; keep the hub's own lines readable.
    logging.getLogger("httpx").setLevel(logging.WARNING)
