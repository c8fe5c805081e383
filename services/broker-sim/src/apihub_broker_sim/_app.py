"""The Starlette application: KIS, Kiwoom and admin routes on one base URL."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware

from . import _admin, _kis, _kiwoom
from ._clock import SimClock
from ._config import SimConfig
from ._date import SimulatedDateMiddleware
from ._state import SimState

__all__ = ["create_app"]


def create_app(
    config: SimConfig | None = None,
    clock: SimClock | None = None,
    *,
    state_file: Path | None = None,
) -> Starlette:
    """Build a simulator app; ``app.state.sim`` is its :class:`SimState`.

    Without ``clock`` one is made from ``config.start_time`` / ``config.frozen`` /
    ``config.clock_rate``. The KIS and
    Kiwoom paths do not collide, so both brokers share the app. With ``state_file`` the
    simulator remembers its tokens and issuance windows across restarts, as a broker does.
    """
    config = config or SimConfig()
    if clock is None:
        clock = SimClock(config.start_time, frozen=config.frozen, rate=config.clock_rate)
    state = SimState(config, clock, state_file=state_file)
    app = Starlette(
        routes=[*_kis.routes(state), *_kiwoom.routes(state), *_admin.routes(state)],
        middleware=[Middleware(SimulatedDateMiddleware, clock=clock)],
    )
    app.state.sim = state
    return app
