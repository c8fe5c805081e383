"""KIS endpoints over a real socket: shapes, consistency, paging, validation, orders."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import httpx

from apihub_broker_sim import KST, ThreadedSimServer

QUOTES = "/uapi/domestic-stock/v1/quotations"


class SimHarness(Protocol):
    """The conftest's simulator harness (``frozen_sim``, ``make_sim``), as these tests use it."""

    server: ThreadedSimServer
    client: httpx.Client

    def forget_tokens(self) -> None: ...
    def kis_issue(self, appkey: str | None = None, secret: str | None = None) -> httpx.Response: ...
    def kis_token(self) -> str: ...
    def kis_headers(self, tr_id: str) -> dict[str, str]: ...
    def kis_get(self, name: str, tr_id: str, **params: str) -> httpx.Response: ...
    def kis_minutes(self, hour: str) -> httpx.Response: ...
    def kis_daily(self, first: str, last: str, period: str = "D") -> httpx.Response: ...
    def kis_price(self) -> httpx.Response: ...


class Defaults(Protocol):
    """The conftest's ``harness_defaults``, as far as these tests use it."""

    kis_appkey: str
    kis_secret: str


def _all_strings(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_all_strings(v) for v in value.values())
    if isinstance(value, list):
        return all(_all_strings(v) for v in value)
    return isinstance(value, str)


def test_token_response_shape(frozen_sim: SimHarness, harness_defaults: Defaults) -> None:
    response = frozen_sim.kis_issue()
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["access_token", "access_token_token_expired", "token_type", "expires_in"]
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 86400
    assert body["access_token_token_expired"] == "2025-03-22 13:00:30"
    header, claims, signature = body["access_token"].split(".")
    assert header == "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9"
    assert claims
    assert signature
    assert harness_defaults.kis_appkey not in body["access_token"]


def test_inquire_price_is_the_latest_tick(frozen_sim: SimHarness) -> None:
    price = frozen_sim.kis_price()
    assert price.status_code == 200
    assert price.headers["content-type"] == "application/json; charset=utf-8"
    assert price.headers["tr_id"] == "FHKST01010100"
    assert price.headers["tr_cont"] == ""
    assert len(price.headers["gt_uid"]) == 32
    body = price.json()
    assert list(body) == ["output", "rt_cd", "msg_cd", "msg1"]
    assert (body["rt_cd"], body["msg_cd"], body["msg1"]) == (
        "0",
        "MCA00000",
        "정상처리 되었습니다.",
    )
    assert _all_strings(body)
    out = body["output"]
    trades = frozen_sim.kis_get(
        "inquire-ccnl", "FHKST01010300", FID_COND_MRKT_DIV_CODE="J", FID_INPUT_ISCD="005930"
    ).json()["output"]
    assert len(trades) == 30
    assert trades[0]["stck_prpr"] == out["stck_prpr"]
    assert trades[0]["stck_cntg_hour"] <= "130030"
    assert [t["stck_cntg_hour"] for t in trades] == sorted(
        (t["stck_cntg_hour"] for t in trades), reverse=True
    )
    base = int(out["stck_sdpr"])
    assert int(out["prdy_vrss"]) == int(out["stck_prpr"]) - base
    assert int(out["stck_lwpr"]) <= int(out["stck_prpr"]) <= int(out["stck_hgpr"])
    assert out["stck_shrn_iscd"] == "005930"
    assert int(out["aspr_unit"]) == 100
    minutes = frozen_sim.kis_minutes("153000").json()
    assert minutes["output2"][0]["stck_prpr"] == out["stck_prpr"]
    assert minutes["output2"][0]["acml_tr_pbmn"] == out["acml_tr_pbmn"]
    assert minutes["output1"]["acml_vol"] == out["acml_vol"]


def test_minute_paging_walk_covers_the_session_without_gaps(frozen_sim: SimHarness) -> None:
    rows: list[dict[str, str]] = []
    hour = "130030"
    for _ in range(40):
        page = frozen_sim.kis_minutes(hour).json()["output2"]
        assert len(page) <= 30
        fresh = [
            row for row in page if not rows or row["stck_cntg_hour"] < rows[-1]["stck_cntg_hour"]
        ]
        if not fresh:
            break
        rows.extend(fresh)
        hour = page[-1]["stck_cntg_hour"]  # inclusive boundary: the earliest row repeats
    hours = [row["stck_cntg_hour"] for row in rows]
    expected = [f"{h:02d}{m:02d}00" for h in range(13, 8, -1) for m in range(59, -1, -1)]
    expected = [h for h in expected if h <= "130000"]
    assert hours == expected
    # Each bar's cumulative value steps by exactly its own traded value.
    assert rows[-1]["stck_cntg_hour"] == "090000"
    for newer, older in itertools.pairwise(rows):
        assert int(newer["acml_tr_pbmn"]) > int(older["acml_tr_pbmn"])
        close, low, high = (int(newer[k]) for k in ("stck_prpr", "stck_lwpr", "stck_hgpr"))
        assert low <= close <= high


