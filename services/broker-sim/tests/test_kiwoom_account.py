"""Kiwoom account TRs over a real socket: balance (kt00018), open orders (ka10075), fills
(ka10076), modify / cancel (kt10002 / kt10003) and the order book (ka10004), all answering
from one ledger that agrees with the market data."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

import httpx
import pytest

ORDER = "/api/dostk/ordr"
ACCOUNT = "/api/dostk/acnt"
MRKCOND = "/api/dostk/mrkcond"
OPEN_ALL = {"all_stk_tp": "0", "trde_tp": "0", "stex_tp": "0"}
FILLS_ALL = {"qry_tp": "0", "sell_tp": "0", "stex_tp": "0"}
BALANCE = {"qry_tp": "1", "dmst_stex_tp": "KRX"}
START_CASH = 100_000_000
START_SHARES = {"005930": 100, "000660": 30, "035720": 50}


class SimHarness(Protocol):
    """The conftest's simulator harness, as these tests use it."""

    client: httpx.Client

    def kiwoom(
        self,
        path: str,
        api_id: str,
        body: dict[str, Any],
        *,
        token: str | None = None,
        next_key: str | None = None,
    ) -> httpx.Response: ...
    def kiwoom_order(self, api_id: str, **fields: str) -> dict[str, Any]: ...
    def kiwoom_buy(
        self, quantity: int, price: int | None = None, code: str = "005930", side: str = "buy"
    ) -> dict[str, Any]: ...
    def kiwoom_account(
        self, api_id: str, body: dict[str, Any], next_key: str | None = None
    ) -> dict[str, Any]: ...
    def kiwoom_account_walk(
        self, api_id: str, body: dict[str, Any], list_key: str
    ) -> list[list[dict[str, str]]]: ...
    def kiwoom_clock(self, *, now: str | None = None, advance_s: float | None = None) -> None: ...
    def kiwoom_token(self) -> str: ...
    def forget_tokens(self) -> None: ...


def _info(sim: SimHarness, code: str = "005930") -> dict[str, Any]:
    data = sim.kiwoom("/api/dostk/stkinfo", "ka10001", {"stk_cd": code}).json()
    assert data["return_code"] == 0, data
    return dict(data)


def _price(sim: SimHarness, code: str = "005930") -> int:
    return abs(int(_info(sim, code)["cur_prc"]))


def _lower_limit(sim: SimHarness, code: str = "005930") -> int:
    return abs(int(_info(sim, code)["lst_pric"]))


