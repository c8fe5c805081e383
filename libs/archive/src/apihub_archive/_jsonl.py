"""The JSONL archive: one line per stored version of a bar, tick or snapshot, in files per day.

Layout under ``<root>/jsonl/`` (``kind`` is ``candles``, ``ticks`` or ``snapshots``)::

    candles/2026/12/candles-2026-12-02.jsonl       the day's first part
    candles/2026/12/candles-2026-12-02.1.jsonl     the next part, once the first reached
                                                   jsonl_max_bytes
    candles/2026/11/candles-2026-11-27.jsonl.gz    a cold day: gzipped

The day is the day of the **data** (a bar's start in KST), never the day it was written, so the
files depend only on the lines and their order: replaying the same events gives the same bytes.
A day is *cold* once it is more than ``compress_after_days`` before the newest day of its kind
in the archive; its files are then gzipped (``mtime`` 0, no file name in the header, so the
``.gz`` bytes are a function of the content) as soon as :data:`QUIET_BATCHES` batches have
left them alone, and all of them when the writer settles (goes idle, closes). A late line for a
cold day reopens the day's last part (decompressed, appended, compressed again later), so where
a line lands never depends on how the lines were cut into batches, and a settled archive is the
same bytes whatever the batches were.

Exactly once with DuckDB: lines are appended (and fsynced) first, then the database commits the
new size of every file in ``archive_files`` together with the data. :meth:`JsonlFiles.recover`
(run when the writer opens the database) cuts every file back to its committed size, deletes
files no commit knows, and finishes compressions a crash interrupted.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Final

from ._errors import ArchiveCorrupt, ArchiveWriteError

KINDS: Final = ("candles", "ticks", "snapshots")
JSONL_DIR: Final = "jsonl"
GZIP_LEVEL: Final = 6
QUIET_BATCHES: Final = 2
"""A cold file is gzipped after a commit once this many batches have not appended to it."""
_COPY_CHUNK: Final = 1024 * 1024

Buffer = bytes | memoryview
Chunk = tuple[str, date, Buffer, int]
"""Lines for the archive: kind, day, whole lines back to back (each ending in ``\\n``), how many."""


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One JSONL file as the database knows it: its logical name (``.jsonl``, even when it is
    stored gzipped), kind, day, part number and committed size in bytes and lines."""

    path: str
    kind: str
    day: date
    part: int
    bytes: int
    lines: int


def file_name(kind: str, day: date, part: int) -> str:
    """The logical path of part ``part`` of ``day``, relative to the archive root."""
    suffix = f".{part}" if part else ""
    return (
        f"{JSONL_DIR}/{kind}/{day.year:04d}/{day.month:02d}/{kind}-{day.isoformat()}{suffix}.jsonl"
    )


class _Part:
    """A file a batch appends to, while the batch is planned."""

    __slots__ = ("bytes", "chunks", "day", "kind", "lines", "number")

    def __init__(self, kind: str, day: date, number: int, size: int, lines: int) -> None:
        self.kind, self.day, self.number, self.bytes, self.lines = kind, day, number, size, lines
        self.chunks: list[Buffer] = []

    @classmethod
    def of(cls, record: FileRecord) -> _Part:
        return cls(record.kind, record.day, record.part, record.bytes, record.lines)

    def record(self) -> FileRecord:
        path = file_name(self.kind, self.day, self.number)
        return FileRecord(path, self.kind, self.day, self.number, self.bytes, self.lines)


class Pending:
    """The files a batch appends to, before its commit: new records and the bytes per file."""

    __slots__ = ("appends", "records", "reopened")

    def __init__(self) -> None:
        self.records: dict[str, FileRecord] = {}
        self.appends: dict[str, list[Buffer]] = {}
        self.reopened: set[str] = set()


