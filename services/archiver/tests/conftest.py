"""Fixtures for the archiver's tests: real broker answers from the simulator (over its socket),
turned into the ``response.received`` events the dispatcher would append, and settings of a
test hub with its own archive directory."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from apihub_broker_sim import ThreadedSimServer
from apihub_core import ResponseReceived
from apihub_runtime import Settings, load_settings

RECEIVED_AT_MS = 1_764_720_000_000
"""2025-12-03 00:00 UTC: a fixed time for the events, so every run writes the same archive."""


@dataclass(frozen=True)
class Answer:
    """One broker answer as the dispatcher saw it: what was asked and what came back."""

    provider: str
    tr_id: str
    params: dict[str, str]
    body: bytes
    headers: dict[str, str]

    def response(
        self, request_id: str, *, priority: str = "collector", received_at_ms: int = RECEIVED_AT_MS
    ) -> ResponseReceived:
        """The ``response.received`` event of this answer for request ``request_id``."""
        return ResponseReceived(
            request_id=request_id,
            provider=self.provider,
            tr_id=self.tr_id,
            account="default",
            status=200,
            headers=self.headers,
            body=msgspec.Raw(self.body),
            received_at_ms=received_at_ms,
            params=self.params,
            priority=priority,  # type: ignore[arg-type]
        )

    def edited(self, change: Callable[[Any], None]) -> Answer:
        """The same answer with its JSON body changed by ``change`` (a revised bar)."""
        document = json.loads(self.body)
        change(document)
        return replace(self, body=json.dumps(document, ensure_ascii=False).encode())


class Broker:
    """Calls the simulator like a client would (tokens, headers), returning :class:`Answer`."""

    def __init__(self, url: str) -> None:
        self._http = httpx.Client(base_url=url, timeout=10.0)
        kis = self._http.post(
            "/oauth2/tokenP",
            json={"grant_type": "client_credentials", "appkey": "arch-k", "appsecret": "arch-s"},
        ).json()
        self._kis = {
            "authorization": f"Bearer {kis['access_token']}",
            "appkey": "arch-k",
            "appsecret": "arch-s",
            "custtype": "P",
        }
        kiwoom = self._http.post(
            "/oauth2/token",
            json={"grant_type": "client_credentials", "appkey": "arch-w", "secretkey": "arch-x"},
        ).json()
        self._kiwoom = {"authorization": f"Bearer {kiwoom['token']}"}

    def kis(self, tr_id: str, path: str, params: dict[str, str]) -> Answer:
        reply = self._http.get(
            f"/uapi/domestic-stock/v1/quotations/{path}",
            params=params,
            headers={**self._kis, "tr_id": tr_id},
        )
        reply.raise_for_status()
        headers = {"tr_id": tr_id, "tr_cont": "", "date": reply.headers["date"]}
        return Answer("KIS", tr_id, params, reply.content, headers)

    def kiwoom(self, api_id: str, params: dict[str, str]) -> Answer:
        reply = self._http.post(
            "/api/dostk/chart", json=params, headers={**self._kiwoom, "api-id": api_id}
        )
        reply.raise_for_status()
        headers = {"api-id": api_id, "cont-yn": "N", "next-key": "", "date": reply.headers["date"]}
        return Answer("KIWOOM", api_id, params, reply.content, headers)

    def close(self) -> None:
        self._http.close()


@dataclass(frozen=True)
class Answers:
    """The simulator's answers the tests archive."""

    kis_daily: Answer
    kis_daily_older: Answer
    kis_daily_hynix: Answer
    kiwoom_daily: Answer
    kis_price: Answer


def kis_daily(broker: Broker, symbol: str, first: str, last: str) -> Answer:
    return broker.kis(
        "FHKST03010100",
        "inquire-daily-itemchartprice",
        {
            "FID_COND_MRKT_DIV_CODE": "J",
            "FID_INPUT_ISCD": symbol,
            "FID_INPUT_DATE_1": first,
            "FID_INPUT_DATE_2": last,
            "FID_PERIOD_DIV_CODE": "D",
            "FID_ORG_ADJ_PRC": "0",
        },
    )


@pytest.fixture(scope="session")
def answers(sim: ThreadedSimServer) -> Answers:
    """Daily bars of KIS and Kiwoom and a KIS quote, asked once per session."""
    broker = Broker(str(sim.url).rstrip("/"))
    try:
        return Answers(
            kis_daily=kis_daily(broker, "005930", "20250201", "20250321"),
            kis_daily_older=kis_daily(broker, "005930", "20241101", "20250131"),
            kis_daily_hynix=kis_daily(broker, "000660", "20250201", "20250321"),
            kiwoom_daily=broker.kiwoom(
                "ka10081", {"stk_cd": "005930", "base_dt": "20250321", "upd_stkpc_tp": "1"}
            ),
            kis_price=broker.kis(
                "FHKST01010100",
                "inquire-price",
                {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"},
            ),
        )
    finally:
        broker.close()


@pytest.fixture
def settings(redis_url: str, hub_namespace: str, tmp_path: Path) -> Settings:
    """A test hub's settings: its own namespace and archive, small quick batches."""
    loaded = load_settings(
        env={
            "REDIS_URL": redis_url,
            "APIHUB_NAMESPACE": hub_namespace,
            "APIHUB_DATA_DIR": str(tmp_path / "data"),
        }
    )
    archive = replace(
        loaded.archive,
        batch_max=50,
        batch_wait_ms=20,
        jsonl_max_bytes=4_000,
        compress_after_days=7,
        lock_wait_s=20.0,
    )
    return replace(loaded, archive=archive)
