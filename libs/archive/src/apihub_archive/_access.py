"""Who may open the DuckDB file, and when.

DuckDB lets one process open a database file read-write, and then no other process may open it
at all (read-only openers share the file among themselves, and shut the writer out while they
have it). The archive lives with that rule this way:

- **one writer per archive**: the archiver (or ``apihub archive rebuild``) holds an exclusive
  ``flock`` on ``<root>/archiver.lock`` for its whole life; a second one waits for it (standby)
  or is refused;
- **the writer holds the database only while it writes**: it opens it for a batch and keeps it
  while batches follow each other, closes it as soon as it is idle, and also right after a batch
  when a reader has asked for it;
- **a reader asks**: a reader that finds the file held drops a *wish* in ``<root>/readers/``
  (a file named after its pid, touched while it waits), retries every few milliseconds and
  removes the wish once it is in; it gives up after ``lock_wait_s`` with
  :class:`~apihub_archive.ArchiveBusy`. The writer looks for live wishes (touched within
  :data:`WISH_TTL_S`) after every batch, closes the database, and opens it again for the next
  batch once no wish is left and the readers have closed it.

The stream is the buffer: while readers hold the file the archiver only falls behind, and
catches up from its pending entries afterwards.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from pathlib import Path
from typing import IO, Final

import duckdb

from ._errors import ArchiveBusy, ArchiveError

LOCK_FILE: Final = "archiver.lock"
WISH_DIR: Final = "readers"
WISH_TTL_S: Final = 2.0
"""A wish not touched for this long is a reader that died: ignored and removed."""
POLL_S: Final = (0.002, 0.005, 0.01, 0.02, 0.05)
"""Pauses between attempts to open a held database (the last one repeats)."""


def is_busy(exc: BaseException) -> bool:
    """Whether a DuckDB error says the file is held by another connection (another process's
    lock, or this process's own connection opened with a different mode)."""
    text = str(exc)
    return (isinstance(exc, duckdb.IOException) and "lock" in text.lower()) or (
        isinstance(exc, duckdb.ConnectionException) and "different configuration" in text
    )


def first_line(exc: BaseException) -> str:
    """DuckDB's message without its hints and context lines."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def poll_pause(attempt: int) -> float:
    """The pause before attempt ``attempt + 1`` at opening a held database."""
    return POLL_S[min(attempt, len(POLL_S) - 1)]


class WriterLock:
    """The archive's one-writer lock: an exclusive ``flock`` on ``<root>/archiver.lock``.

    ``flock`` locks belong to the open file, so two writers in one process exclude each other
    too, and the kernel releases the lock of a process that dies.
    """

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_FILE
        self._handle: IO[bytes] | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._handle is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; whether this object holds it now."""
        if self._handle is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+b")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        except BaseException:
            handle.close()
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self._handle = handle
        return True

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()


def readers_waiting(root: Path, *, now: float | None = None) -> bool:
    """Whether a live reader asked for the database (stale wishes are removed on the way)."""
    folder = root / WISH_DIR
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return False
    moment = time.time() if now is None else now
    waiting = False
    for entry in entries:
        try:
            touched = entry.stat().st_mtime
        except FileNotFoundError:
            continue
        if moment - touched <= WISH_TTL_S:
            waiting = True
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
    return waiting


class Wish:
    """A reader's request for the database: a file in ``<root>/readers/`` while it waits."""

    def __init__(self, root: Path) -> None:
        self.path = root / WISH_DIR / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.wish"
        self._made = False

    def touch(self) -> None:
        """Say (again) that this reader is waiting."""
        try:
            if not self._made:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
            self._made = True
        except OSError:
            # A read-only archive directory: the reader still waits for the writer's idle
            # close, only without asking.
            pass

    def withdraw(self) -> None:
        """The reader is in, or gave up."""
        if self._made:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self._made = False


def open_reader(database: Path, *, lock_wait_s: float) -> duckdb.DuckDBPyConnection:
    """Open ``database`` read-only, asking the writer for it when it is held (see the module
    docstring); raises :class:`ArchiveBusy` after ``lock_wait_s``."""
    root = database.parent
    deadline = time.monotonic() + max(0.0, lock_wait_s)
    wish = Wish(root)
    attempt = 0
    try:
        while True:
            try:
                return duckdb.connect(str(database), read_only=True)
            except duckdb.Error as exc:
                if not is_busy(exc):
                    raise ArchiveError(
                        f"cannot open {database}: {first_line(exc)}", path=database
                    ) from None
            if time.monotonic() >= deadline:
                raise ArchiveBusy(
                    f"the archive {database} stayed held by its writer for {lock_wait_s:g} s "
                    "(is the archiver stuck on a batch? retry, or raise [archive] lock_wait_s)",
                    path=database,
                )
            wish.touch()
            time.sleep(poll_pause(attempt))
            attempt += 1
    finally:
        wish.withdraw()