def test_minute_chart_boundary_and_future_hour(make_sim: Callable[..., SimHarness]) -> None:
    inclusive = make_sim()
    page = inclusive.kis_minutes("120000").json()["output2"]
    assert page[0]["stck_cntg_hour"] == "120000"
    assert len(page) == 30
    future = inclusive.kis_minutes("150000").json()["output2"]
    assert future[0]["stck_cntg_hour"] == "130000"  # a future hour means now
    exclusive = make_sim(kis_time_chart_inclusive=False)
    assert exclusive.kis_minutes("120000").json()["output2"][0]["stck_cntg_hour"] == "115900"
    assert exclusive.kis_minutes("085900").json()["output2"] == []


def test_daily_paging_by_moving_date_2_back(frozen_sim: SimHarness) -> None:
    rows: list[dict[str, str]] = []
    last = "20250321"
    for _ in range(10):
        page = frozen_sim.kis_daily("20240401", last).json()["output2"]
        assert len(page) <= 100
        rows.extend(page)
        if len(page) < 100:
            break
        oldest = datetime.strptime(page[-1]["stck_bsop_date"], "%Y%m%d")
        last = f"{oldest.toordinal() - 1}"
        last = datetime.fromordinal(int(last)).strftime("%Y%m%d")
    dates = [row["stck_bsop_date"] for row in rows]
    assert dates == sorted(set(dates), reverse=True)
    assert dates[0] == "20250321"
    assert dates[-1] == "20240401"
    assert all(datetime.strptime(d, "%Y%m%d").weekday() < 5 for d in dates)
    # Closes chain: each row's change is against the previous trading day's close.
    for newer, older in itertools.pairwise(rows):
        assert int(newer["prdy_vrss"]) == int(newer["stck_clpr"]) - int(older["stck_clpr"])
    today = rows[0]
    minutes = frozen_sim.kis_minutes("153000").json()
    assert today["acml_vol"] == minutes["output1"]["acml_vol"]
    assert today["stck_clpr"] == minutes["output2"][0]["stck_prpr"]


def test_weekly_and_monthly_bars_aggregate_daily_bars(frozen_sim: SimHarness) -> None:
    daily = frozen_sim.kis_daily("20250101", "20250228").json()["output2"]
    monthly = frozen_sim.kis_daily("20250101", "20250228", "M").json()["output2"]
    # Dated by their first trading day: 1 January is a KRX holiday, 2 January opens the year.
    assert [row["stck_bsop_date"] for row in monthly] == ["20250203", "20250102"]
    february = [row for row in daily if row["stck_bsop_date"].startswith("202502")]
    assert monthly[0]["stck_clpr"] == february[0]["stck_clpr"]
    assert monthly[0]["stck_oprc"] == february[-1]["stck_oprc"]
    assert int(monthly[0]["acml_vol"]) == sum(int(r["acml_vol"]) for r in february)
    assert int(monthly[0]["stck_hgpr"]) == max(int(r["stck_hgpr"]) for r in february)
    weekly = frozen_sim.kis_daily("20250303", "20250314", "W").json()["output2"]
    # 3 March 2025 is a KRX holiday (the substitute for 1 March), so that week starts on the 4th.
    assert [row["stck_bsop_date"] for row in weekly] == ["20250310", "20250304"]
    yearly = frozen_sim.kis_daily("20250101", "20250321", "Y").json()["output2"]
    assert len(yearly) == 1
    recent = frozen_sim.kis_get(
        "inquire-daily-price",
        "FHKST01010400",
        FID_COND_MRKT_DIV_CODE="J",
        FID_INPUT_ISCD="005930",
        FID_PERIOD_DIV_CODE="D",
        FID_ORG_ADJ_PRC="1",
    ).json()["output"]
    assert len(recent) == 30
    assert recent[0]["stck_bsop_date"] == "20250321"
    weeks = frozen_sim.kis_get(
        "inquire-daily-price",
        "FHKST01010400",
        FID_COND_MRKT_DIV_CODE="J",
        FID_INPUT_ISCD="005930",
        FID_PERIOD_DIV_CODE="W",
        FID_ORG_ADJ_PRC="1",
    ).json()["output"]
    assert weeks[0]["stck_bsop_date"] == "20250317"
    assert _all_strings(weeks)


