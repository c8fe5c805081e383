"""The built XKRX schedule is kept between processes: the same sessions, read back fast."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from apihub_marketdata import _calendar

FIRST, LAST = date(2026, 11, 1), date(2026, 12, 31)


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("APIHUB_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_a_written_cache_reads_back_the_same_sessions(cache_dir: Path) -> None:
    built = _calendar.build_xkrx(FIRST, LAST)
    path = _calendar._cache_file(FIRST, LAST)
    assert path is not None
    assert path.parent == cache_dir
    _calendar._write_cache(path, built)
    assert _calendar._read_cache(path) == built
    assert date(2026, 12, 31) not in {s.day for s in built}  # the year-end closure
    assert built[0].open.utcoffset() is not None


def test_an_unreadable_cache_is_built_again(cache_dir: Path) -> None:
    path = cache_dir / "broken.json"
    path.write_text("[[1, 2]")
    assert _calendar._read_cache(path) is None
    assert _calendar._read_cache(cache_dir / "absent.json") is None
    path.write_text('[["not a day", "x", "y"]]')
    assert _calendar._read_cache(path) is None


def test_an_empty_cache_dir_turns_the_cache_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APIHUB_CACHE_DIR", "")
    assert _calendar._cache_file(FIRST, LAST) is None


def test_the_default_cache_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APIHUB_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = _calendar._cache_file(FIRST, LAST)
    assert path is not None
    assert path.parent == tmp_path / "apihub"
    assert path.name.startswith("xkrx-")


def test_a_cache_that_cannot_be_written_is_no_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    _calendar._write_cache(blocker / "sub" / "x.json", ())  # parent is a file: ignored
