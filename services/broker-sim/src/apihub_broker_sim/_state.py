"""The state object behind one simulator app (``app.state.sim``)."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._book import AccountBook
from ._clock import SimClock
from ._conditions import ConditionBook
from ._config import SimConfig
from ._faults import FaultBook
from ._limits import SlidingWindowLimiter
from ._market import Market
from ._recorder import Recorder
from ._tokens import TokenStore

__all__ = ["OrderRecord", "SimState"]


@dataclass(frozen=True)
class OrderRecord:
    """An accepted order, as listed by ``GET /__sim/orders`` (no account number kept)."""

    provider: str
    tr_id: str
    side: str
    symbol: str
    quantity: str
    price: str
    order_no: str
    time: str

    def to_json(self) -> dict[str, Any]:
        """The admin API's view."""
        return dict(self.__dict__)


class SimState:
    """Everything one simulator instance knows: clock, market, tokens, faults, log.

    ``conditions`` holds the standing latency / error-rate / outage conditions (their
    simulated windows read ``clock``); a malformed ``SimConfig.conditions`` entry raises
    ``ValueError`` here.
    """

    def __init__(
        self, config: SimConfig, clock: SimClock, *, state_file: Path | None = None
    ) -> None:
        """Assemble the stores for ``config`` around ``clock``; tokens and issuance windows
        are kept in ``state_file`` across restarts when one is given."""
        self.config = config
        self.clock = clock
        self.market = Market(
            config.seed, frozenset(config.holidays), config.history_days, config.calendar
        )
        self.tokens = TokenStore(config, clock, state_file)
        self.faults = FaultBook()
        seed = config.seed if config.conditions_seed is None else config.conditions_seed
        self.conditions = ConditionBook(seed, config.conditions, clock)
        self.recorder = Recorder()
        self.kis_limiter = SlidingWindowLimiter(config.kis_rate_limit_per_s)
        self.kiwoom_limiter = SlidingWindowLimiter(config.kiwoom_rate_limit_per_s)
        self.book = AccountBook(
            self.market, clock, cash=config.account_cash, holdings=config.account_holdings
        )
        self._lock = threading.Lock()
        self._orders: list[OrderRecord] = []
        self._serial = itertools.count(1)

    def next_serial(self) -> int:
        """A process-wide increasing number for order numbers and ``gt_uid``."""
        with self._lock:
            return next(self._serial)

    def add_order(self, order: OrderRecord) -> None:
        """Remember an accepted order."""
        with self._lock:
            self._orders.append(order)

    def orders(self) -> list[OrderRecord]:
        """Accepted orders, oldest first."""
        with self._lock:
            return list(self._orders)

    def app_secret(self, appkey: str) -> str | None:
        """The configured secret of ``appkey``; ``None`` when any pair is accepted."""
        if self.config.apps is None:
            return None
        return self.config.apps.get(appkey, "")

    def reset(self) -> None:
        """Clear the log, tokens, faults, rate windows, orders and accounts (not the clock).

        Conditions go back to ``SimConfig.conditions`` with their seed, so a run after a
        reset sees the same delays and errors as the first.
        """
        self.recorder.clear()
        self.tokens.reset()
        self.faults.clear()
        self.conditions.reset()
        self.kis_limiter.reset()
        self.kiwoom_limiter.reset()
        self.book.reset()
        with self._lock:
            self._orders.clear()
