"""Kiwoom endpoints over a real socket, and their agreement with the KIS side."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any, Protocol

import httpx

from apihub_marketdata import krx_calendar

CHART = "/api/dostk/chart"


class SimHarness(Protocol):
    """The conftest's simulator harness (``frozen_sim``, ``make_sim``), as these tests use it."""

    client: httpx.Client

    def kis_price(self) -> httpx.Response: ...
    def kis_minutes(self, hour: str) -> httpx.Response: ...
    def kis_daily(self, first: str, last: str) -> httpx.Response: ...
    def kiwoom_issue(
        self, appkey: str | None = None, secret: str | None = None
    ) -> httpx.Response: ...
    def kiwoom_token(self) -> str: ...
    def kiwoom(
        self,
        path: str,
        api_id: str,
        body: dict[str, Any],
        *,
        token: str | None = None,
        next_key: str | None = None,
    ) -> httpx.Response: ...
    def kiwoom_walk(self, api_id: str, body: dict[str, Any], list_key: str) -> list[list[Any]]: ...


class Defaults(Protocol):
    """The conftest's ``harness_defaults``, as far as these tests use it."""

    kiwoom_appkey: str
    kiwoom_secret: str


def _price(text: str) -> int:
    return abs(int(text))


def _minute_walk(frozen_sim: SimHarness, scope: str) -> list[dict[str, str]]:
    body = {"stk_cd": "005930", "tic_scope": scope, "upd_stkpc_tp": "1"}
    pages = frozen_sim.kiwoom_walk("ka10080", body, "stk_min_pole_chart_qry")
    return [row for page in pages for row in page]


def test_token_shape_and_new_token_revokes_the_old(
    frozen_sim: SimHarness, harness_defaults: Defaults
) -> None:
    first = frozen_sim.kiwoom_issue()
    assert first.status_code == 200
    body = first.json()
    assert list(body) == ["expires_dt", "token_type", "token", "return_code", "return_msg"]
    assert body["expires_dt"] == "20250322130030"
    assert body["return_code"] == 0
    assert first.headers["api-id"] == "au10001"
    info = {"stk_cd": "005930"}
    assert (
        frozen_sim.kiwoom("/api/dostk/stkinfo", "ka10001", info, token=body["token"]).json()[
            "return_code"
        ]
        == 0
    )
    second = frozen_sim.kiwoom_issue().json()["token"]
    assert second != body["token"]
    stale = frozen_sim.kiwoom("/api/dostk/stkinfo", "ka10001", info, token=body["token"])
    assert stale.status_code == 200
    assert stale.json() == {
        "return_code": 3,
        "return_msg": "인증에 실패했습니다[8005:Token이 유효하지 않습니다]",
    }
    fresh = frozen_sim.kiwoom("/api/dostk/stkinfo", "ka10001", info, token=second)
    assert fresh.json()["return_code"] == 0
    revoke = {
        "appkey": harness_defaults.kiwoom_appkey,
        "secretkey": harness_defaults.kiwoom_secret,
        "token": second,
    }
    assert frozen_sim.client.post("/oauth2/revoke", json=revoke).json()["return_code"] == 0
    assert (
        frozen_sim.kiwoom("/api/dostk/stkinfo", "ka10001", info, token=second).json()["return_code"]
        == 3
    )
    again = frozen_sim.client.post("/oauth2/revoke", json=revoke).json()
    assert again["return_msg"].endswith("[8015:토큰 폐기에 실패했습니다.]")
    stats = frozen_sim.client.get("/__sim/stats").json()
    assert sum(stats["token_issuances"]["KIWOOM"].values()) == 2


def test_token_request_errors(
    make_sim: Callable[..., SimHarness], harness_defaults: Defaults
) -> None:
    frozen_sim = make_sim(apps={harness_defaults.kiwoom_appkey: harness_defaults.kiwoom_secret})
    post = frozen_sim.client.post
    assert "[8011:" in post("/oauth2/token", json={"appkey": "a"}).json()["return_msg"]
    wrong_grant = {"grant_type": "password", "appkey": "a", "secretkey": "b"}
    assert "[8012:" in post("/oauth2/token", json=wrong_grant).json()["return_msg"]
    no_key = {"grant_type": "client_credentials"}
    assert "[8020:" in post("/oauth2/token", json=no_key).json()["return_msg"]
    assert "[8001:" in frozen_sim.kiwoom_issue(appkey="other").json()["return_msg"]
    assert "[8002:" in frozen_sim.kiwoom_issue(secret="wrong").json()["return_msg"]
    assert "[1517:" in post("/oauth2/token", content=b"not json").json()["return_msg"]
    assert frozen_sim.kiwoom_issue().json()["return_code"] == 0


