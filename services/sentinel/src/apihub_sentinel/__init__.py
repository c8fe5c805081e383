"""The sentinel service: market data that heals itself.

It follows ``archive.written`` to know which bars the archive holds, compares them with the bars
the KRX calendar says must exist for every tracked series, turns missing bars into gaps and
heals each gap with backfill requests straight into the request stream (backfill priority,
tagged with the gap id), following it to ``gap.healed`` — or ``gap.confirmed_empty`` when the
broker itself has no bar there. See ``docs/market-data.md``.
"""

from ._sentinel import GROUP, Sentinel, tracked_series
from ._service import open_sentinel, run_sentinel
from ._store import Gap, GapStore

__all__ = [
    "GROUP",
    "Gap",
    "GapStore",
    "Sentinel",
    "open_sentinel",
    "run_sentinel",
    "tracked_series",
]
