"""App keys, secrets and tokens never reach Redis, logs or error messages."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import httpx
import pytest
import redis.asyncio as aioredis

from apihub_broker_sim import KIS_PRICE, KIWOOM_DAILY
from apihub_core import HubClient, HubError, Provider, RequestInvalid
from apihub_dispatcher import Dispatcher
from apihub_runtime import Settings
from apihub_testing import redis_strings

pytestmark = pytest.mark.anyio


async def test_no_secret_anywhere_the_run_wrote(
    hub: HubClient,
    dispatcher: Dispatcher,
    settings: Settings,
    sim_admin: httpx.AsyncClient,
    redis_url: str,
    redis: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
    stored_tokens: Callable[[], Awaitable[list[str]]],
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    # Successes, broker errors, token rejections and dead letters: every path that writes.
    await hub.execute("KIS", "FHKST01010100", KIS_PRICE)
    await hub.execute("KIWOOM", "ka10081", KIWOOM_DAILY)
    # A rate miss (re-queued, then answered) and a rejected Kiwoom token (replaced, retried)
    # heal; a rejected KIS token comes last, since its replacement waits out KIS's issuance
    # window and the call ends with an error. Whatever error a call ends with is scanned too.
    for tr_id, params, kind in [
        ("FHKST01010100", KIS_PRICE, "egw00201"),
        ("ka10081", KIWOOM_DAILY, "kiwoom_8005"),
        ("FHKST01010100", KIS_PRICE, "egw00121"),
    ]:
        (
            await sim_admin.post(
                "/__sim/faults",
                json={"match": {"tr_id": tr_id}, "count": 1, "action": {"kind": kind}},
            )
        ).raise_for_status()
        try:
            await hub.execute("KIWOOM" if tr_id.startswith("ka") else "KIS", tr_id, params)
        except HubError as exc:
            errors.append(f"{exc!s} {exc!r}")
        # The broker answered with the fault: a one-shot fault is gone once it fired.
        assert (await sim_admin.get("/__sim/faults")).json() == [], f"{kind} never fired"
    with pytest.raises(RequestInvalid) as refused:
        await hub.execute("KIS", "NOPE", {"appsecret": "x"})
    errors.append(f"{refused.value!s} {refused.value!r}")
    assert len(errors) >= 2, "the failing paths were taken"

    secrets: list[str] = []
    for provider in Provider:
        account = settings.account(provider)
        secrets += [account.app_key.reveal(), account.app_secret.reveal()]
    secrets += await stored_tokens()
    assert len(secrets) >= 5, "both providers issued tokens"

    written = list(redis_strings(redis_url))
    assert written, "the run wrote to Redis"
    logs = "\n".join(record.getMessage() for record in caplog.records)
    for secret in secrets:
        for key, text in written:
            assert secret not in text, f"a secret leaked into Redis key {key}"
        assert secret not in logs
        for message in errors:
            assert secret not in message
