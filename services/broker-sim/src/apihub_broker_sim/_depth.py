"""The order book behind KIS FHKST01010200 and Kiwoom ka10004: ten levels a side.

The book is built from the tape as of the simulated second: the best ask is one tick above the
last print (the last print itself when it was a buyer-initiated trade, which lifted the ask),
the best bid one tick below that, then a tick apart, never beyond the daily price limits.
Resting quantities are a seeded function of (symbol, level, second), so the same instant
always shows the same book, and they scale with the symbol's daily volume.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ._krx import tick_size
from ._market import _seed_int
from ._quotes import Snapshot

__all__ = ["DEPTH_LEVELS", "Depth", "depth"]

DEPTH_LEVELS = 10


@dataclass(frozen=True)
class Depth:
    """Ten asks (best first, ascending) and ten bids (best first, descending).

    A price of 0 marks a level beyond the daily price limit (the brokers print it empty).
    ``quote_second`` is the second of the day the book stands at (HHMMSS in the answers).
    """

    asks: tuple[tuple[int, int], ...]
    bids: tuple[tuple[int, int], ...]
    quote_second: int
    changes: tuple[int, ...]
    """Per ask level, the change of its quantity against the previous second."""

    @property
    def total_ask(self) -> int:
        """Resting quantity on the ask side."""
        return sum(qty for _, qty in self.asks)

    @property
    def total_bid(self) -> int:
        """Resting quantity on the bid side."""
        return sum(qty for _, qty in self.bids)


def _quantity(seed: int, code: str, side: str, level: int, second: int, daily: int) -> int:
    scale = max(10, daily // 4000)
    return scale * (1 + level) // 2 + _seed_int("depth", seed, code, side, level, second) % scale


def depth(seed: int, snap: Snapshot, now: datetime) -> Depth:
    """The book of ``snap``'s symbol at ``snap.cutoff_s`` (``now`` only names the instant)."""
    del now  # the snapshot's cutoff already is the instant; kept for call-site symmetry
    tape = snap.tape
    last = snap.price
    lifted = tape.buy[snap.last_index]
    best_ask = last if lifted else last + tick_size(last)
    code, second, daily = snap.info.code, snap.cutoff_s, snap.info.daily_volume

    asks: list[tuple[int, int]] = []
    price = best_ask
    for level in range(DEPTH_LEVELS):
        if price > snap.upper:
            asks.append((0, 0))
        else:
            asks.append((price, _quantity(seed, code, "ask", level, second, daily)))
        price += tick_size(price)
    bids: list[tuple[int, int]] = []
    price = best_ask - tick_size(best_ask - 1)
    for level in range(DEPTH_LEVELS):
        if price < snap.lower or price <= 0:
            bids.append((0, 0))
        else:
            bids.append((price, _quantity(seed, code, "bid", level, second, daily)))
        price -= tick_size(max(1, price - 1))
    changes = tuple(
        qty - (_quantity(seed, code, "ask", level, second - 1, daily) if qty else 0)
        for level, (_, qty) in enumerate(asks)
    )
    return Depth(asks=tuple(asks), bids=tuple(bids), quote_second=second, changes=changes)
