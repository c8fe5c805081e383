"""TRs the built-in catalog does not know, through the governed path: a pass-through that names
method, path and kind, and a definition added by apihub.toml. The simulator serves kt00004
(계좌평가현황) for exactly this: the catalog leaves it out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import httpx
import pytest

from apihub_core import (
    HubClient,
    OutcomeUnknown,
    Passthrough,
    RequestInvalid,
)
from apihub_dispatcher import Dispatcher
from apihub_runtime import Catalog, CatalogSettings, Settings

pytestmark = pytest.mark.anyio

SUMMARY = {"qry_tp": "0", "dmst_stex_tp": "KRX"}
AS_QUERY = Passthrough(method="POST", path="/api/dostk/acnt", kind="query")

EXTENSION = """\
[[catalog.tr]]
provider = "KIWOOM"
tr_id = "kt00004"
method = "POST"
path = "/api/dostk/acnt"
required = ["qry_tp", "dmst_stex_tp"]
family = "account"
description = "계좌평가현황"
"""


@pytest.fixture
def settings(
    make_settings: Callable[[str], Settings], sim_url: str, request: pytest.FixtureRequest
) -> Settings:
    """This test's hub; ``indirect`` parametrisation passes an apihub.toml catalog extension."""
    base = make_settings(sim_url)
    extension = getattr(request, "param", None)
    if extension is None:
        return base
    trs = Catalog.from_toml(extension, "apihub.toml", table="catalog.tr")
    return replace(base, catalog=CatalogSettings(trs=trs))


async def _calls(sim_admin: httpx.AsyncClient, tr_id: str) -> int:
    calls = (await sim_admin.get("/__sim/calls", params={"tr_id": tr_id})).json()
    return len(calls["calls"] if isinstance(calls, dict) else calls)


async def test_an_uncatalogued_tr_is_refused_unless_it_comes_as_a_pass_through(
    hub: HubClient, dispatcher: Dispatcher, sim_admin: httpx.AsyncClient
) -> None:
    with pytest.raises(RequestInvalid, match="pass-through"):
        await hub.execute("KIWOOM", "kt00004", SUMMARY)
    assert await _calls(sim_admin, "kt00004") == 0
    answer = await hub.execute("KIWOOM", "kt00004", SUMMARY, passthrough=AS_QUERY)
    assert int(answer.body["entr"]) == 100_000_000
    assert [row["stk_cd"] for row in answer.body["stk_acnt_evlt_prst"]] == [
        "A000660",
        "A005930",
        "A035720",
    ]
    assert await _calls(sim_admin, "kt00004") == 1


async def test_a_pass_through_declared_an_order_is_never_resent(
    hub: HubClient, dispatcher: Dispatcher, sim_admin: httpx.AsyncClient
) -> None:
    fault = {"match": {"tr_id": "kt00004"}, "count": 1, "action": "reset"}
    (await sim_admin.post("/__sim/faults", json=fault)).raise_for_status()
    as_order = Passthrough(method="POST", path="/api/dostk/acnt", kind="order")
    with pytest.raises(OutcomeUnknown):
        await hub.execute("KIWOOM", "kt00004", SUMMARY, passthrough=as_order, timeout=20)
    assert await _calls(sim_admin, "kt00004") == 1, "sent once, not retried"
    # Declared a query, the same failure is retried and answered.
    (await sim_admin.post("/__sim/faults", json=fault)).raise_for_status()
    answer = await hub.execute("KIWOOM", "kt00004", SUMMARY, passthrough=AS_QUERY, timeout=20)
    assert answer.attempts == 2


async def test_a_pass_through_cannot_redescribe_a_catalogued_order(
    hub: HubClient, dispatcher: Dispatcher, sim_admin: httpx.AsyncClient
) -> None:
    sneaky = Passthrough(method="POST", path="/api/dostk/ordr", kind="query")
    order = {"dmst_stex_tp": "KRX", "stk_cd": "005930", "ord_qty": "1", "trde_tp": "3"}
    with pytest.raises(RequestInvalid, match=r"in the catalog as POST /api/dostk/ordr \(order\)"):
        await hub.execute("KIWOOM", "kt10000", order, passthrough=sneaky)
    assert await _calls(sim_admin, "kt10000") == 0


@pytest.mark.parametrize("settings", [EXTENSION], indirect=True)
async def test_a_tr_added_in_apihub_toml_is_called_like_a_built_in_one(
    hub: HubClient, dispatcher: Dispatcher, sim_admin: httpx.AsyncClient
) -> None:
    answer = await hub.execute("KIWOOM", "kt00004", SUMMARY)
    assert int(answer.body["prsm_dpst_aset_amt"]) > 100_000_000
    with pytest.raises(RequestInvalid, match="requires dmst_stex_tp"):
        await hub.execute("KIWOOM", "kt00004", {"qry_tp": "0"})
    assert await _calls(sim_admin, "kt00004") == 1
