"""The exceptions apihub_archive raises: one tree, every DuckDB and file-system error translated
into it, so a user sees one line and never a traceback.

::

    ArchiveError            base of every error of the archive
    ├── ArchiveBusy         retry later: the database stayed held by its one writer (or by
    │                       readers, for the writer) past the wait (``lock_wait_s``), or another
    │                       archiver already writes this archive
    ├── ArchiveNotFound     fatal: no archive at that path (nothing was written there yet)
    ├── ArchiveQueryError   fatal for that query: DuckDB refused the SQL (syntax, unknown table
    │                       or column, a statement that would write through a reader)
    ├── ArchiveCorrupt      fatal: the files and the database disagree beyond repair (a JSONL
    │                       file shorter than what the database committed, a newer schema)
    └── ArchiveWriteError   retry later: DuckDB or the disk failed while a batch was written;
                            nothing of the batch was kept (the JSONL tail is cut back on reopen)

Every error carries ``path`` (the archive directory or database it concerns).
"""

from __future__ import annotations

from pathlib import Path


class ArchiveError(Exception):
    """Base of every exception of apihub_archive; ``path`` is the archive it concerns."""

    retryable = False

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        """Record the one-line message and the archive path."""
        super().__init__(message)
        self.path = path


class ArchiveBusy(ArchiveError):
    """The database was held by someone else for longer than the wait allowed (retry later)."""

    retryable = True


class ArchiveNotFound(ArchiveError):
    """There is no archive at the path (the archiver has written nothing there yet)."""


class ArchiveQueryError(ArchiveError):
    """DuckDB refused a query; the message is DuckDB's own first line."""


class ArchiveCorrupt(ArchiveError):
    """The archive's files and its database disagree in a way that cannot be repaired."""


class ArchiveWriteError(ArchiveError):
    """Writing a batch failed; nothing of it was kept, so it can be written again."""

    retryable = True
