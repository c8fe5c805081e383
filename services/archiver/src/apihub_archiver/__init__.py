"""The archiver service: a projection of the event log into the market-data archive.

It reads every ``response.received`` of the response stream — whoever asked: a collector, a
backfill, a strategy — normalises each market-data answer (``apihub_marketdata``) and writes it
in batches into the archive (``apihub_archive``: DuckDB tables and a rolling JSONL archive),
quarantining what cannot be normalised. After each batch it appends ``archive.written`` (and
``archive.quarantined``) to ``<ns>:archive`` so other services can follow coverage without
opening the database. :func:`rebuild_archive` replays the stream into an empty archive. See
``docs/market-data.md``.
"""

from ._project import project, received_at, wanted
from ._rebuild import RebuildReport, holds_archive, rebuild_archive
from ._service import (
    GROUP,
    Archiver,
    ArchiverStats,
    open_archiver,
    quarantined_event,
    run_archiver,
    written_event,
)

__all__ = [
    "GROUP",
    "Archiver",
    "ArchiverStats",
    "RebuildReport",
    "holds_archive",
    "open_archiver",
    "project",
    "quarantined_event",
    "rebuild_archive",
    "received_at",
    "run_archiver",
    "wanted",
    "written_event",
]
