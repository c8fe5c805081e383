"""apihub broker simulator: a loopback HTTP server that behaves like KIS and Kiwoom.

Start one with :class:`SimServer` (async), :class:`ThreadedSimServer` (sync fixtures) or
:func:`run_simulator` (``task_group.start``); build the bare ASGI app with
:func:`create_app`. Market data is deterministic per :attr:`SimConfig.seed` and follows the
:class:`SimClock`.
"""

from ._app import create_app
from ._clock import KST, SimClock
from ._config import SimConfig
from ._recorder import appkey_fingerprint
from ._samples import KIS_ORDER, KIS_PRICE, KIWOOM_DAILY
from ._server import SimServer, ThreadedSimServer, run_simulator
from ._state import SimState

__all__ = [
    "KIS_ORDER",
    "KIS_PRICE",
    "KIWOOM_DAILY",
    "KST",
    "SimClock",
    "SimConfig",
    "SimServer",
    "SimState",
    "ThreadedSimServer",
    "appkey_fingerprint",
    "create_app",
    "run_simulator",
]
