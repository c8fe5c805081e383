"""Archive ingest benchmark: candles per second into DuckDB, and rebuilding from the event log.

Run from the repository root::

    uv run python ops/bench/archive_ingest.py           # 10,000 answers, about 1M candles
    uv run python ops/bench/archive_ingest.py --quick   # 2,000 answers, about 200k candles

What runs where: the broker simulator in a thread of this process (asked once per TR for a real
answer), ``redis-server`` (embedded, no AOF), and ``python -m apihub_archiver`` as a child
process with the default ``[archive]`` settings (batches of up to 5,000 entries or 200 ms).

The answers: real simulator answers of the chart TRs (KIS ``FHKST03010100`` daily bars,
``FHKST03010200`` minute bars; Kiwoom ``ka10081`` daily and ``ka10080`` minute bars), each
repeated for ``--answers / 4`` symbols (the symbol is a request parameter, so every copy is
new bars), as ``response.received`` events the dispatcher would append.

Measured, each on a fresh archive:

1. **normalise**: ``apihub_archiver.project`` (decode + normalise) of every entry, candles/s;
2. **store**: ``ArchiveStore.write`` of the projected entries in batches of 5,000 entries,
   candles/s (DuckDB upserts + JSONL lines), and again for the same entries redelivered (no-op)
   and re-observed by new entries with one value changed (revisions);
3. **archiver**: the entries appended to the response stream, then the archiver process
   started; candles/s from its start until the group has acknowledged the last entry
   (Redis reads, normalising, DuckDB, JSONL, ``archive.written`` events, XACK);
4. **readers while it ingests**: the same again on a fresh stream with a reader opening the
   archive every 0.5 s (``read_candles``): the readers' wait (p50/max) and the ingest rate;
5. **rebuild**: ``rebuild_archive`` from the stream into an empty directory, seconds, and
   whether its JSONL files equal the archiver's byte for byte.

The goal is ≥ 100,000 candles/s into DuckDB. This is not a pytest test: it needs a minute or
two and a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import anyio
import httpx
import msgspec
import redis
from _harness import Child, child_env, console, percentile, wait_for_group

from apihub_archive import ArchiveBusy, ArchiveStore, Item, Observation, read_candles
from apihub_archiver import GROUP, project, rebuild_archive
from apihub_broker_sim import ThreadedSimServer
from apihub_core import Keys, ResponseReceived, encode_entry, redis_client
from apihub_embedded import EmbeddedRedis
from apihub_marketdata import KST
from apihub_runtime import load_settings

GOAL_CANDLES_PER_S: Final = 100_000
BATCH: Final = 5_000
RECEIVED_AT_MS: Final = 1_764_720_000_000


# -- the answers ---------------------------------------------------------------------------------


def fetch_answers(url: str) -> list[tuple[str, str, dict[str, str], bytes, str]]:
    """One real answer per chart TR: (provider, tr_id, params, body, date header)."""
    http = httpx.Client(base_url=url, timeout=30.0)
    kis_token = http.post(
        "/oauth2/tokenP",
        json={"grant_type": "client_credentials", "appkey": "bench-k", "appsecret": "bench-s"},
    ).json()["access_token"]
    kis = {"authorization": f"Bearer {kis_token}", "appkey": "bench-k", "appsecret": "bench-s"}
    kiwoom_token = http.post(
        "/oauth2/token",
        json={"grant_type": "client_credentials", "appkey": "bench-w", "secretkey": "bench-x"},
    ).json()["token"]
    kiwoom = {"authorization": f"Bearer {kiwoom_token}"}
    base = "/uapi/domestic-stock/v1/quotations"
    asks: list[tuple[str, str, dict[str, str]]] = [
        (
            "KIS",
            "FHKST03010100",
            {
                "FID_COND_MRKT_DIV_CODE": "J",
                "FID_INPUT_ISCD": "005930",
                "FID_INPUT_DATE_1": "20241001",
                "FID_INPUT_DATE_2": "20250321",
                "FID_PERIOD_DIV_CODE": "D",
                "FID_ORG_ADJ_PRC": "0",
            },
        ),
        (
            "KIS",
            "FHKST03010200",
            {
                "FID_ETC_CLS_CODE": "",
                "FID_COND_MRKT_DIV_CODE": "J",
                "FID_INPUT_ISCD": "005930",
                "FID_INPUT_HOUR_1": "153000",
                "FID_PW_DATA_INCU_YN": "Y",
            },
        ),
        ("KIWOOM", "ka10081", {"stk_cd": "005930", "base_dt": "20250321", "upd_stkpc_tp": "1"}),
        ("KIWOOM", "ka10080", {"stk_cd": "005930", "tic_scope": "1", "upd_stkpc_tp": "1"}),
    ]
    paths = {
        "FHKST03010100": "inquire-daily-itemchartprice",
        "FHKST03010200": "inquire-time-itemchartprice",
    }
    answers = []
    for provider, tr_id, params in asks:
        if provider == "KIS":
            reply = http.get(
                f"{base}/{paths[tr_id]}", params=params, headers={**kis, "tr_id": tr_id}
            )
        else:
            reply = http.post("/api/dostk/chart", json=params, headers={**kiwoom, "api-id": tr_id})
        reply.raise_for_status()
        answers.append((provider, tr_id, params, reply.content, reply.headers["date"]))
    http.close()
    return answers


def events(
    answers: list[tuple[str, str, dict[str, str], bytes, str]], count: int, tag: str
) -> Iterator[ResponseReceived]:
    """``count`` response events: the answers round-robin, each for its own symbol."""
    for n in range(count):
        provider, tr_id, params, body, date = answers[n % len(answers)]
        symbol = f"{100000 + n // len(answers):06d}"
        key = "FID_INPUT_ISCD" if provider == "KIS" else "stk_cd"
        yield ResponseReceived(
            request_id=f"{tag}-{n}",
            provider=provider,
            tr_id=tr_id,
            account="default",
            status=200,
            headers={"date": date},
            body=msgspec.Raw(body),
            received_at_ms=RECEIVED_AT_MS,
            params={**params, key: symbol},
            priority="collector",
        )


def entry_fields(event: ResponseReceived) -> dict[bytes, bytes]:
    return {key.encode(): value for key, value in encode_entry(event).items()}


def candles_of(items: list[Item]) -> int:
    return sum(len(i.data.candles) for i in items if isinstance(i, Observation))


# -- phases ----------------------------------------------------------------------------------------


def phase_in_process(answers: list[Any], count: int, workdir: Path) -> dict[str, Any]:
    fields = [entry_fields(e) for e in events(answers, count, "p")]
    started = time.perf_counter()
    items = [project(f"{1_000 + n}-0", f) for n, f in enumerate(fields)]
    normalise_s = time.perf_counter() - started
    kept = [item for item in items if item is not None]
    candles = candles_of(kept)
    result: dict[str, Any] = {
        "entries": count,
        "candles": candles,
        "normalise_per_s": round(candles / normalise_s),
    }
    with ArchiveStore(workdir / "store") as store:
        store.connect()
        started = time.perf_counter()
        for start in range(0, len(kept), BATCH):
            store.write(kept[start : start + BATCH])
        store.settle()
        insert_s = time.perf_counter() - started
        started = time.perf_counter()
        for start in range(0, len(kept), BATCH):
            store.write(kept[start : start + BATCH])
        again_s = time.perf_counter() - started
        revised = [_revised(item, n) for n, item in enumerate(kept)]
        started = time.perf_counter()
        for start in range(0, len(revised), BATCH):
            store.write(revised[start : start + BATCH])
        store.settle()
        revise_s = time.perf_counter() - started
    result.update(
        store_insert_per_s=round(candles / insert_s),
        store_redelivered_per_s=round(candles / again_s),
        store_revise_per_s=round(candles / revise_s),
        normalise_and_store_per_s=round(candles / (normalise_s + insert_s)),
    )
    return result


def _revised(item: Item, n: int) -> Item:
    """A later observation of the same bars, the newest one's volume changed."""
    assert isinstance(item, Observation)
    candles = list(item.data.candles)
    if candles:
        candles[-1] = msgspec.structs.replace(candles[-1], volume=candles[-1].volume + 1)
    data = msgspec.structs.replace(item.data, candles=tuple(candles))
    return replace(item, entry=f"{9_000_000 + n}-0", data=data)