def test_stkinfo_is_the_current_price(frozen_sim: SimHarness) -> None:
    info = frozen_sim.kiwoom("/api/dostk/stkinfo", "ka10001", {"stk_cd": "005930"}).json()
    kis = frozen_sim.kis_price().json()["output"]
    assert info["stk_nm"] == "삼성전자"
    assert _price(info["cur_prc"]) == int(kis["stck_prpr"])
    assert info["base_pric"] == kis["stck_sdpr"]
    assert info["trde_qty"] == kis["acml_vol"]
    assert info["pred_pre"].lstrip("+") == kis["prdy_vrss"]
    assert info["cur_prc"][0] in "+-" or info["cur_prc"] == info["base_pric"]
    assert all(isinstance(v, str) for k, v in info.items() if k != "return_code")
    nx = frozen_sim.kiwoom("/api/dostk/stkinfo", "ka10001", {"stk_cd": "005930_NX"}).json()
    assert nx["cur_prc"] == info["cur_prc"]


def test_minute_bars_match_kis_and_aggregate_ticks(frozen_sim: SimHarness) -> None:
    kiwoom = _minute_walk(frozen_sim, "1")
    today = [row for row in kiwoom if row["cntr_tm"].startswith("20250321")]
    assert today[0]["cntr_tm"] == "20250321130000"
    assert today[-1]["cntr_tm"] == "20250321090000"
    assert len({row["cntr_tm"][:8] for row in kiwoom}) == 5  # intraday history days
    friday = [row for row in kiwoom if row["cntr_tm"].startswith("20250320")]
    assert len(friday) == 381  # 09:00 .. 15:19 and the 15:30 closing auction
    assert [row["cntr_tm"][8:] for row in friday[:3]] == ["153000", "151900", "151800"]
    kis = frozen_sim.kis_minutes("130000").json()["output2"]
    for kis_row, kw_row in zip(kis, today, strict=False):
        assert kw_row["cntr_tm"][8:] == kis_row["stck_cntg_hour"]
        assert _price(kw_row["cur_prc"]) == int(kis_row["stck_prpr"])
        assert _price(kw_row["open_pric"]) == int(kis_row["stck_oprc"])
        assert _price(kw_row["high_pric"]) == int(kis_row["stck_hgpr"])
        assert _price(kw_row["low_pric"]) == int(kis_row["stck_lwpr"])
        assert kw_row["trde_qty"] == kis_row["cntg_vol"]
    # Ticks (ka10079, one tick per row) roll up exactly into the one-minute bars.
    body = {"stk_cd": "005930", "tic_scope": "1", "upd_stkpc_tp": "1"}
    ticks = [
        r for page in frozen_sim.kiwoom_walk("ka10079", body, "stk_tic_chart_qry") for r in page
    ]
    by_minute: defaultdict[str, list[dict[str, str]]] = defaultdict(list)
    for tick in reversed(ticks):
        by_minute[tick["cntr_tm"][:12] + "00"].append(tick)
    for bar in kiwoom:
        group = by_minute[bar["cntr_tm"]]
        prices = [_price(t["cur_prc"]) for t in group]
        assert _price(bar["open_pric"]) == prices[0]
        assert _price(bar["cur_prc"]) == prices[-1]
        assert _price(bar["high_pric"]) == max(prices)
        assert _price(bar["low_pric"]) == min(prices)
        assert int(bar["trde_qty"]) == sum(int(t["trde_qty"]) for t in group)


def _group(ones: list[dict[str, str]], scope: int) -> dict[str, list[dict[str, str]]]:
    """One-minute rows (newest first) grouped by the scope bar they belong to, oldest first."""
    groups: dict[str, list[dict[str, str]]] = {}
    for row in reversed(ones):
        hour, minute = int(row["cntr_tm"][8:10]), int(row["cntr_tm"][10:12])
        index = ((hour - 9) * 60 + minute) // scope
        start = 9 * 60 + index * scope
        key = f"{row['cntr_tm'][:8]}{start // 60:02d}{start % 60:02d}00"
        groups.setdefault(key, []).append(row)
    return groups


