"""`apihub archive …` and `apihub archiver`: queries as tables and JSON Lines, exports, stats,
rebuild from a real Redis stream, one-line errors with their exit codes, and reading while the
archive's writer holds the database (from another process, as a user would)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pyarrow.parquet as pq
import pytest
import redis
from typer.testing import CliRunner

from apihub_archive import ArchiveStore
from apihub_archiver import project
from apihub_cli import app
from apihub_core import Keys, ResponseReceived, encode_entry
from apihub_runtime import ExitCode
from apihub_testing import wait_until

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures" / "api_responses"
KIS_MINUTES = {
    "FID_ETC_CLS_CODE": "",
    "FID_COND_MRKT_DIV_CODE": "J",
    "FID_INPUT_ISCD": "005930",
    "FID_INPUT_HOUR_1": "130000",
    "FID_PW_DATA_INCU_YN": "Y",
}
KIWOOM_DAILY = {"stk_cd": "005930", "base_dt": "20250321", "upd_stkpc_tp": "1"}
DATE = "Fri, 21 Mar 2025 04:00:00 GMT"


def responses() -> list[ResponseReceived]:
    """The recorded answers (tests/fixtures) as the dispatcher would append them, plus an
    answer the broker refused."""

    def answer(
        request_id: str, provider: str, tr_id: str, params: dict[str, str], body: bytes
    ) -> ResponseReceived:
        return ResponseReceived(
            request_id=request_id,
            provider=provider,
            tr_id=tr_id,
            account="default",
            status=200,
            headers={"date": DATE},
            body=msgspec.Raw(body),
            params=params,
            priority="collector",
        )

    return [
        answer(
            "kis-1",
            "KIS",
            "FHKST03010200",
            KIS_MINUTES,
            (FIXTURES / "kis_candle_response.json").read_bytes(),
        ),
        answer(
            "kw-1",
            "KIWOOM",
            "ka10081",
            KIWOOM_DAILY,
            (FIXTURES / "kiwoom_candle_response.json").read_bytes(),
        ),
        answer("kis-2", "KIS", "FHKST03010200", KIS_MINUTES, b'{"rt_cd": "1", "msg1": "no"}'),
    ]


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("APIHUB_") and key not in {"REDIS_URL", "REDIS_URL_GATEKEEPER"}
    }
    return {**env, "APIHUB_DATA_DIR": str(data_dir), **extra}


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """An archive written from the recorded answers, at <data dir>/archive."""
    root = tmp_path / "data" / "archive"
    items = []
    for number, event in enumerate(responses(), start=1):
        fields = {key.encode(): value for key, value in encode_entry(event).items()}
        item = project(f"{number}-0", fields)
        assert item is not None
        items.append(item)
    with ArchiveStore(root, fsync=False) as store:
        store.write(items)
    return root


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env_for(tmp_path / "data", **env))
    return result.exit_code, result.stdout, result.stderr


def test_query_prints_a_table(runner: CliRunner, tmp_path: Path, archive: Path) -> None:
    code, out, _ = invoke(
        runner,
        tmp_path,
        "archive",
        "query",
        "SELECT provider, interval, count(*) AS bars FROM candles GROUP BY ALL ORDER BY ALL",
    )
    assert code == ExitCode.OK
    lines = [line.split() for line in out.splitlines() if line.strip()]
    assert lines[0] == ["provider", "interval", "bars"]
    assert lines[2:] == [["KIS", "1m", "5"], ["KIWOOM", "1d", "3"]]


def test_query_json_is_json_lines(runner: CliRunner, tmp_path: Path, archive: Path) -> None:
    code, out, _ = invoke(
        runner,
        tmp_path,
        "archive",
        "query",
        "--format",
        "json",
        "SELECT symbol, ts, close, value FROM candles WHERE interval = '1d' ORDER BY ts",
    )
    assert code == ExitCode.OK
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows[0] == {
        "symbol": "005930",
        "ts": "2025-03-19T00:00:00",
        "close": 71600,
        "value": 929532000000,
    }
    assert len(rows) == 3


def test_quarantine_is_queryable(runner: CliRunner, tmp_path: Path, archive: Path) -> None:
    code, out, _ = invoke(
        runner,
        tmp_path,
        "archive",
        "query",
        "--format",
        "json",
        "SELECT request_id, reason, body FROM quarantine",
    )
    assert code == ExitCode.OK
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert (row["request_id"], row["reason"]) == ("kis-2", "broker_error")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["SELEC 1"], ExitCode.USAGE, "query refused: Parser Error"),
        (["SELECT * FROM nowhere"], ExitCode.USAGE, "query refused: Catalog Error"),
        (["DROP TABLE candles"], ExitCode.USAGE, "read-only"),
        (["--format", "csv", "SELECT 1"], ExitCode.USAGE, "--format 'csv' is not one of"),
        (["--wait", "-1", "SELECT 1"], ExitCode.USAGE, "--wait must be 0 seconds or more"),
    ],
)
def test_a_wrong_query_is_one_line_and_an_exit_code(
    runner: CliRunner, tmp_path: Path, archive: Path, args: list[str], code: int, message: str
) -> None:
    status, out, err = invoke(runner, tmp_path, "archive", "query", *args)
    assert status == code
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err + out


def test_no_archive_is_a_configuration_error(runner: CliRunner, tmp_path: Path) -> None:
    status, _, err = invoke(runner, tmp_path, "archive", "stats")
    assert status == ExitCode.CONFIGURATION
    assert "no archive at" in err


def test_export_writes_parquet(runner: CliRunner, tmp_path: Path, archive: Path) -> None:
    target = tmp_path / "parquet"
    code, out, _ = invoke(runner, tmp_path, "archive", "export", "--format", "parquet", str(target))
    assert code == ExitCode.OK
    assert [Path(line).name for line in out.splitlines()] == [
        "candles.parquet",
        "candle_revisions.parquet",
        "ticks.parquet",
        "snapshots.parquet",
        "quarantine.parquet",
    ]
    assert pq.read_table(target / "candles.parquet").num_rows == 8
    code, out, _ = invoke(
        runner, tmp_path, "archive", "export", "--tables", "candles", str(tmp_path / "one")
    )
    assert (code, [Path(line).name for line in out.splitlines()]) == (0, ["candles.parquet"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "csv"], "not supported"),
        (["--tables", " , "], "names no table"),
        (["--tables", "candles,secrets"], "no table secrets"),
    ],
)
def test_export_refuses_what_it_cannot_do(
    runner: CliRunner, tmp_path: Path, archive: Path, args: list[str], message: str
) -> None:
    status, _, err = invoke(runner, tmp_path, "archive", "export", *args, str(tmp_path / "x"))
    assert status == ExitCode.USAGE
    assert message in err


def test_stats(runner: CliRunner, tmp_path: Path, archive: Path) -> None:
    code, out, _ = invoke(runner, tmp_path, "archive", "stats")
    assert code == ExitCode.OK
    assert "broker_error" in out
    assert "JSONL: 3 files" in out
    code, out, _ = invoke(runner, tmp_path, "archive", "stats", "--format", "json")
    stats = json.loads(out)
    assert stats["tables"]["candles"] == 8
    assert stats["quarantine"] == {"broker_error": 1}
    assert [(c["provider"], c["interval"], c["bars"]) for c in stats["candles"]] == [
        ("KIS", "1m", 5),
        ("KIWOOM", "1d", 3),
    ]
    assert invoke(runner, tmp_path, "archive", "stats", "--format", "xml")[0] == ExitCode.USAGE


def test_rebuild_replays_the_stream(
    runner: CliRunner, tmp_path: Path, redis_url: str, hub_namespace: str, archive: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    stream = Keys(hub_namespace).responses
    for event in responses():
        client.xadd(stream, encode_entry(event))
    client.close()
    hub = {"REDIS_URL": redis_url, "APIHUB_NAMESPACE": hub_namespace}
    code, out, err = invoke(
        runner, tmp_path, "archive", "rebuild", "--into", str(tmp_path / "re"), **hub
    )
    assert code == ExitCode.OK, err
    assert "from 3 entries: 2 stored, 1 quarantined, 8 bars" in out
    code, out, _ = invoke(
        runner,
        tmp_path,
        "archive",
        "query",
        "--archive",
        str(tmp_path / "re"),
        "--format",
        "json",
        "SELECT (SELECT count(*) FROM candles) AS bars, "
        "(SELECT count(*) FROM quarantine) AS quarantined",
    )
    assert json.loads(out) == {"bars": 8, "quarantined": 1}
    code, _, err = invoke(runner, tmp_path, "archive", "rebuild", **hub)
    assert code == ExitCode.USAGE
    assert "already holds an archive" in err


def test_rebuild_without_a_hub_says_so(runner: CliRunner, tmp_path: Path) -> None:
    code, _, err = invoke(
        runner, tmp_path, "archive", "rebuild", "--redis-url", "redis://127.0.0.1:1/0"
    )
    assert code == ExitCode.HUB_UNAVAILABLE
    assert "Redis at" in err


def _apihub(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "apihub_cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def writer(archive: Path) -> Iterator[ArchiveStore]:
    """The archive's writer holding its database, as the archiver does during a batch."""
    with ArchiveStore(archive, fsync=False) as store:
        store.connect()
        yield store