def append_events(url: str, stream: str, answers: list[Any], count: int, tag: str) -> bytes:
    client = redis.Redis.from_url(url)
    last = b""
    pipe = client.pipeline(transaction=False)
    for n, event in enumerate(events(answers, count, tag), start=1):
        pipe.xadd(stream, encode_entry(event))
        if n % 500 == 0:
            last = pipe.execute()[-1]
            pipe = client.pipeline(transaction=False)
    replies = pipe.execute()
    client.close()
    return replies[-1] if replies else last


def settled(client: redis.Redis, stream: str, last: bytes) -> bool:
    for group in client.xinfo_groups(stream):
        if group["name"] in (GROUP, GROUP.encode()):
            return bool(group["pending"] == 0 and group["last-delivered-id"] == last)
    return False


def phase_archiver(
    url: str, answers: list[Any], count: int, candles: int, workdir: Path, readers: bool
) -> dict[str, Any]:
    namespace = f"bench-{secrets.token_hex(4)}"
    keys = Keys(namespace)
    data_dir = workdir / f"data-{namespace}"
    last = append_events(url, keys.responses, answers, count, namespace)
    env = child_env(
        {"REDIS_URL": url, "APIHUB_NAMESPACE": namespace, "APIHUB_DATA_DIR": str(data_dir)}
    )
    client = redis.Redis.from_url(url)
    waits: list[float] = []
    busy = 0
    stop = threading.Event()
    root = data_dir / "archive"

    def read_loop() -> None:
        nonlocal busy
        first = __import__("datetime").datetime(2024, 1, 1, tzinfo=KST)
        lastday = __import__("datetime").datetime(2026, 12, 31, tzinfo=KST)
        while not stop.wait(0.5):
            if not (root / "market.duckdb").exists():
                continue
            t0 = time.perf_counter()
            try:
                read_candles(root, "KIS", "100000", "1d", first, lastday, lock_wait_s=30)
            except ArchiveBusy:
                busy += 1
                continue
            waits.append((time.perf_counter() - t0) * 1000)

    child = Child(
        "archiver", [sys.executable, "-m", "apihub_archiver"], env, workdir / f"{namespace}.log"
    )
    reader = threading.Thread(target=read_loop, daemon=True)
    try:
        # From the moment its group exists (process start, imports and opening the archive
        # are not ingest).
        wait_for_group(child, url, keys.responses, GROUP)
        started = time.perf_counter()
        if readers:
            reader.start()
        deadline = time.monotonic() + 600
        while not settled(client, keys.responses, last):
            if not child.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the archiver stopped:\n{child.log_tail()}")
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        child.stop()
        client.close()
    result: dict[str, Any] = {
        "namespace": namespace,
        "root": str(root),
        "seconds": round(elapsed, 2),
        "per_s": round(candles / elapsed),
    }
    if readers:
        result.update(
            reads=len(waits),
            read_p50_ms=round(percentile(waits, 50), 1),
            read_max_ms=round(max(waits, default=float("nan")), 1),
            reads_busy=busy,
        )
    return result