class JsonlFiles:
    """The JSONL files of one archive: where each line goes, appending, compressing, recovery.

    Not thread-safe; the archive's single writer owns it.
    """

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int,
        compress_after_days: int,
        fsync: bool = True,
    ) -> None:
        self.root = root
        self.max_bytes = max(1, max_bytes)
        self.compress_after_days = compress_after_days
        self.fsync = fsync
        self._records: dict[str, FileRecord] = {}
        self._last: dict[tuple[str, date], FileRecord] = {}
        self._newest: dict[str, date] = {}
        self._hot: set[str] = set()
        """Committed files stored plain (not gzipped): the only candidates for compression."""
        self._batch = 0
        self._touched: dict[str, int] = {}

    # -- state ---------------------------------------------------------------------------------

    @property
    def records(self) -> Mapping[str, FileRecord]:
        """Every committed file, by logical path."""
        return self._records

    def load(self, records: Iterable[FileRecord]) -> None:
        """Adopt the committed state (what ``archive_files`` says)."""
        self._records = {}
        self._last = {}
        self._newest = {}
        self._hot = set()
        for record in records:
            self._adopt(record)
            if self._plain(record.path).exists():
                self._hot.add(record.path)

    def _adopt(self, record: FileRecord) -> None:
        self._records[record.path] = record
        key = (record.kind, record.day)
        last = self._last.get(key)
        if last is None or record.part >= last.part:
            self._last[key] = record
        newest = self._newest.get(record.kind)
        if newest is None or record.day > newest:
            self._newest[record.kind] = record.day

    def cold(self, kind: str, day: date, newest: Mapping[str, date] | None = None) -> bool:
        """Whether ``day``'s files of ``kind`` are (to be) gzipped."""
        if self.compress_after_days < 0:
            return False
        top = (newest or self._newest).get(kind)
        return top is not None and day < top - timedelta(days=self.compress_after_days)

    # -- a batch ---------------------------------------------------------------------------------

    def plan(self, chunks: Iterable[Chunk]) -> Pending:
        """Decide the file of every line, in order, rolling to a new part when a part would
        exceed ``max_bytes`` (a line longer than that gets a part of its own).

        A chunk is ``count`` whole lines of one kind and day; it goes into its part whole
        when all of it fits (so line by line would not roll either), else line by line."""
        pending = Pending()
        limit = self.max_bytes
        parts: dict[tuple[str, date], _Part] = {}
        touched: list[_Part] = []
        for kind, day, data, count in chunks:
            key = (kind, day)
            part = parts.get(key)
            if part is None:
                last = self._last.get(key)
                part = parts[key] = _Part(kind, day, 0, 0, 0) if last is None else _Part.of(last)
                touched.append(part)
            pieces: Iterable[tuple[Buffer, int]] = ((data, count),)
            if count > 1 and part.bytes + len(data) > limit:
                pieces = ((line, 1) for line in _lines_of(data))
            for piece, lines in pieces:
                size = len(piece)
                if part.bytes and part.bytes + size > limit:
                    part = parts[key] = _Part(kind, day, part.number + 1, 0, 0)
                    touched.append(part)
                part.bytes += size
                part.lines += lines
                part.chunks.append(piece)
        for part in touched:
            record = part.record()
            pending.records[record.path] = record
            pending.appends[record.path] = part.chunks
            if record.path in self._records and record.path not in self._hot:
                pending.reopened.add(record.path)
        return pending

    def append(self, pending: Pending) -> None:
        """Write the batch's lines (reopening gzipped parts first) and flush them to disk."""
        try:
            for path in sorted(pending.reopened):
                self._decompress(path)
            appends = list(pending.appends.items())
            for start in range(0, len(appends), _OPEN_AT_ONCE):
                self._append(appends[start : start + _OPEN_AT_ONCE])
        except OSError as exc:
            raise ArchiveWriteError(
                f"cannot append to the JSONL archive: {exc}", path=self.root
            ) from exc

    def _append(self, appends: list[tuple[str, list[Buffer]]]) -> None:
        with contextlib.ExitStack() as files:
            written: list[int] = []
            for path, chunks in appends:
                target = self._plain(path)
                target.parent.mkdir(parents=True, exist_ok=True)
                out = files.enter_context(target.open("ab"))
                out.writelines(chunks)
                out.flush()
                written.append(out.fileno())
            if self.fsync:
                # A batch appends to dozens of files (daily bars: one per day); fsyncs issued
                # together share the file system's journal commits (2-3x faster than one after
                # the other). All of them finish before the database commits.
                for _done in _syncer().map(os.fsync, written):
                    pass

    def committed(self, pending: Pending) -> None:
        """The database committed ``pending``: adopt it, then gzip the cold files the last
        :data:`QUIET_BATCHES` batches left alone (a cold day that keeps receiving lines, as
        in a backfill, is compressed once it stops, not after every batch)."""
        self._batch += 1
        for record in pending.records.values():
            self._adopt(record)
            self._hot.add(record.path)
            self._touched[record.path] = self._batch
        self.compress_cold(quiet=QUIET_BATCHES)

    def compress_cold(self, *, quiet: int = 0) -> int:
        """Gzip every committed file of a cold day that is still plain (and, with ``quiet``,
        untouched by the last ``quiet`` batches); how many."""
        done = 0
        for path in sorted(self._hot):
            record = self._records[path]
            if quiet and self._batch - self._touched.get(path, 0) < quiet:
                continue
            if self.cold(record.kind, record.day):
                try:
                    self._compress(path)
                except OSError as exc:
                    raise ArchiveWriteError(f"cannot gzip {path}: {exc}", path=self.root) from exc
                self._hot.discard(path)
                done += 1
        return done

    # -- recovery --------------------------------------------------------------------------------

    def recover(self) -> int:
        """Make the disk agree with the committed records (see the module docstring); returns
        how many files were repaired (cut back, deleted or compressed)."""
        repaired = 0
        base = self.root / JSONL_DIR
        try:
            for record in self._records.values():
                repaired += self._recover_one(record)
            if base.exists():
                for found in sorted(_files_under(base)):
                    logical = found.relative_to(self.root).as_posix().removesuffix(".gz")
                    if found.name.endswith(".tmp") or logical not in self._records:
                        found.unlink()
                        repaired += 1
        except OSError as exc:
            raise ArchiveWriteError(
                f"cannot repair the JSONL archive: {exc}", path=self.root
            ) from exc
        self._hot = {path for path in self._records if self._plain(path).exists()}
        return repaired

    def _recover_one(self, record: FileRecord) -> int:
        plain, packed = self._plain(record.path), self._packed(record.path)
        if plain.exists():
            size = plain.stat().st_size
            if size < record.bytes:
                raise ArchiveCorrupt(
                    f"{record.path} holds {size} bytes but {record.bytes} were committed",
                    path=self.root,
                )
            repaired = 0
            if size > record.bytes:
                with plain.open("r+b") as handle:
                    handle.truncate(record.bytes)
                    if self.fsync:
                        os.fsync(handle.fileno())
                repaired = 1
            if packed.exists():
                # Stale (a reopened day whose batch committed) or a copy (a compression that
                # stopped after its rename): the plain file is the whole truth.
                packed.unlink()
                repaired = 1
            if self.cold(record.kind, record.day):
                self._compress(record.path)
                repaired = 1
            return repaired
        if packed.exists():
            return 0
        raise ArchiveCorrupt(
            f"{record.path} was committed ({record.bytes} bytes) but is missing", path=self.root
        )

    # -- files -----------------------------------------------------------------------------------

    def _plain(self, path: str) -> Path:
        return self.root / path

    def _packed(self, path: str) -> Path:
        return self.root / f"{path}.gz"

    def _compress(self, path: str) -> None:
        plain, packed = self._plain(path), self._packed(path)
        temporary = packed.with_name(packed.name + ".tmp")
        with plain.open("rb") as source, temporary.open("wb") as raw:
            # No file name and mtime 0 in the header: the bytes depend on the content only.
            with gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=0
            ) as out:
                shutil.copyfileobj(source, out, _COPY_CHUNK)
            raw.flush()
            if self.fsync:
                os.fsync(raw.fileno())
        temporary.replace(packed)
        plain.unlink()

    def _decompress(self, path: str) -> None:
        plain, packed = self._plain(path), self._packed(path)
        temporary = plain.with_name(plain.name + ".tmp")
        with gzip.open(packed, "rb") as source, temporary.open("wb") as out:
            shutil.copyfileobj(source, out, _COPY_CHUNK)
            out.flush()
            if self.fsync:
                os.fsync(out.fileno())
        temporary.replace(plain)

    def read_lines(self, path: str) -> list[bytes]:
        """Every committed line of one file (plain or gzipped), for tests and audits."""
        record = self._records.get(path)
        plain, packed = self._plain(path), self._packed(path)
        if plain.exists():
            data = plain.read_bytes()
        elif packed.exists():
            with gzip.open(packed, "rb") as source:
                data = source.read()
        else:
            return []
        if record is not None:
            data = data[: record.bytes]
        return data.splitlines(keepends=True)


_SYNC_THREADS: Final = 8
_OPEN_AT_ONCE: Final = 64
"""Files a batch holds open at once while appending (a backfill of daily bars may touch
thousands of days)."""


@functools.cache
def _syncer() -> ThreadPoolExecutor:
    """The threads that fsync a batch's files (made on first use, shared by every archive)."""
    return ThreadPoolExecutor(_SYNC_THREADS, thread_name_prefix="jsonl-fsync")


def _lines_of(data: Buffer) -> list[bytes]:
    """The lines of a chunk (JSON escapes every newline inside a line)."""
    return [line + b"\n" for line in bytes(data).split(b"\n")[:-1]]


def _files_under(base: Path) -> Iterator[Path]:
    for directory, _dirs, names in os.walk(base):
        for name in names:
            yield Path(directory) / name