def test_a_query_while_the_writer_holds_the_database(writer: ArchiveStore, tmp_path: Path) -> None:
    child = _apihub(
        "archive",
        "query",
        "--format",
        "json",
        "SELECT count(*) AS n FROM candles",
        env=env_for(tmp_path / "data"),
    )
    try:
        wait_until(writer.readers_waiting, timeout=30, message="the query asks for the database")
        writer.disconnect()  # the archiver, after its batch
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert (child.returncode, json.loads(out)) == (0, {"n": 8}), err


def test_a_query_gives_up_after_its_wait(writer: ArchiveStore, tmp_path: Path) -> None:
    child = _apihub("archive", "query", "--wait", "0.2", "SELECT 1", env=env_for(tmp_path / "data"))
    _out, err = child.communicate(timeout=30)
    assert child.returncode == ExitCode.TIMEOUT
    assert "stayed held by its writer" in err
    assert len(err.strip().splitlines()) == 1


def test_the_archiver_command_runs_and_drains(
    tmp_path: Path, redis_url: str, hub_namespace: str
) -> None:
    env = env_for(tmp_path / "data", REDIS_URL=redis_url, APIHUB_NAMESPACE=hub_namespace)
    child = _apihub("archiver", "--log-level", "INFO", env=env)
    lines: list[str] = []
    try:
        assert child.stderr is not None
        for line in child.stderr:
            lines.append(line)
            if "archiver ready" in line:
                break
        child.send_signal(signal.SIGTERM)
        _out, rest = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 0, "".join(lines)
    assert "archiver stopped" in rest
    assert (tmp_path / "data" / "archive" / "market.duckdb").exists()


def test_a_table_shows_dates_bytes_and_at_most_its_row_limit(
    runner: CliRunner, tmp_path: Path, archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apihub_cli import _archive_cmds

    code, out, _ = invoke(
        runner,
        tmp_path,
        "archive",
        "query",
        "SELECT body, DATE '2026-12-02' AS day, NULL AS n FROM quarantine",
    )
    assert code == ExitCode.OK
    assert "bytes>" in out
    assert "2026-12-02" in out
    monkeypatch.setattr(_archive_cmds, "TABLE_ROWS_MAX", 2)
    code, out, err = invoke(runner, tmp_path, "archive", "query", "SELECT * FROM range(5)")
    assert code == ExitCode.OK
    assert "first 2 rows shown" in err
