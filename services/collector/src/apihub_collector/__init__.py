"""The collector service: a watchlist's market data, polled through the hub in the session.

**Swing** symbols' latest minute bars are asked every ``swing_interval_s`` (2–3 minutes), each
poll overlapping the previous one by ``swing_overlap_bars`` bars; the archiver stores the bars
it finds in the answers. **Scalp** symbols' current price is asked every ``scalp_interval_s``
and goes through the observer pipeline (validation → guard → enrichment → archive) to
``snapshot.recorded`` or ``snapshot.quarantined`` on ``<ns>:collector``. It polls only on
trading days inside the session (market time), at ``collector`` priority, and skips a cycle —
recording ``collector.cycle_skipped`` — instead of piling requests up behind a spent budget.
Counters and state: ``apihub collector status``. See ``docs/market-data.md``.
"""

from ._collector import Collector
from ._scalp import observe
from ._service import open_collector, run_collector
from ._status import COUNTERS, CollectorStatus, read_status

__all__ = [
    "COUNTERS",
    "Collector",
    "CollectorStatus",
    "observe",
    "open_collector",
    "read_status",
    "run_collector",
]
