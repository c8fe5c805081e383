"""Finding the running hub as `apihub call` does: REDIS_URL, else `apihub up`'s hub.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apihub_core import (
    DISCOVERY_FILE,
    HubClient,
    HubUnavailable,
    advertised_hub_url,
    find_hub_url,
    masked_url,
    read_discovery_file,
)


def _advertise(data_dir: Path, url: str, pid: int) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / DISCOVERY_FILE
    path.write_text(json.dumps({"redis_url": url, "pid": pid, "owner_pid": pid}))
    return path


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout)


def test_redis_url_wins(tmp_path: Path) -> None:
    env = {"REDIS_URL": "redis://example:6379/0", "APIHUB_DATA_DIR": str(tmp_path)}
    assert find_hub_url(env) == "redis://example:6379/0"


def test_an_advertised_live_hub_is_found(tmp_path: Path, redis_url: str) -> None:
    _advertise(tmp_path, redis_url, os.getpid())
    assert advertised_hub_url(tmp_path) == redis_url
    assert find_hub_url({"APIHUB_DATA_DIR": str(tmp_path)}) == redis_url
    assert find_hub_url({}, data_dir=tmp_path) == redis_url
    assert read_discovery_file(tmp_path) == {
        "redis_url": redis_url,
        "pid": os.getpid(),
        "owner_pid": os.getpid(),
    }


@pytest.mark.anyio
async def test_the_readme_example_connects(tmp_path: Path, redis_url: str) -> None:
    _advertise(tmp_path, redis_url, os.getpid())
    async with HubClient.from_url(find_hub_url({}, data_dir=tmp_path)) as hub:
        assert hub.client_id


def test_a_stale_file_is_removed_and_nothing_is_found(tmp_path: Path, redis_url: str) -> None:
    path = _advertise(tmp_path, redis_url, _dead_pid())
    assert advertised_hub_url(tmp_path) is None
    assert not path.exists()


@pytest.mark.parametrize("text", ["{not json", "[1]", '{"redis_url": 3, "pid": 1}'])
def test_an_unreadable_file_is_stale(tmp_path: Path, text: str) -> None:
    (tmp_path / DISCOVERY_FILE).write_text(text)
    assert advertised_hub_url(tmp_path) is None
    assert not (tmp_path / DISCOVERY_FILE).exists()


def test_a_live_pid_that_does_not_answer_is_not_a_hub(tmp_path: Path) -> None:
    path = _advertise(tmp_path, "redis://127.0.0.1:1/0", os.getpid())
    assert advertised_hub_url(tmp_path) is None
    assert path.exists(), "left for its owner to clean up"


def test_no_hub_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(HubUnavailable, match="apihub up") as caught:
        find_hub_url({"APIHUB_DATA_DIR": str(tmp_path)})
    assert str(tmp_path) in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:hunter2@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://user:hunter2@h:6380", "rediss://user:***@h:6380"),
        ("redis://hunter2@h", "redis://***@h"),
        ("redis://:hunter2@h:99999999/0", "redis://:***@h:99999999/0"),
        ("notaurl", "notaurl"),
    ],
)
def test_masked_url_hides_the_password(url: str, shown: str) -> None:
    assert masked_url(url) == shown
    assert "hunter2" not in masked_url(url)
