"""Kiwoom: a new issuance revokes the old token, so only the keeper issues and every
dispatcher switches to the new token as soon as it is announced."""

from __future__ import annotations

import pytest

from apihub_brokers import client_for, lookup_tr
from apihub_core import Provider, TokenRefreshed, UpstreamAuthError
from apihub_testing import async_wait_until

pytestmark = pytest.mark.anyio


async def test_dispatchers_switch_to_the_new_token_after_an_invalidation(fleet) -> None:
    await fleet.keeper()
    await fleet.keeper()
    account = fleet.account(Provider.KIWOOM)
    sources = [await fleet.source(f"dispatcher-{i}") for i in range(5)]
    old = [await s.get(account) for s in sources]
    assert len({t.value.reveal() for t in old}) == 1
    assert await fleet.issuances(account) == 1

    # One dispatcher gets 8005; the others have not noticed anything yet.
    await sources[0].invalidate(account, old[0], code="8005")
    await async_wait_until(lambda: fleet.events(TokenRefreshed), timeout=20)
    (refreshed,) = await fleet.events(TokenRefreshed)
    assert refreshed.replaces_fence == old[0].fence

    # The watchers drop the revoked token without waiting for a failed call.
    await async_wait_until(
        lambda: all(s.cached(account) is None for s in sources[1:]),
        timeout=10,
        message="a dispatcher kept the revoked token",
    )
    new = [await s.get(account) for s in sources]
    assert {t.fence for t in new} == {refreshed.fence}
    assert sum(s.switches for s in sources[1:]) == 4
    assert await fleet.issuances(account) == 2  # only the keeper ever issued

    spec = lookup_tr(Provider.KIWOOM, "ka10001")
    assert spec is not None
    client = client_for(Provider.KIWOOM)
    try:
        reply = await client.call(spec, {"stk_cd": "005930"}, account=account, token=new[0])
        assert reply.status == 200
        with pytest.raises(UpstreamAuthError):
            await client.call(spec, {"stk_cd": "005930"}, account=account, token=old[0])
    finally:
        await client.aclose()
