"""A thundering herd of cold dispatchers, and the fleet-wide issuance window under it."""

from __future__ import annotations

import logging

import anyio
import pytest

from apihub_core import Provider, TokenIssued, TokenRefreshed, TokenRequested
from apihub_runtime import AccessToken, AccountConfig, SharedTokenSource

pytestmark = pytest.mark.anyio


async def _get_all(sources: list[SharedTokenSource], account: AccountConfig) -> list[AccessToken]:
    tokens: list[AccessToken] = []

    async def one(source: SharedTokenSource) -> None:
        tokens.append(await source.get(account))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for source in sources:
                tg.start_soon(one, source)
    return tokens


async def test_herd_of_cold_dispatchers_costs_one_issuance(kis_hub) -> None:
    # KIS's own rules (60 s window, same token within 6 h) and two keeper replicas.
    await kis_hub.keeper()
    await kis_hub.keeper()
    sources = [await kis_hub.source(f"dispatcher-{i}") for i in range(50)]
    account = kis_hub.account()

    tokens = await _get_all(sources, account)

    assert len(tokens) == 50
    assert len({t.value.reveal() for t in tokens}) == 1
    assert len({t.fence for t in tokens}) == 1
    assert tokens[0].fence > 0
    assert await kis_hub.issuances(account) == 1
    assert await kis_hub.rejections() == {}
    assert all(s.requests_sent <= 1 for s in sources)  # one request per process at most
    await kis_hub.settled()
    assert len(await kis_hub.events(TokenIssued)) == 1
    assert len(await kis_hub.events(TokenRequested)) <= 50


async def test_window_holds_back_a_refresh_under_a_herd(hub, caplog) -> None:
    # The simulator refuses a second issuance within WINDOW_S exactly like KIS does within a
    # minute; the keepers' window must hold every refresh back so it never has to.
    caplog.set_level(logging.INFO, logger="apihub.token_keeper.window")
    await hub.keeper()
    await hub.keeper()
    sources = [await hub.source(f"dispatcher-{i}") for i in range(20)]
    account = hub.account()
    first = await _get_all(sources, account)
    fences = {first[0].fence}

    for _round in range(2):
        # Every dispatcher sees the token rejected at once (right after it was issued, so
        # inside the window) and reports it.
        current = (await _get_all(sources, account))[0]
        async with anyio.create_task_group() as tg:
            for source in sources:
                tg.start_soon(source.invalidate, account, current)
        renewed = await _get_all(sources, account)
        assert len({t.fence for t in renewed}) == 1
        assert renewed[0].fence > current.fence
        fences.add(renewed[0].fence)

    assert len(fences) == 3
    assert await hub.issuances(account) == 3
    assert await hub.rejections() == {}  # never EGW00133
    assert "is taken; waiting" in caplog.text  # the window did hold a refresh back
    await hub.settled()
    refreshed = await hub.events(TokenRefreshed)
    assert [e.reason for e in refreshed] == ["invalidated", "invalidated"]
    assert all(e.provider == Provider.KIS.value for e in refreshed)
