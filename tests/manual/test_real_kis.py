"""Against the real KIS API: run by hand with real credentials, never in CI.

    APIHUB_REAL_KIS_APP_KEY=... APIHUB_REAL_KIS_APP_SECRET=... [APIHUB_REAL_KIS_VIRTUAL=1] \
        uv run pytest -m manual tests/manual

Each run issues a token (KIS sends a KakaoTalk notice and allows one issuance a minute).
"""

from __future__ import annotations

import os
from dataclasses import replace

import anyio
import pytest

from apihub_core import HubClient
from apihub_dispatcher import open_dispatcher
from apihub_runtime import load_settings
from apihub_token_keeper import open_token_keeper

pytestmark = [pytest.mark.manual, pytest.mark.anyio]

KEY = os.environ.get("APIHUB_REAL_KIS_APP_KEY", "")
SECRET = os.environ.get("APIHUB_REAL_KIS_APP_SECRET", "")


@pytest.mark.skipif(not (KEY and SECRET), reason="needs APIHUB_REAL_KIS_APP_KEY/_APP_SECRET")
async def test_real_current_price(redis_url: str, hub_namespace: str) -> None:
    env = {
        "REDIS_URL": redis_url,
        "APIHUB_NAMESPACE": hub_namespace,
        "APIHUB_KIS_APP_KEY": KEY,
        "APIHUB_KIS_APP_SECRET": SECRET,
        "APIHUB_KIS_VIRTUAL": os.environ.get("APIHUB_REAL_KIS_VIRTUAL", "0"),
    }
    settings = load_settings(env=env)
    settings = replace(settings, dispatcher=replace(settings.dispatcher, block_ms=100))
    async with (
        open_token_keeper(settings) as keeper,
        open_dispatcher(settings) as dispatcher,
        anyio.create_task_group() as tg,
        HubClient.from_url(redis_url, namespace=hub_namespace) as hub,
    ):
        await tg.start(keeper.run)
        await tg.start(dispatcher.run)
        response = await hub.execute(
            "KIS", "FHKST01010100", {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}
        )
        dispatcher.stop()
        keeper.stop()
    assert response.body["rt_cd"] == "0"
    assert response.body["output"]["stck_shrn_iscd"] == "005930"
