"""apihub archive: the market-data store of the hub and its readers.

- :class:`ArchiveStore` — the one writer: normalised market data (:class:`Observation`) and
  quarantined answers (:class:`Rejection`) into DuckDB (``candles``, ``candle_revisions``,
  ``ticks``, ``snapshots``, ``quarantine`` …) and a rolling, gzipped JSONL archive, batch by
  batch, exactly once per stream entry, byte-identical under replay;
- :class:`ArchiveReader` and :func:`read_candles` — read-only access that works while the
  archiver runs (the writer hands the file over on request, see ``docs/market-data.md``);
- one exception tree, :class:`ArchiveError` and its subclasses.
"""

from ._errors import (
    ArchiveBusy,
    ArchiveCorrupt,
    ArchiveError,
    ArchiveNotFound,
    ArchiveQueryError,
    ArchiveWriteError,
)
from ._jsonl import FileRecord
from ._reader import ArchiveReader, ArchiveStats, read_candles
from ._schema import EXPORT_TABLES, SCHEMA_VERSION, TABLES
from ._store import (
    DEFAULT_COMPRESS_AFTER_DAYS,
    DEFAULT_DATABASE,
    DEFAULT_JSONL_MAX_BYTES,
    DEFAULT_LOCK_WAIT_S,
    ArchiveStore,
    Coverage,
    CrashPoint,
    Item,
    Observation,
    Rejection,
    WriteReport,
    entry_order,
)

__all__ = [
    "DEFAULT_COMPRESS_AFTER_DAYS",
    "DEFAULT_DATABASE",
    "DEFAULT_JSONL_MAX_BYTES",
    "DEFAULT_LOCK_WAIT_S",
    "EXPORT_TABLES",
    "SCHEMA_VERSION",
    "TABLES",
    "ArchiveBusy",
    "ArchiveCorrupt",
    "ArchiveError",
    "ArchiveNotFound",
    "ArchiveQueryError",
    "ArchiveReader",
    "ArchiveStats",
    "ArchiveStore",
    "ArchiveWriteError",
    "Coverage",
    "CrashPoint",
    "FileRecord",
    "Item",
    "Observation",
    "Rejection",
    "WriteReport",
    "entry_order",
    "read_candles",
]
