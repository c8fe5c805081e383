"""Market times in the archive: aware datetimes outside, naive KST wall time inside.

DuckDB's ``TIMESTAMP`` columns hold the KST wall time (see ``_schema``); in Python the store
works on it as integer microseconds since 1970-01-01 00:00 *wall time*, which is what DuckDB's
``epoch_us(ts)`` returns for such a column.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final

from apihub_marketdata import KST

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_WALL_EPOCH: Final = datetime(1970, 1, 1)  # naive on purpose: KST wall time
_KST_EPOCH: Final = datetime(1970, 1, 1, tzinfo=KST)
_KST_OFFSET_US: Final = 9 * 3600 * 1_000_000
_US: Final = timedelta(microseconds=1)
_DAY_US: Final = 86_400 * 1_000_000
_FIRST_DAY: Final = date(1970, 1, 1)


def wall_us(moment: datetime) -> int:
    """Microseconds of ``moment``'s KST wall time since 1970-01-01 00:00 (a naive ``moment``
    is taken as KST wall time already)."""
    zone = moment.tzinfo
    if zone is KST:
        # Same tzinfo on both sides: Python subtracts the wall times, no offset lookups.
        return (moment - _KST_EPOCH) // _US
    if zone is None:
        return (moment - _WALL_EPOCH) // _US
    return (moment - _EPOCH) // _US + _KST_OFFSET_US


def from_wall_us(us: int) -> datetime:
    """The aware KST datetime of a wall time in microseconds."""
    return _KST_EPOCH + timedelta(microseconds=us)


def wall_naive(moment: datetime) -> datetime:
    """``moment`` as the naive KST wall time DuckDB stores."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(KST).replace(tzinfo=None)


def aware(stored: datetime) -> datetime:
    """A naive KST wall time read from DuckDB as an aware KST datetime."""
    return stored.replace(tzinfo=KST)


_days: dict[int, date] = {}


def day_of(us: int) -> date:
    """The KST day of a wall time in microseconds."""
    number = us // _DAY_US
    found = _days.get(number)
    if found is None:
        found = _days[number] = _FIRST_DAY + timedelta(days=number)
    return found