def phase_rebuild(
    url: str, namespace: str, live_root: Path, workdir: Path, candles: int
) -> dict[str, Any]:
    settings = load_settings(
        env={"REDIS_URL": url, "APIHUB_NAMESPACE": namespace, "APIHUB_DATA_DIR": str(workdir)}
    )
    into = workdir / f"rebuilt-{namespace}"

    async def run() -> float:
        client = redis_client(url, max_connections=4)
        try:
            report = await rebuild_archive(client, settings, into)
        finally:
            await client.aclose()
        return report.seconds

    seconds = anyio.run(run)
    identical = tree(into) == tree(live_root)
    return {"seconds": round(seconds, 2), "per_s": round(candles / seconds), "identical": identical}


def tree(root: Path) -> dict[str, bytes]:
    found = {}
    for directory, _dirs, names in os.walk(root / "jsonl"):
        for name in names:
            path = Path(directory) / name
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=10_000, help="response events (10000)")
    parser.add_argument("--quick", action="store_true", help="2,000 answers")
    args = parser.parse_args()
    count = 2_000 if args.quick else args.answers
    console.print(
        f"[bold]archive ingest[/]: {count:,} chart answers (KIS + Kiwoom, daily + minute)"
    )
    with tempfile.TemporaryDirectory(prefix="apihub-archive-") as tmp, ThreadedSimServer() as sim:
        workdir = Path(tmp)
        answers = fetch_answers(str(sim.url).rstrip("/"))
        sizes = {
            tr: len(project("1-0", entry_fields(e)).data.candles)
            for e, tr in ((next(events([a], 1, "x")), a[1]) for a in answers)
        }  # type: ignore[union-attr]
        console.print(f"candles per answer: {sizes}")
        local = phase_in_process(answers, count, workdir)
        console.print(f"in process: {json.dumps(local)}")
        candles = local["candles"]
        with EmbeddedRedis(workdir / "redis", appendonly=False) as server:
            plain = phase_archiver(server.url, answers, count, candles, workdir, readers=False)
            console.print(f"archiver: {json.dumps(plain)}")
            read = phase_archiver(server.url, answers, count, candles, workdir, readers=True)
            console.print(f"archiver with readers: {json.dumps(read)}")
            rebuilt = phase_rebuild(
                server.url, plain["namespace"], Path(plain["root"]), workdir, candles
            )
            console.print(f"rebuild: {json.dumps(rebuilt)}")
    ok = plain["per_s"] >= GOAL_CANDLES_PER_S and rebuilt["identical"]
    console.print(
        f"normalise {local['normalise_per_s']:,}/s, store {local['store_insert_per_s']:,}/s "
        f"(redelivered {local['store_redelivered_per_s']:,}/s, revised "
        f"{local['store_revise_per_s']:,}/s), normalise+store {local['normalise_and_store_per_s']:,}/s; "  # noqa: E501
        f"archiver end to end [bold]{plain['per_s']:,} candles/s[/] "
        f"({'PASS' if plain['per_s'] >= GOAL_CANDLES_PER_S else 'MISS'} vs ≥ {GOAL_CANDLES_PER_S:,}); "  # noqa: E501
        f"with a reader every 0.5 s {read['per_s']:,}/s, reader wait p50 {read.get('read_p50_ms')} ms "  # noqa: E501
        f"max {read.get('read_max_ms')} ms; "
        f"rebuild of {candles:,} candles in {rebuilt['seconds']} s "
        f"({'byte-identical' if rebuilt['identical'] else 'DIFFERENT'})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
