"""A trading program's day through the hub: read the order book, check the balance, place,
modify and cancel orders, list open orders and fills, page through them with ``paginate`` --
every call governed by the hub, every answer consistent with the simulator's ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from apihub_core import HubClient, UpstreamRejected
from apihub_dispatcher import Dispatcher

pytestmark = pytest.mark.anyio

MID_SESSION = "2025-03-21T13:00:30+09:00"  # a Friday, the market open


@pytest.fixture
async def market_open(sim_admin: httpx.AsyncClient) -> AsyncIterator[None]:
    """Freeze the simulator's clock mid-session; restore real time after."""
    clock = {"now": MID_SESSION, "frozen": True}
    (await sim_admin.post("/__sim/clock", json=clock)).raise_for_status()
    try:
        yield
    finally:
        real = {"now": datetime.now(UTC).isoformat(), "frozen": False}
        (await sim_admin.post("/__sim/clock", json=real)).raise_for_status()


def _held(balance: dict[str, Any], code: str) -> int:
    rows = balance["acnt_evlt_remn_indv_tot"]
    return sum(int(row["rmnd_qty"]) for row in rows if row["stk_cd"] == f"A{code}")


async def _open_orders(hub: HubClient) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    body = {"all_stk_tp": "0", "trde_tp": "0", "stex_tp": "0"}
    async for page in hub.paginate("KIWOOM", "ka10075", body):
        for row in page.body["oso"]:
            assert row["ord_no"] not in found, "paginate yields every row once"
            found[row["ord_no"]] = row
    return found


async def test_a_kiwoom_trading_day(
    hub: HubClient, dispatcher: Dispatcher, market_open: None
) -> None:
    book = (await hub.execute("KIWOOM", "ka10004", {"stk_cd": "005930"})).body
    best_ask, best_bid = abs(int(book["sel_fpr_bid"])), abs(int(book["buy_fpr_bid"]))
    assert best_ask > best_bid > 0

    balance = {"qry_tp": "1", "dmst_stex_tp": "KRX"}
    before = _held((await hub.execute("KIWOOM", "kt00018", balance)).body, "005930")
    order = {"dmst_stex_tp": "KRX", "stk_cd": "005930", "ord_qty": "3", "trde_tp": "3"}
    bought = (await hub.execute("KIWOOM", "kt10000", order, priority="order")).body["ord_no"]
    fills = (
        await hub.execute("KIWOOM", "ka10076", {"qry_tp": "0", "sell_tp": "0", "stex_tp": "0"})
    ).body["cntr"]
    assert any(row["ord_no"] == bought and int(row["cntr_qty"]) == 3 for row in fills)
    after = _held((await hub.execute("KIWOOM", "kt00018", balance)).body, "005930")
    assert after == before + 3

    # A limit buy well below the market rests; modify it, then cancel the modified order.
    low = best_bid - 20 * 100
    resting = {**order, "trde_tp": "0", "ord_uv": str(low), "ord_qty": "2"}
    placed = (await hub.execute("KIWOOM", "kt10000", resting, priority="order")).body["ord_no"]
    assert int((await _open_orders(hub))[placed]["oso_qty"]) == 2
    modify = {
        "dmst_stex_tp": "KRX",
        "orig_ord_no": placed,
        "stk_cd": "005930",
        "mdfy_qty": "0",
        "mdfy_uv": str(low - 100),
    }
    modified = (await hub.execute("KIWOOM", "kt10002", modify, priority="order")).body
    assert modified["base_orig_ord_no"] == placed
    open_now = await _open_orders(hub)
    assert placed not in open_now
    assert int(open_now[modified["ord_no"]]["ord_pric"]) == low - 100
    cancel = {
        "dmst_stex_tp": "KRX",
        "orig_ord_no": modified["ord_no"],
        "stk_cd": "005930",
        "cncl_qty": "0",
    }
    cancelled = (await hub.execute("KIWOOM", "kt10003", cancel, priority="order")).body
    assert cancelled["base_orig_ord_no"] == placed
    assert modified["ord_no"] not in await _open_orders(hub)
    # Cancelling it again is the broker's refusal, typed, and never retried.
    with pytest.raises(UpstreamRejected):
        await hub.execute("KIWOOM", "kt10003", cancel, priority="order")