def test_validation_errors(frozen_sim: SimHarness) -> None:
    wrong_tr = frozen_sim.client.get(
        f"{QUOTES}/inquire-price",
        params={"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"},
        headers=frozen_sim.kis_headers("FHKST01010400"),
    )
    assert wrong_tr.status_code == 500
    assert wrong_tr.json()["msg_cd"] == "EGW00101"
    missing = frozen_sim.kis_get("inquire-price", "FHKST01010100", FID_COND_MRKT_DIV_CODE="J")
    assert missing.status_code == 200
    assert missing.json() == {
        "rt_cd": "2",
        "msg_cd": "OPSQ2001",
        "msg1": "ERROR : INPUT_FIELD_NAME FID_INPUT_ISCD",
    }
    bad_code = frozen_sim.kis_get(
        "inquire-price", "FHKST01010100", FID_COND_MRKT_DIV_CODE="J", FID_INPUT_ISCD="5930"
    )
    assert bad_code.json()["msg1"] == "ERROR INVALID FID_INPUT_ISCD"
    bad_market = frozen_sim.kis_get(
        "inquire-price", "FHKST01010100", FID_COND_MRKT_DIV_CODE="X", FID_INPUT_ISCD="005930"
    )
    assert bad_market.json()["msg1"] == "ERROR INVALID FID_COND_MRKT_DIV_CODE"
    assert frozen_sim.kis_minutes("99").json()["msg1"] == "ERROR INVALID FID_INPUT_HOUR_1"
    assert frozen_sim.kis_daily("2025-01-01", "20250321").json()["msg1"] == (
        "ERROR INVALID FID_INPUT_DATE_1"
    )
    lower_case = frozen_sim.client.get(
        f"{QUOTES}/inquire-price",
        params={"fid_cond_mrkt_div_code": "J", "fid_input_iscd": "005930"},
        headers={k.upper(): v for k, v in frozen_sim.kis_headers("FHKST01010100").items()},
    )
    assert lower_case.json()["rt_cd"] == "0"


def test_auth_errors(frozen_sim: SimHarness) -> None:
    headers = frozen_sim.kis_headers("FHKST01010100")
    url = f"{QUOTES}/inquire-price?FID_COND_MRKT_DIV_CODE=J&FID_INPUT_ISCD=005930"

    def call(**changes: str) -> tuple[int, dict[str, str]]:
        response = frozen_sim.client.get(url, headers={**headers, **changes})
        return response.status_code, response.json()

    assert call(authorization="Bearer nope") == (
        500,
        {"rt_cd": "1", "msg_cd": "EGW00121", "msg1": "유효하지 않은 token 입니다."},
    )
    assert call(authorization="")[1]["msg_cd"] == "EGW00121"
    assert call(appkey="")[1]["msg_cd"] == "EGW00103"
    assert call(appkey="PS" + "z" * 34)[1]["msg_cd"] == "EGW00121"
    assert call(appsecret="x" * 180)[1]["msg_cd"] == "EGW00105"
    frozen_sim.server.clock.advance(86400)
    assert call() == (
        500,
        {"rt_cd": "1", "msg_cd": "EGW00123", "msg1": "기간이 만료된 token 입니다."},
    )


def test_configured_apps_only(
    make_sim: Callable[..., SimHarness], harness_defaults: Defaults
) -> None:
    appkey, secret = harness_defaults.kis_appkey, harness_defaults.kis_secret
    frozen_sim = make_sim(apps={appkey: secret})
    assert frozen_sim.kis_issue().status_code == 200
    unknown = frozen_sim.kis_issue(appkey="PS" + "x" * 34)
    assert unknown.status_code == 403
    assert unknown.json()["error_code"] == "EGW00103"
    wrong = frozen_sim.kis_issue(secret=secret + "\n")
    assert wrong.json() == {
        "error_code": "EGW00105",
        "error_description": "유효하지 않은 AppSecret입니다.",
    }
    empty = frozen_sim.client.post("/oauth2/tokenP", json={"grant_type": "client_credentials"})
    assert empty.json()["error_code"] == "EGW00103"
    no_grant = frozen_sim.client.post(
        "/oauth2/tokenP", json={"appkey": appkey, "appsecret": secret}
    )
    assert no_grant.status_code == 403


