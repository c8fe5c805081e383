"""apihub backfill: market-data pages, claims on pages in flight, and resumable backfill jobs.

The sentinel heals gaps and ``apihub backfill`` fetches history with the same pieces: pages
planned on one grid per TR (:func:`plan_pages`), claims that keep one page from being asked
twice at once across the fleet (:class:`PageClaims`), and jobs that submit their pages through
the hub at backfill priority and resume after a crash without fetching a finished page again
(:class:`BackfillJob`). See ``docs/market-data.md``.
"""

from ._claims import Holder, PageClaims
from ._errors import BackfillError
from ._job import (
    BackfillJob,
    JobRecord,
    JobSpec,
    JobStatus,
    Progress,
    eta_seconds,
    list_jobs,
    symbols_of,
)
from ._pages import PAGE_ROWS, Page, bar_length, expected_bars, pages_for, plan_pages

__all__ = [
    "PAGE_ROWS",
    "BackfillError",
    "BackfillJob",
    "Holder",
    "JobRecord",
    "JobSpec",
    "JobStatus",
    "Page",
    "PageClaims",
    "Progress",
    "bar_length",
    "eta_seconds",
    "expected_bars",
    "list_jobs",
    "pages_for",
    "plan_pages",
    "symbols_of",
]