def test_wider_minute_scopes_aggregate_one_minute_bars_exactly(frozen_sim: SimHarness) -> None:
    ones = _minute_walk(frozen_sim, "1")
    for scope in ("5", "45", "60"):
        wide = _minute_walk(frozen_sim, scope)
        groups = _group(ones, int(scope))
        assert [row["cntr_tm"] for row in wide] == sorted(groups, reverse=True)
        for row in wide:
            members = groups[row["cntr_tm"]]
            assert _price(row["open_pric"]) == _price(members[0]["open_pric"])
            assert _price(row["cur_prc"]) == _price(members[-1]["cur_prc"])
            assert _price(row["high_pric"]) == max(_price(m["high_pric"]) for m in members)
            assert _price(row["low_pric"]) == min(_price(m["low_pric"]) for m in members)
            assert int(row["trde_qty"]) == sum(int(m["trde_qty"]) for m in members)
            assert row["acc_trde_qty"] == members[-1]["acc_trde_qty"]
    friday_hours = [
        r["cntr_tm"][8:] for r in _minute_walk(frozen_sim, "60") if r["cntr_tm"][:8] == "20250320"
    ]
    assert friday_hours[::-1] == [f"{h:02d}0000" for h in range(9, 16)]


def test_daily_chart_walk_and_consistency(make_sim: Callable[..., SimHarness]) -> None:
    frozen_sim = make_sim(kiwoom_page_rows_daily=100, history_days=300)
    body = {"stk_cd": "005930", "base_dt": "20250321", "upd_stkpc_tp": "1"}
    pages = frozen_sim.kiwoom_walk("ka10081", body, "stk_dt_pole_chart_qry")
    assert [len(page) for page in pages][:-1] == [100] * (len(pages) - 1)
    rows = [row for page in pages for row in page]
    dates = [row["dt"] for row in rows]
    # Every KRX trading day back to the first of the 300 days of history.
    today = date(2025, 3, 21)
    sessions = krx_calendar().sessions(today - timedelta(days=300), today)
    assert dates == [session.day.strftime("%Y%m%d") for session in reversed(sessions)]
    assert "20250101" not in dates
    assert "20250102" in dates
    for newer, older in itertools.pairwise(rows):
        assert int(newer["pred_pre"]) == int(newer["cur_prc"]) - int(older["cur_prc"])
    kis = frozen_sim.kis_daily("20250101", "20250321").json()["output2"]
    for kis_row, kw_row in zip(kis, rows, strict=False):
        assert kw_row["dt"] == kis_row["stck_bsop_date"]
        assert kw_row["cur_prc"] == kis_row["stck_clpr"]
        assert kw_row["trde_qty"] == kis_row["acml_vol"]
        value = int(kis_row["acml_tr_pbmn"])
        assert int(kw_row["trde_prica"]) == (value + 500_000) // 1_000_000
    # The daily close is the last minute's close, and today's volume is the minutes' sum.
    minutes = [r for r in _minute_walk(frozen_sim, "1") if r["cntr_tm"].startswith("20250320")]
    yesterday = rows[1]
    assert _price(minutes[0]["cur_prc"]) == int(yesterday["cur_prc"])
    assert sum(int(r["trde_qty"]) for r in minutes) == int(yesterday["trde_qty"])
    older = frozen_sim.kiwoom(CHART, "ka10081", {**body, "base_dt": "20250102"}).json()
    assert older["stk_dt_pole_chart_qry"][0]["dt"] == "20250102"
    # A base_dt the market is closed on starts at the trading day before it (12-31 is closed).
    closed = frozen_sim.kiwoom(CHART, "ka10081", {**body, "base_dt": "20250101"}).json()
    assert closed["stk_dt_pole_chart_qry"][0]["dt"] == "20241230"


