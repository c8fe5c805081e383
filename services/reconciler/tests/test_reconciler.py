"""The reconciler group on a real Redis: what it follows up, what it leaves alone, and that a
failed inquiry is retried and never turned into a verdict."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import cast

import anyio
import pytest
import redis.asyncio as aioredis

from apihub_core import (
    ConfigurationError,
    Keys,
    RequestFailed,
    RequestSubmitted,
    ResponseReceived,
    encode_entry,
)
from apihub_reconciler import GROUP, Reconciler, open_reconciler
from apihub_runtime import Settings, load_settings
from apihub_testing import async_wait_until

pytestmark = pytest.mark.anyio

ORDER = {
    "CANO": "50000000",
    "ACNT_PRDT_CD": "01",
    "PDNO": "005930",
    "ORD_DVSN": "00",
    "ORD_QTY": "1",
    "ORD_UNPR": "70000",
}


@pytest.fixture
def settings(redis_url: str, hub_namespace: str) -> Settings:
    return load_settings(env={"REDIS_URL": redis_url, "APIHUB_NAMESPACE": hub_namespace})


@pytest.fixture
async def reconciler(settings: Settings) -> AsyncIterator[Reconciler]:
    """A reconciler with no dispatcher behind it: every inquiry times out, quickly."""
    async with (
        open_reconciler(settings, recheck_after_s=(0.05,), inquiry_timeout_s=0.2) as running,
        anyio.create_task_group() as tg,
    ):
        await tg.start(running.run)
        yield running
        running.stop()


def failed(
    request_id: str, tr_id: str, error_class: str = "outcome_unknown", provider: str = "KIS"
) -> RequestFailed:
    return RequestFailed(
        request_id=request_id,
        provider=provider,
        tr_id=tr_id,
        error_class=error_class,  # type: ignore[arg-type]
    )


async def _all_acked(aredis: aioredis.Redis, keys: Keys, last: bytes) -> bool:
    """Whether the group has read up to ``last`` and holds nothing pending."""
    groups = await aredis.xinfo_groups(keys.responses)
    ours = [g for g in groups if g["name"] in (GROUP, GROUP.encode())]
    return bool(ours) and ours[0]["pending"] == 0 and ours[0]["last-delivered-id"] == last


async def test_only_outcome_unknown_orders_are_followed_up(
    reconciler: Reconciler, aredis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    keys = reconciler.keys
    caplog.set_level(logging.WARNING, "apihub.reconciler")
    entries = [
        encode_entry(
            ResponseReceived(
                request_id="ok", provider="KIS", tr_id="TTTC0012U", account="a", status=200
            )
        ),
        encode_entry(failed("quote", "FHKST01010100")),
        encode_entry(failed("rejected", "TTTC0012U", "permanent")),
        encode_entry(failed("elsewhere", "TTTC0012U", provider="NYSE")),
        {"data": b"not json"},
        encode_entry(failed("forgotten", "TTTC0012U")),  # no request record: nothing to find
    ]
    last = b""
    for fields in entries:
        last = await aredis.xadd(keys.responses, fields)  # type: ignore[arg-type]
    await async_wait_until(lambda: _all_acked(aredis, keys, last), timeout=10)
    assert await aredis.xlen(keys.orders) == 0
    assert await aredis.xlen(keys.dead_letter) == 0, "bad entries are the dispatcher's to report"
    assert "cannot reconcile forgotten: no request 'forgotten' on this hub" in caplog.text


async def test_a_failed_inquiry_is_retried_and_never_becomes_a_verdict(
    reconciler: Reconciler, aredis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    keys = reconciler.keys
    caplog.set_level(logging.WARNING, "apihub.reconciler")
    request = RequestSubmitted(request_id="lost", provider="KIS", tr_id="TTTC0012U", params=ORDER)
    entry = cast(bytes, await aredis.xadd(keys.requests, encode_entry(request)))  # type: ignore[arg-type]
    await aredis.hset(keys.request_record("lost"), "entry", entry)
    last = await aredis.xadd(keys.responses, encode_entry(failed("lost", "TTTC0012U")))  # type: ignore[arg-type]
    await async_wait_until(lambda: _all_acked(aredis, keys, last), timeout=20)
    assert caplog.text.count("reconciling lost: inquiry failed") == 2, "first check and recheck"
    assert await aredis.xlen(keys.orders) == 0


async def test_the_reconciler_needs_a_redis_url() -> None:
    with pytest.raises(ConfigurationError, match="needs REDIS_URL"):
        async with open_reconciler(Settings()):
            pass