def _ok(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["return_code"] == 0, answer
    return answer


def _open(sim: SimHarness, **filters: str) -> list[dict[str, str]]:
    return list(_ok(sim.kiwoom_account("ka10075", {**OPEN_ALL, **filters}))["oso"])


def _fills(sim: SimHarness, **filters: str) -> list[dict[str, str]]:
    return list(_ok(sim.kiwoom_account("ka10076", {**FILLS_ALL, **filters}))["cntr"])


def _balance(sim: SimHarness) -> dict[str, Any]:
    return _ok(sim.kiwoom_account("kt00018", BALANCE))


def _holding(balance: dict[str, Any], code: str) -> dict[str, str]:
    rows = [r for r in balance["acnt_evlt_remn_indv_tot"] if r["stk_cd"] == "A" + code]
    assert len(rows) == 1, balance
    return dict(rows[0])


def _fee(amount: int) -> int:
    return amount * 15 // 100_000  # 1.5 bp, rounded down


def _error(answer: dict[str, Any], code: str, return_code: int = 2) -> str:
    assert answer["return_code"] == return_code, answer
    message = str(answer["return_msg"])
    assert f"[{code}:" in message, message
    return message


# --- ka10004 -------------------------------------------------------------------------------


def test_orderbook_levels_are_signed_and_ordered(frozen_sim: SimHarness) -> None:
    response = frozen_sim.kiwoom(MRKCOND, "ka10004", {"stk_cd": "005930"})
    assert response.headers["api-id"] == "ka10004"
    assert response.headers["cont-yn"] == "N"
    data = _ok(response.json())
    levels = ["fpr"] + [f"{n}th_pre" for n in range(2, 11)]
    expected = {"bid_req_base_tm", "return_code", "return_msg"}
    for side in ("sel", "buy"):
        expected |= {f"{side}_{level}_{part}" for level in levels for part in ("bid", "req")}
        expected |= {f"{side}_{n}th_pre_req_pre" for n in range(1, 11)}
        expected |= {f"ovt_{side}_req", f"ovt_{side}_req_pre", f"tot_{side}_req"}
        expected.add(f"tot_{side}_req_jub_pre")
    assert set(data) == expected
    assert data["bid_req_base_tm"] == "130030"

    base = int(_info(frozen_sim)["base_pric"])
    asks = [data[f"sel_{level}_bid"] for level in levels]
    bids = [data[f"buy_{level}_bid"] for level in levels]
    for text in asks + bids:
        value = int(text.lstrip("+-"))
        # Kiwoom signs a price against the base price: + above, - below, bare at it.
        sign = "+" if value > base else "-" if value < base else ""
        assert text == f"{sign}{value}"
    ask_prices = [abs(int(a)) for a in asks]
    bid_prices = [abs(int(b)) for b in bids]
    assert ask_prices == sorted(ask_prices)
    assert len(set(ask_prices)) == 10
    assert bid_prices == sorted(bid_prices, reverse=True)
    assert len(set(bid_prices)) == 10
    assert bid_prices[0] < ask_prices[0]
    last = _price(frozen_sim)
    assert bid_prices[0] <= last <= ask_prices[0]
    ask_qty = [int(data[f"sel_{level}_req"]) for level in levels]
    bid_qty = [int(data[f"buy_{level}_req"]) for level in levels]
    assert int(data["tot_sel_req"]) == sum(ask_qty)
    assert min(ask_qty) > 0
    assert int(data["tot_buy_req"]) == sum(bid_qty)
    assert min(bid_qty) > 0
    for side in ("sel", "buy"):
        changes = [int(data[f"{side}_{n}th_pre_req_pre"]) for n in range(1, 11)]
        assert int(data[f"tot_{side}_req_jub_pre"]) == sum(changes)

    # The NXT / SOR forms of the code show the same book; a second later it has moved on.
    for suffix in ("_NX", "_AL"):
        other = _ok(frozen_sim.kiwoom(MRKCOND, "ka10004", {"stk_cd": "005930" + suffix}).json())
        assert other == data
    frozen_sim.kiwoom_clock(advance_s=1)
    later = _ok(frozen_sim.kiwoom(MRKCOND, "ka10004", {"stk_cd": "005930"}).json())
    assert later["bid_req_base_tm"] == "130031"
    # Resting quantities belong to (level, second), so each change is this second's
    # quantity minus the previous second's at the same level.
    for side in ("sel", "buy"):
        for n, level in enumerate(levels, start=1):
            change = int(later[f"{side}_{n}th_pre_req_pre"])
            assert change == int(later[f"{side}_{level}_req"]) - int(data[f"{side}_{level}_req"])


def test_orderbook_request_errors(frozen_sim: SimHarness) -> None:
    missing = frozen_sim.kiwoom(MRKCOND, "ka10004", {}).json()
    assert _error(missing, "1511").endswith("필수입력 파라미터=stk_cd]")
    _error(frozen_sim.kiwoom(MRKCOND, "ka10004", {"stk_cd": "ABC"}).json(), "1902")
    _error(frozen_sim.kiwoom("/api/dostk/chart", "ka10004", {"stk_cd": "005930"}).json(), "1504")
    _error(frozen_sim.kiwoom(MRKCOND, "ka10001", {"stk_cd": "005930"}).json(), "1504")


# --- orders, fills, balance ----------------------------------------------------------------


def test_market_buy_fills_and_shows_in_fills_and_balance(frozen_sim: SimHarness) -> None:
    price = _price(frozen_sim)
    base = int(_info(frozen_sim)["base_pric"])
    order = _ok(frozen_sim.kiwoom_buy(10))
    assert re.fullmatch(r"\d{7}", order["ord_no"])

    assert _open(frozen_sim) == []
    (fill,) = _fills(frozen_sim)
    assert fill == {
        "ord_no": order["ord_no"],
        "stk_nm": "삼성전자",
        "io_tp_nm": "+매수",
        "ord_pric": "0",
        "ord_qty": "10",
        "cntr_pric": str(price),
        "cntr_qty": "10",
        "oso_qty": "0",
        "tdy_trde_cmsn": str(_fee(10 * price)),
        "tdy_trde_tax": "0",
        "ord_stt": "체결",
        "trde_tp": "시장가",
        "orig_ord_no": "0000000",
        "ord_tm": "130030",
        "stk_cd": "005930",
        "stex_tp": "1",
        "stex_tp_txt": "KRX",
        "sor_yn": "N",
    }

    balance = _balance(frozen_sim)
    row = _holding(balance, "005930")
    cost = 100 * base + 10 * price
    value = 110 * price
    buy_fee, sell_fee = _fee(cost) // 10 * 10, _fee(value) // 10 * 10
    tax = value * 18 // 10_000
    profit = value - cost - buy_fee - sell_fee - tax
    assert int(row["rmnd_qty"]) == 110
    assert int(row["trde_able_qty"]) == 110
    assert int(row["tdy_buyq"]) == 10
    assert int(row["tdy_sellq"]) == 0
    assert int(row["pur_amt"]) == cost
    assert int(row["pur_pric"]) == cost // 110
    assert int(row["pred_close_pric"]) == base
    assert int(row["cur_prc"]) == price
    assert int(row["evlt_amt"]) == value
    assert (
        int(row["sum_cmsn"]) == buy_fee + sell_fee == int(row["pur_cmsn"]) + int(row["sell_cmsn"])
    )
    assert int(row["tax"]) == tax
    assert int(row["evltv_prft"]) == profit
    assert row["prft_rt"] == f"{profit * 100 / cost:.2f}"
    assert row["stk_nm"] == "삼성전자"

    rows = balance["acnt_evlt_remn_indv_tot"]
    assert [r["stk_cd"] for r in rows] == ["A000660", "A005930", "A035720"]
    total_cost = sum(int(r["pur_amt"]) for r in rows)
    total_value = sum(int(r["evlt_amt"]) for r in rows)
    total_profit = sum(int(r["evltv_prft"]) for r in rows)
    assert int(balance["tot_pur_amt"]) == total_cost
    assert int(balance["tot_evlt_amt"]) == total_value
    assert int(balance["tot_evlt_pl"]) == total_profit
    assert balance["tot_prft_rt"] == f"{total_profit * 100 / total_cost:.2f}"
    cash = START_CASH - 10 * price - _fee(10 * price)
    assert int(balance["prsm_dpst_aset_amt"]) == cash + total_value
    assert int(balance["tot_loan_amt"]) == 0
    assert sum(float(r["poss_rt"]) for r in rows) == pytest.approx(100, abs=0.02)
    assert row["poss_rt"] == f"{cost * 100 / total_cost:.2f}"

    # The admin API's order list still sees every accepted order.
    assert [o["order_no"] for o in frozen_sim.client.get("/__sim/orders").json()] == [
        order["ord_no"]
    ]


def test_balance_number_format(frozen_sim: SimHarness) -> None:
    # A share bought at the last print is worth its cost, so commissions and tax make the
    # evaluated profit negative: the sign takes the first of the 15 places.
    _ok(frozen_sim.kiwoom_buy(1, code="069500"))
    balance = _balance(frozen_sim)
    row = _holding(balance, "069500")
    assert row["evltv_prft"].startswith("-")
    assert int(row["evltv_prft"]) < 0
    assert re.fullmatch(r"-?\d+\.\d\d", row["prft_rt"])
    assert row["prft_rt"].startswith("-")
    wide = [k for k in row if k not in ("stk_cd", "stk_nm", "prft_rt", "poss_rt")]
    wide = [k for k in wide if not k.startswith("crd_")]
    for name in wide:
        width = 12 if name in ("cur_prc", "pred_close_pric") else 15
        assert len(row[name]) == width, (name, row[name])
        assert re.fullmatch(r"-?\d+", row[name]), (name, row[name])
    for name in ("tot_pur_amt", "tot_evlt_amt", "tot_evlt_pl", "prsm_dpst_aset_amt"):
        assert len(balance[name]) == 15
        assert re.fullmatch(r"-?\d+", balance[name])
    assert re.fullmatch(r"-?\d+\.\d\d", balance["tot_prft_rt"])
    assert re.fullmatch(r"\d+\.\d\d", row["poss_rt"])
    assert row["crd_tp"] == "00"


def test_sell_fill_tax_and_sellable_quantity(frozen_sim: SimHarness) -> None:
    price = _price(frozen_sim, "000660")
    sell = _ok(frozen_sim.kiwoom_buy(10, code="000660", side="sell"))
    (fill,) = _fills(frozen_sim)
    assert fill["ord_no"] == sell["ord_no"]
    assert fill["io_tp_nm"] == "-매도"
    assert fill["cntr_pric"] == str(price)
    assert fill["tdy_trde_tax"] == str(10 * price * 18 // 10_000)
    assert fill["tdy_trde_cmsn"] == str(_fee(10 * price))
    assert _fills(frozen_sim, sell_tp="2") == []
    assert _fills(frozen_sim, sell_tp="1") == [fill]

    # A resting sell keeps its shares from the sellable quantity, not from the holding.
    upper = abs(int(_info(frozen_sim, "035720")["upl_pric"]))
    _ok(frozen_sim.kiwoom_buy(5, price=upper, code="035720", side="sell"))
    balance = _balance(frozen_sim)
    kakao = _holding(balance, "035720")
    assert int(kakao["rmnd_qty"]) == 50
    assert int(kakao["trde_able_qty"]) == 45
    hynix = _holding(balance, "000660")
    assert int(hynix["rmnd_qty"]) == 20
    assert int(hynix["tdy_sellq"]) == 10
    (resting,) = _open(frozen_sim)
    assert resting["io_tp_nm"] == "-매도"
    assert resting["oso_qty"] == "5"
    assert _open(frozen_sim, trde_tp="2") == []
    assert _open(frozen_sim, trde_tp="1") == [resting]


def test_orders_rejected_for_cash_or_quantity(frozen_sim: SimHarness) -> None:
    too_much = frozen_sim.kiwoom_buy(10_000)
    assert "주문가능금액" in _error(too_much, "9101", return_code=20)
    too_many = frozen_sim.kiwoom_buy(START_SHARES["005930"] + 1, side="sell")
    assert "주문가능수량" in _error(too_many, "9102", return_code=20)
    never_held = frozen_sim.kiwoom_buy(1, code="373220", side="sell")
    _error(never_held, "9102", return_code=20)
    # Cash held by a resting buy is not orderable again.
    lower = _lower_limit(frozen_sim)
    quantity = START_CASH // lower // 2 + 1
    _ok(frozen_sim.kiwoom_buy(quantity, price=lower))
    _error(frozen_sim.kiwoom_buy(quantity, price=lower), "9101", return_code=20)
    assert len(frozen_sim.client.get("/__sim/orders").json()) == 1
    assert _fills(frozen_sim) == []
    assert int(_holding(_balance(frozen_sim), "005930")["rmnd_qty"]) == 100


def test_new_order_input_errors(frozen_sim: SimHarness) -> None:
    good = {
        "dmst_stex_tp": "KRX",
        "stk_cd": "005930",
        "ord_qty": "1",
        "ord_uv": "60000",
        "trde_tp": "0",
    }
    for name, bad in (("dmst_stex_tp", "XYZ"), ("trde_tp", "99"), ("ord_uv", "abc")):
        message = _error(frozen_sim.kiwoom_order("kt10000", **{**good, name: bad}), "1517")
        assert message.endswith(f"파라미터={name}]")
    limit_without_price = frozen_sim.kiwoom_order("kt10000", **{**good, "ord_uv": ""})
    _error(limit_without_price, "1517")
    assert _ok(frozen_sim.kiwoom_order("kt10000", **{**good, "ord_uv": "", "trde_tp": "3"}))


# --- resting orders, modify, cancel --------------------------------------------------------


def test_resting_limit_order_modify_and_cancel(frozen_sim: SimHarness) -> None:
    lower = _lower_limit(frozen_sim)
    first = _ok(frozen_sim.kiwoom_buy(5, price=lower))
    (row,) = _open(frozen_sim)
    assert re.fullmatch(r"\d{10}", row.pop("acnt_no"))
    snap = _info(frozen_sim)
    assert row == {
        "ord_no": first["ord_no"],
        "mang_empno": "",
        "stk_cd": "005930",
        "tsk_tp": "",
        "ord_stt": "접수",
        "stk_nm": "삼성전자",
        "ord_qty": "5",
        "ord_pric": str(lower),
        "oso_qty": "5",
        "cntr_tot_amt": "0",
        "orig_ord_no": "0000000",
        "io_tp_nm": "+매수",
        "trde_tp": "보통",
        "tm": "130030",
        "cntr_no": "",
        "cntr_pric": "0",
        "cntr_qty": "0",
        "cur_prc": snap["cur_prc"],
        "sel_bid": row["sel_bid"],
        "buy_bid": row["buy_bid"],
        "unit_cntr_pric": "",
        "unit_cntr_qty": "",
        "tdy_trde_cmsn": "0",
        "tdy_trde_tax": "0",
        "ind_invsr": "",
        "stex_tp": "1",
        "stex_tp_txt": "KRX",
        "sor_yn": "N",
    }
    book = _ok(frozen_sim.kiwoom(MRKCOND, "ka10004", {"stk_cd": "005930"}).json())
    assert (row["sel_bid"], row["buy_bid"]) == (book["sel_fpr_bid"], book["buy_fpr_bid"])

    # Modify everything ("0"): a new order number, the chain root as base_orig_ord_no.
    modify = {"dmst_stex_tp": "KRX", "stk_cd": "005930", "mdfy_uv": str(lower + 100)}
    moved = frozen_sim.kiwoom_order("kt10002", orig_ord_no=first["ord_no"], mdfy_qty="0", **modify)
    assert set(moved) == {
        "ord_no",
        "base_orig_ord_no",
        "mdfy_qty",
        "dmst_stex_tp",
        "return_code",
        "return_msg",
    }
    assert _ok(moved)["ord_no"] != first["ord_no"]
    assert moved["base_orig_ord_no"] == first["ord_no"]
    assert moved["mdfy_qty"] == "000000000005"
    assert moved["dmst_stex_tp"] == "KRX"
    (row,) = _open(frozen_sim)
    assert row["ord_no"] == moved["ord_no"]
    assert row["orig_ord_no"] == first["ord_no"]
    assert (row["ord_pric"], row["oso_qty"], row["io_tp_nm"]) == (
        str(lower + 100),
        "5",
        "+매수정정",
    )

    # Modify two of the five again: the root stays the first order; both parts stay open.
    again = _ok(
        frozen_sim.kiwoom_order("kt10002", orig_ord_no=moved["ord_no"], mdfy_qty="2", **modify)
    )
    assert again["base_orig_ord_no"] == first["ord_no"]
    assert again["mdfy_qty"] == "000000000002"
    rows = _open(frozen_sim)
    assert [(r["ord_no"], r["oso_qty"]) for r in rows] == [
        (again["ord_no"], "2"),
        (moved["ord_no"], "3"),
    ]

    # Cancel one share of the newest, then the rest ("0"), then the other part by a short
    # order number (numbers match numerically).
    cancel = {"dmst_stex_tp": "KRX", "stk_cd": "005930"}
    one = frozen_sim.kiwoom_order("kt10003", orig_ord_no=again["ord_no"], cncl_qty="1", **cancel)
    assert set(one) == {"ord_no", "base_orig_ord_no", "cncl_qty", "return_code", "return_msg"}
    assert _ok(one)["cncl_qty"] == "000000000001"
    assert one["base_orig_ord_no"] == first["ord_no"]
    rest = _ok(
        frozen_sim.kiwoom_order("kt10003", orig_ord_no=again["ord_no"], cncl_qty="0", **cancel)
    )
    assert rest["cncl_qty"] == "000000000001"
    short = str(int(moved["ord_no"]))
    other = _ok(frozen_sim.kiwoom_order("kt10003", orig_ord_no=short, cncl_qty="0", **cancel))
    assert other["cncl_qty"] == "000000000003"
    assert _open(frozen_sim) == []
    assert _fills(frozen_sim) == []
    kinds = [o["tr_id"] for o in frozen_sim.client.get("/__sim/orders").json()]
    assert kinds == ["kt10000", "kt10002", "kt10002", "kt10003", "kt10003", "kt10003"]


def test_modify_and_cancel_errors(frozen_sim: SimHarness) -> None:
    lower = _lower_limit(frozen_sim)
    resting = _ok(frozen_sim.kiwoom_buy(3, price=lower))["ord_no"]
    filled = _ok(frozen_sim.kiwoom_buy(1))["ord_no"]
    modify = {"dmst_stex_tp": "KRX", "stk_cd": "005930", "mdfy_qty": "0", "mdfy_uv": str(lower)}
    cancel = {"dmst_stex_tp": "KRX", "stk_cd": "005930", "cncl_qty": "0"}

    def modify_of(number: str, **changes: str) -> dict[str, Any]:
        return frozen_sim.kiwoom_order("kt10002", **{**modify, "orig_ord_no": number, **changes})

    def cancel_of(number: str, **changes: str) -> dict[str, Any]:
        return frozen_sim.kiwoom_order("kt10003", **{**cancel, "orig_ord_no": number, **changes})

    _error(modify_of("9999999"), "9103", return_code=20)
    _error(cancel_of("9999999"), "9103", return_code=20)
    _error(modify_of(filled), "9104", return_code=20)
    _error(cancel_of(filled), "9104", return_code=20)
    _error(cancel_of(resting, cncl_qty="4"), "9105", return_code=20)
    _error(modify_of(resting, mdfy_qty="4"), "9105", return_code=20)
    _error(cancel_of(resting, stk_cd="000660"), "9106", return_code=20)
    _ok(cancel_of(resting))
    _error(cancel_of(resting), "9104", return_code=20)
    _error(modify_of(resting), "9104", return_code=20)

    for api_id, body in (("kt10002", modify), ("kt10003", cancel)):
        full = {**body, "orig_ord_no": resting}
        for name in full:
            missing = {k: v for k, v in full.items() if k != name}
            message = _error(frozen_sim.kiwoom_order(api_id, **missing), "1511")
            assert message.endswith(f"필수입력 파라미터={name}]")
    _error(modify_of(resting, stk_cd="XX"), "1902")
    for name, bad in (
        ("mdfy_qty", "x"),
        ("mdfy_uv", "0"),
        ("orig_ord_no", "A1"),
        ("dmst_stex_tp", "ABC"),
    ):
        assert _error(modify_of(resting, **{name: bad}), "1517").endswith(f"파라미터={name}]")
    assert _error(cancel_of(resting, cncl_qty="-1"), "1517").endswith("파라미터=cncl_qty]")
    assert "[1504:" in frozen_sim.kiwoom(ACCOUNT, "kt10002", modify).json()["return_msg"]


def test_limit_order_fills_when_the_clock_reaches_its_price(frozen_sim: SimHarness) -> None:
    # Look ahead at the tape (a pure function of the seed), then go back and rest an order at
    # a price the next hour reaches but the current print does not: a buy at the hour's low
    # if it dips, else a sell at its high.
    frozen_sim.kiwoom_clock(now="2025-03-21T14:00:00+09:00")
    body = {"stk_cd": "005930", "tic_scope": "1", "upd_stkpc_tp": "1"}
    minutes = frozen_sim.kiwoom("/api/dostk/chart", "ka10080", body).json()[
        "stk_min_pole_chart_qry"
    ]
    window = [m for m in minutes if "202503211302" <= m["cntr_tm"] < "202503211400"]
    low = min(abs(int(m["low_pric"])) for m in window)
    high = max(abs(int(m["high_pric"])) for m in window)
    frozen_sim.kiwoom_clock(now="2025-03-21T13:00:30+09:00")
    now = _price(frozen_sim)
    side, price = ("buy", low) if low < now else ("sell", high)
    assert price != now

    order = _ok(frozen_sim.kiwoom_buy(3, price=price, side=side))
    (resting,) = _open(frozen_sim)
    assert resting["ord_no"] == order["ord_no"]
    assert resting["oso_qty"] == "3"
    assert _fills(frozen_sim) == []
    assert int(_holding(_balance(frozen_sim), "005930")["rmnd_qty"]) == 100

    frozen_sim.kiwoom_clock(advance_s=3570)  # 14:00:00
    assert _open(frozen_sim) == []
    (fill,) = _fills(frozen_sim)
    assert (fill["ord_no"], fill["cntr_pric"], fill["cntr_qty"]) == (
        order["ord_no"],
        str(price),
        "3",
    )
    assert (fill["ord_pric"], fill["trde_tp"], fill["ord_tm"]) == (str(price), "보통", "130030")
    held = 103 if side == "buy" else 97
    row = _holding(_balance(frozen_sim), "005930")
    assert int(row["rmnd_qty"]) == held
    assert int(row["tdy_buyq" if side == "buy" else "tdy_sellq"]) == 3

    # The next trading day starts with today's fills gone from ka10076 (today only).
    frozen_sim.kiwoom_clock(now="2025-03-24T09:30:00+09:00")
    frozen_sim.forget_tokens()
    assert _fills(frozen_sim) == []
    row = _holding(_balance(frozen_sim), "005930")
    assert int(row["rmnd_qty"]) == held
    assert int(row["tdy_buyq"]) == int(row["tdy_sellq"]) == 0


# --- paging --------------------------------------------------------------------------------


def test_paging_serves_every_row_once(make_sim: Callable[..., SimHarness]) -> None:
    sim = make_sim(kiwoom_page_rows_orders=3)
    lower = _lower_limit(sim)
    resting = [_ok(sim.kiwoom_buy(n, price=lower))["ord_no"] for n in range(1, 8)]
    pages = sim.kiwoom_account_walk("ka10075", OPEN_ALL, "oso")
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [r["ord_no"] for p in pages for r in p] == resting[::-1]

    codes = ["069500", "035420", "005380", "005930", "000660"]
    filled = [_ok(sim.kiwoom_buy(1, code=code))["ord_no"] for code in codes]
    pages = sim.kiwoom_account_walk("ka10076", FILLS_ALL, "cntr")
    assert [len(p) for p in pages] == [3, 2]
    assert [r["ord_no"] for p in pages for r in p] == filled[::-1]
    older = sim.kiwoom_account_walk("ka10076", {**FILLS_ALL, "ord_no": filled[2]}, "cntr")
    assert [r["ord_no"] for p in older for r in p] == filled[1::-1]
    one = sim.kiwoom_account_walk(
        "ka10076", {**FILLS_ALL, "qry_tp": "1", "stk_cd": "035420"}, "cntr"
    )
    assert [r["ord_no"] for p in one for r in p] == [filled[1]]

    pages = sim.kiwoom_account_walk("kt00018", BALANCE, "acnt_evlt_remn_indv_tot")
    assert [len(p) for p in pages] == [3, 3]
    assert [r["stk_cd"] for p in pages for r in p] == [
        "A" + c for c in sorted({*codes, *START_SHARES})
    ]
    # A key only continues the query it came from.
    first = sim.kiwoom(ACCOUNT, "ka10075", OPEN_ALL)
    key = first.headers["next-key"]
    assert first.headers["cont-yn"] == "Y"
    assert key
    _error(sim.kiwoom_account("ka10076", FILLS_ALL, next_key=key), "1517")
    _error(sim.kiwoom_account("ka10075", {**OPEN_ALL, "trde_tp": "2"}, next_key=key), "1517")
    _error(sim.kiwoom_account("ka10075", OPEN_ALL, next_key="!!!"), "1517")
    # Rows that go between two pages do not make the walk skip or repeat the others.
    second = sim.kiwoom_account("ka10075", OPEN_ALL, next_key=key)
    cancel = {"dmst_stex_tp": "KRX", "stk_cd": "005930", "cncl_qty": "0"}
    _ok(sim.kiwoom_order("kt10003", orig_ord_no=resting[-1], **cancel))
    again = sim.kiwoom_account("ka10075", OPEN_ALL, next_key=key)
    assert again["oso"] == second["oso"]


def test_open_order_filters(frozen_sim: SimHarness) -> None:
    lower = _lower_limit(frozen_sim)
    samsung = _ok(frozen_sim.kiwoom_buy(1, price=lower))["ord_no"]
    hynix = _ok(frozen_sim.kiwoom_buy(1, price=_lower_limit(frozen_sim, "000660"), code="000660"))
    nxt = frozen_sim.kiwoom_order(
        "kt10000",
        dmst_stex_tp="NXT",
        stk_cd="005930",
        ord_qty="2",
        ord_uv=str(lower),
        trde_tp="0",
    )
    sor = frozen_sim.kiwoom_order(
        "kt10000", dmst_stex_tp="SOR", stk_cd="005930", ord_qty="3", ord_uv=str(lower), trde_tp="0"
    )
    everything = _open(frozen_sim)
    assert [r["ord_no"] for r in everything] == [
        sor["ord_no"],
        nxt["ord_no"],
        hynix["ord_no"],
        samsung,
    ]
    venues = [(r["stex_tp"], r["stex_tp_txt"], r["sor_yn"]) for r in everything]
    assert venues == [("0", "SOR", "Y"), ("2", "NXT", "N"), ("1", "KRX", "N"), ("1", "KRX", "N")]
    assert [r["ord_no"] for r in _open(frozen_sim, stex_tp="1")] == [hynix["ord_no"], samsung]
    assert [r["ord_no"] for r in _open(frozen_sim, stex_tp="2")] == [nxt["ord_no"]]
    one = _open(frozen_sim, all_stk_tp="1", stk_cd="000660")
    assert [r["ord_no"] for r in one] == [hynix["ord_no"]]
    # stk_cd only narrows the list when all_stk_tp asks for one symbol.
    assert len(_open(frozen_sim, stk_cd="000660")) == 4


def test_account_request_errors(frozen_sim: SimHarness) -> None:
    def msg(api_id: str, body: dict[str, str], code: str, path: str = ACCOUNT) -> str:
        return _error(frozen_sim.kiwoom(path, api_id, body).json(), code)

    for api_id, body in (("kt00018", BALANCE), ("ka10075", OPEN_ALL), ("ka10076", FILLS_ALL)):
        for name in body:
            missing = {k: v for k, v in body.items() if k != name}
            assert msg(api_id, missing, "1511").endswith(f"필수입력 파라미터={name}]")
            bad = {**body, name: "9"}
            assert msg(api_id, bad, "1517").endswith(f"파라미터={name}]")
        msg(api_id, body, "1504", path=ORDER)
        msg(api_id, body, "1504", path="/api/dostk/chart")
    assert msg("kt00018", {**BALANCE, "dmst_stex_tp": "SOR"}, "1517").endswith("dmst_stex_tp]")
    assert msg("ka10075", {**OPEN_ALL, "all_stk_tp": "1"}, "1511").endswith("=stk_cd]")
    assert msg("ka10076", {**FILLS_ALL, "qry_tp": "1"}, "1511").endswith("=stk_cd]")
    msg("ka10075", {**OPEN_ALL, "all_stk_tp": "1", "stk_cd": "12"}, "1902")
    assert msg("ka10076", {**FILLS_ALL, "ord_no": "abc"}, "1517").endswith("=ord_no]")
    msg("kt00018", BALANCE, "1504", path=MRKCOND)
    headers = {"api-id": "kt00018", "authorization": f"Bearer {frozen_sim.kiwoom_token()}"}
    raw = frozen_sim.client.post(ACCOUNT, content=b"[]", headers=headers)
    _error(raw.json(), "1517")
    unauth = frozen_sim.client.post(ACCOUNT, json=BALANCE, headers={"api-id": "kt00018"})
    assert unauth.json()["return_code"] == 3
    assert "[8005:" in unauth.json()["return_msg"]


def test_accounts_are_per_app_key(make_sim: Callable[..., SimHarness]) -> None:
    sim = make_sim()
    _ok(sim.kiwoom_buy(1, price=_lower_limit(sim)))
    _ok(sim.kiwoom_buy(1))
    other = sim.client.post(
        "/oauth2/token",
        json={"grant_type": "client_credentials", "appkey": "KW" + "c" * 34, "secretkey": "x" * 40},
    ).json()["token"]
    answer = sim.kiwoom(ACCOUNT, "ka10075", OPEN_ALL, token=other).json()
    assert _ok(answer)["oso"] == []
    mine = _open(sim)
    assert len(mine) == 1
    theirs = _ok(sim.kiwoom(ACCOUNT, "kt00018", BALANCE, token=other).json())
    assert int(_holding(theirs, "005930")["rmnd_qty"]) == 100
    assert int(_holding(_balance(sim), "005930")["rmnd_qty"]) == 101