def test_cash_order_current_legacy_and_vps_ids(frozen_sim: SimHarness) -> None:
    body = {
        "CANO": "12345678",
        "ACNT_PRDT_CD": "01",
        "PDNO": "005930",
        "ORD_DVSN": "00",
        "ORD_QTY": "10",
        "ORD_UNPR": "61800",
    }
    numbers = []
    for tr_id in ("TTTC0012U", "TTTC0011U", "TTTC0802U", "VTTC0801U"):
        response = frozen_sim.client.post(
            "/uapi/domestic-stock/v1/trading/order-cash",
            json=body,
            headers=frozen_sim.kis_headers(tr_id),
        )
        assert response.status_code == 200, response.text
        data = response.json()
        assert list(data) == ["output", "rt_cd", "msg_cd", "msg1"]
        assert data["msg_cd"] == "APBK0013"
        assert set(data["output"]) == {"KRX_FWDG_ORD_ORGNO", "ODNO", "ORD_TMD"}
        assert data["output"]["ORD_TMD"] == "130030"
        numbers.append(data["output"]["ODNO"])
    assert len(set(numbers)) == 4
    orders = frozen_sim.client.get("/__sim/orders").json()
    assert [o["side"] for o in orders] == ["buy", "sell", "buy", "sell"]
    assert "12345678" not in json.dumps(orders)
    lower = frozen_sim.client.post(
        "/uapi/domestic-stock/v1/trading/order-cash",
        json={k.lower(): v for k, v in body.items()},
        headers=frozen_sim.kis_headers("TTTC0012U"),
    )
    assert lower.json()["msg1"] == "ERROR : INPUT_FIELD_NAME CANO"
    bad_qty = frozen_sim.client.post(
        "/uapi/domestic-stock/v1/trading/order-cash",
        json={**body, "ORD_QTY": "0"},
        headers=frozen_sim.kis_headers("TTTC0012U"),
    )
    assert bad_qty.json()["msg1"] == "ERROR INVALID ORD_QTY"
    wrong_tr = frozen_sim.client.post(
        "/uapi/domestic-stock/v1/trading/order-cash",
        json=body,
        headers=frozen_sim.kis_headers("FHKST01010100"),
    )
    assert wrong_tr.json()["msg_cd"] == "EGW00101"
    not_json = frozen_sim.client.post(
        "/uapi/domestic-stock/v1/trading/order-cash",
        content=b"[1]",
        headers=frozen_sim.kis_headers("TTTC0012U"),
    )
    assert not_json.json()["msg1"] == "ERROR INVALID BODY"


def test_hashkey_approval_and_revoke(frozen_sim: SimHarness, harness_defaults: Defaults) -> None:
    appkey, secret = harness_defaults.kis_appkey, harness_defaults.kis_secret
    order = {"CANO": "12345678", "PDNO": "005930"}
    raw = json.dumps(order).encode()
    hashed = frozen_sim.client.post(
        "/uapi/hashkey", content=raw, headers={"appkey": appkey, "appsecret": secret}
    )
    assert hashed.json() == {"BODY": order, "HASH": hashlib.sha256(raw).hexdigest()}
    assert frozen_sim.client.post("/uapi/hashkey", json=order).json()["msg_cd"] == "EGW00103"
    no_secret = frozen_sim.client.post("/uapi/hashkey", json=order, headers={"appkey": appkey})
    assert no_secret.json()["msg_cd"] == "EGW00105"
    approval = frozen_sim.client.post(
        "/oauth2/Approval",
        json={"grant_type": "client_credentials", "appkey": appkey, "secretkey": secret},
    ).json()
    assert len(approval["approval_key"]) == 36
    bad_approval = frozen_sim.client.post("/oauth2/Approval", json={"appkey": appkey})
    assert bad_approval.status_code == 403
    no_secret_approval = frozen_sim.client.post(
        "/oauth2/Approval", json={"grant_type": "client_credentials", "appkey": appkey}
    )
    assert no_secret_approval.json()["error_code"] == "EGW00105"
    token = frozen_sim.kis_token()
    revoke = {"appkey": appkey, "appsecret": secret, "token": token}
    assert frozen_sim.client.post("/oauth2/revokeP", json=revoke).json() == {
        "code": 200,
        "message": "접근토큰 폐기에 성공하였습니다",
    }
    assert frozen_sim.kis_price().json()["msg_cd"] == "EGW00121"
    again = frozen_sim.client.post("/oauth2/revokeP", json={**revoke, "token": "x"})
    assert again.json()["error_code"] == "EGW00121"
    assert frozen_sim.client.post("/oauth2/revokeP", json={}).status_code == 403


def test_weekend_and_pre_open_show_the_last_session(frozen_sim: SimHarness) -> None:
    friday_close = frozen_sim.kis_minutes("153000").json()["output2"]
    frozen_sim.server.clock.set(datetime(2025, 3, 22, 11, 0, tzinfo=KST))
    assert frozen_sim.kis_minutes("110000").json()["output2"][0]["stck_cntg_hour"] == "110000"
    weekend = frozen_sim.kis_minutes("235959").json()["output2"]
    assert weekend[0]["stck_bsop_date"] == "20250321"
    assert weekend[0]["stck_cntg_hour"] == "153000"
    assert friday_close[0]["stck_cntg_hour"] == "130000"
    frozen_sim.server.clock.set(datetime(2025, 3, 24, 8, 30, tzinfo=KST))
    frozen_sim.forget_tokens()  # Friday's token has expired by Monday
    price = frozen_sim.kis_price().json()["output"]
    assert price["stck_prpr"] == weekend[0]["stck_prpr"]
    assert friday_close[0]["stck_bsop_date"] == "20250321"