def test_request_errors(frozen_sim: SimHarness) -> None:
    def msg(path: str, api_id: str, body: dict[str, str]) -> str:
        response = frozen_sim.kiwoom(path, api_id, body)
        assert response.status_code == 200
        data = response.json()
        assert data["return_code"] == 2
        return str(data["return_msg"])

    assert "[1505:" in msg(CHART, "ka99999", {})
    assert "[1504:" in msg(CHART, "ka10001", {"stk_cd": "005930"})
    assert "[1501:" in msg(CHART, "", {})
    assert msg(CHART, "ka10081", {"stk_cd": "005930", "upd_stkpc_tp": "1"}).endswith(
        "필수입력 파라미터=base_dt]"
    )
    assert "[1902:" in msg("/api/dostk/stkinfo", "ka10001", {"stk_cd": "ABC"})
    bad_scope = {"stk_cd": "005930", "tic_scope": "7", "upd_stkpc_tp": "1"}
    assert "[1517:" in msg(CHART, "ka10080", bad_scope)
    assert "[1517:" in msg(CHART, "ka10079", bad_scope)
    bad_day = {"stk_cd": "005930", "base_dt": "2025-03-21", "upd_stkpc_tp": "1"}
    assert "[1517:" in msg(CHART, "ka10081", bad_day)
    bad_adjust = {"stk_cd": "005930", "base_dt": "20250321", "upd_stkpc_tp": "9"}
    assert "[1517:" in msg(CHART, "ka10081", bad_adjust)
    for api_id in ("ka10080", "ka10079"):
        adjust = {"stk_cd": "005930", "tic_scope": "1", "upd_stkpc_tp": "9"}
        assert "[1517:" in msg(CHART, api_id, adjust)
    bad_key = frozen_sim.kiwoom(
        CHART,
        "ka10081",
        {"stk_cd": "005930", "base_dt": "20250321", "upd_stkpc_tp": "1"},
        next_key="!!!",
    ).json()
    assert "[1517:" in bad_key["return_msg"]
    foreign_key = frozen_sim.kiwoom(
        CHART,
        "ka10080",
        {"stk_cd": "005930", "tic_scope": "1", "upd_stkpc_tp": "1"},
        next_key="a2ExMDA4MTowMDA2NjA6MjAyNTAzMTk",
    ).json()
    assert "[1517:" in foreign_key["return_msg"]
    raw = frozen_sim.client.post(
        CHART,
        content=b"[]",
        headers={"api-id": "ka10081", "authorization": f"Bearer {frozen_sim.kiwoom_token()}"},
    )
    assert "[1517:" in raw.json()["return_msg"]
    unauth = frozen_sim.client.post(CHART, json={}, headers={"api-id": "ka10081"}).json()
    assert unauth["return_code"] == 3


def test_orders(frozen_sim: SimHarness) -> None:
    body = {
        "dmst_stex_tp": "KRX",
        "stk_cd": "005930",
        "ord_qty": "1",
        "ord_uv": "61800",
        "trde_tp": "0",
    }
    buy = frozen_sim.kiwoom("/api/dostk/ordr", "kt10000", body)
    assert buy.headers["api-id"] == "kt10000"
    data = buy.json()
    assert set(data) == {"ord_no", "dmst_stex_tp", "return_code", "return_msg"}
    assert data["dmst_stex_tp"] == "KRX"
    sell = frozen_sim.kiwoom("/api/dostk/ordr", "kt10001", body).json()
    assert sell["ord_no"] != data["ord_no"]
    assert [o["side"] for o in frozen_sim.client.get("/__sim/orders").json()] == ["buy", "sell"]
    assert "[1504:" in frozen_sim.kiwoom("/api/dostk/ordr", "ka10081", body).json()["return_msg"]
    missing = frozen_sim.kiwoom("/api/dostk/ordr", "kt10000", {"stk_cd": "005930"}).json()
    assert "[1511:" in missing["return_msg"]
    bad_code = frozen_sim.kiwoom("/api/dostk/ordr", "kt10000", {**body, "stk_cd": "X"}).json()
    assert "[1902:" in bad_code["return_msg"]
    bad_qty = frozen_sim.kiwoom("/api/dostk/ordr", "kt10000", {**body, "ord_qty": "-1"}).json()
    assert "[1517:" in bad_qty["return_msg"]
    raw = frozen_sim.client.post(
        "/api/dostk/ordr",
        content=b"x",
        headers={"api-id": "kt10000", "authorization": f"Bearer {frozen_sim.kiwoom_token()}"},
    )
    assert "[1517:" in raw.json()["return_msg"]


def test_tick_chart_scopes(frozen_sim: SimHarness) -> None:
    body = {"stk_cd": "005930", "tic_scope": "10", "upd_stkpc_tp": "1"}
    first = frozen_sim.kiwoom(CHART, "ka10079", body).json()
    ones = frozen_sim.kiwoom(CHART, "ka10079", {**body, "tic_scope": "1"}).json()[
        "stk_tic_chart_qry"
    ]
    count = int(first["last_tic_cnt"])
    assert 1 <= count <= 10
    newest = first["stk_tic_chart_qry"][0]
    assert newest["cntr_tm"] == ones[0]["cntr_tm"]
    assert int(newest["trde_qty"]) == sum(int(t["trde_qty"]) for t in ones[:count])
