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


async def test_herd_of_cold_dispatchers_costs_one_issuance(kis_fleet) -> None:
    # KIS's own rules (60 s window, same token within 6 h) and two keeper replicas.
    await kis_fleet.keeper()
    await kis_fleet.keeper()
    sources = [await kis_fleet.source(f"dispatcher-{i}") for i in range(50)]
    account = kis_fleet.account()

    tokens = await _get_all(sources, account)

    assert len(tokens) == 50
    assert len({t.value.reveal() for t in tokens}) == 1
    assert len({t.fence for t in tokens}) == 1
    assert tokens[0].fence > 0
    assert await kis_fleet.issuances(account) == 1
    assert await kis_fleet.rejections() == {}
    assert all(s.requests_sent <= 1 for s in sources)  # one request per process at most
    await kis_fleet.settled()
    assert len(await kis_fleet.events(TokenIssued)) == 1
    assert len(await kis_fleet.events(TokenRequested)) <= 50


async def test_window_holds_back_a_refresh_under_a_herd(fleet, caplog) -> None:
    # The simulator refuses a second issuance within WINDOW_S exactly like KIS does within a
    # minute; the keepers' window must hold every refresh back so it never has to.
    caplog.set_level(logging.INFO, logger="apihub.token_keeper.window")
    await fleet.keeper()
    await fleet.keeper()
    sources = [await fleet.source(f"dispatcher-{i}") for i in range(20)]
    account = fleet.account()
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
    assert await fleet.issuances(account) == 3
    assert await fleet.rejections() == {}  # never EGW00133
    assert "is taken; waiting" in caplog.text  # the window did hold a refresh back
    await fleet.settled()
    refreshed = await fleet.events(TokenRefreshed)
    assert [e.reason for e in refreshed] == ["invalidated", "invalidated"]
    assert all(e.provider == Provider.KIS.value for e in refreshed)
