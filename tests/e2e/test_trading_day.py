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


ACCOUNT = {"CANO": "50000000", "ACNT_PRDT_CD": "01"}
BALANCE = {
    **ACCOUNT,
    "AFHR_FLPR_YN": "N",
    "OFL_YN": "",
    "INQR_DVSN": "02",
    "UNPR_DVSN": "01",
    "FUND_STTL_ICLD_YN": "N",
    "FNCG_AMT_AUTO_RDPT_YN": "N",
    "PRCS_DVSN": "00",
}
DAY = "20250321"


async def _kis_rows(hub: HubClient, tr_id: str, params: dict[str, str], key: str) -> list[Any]:
    rows: list[Any] = []
    async for page in hub.paginate("KIS", tr_id, params):
        assert page.body["rt_cd"] == "0", page.body
        rows += page.body[key]
    return rows


async def _held_kis(hub: HubClient, code: str) -> int:
    rows = await _kis_rows(hub, "TTTC8434R", BALANCE, "output1")
    return sum(int(row["hldg_qty"]) for row in rows if row["pdno"] == code)


def _order(code: str, quantity: int, price: int = 0) -> dict[str, str]:
    return {
        **ACCOUNT,
        "PDNO": code,
        "ORD_DVSN": "00" if price else "01",
        "ORD_QTY": str(quantity),
        "ORD_UNPR": str(price),
    }


def _revise(original: str, *, cancel: bool, price: int = 0) -> dict[str, str]:
    return {
        **ACCOUNT,
        "KRX_FWDG_ORD_ORGNO": "91252",
        "ORGN_ODNO": original,
        "ORD_DVSN": "00",
        "RVSE_CNCL_DVSN_CD": "02" if cancel else "01",
        "ORD_QTY": "0",
        "ORD_UNPR": str(price),
        "QTY_ALL_ORD_YN": "Y",
    }


async def test_a_kis_trading_day(hub: HubClient, dispatcher: Dispatcher, market_open: None) -> None:
    holidays = (await hub.execute("KIS", "CTCA0903R", {"BASS_DT": "20250321"})).body["output"]
    assert [(d["bass_dt"], d["opnd_yn"]) for d in holidays[:3]] == [
        ("20250321", "Y"),
        ("20250322", "N"),  # a Saturday
        ("20250323", "N"),
    ]
    book = (
        await hub.execute(
            "KIS", "FHKST01010200", {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}
        )
    ).body["output1"]
    best_ask, best_bid = int(book["askp1"]), int(book["bidp1"])
    assert best_ask > best_bid > 0

    affordable = {
        **ACCOUNT,
        "PDNO": "005930",
        "ORD_UNPR": str(best_ask),
        "ORD_DVSN": "00",
        "CMA_EVLU_AMT_ICLD_YN": "N",
        "OVRS_ICLD_YN": "N",
    }
    before_cash = (await hub.execute("KIS", "TTTC8908R", affordable)).body["output"]
    assert int(before_cash["nrcvb_buy_qty"]) > 0

    held = await _held_kis(hub, "005930")
    bought = await hub.execute("KIS", "TTTC0012U", _order("005930", 4), priority="order")
    odno = bought.body["output"]["ODNO"]
    assert await _held_kis(hub, "005930") == held + 4
    after_cash = (await hub.execute("KIS", "TTTC8908R", affordable)).body["output"]
    assert int(after_cash["ord_psbl_cash"]) < int(before_cash["ord_psbl_cash"])

    daily = {
        **ACCOUNT,
        "INQR_STRT_DT": DAY,
        "INQR_END_DT": DAY,
        "SLL_BUY_DVSN_CD": "00",
        "CCLD_DVSN": "00",
        "INQR_DVSN": "00",
        "INQR_DVSN_3": "00",
    }
    orders = {row["odno"]: row for row in await _kis_rows(hub, "TTTC0081R", daily, "output1")}
    assert int(orders[odno]["tot_ccld_qty"]) == 4

    # A resting limit order: cancellable, then modified to a new number, then cancelled.
    low = best_bid - 20 * 100
    resting = await hub.execute("KIS", "TTTC0012U", _order("005930", 2, low), priority="order")
    placed = resting.body["output"]["ODNO"]
    cancellable = {**ACCOUNT, "INQR_DVSN_1": "0", "INQR_DVSN_2": "0"}
    open_rows = await _kis_rows(hub, "TTTC0084R", cancellable, "output")
    assert [(r["odno"], r["psbl_qty"]) for r in open_rows] == [(placed, "2")]
    modified = await hub.execute(
        "KIS", "TTTC0013U", _revise(placed, cancel=False, price=low - 100), priority="order"
    )
    moved = modified.body["output"]["ODNO"]
    assert moved != placed
    await hub.execute("KIS", "TTTC0013U", _revise(moved, cancel=True), priority="order")
    assert await _kis_rows(hub, "TTTC0084R", cancellable, "output") == []
    chain = {row["odno"]: row for row in await _kis_rows(hub, "TTTC0081R", daily, "output1")}
    assert chain[moved]["orgn_odno"] == placed
    assert any(r["orgn_odno"] == moved and r["cncl_yn"] == "Y" for r in chain.values())
    with pytest.raises(UpstreamRejected):
        await hub.execute("KIS", "TTTC0013U", _revise(moved, cancel=True), priority="order")


async def test_kis_account_inquiries_page_through_the_hub(
    hub: HubClient, dispatcher: Dispatcher, market_open: None
) -> None:
    # More orders than a page of the daily inquiry (100): paginate carries the body cursors.
    for _ in range(105):
        await hub.execute("KIS", "TTTC0012U", _order("000660", 1, 1_000), priority="order")
    daily = {
        **ACCOUNT,
        "INQR_STRT_DT": DAY,
        "INQR_END_DT": DAY,
        "SLL_BUY_DVSN_CD": "02",
        "CCLD_DVSN": "02",
        "INQR_DVSN": "00",
        "INQR_DVSN_3": "00",
        "PDNO": "000660",
    }
    pages = [page async for page in hub.paginate("KIS", "TTTC0081R", daily)]
    assert len(pages) == 2
    assert pages[0].has_more
    assert pages[0].headers["tr_cont"] in ("M", "F")
    numbers = [row["odno"] for page in pages for row in page.body["output1"]]
    assert len(numbers) == len(set(numbers)) == 105
