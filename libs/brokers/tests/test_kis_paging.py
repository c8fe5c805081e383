"""KIS continuation in one shape: body cursors, date windows and hour windows become
``has_more``/``next_key``, and a ``next_key`` becomes the parameters of the next page."""

from __future__ import annotations

import json
from datetime import date, timedelta

import httpx
import pytest

from apihub_brokers import KisClient, TrSpec, check_next_key, lookup_tr
from apihub_brokers._kis_paging import (
    DATE_WINDOW_ROWS,
    HOUR_WINDOW_ROWS,
    apply_next_key,
    continuation,
)
from apihub_core import Provider, RequestInvalid
from apihub_runtime import AccessToken, AccountConfig

pytestmark = pytest.mark.anyio


def spec(tr_id: str) -> TrSpec:
    found = lookup_tr(Provider.KIS, tr_id)
    assert found is not None
    return found


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_body_cursors_travel_as_one_opaque_key_and_come_back_as_parameters() -> None:
    orders = spec("TTTC0081R")
    reply = body(ctx_area_fk100="FK  cursor/1", ctx_area_nk100="NK+2", output1=[])
    more, key = continuation(orders, {}, "M", reply)
    assert more
    assert "FK" not in key  # opaque: nothing a shell would mangle
    params = apply_next_key(orders, {"CANO": "1", "ctx_area_fk100": ""}, key)
    # A cursor already present under another case is overwritten, not duplicated.
    assert params == {"CANO": "1", "ctx_area_fk100": "FK  cursor/1", "CTX_AREA_NK100": "NK+2"}
    assert continuation(orders, {}, "D", reply) == (False, "")
    assert continuation(orders, {}, "F", reply)[0]


def test_a_key_that_is_not_a_cursor_of_this_tr_is_refused_with_a_reason() -> None:
    orders = spec("TTTC0081R")
    for bad in ("garbage", "ctx.!!!", "ctx.bm90IGpzb24", "ctx." + "W10"):  # not json; []
        with pytest.raises(RequestInvalid, match="not a continuation TTTC0081R returned"):
            check_next_key(orders, bad)
    check_next_key(spec("FHKST01010100"), "")  # nothing to check
    kiwoom = lookup_tr(Provider.KIWOOM, "ka10081")
    assert kiwoom is not None
    check_next_key(kiwoom, "anything: Kiwoom's keys are the broker's own")


def test_a_holiday_check_pages_with_cursors_without_the_100() -> None:
    holiday = spec("CTCA0903R")
    more, key = continuation(holiday, {}, "M", body(ctx_area_fk="A", ctx_area_nk="B"))
    assert more
    assert apply_next_key(holiday, {"BASS_DT": "20250101"}, key) == {
        "BASS_DT": "20250101",
        "CTX_AREA_FK": "A",
        "CTX_AREA_NK": "B",
    }


def _daily(days: list[str]) -> bytes:
    return body(output1={}, output2=[{"stck_bsop_date": d} for d in days])


def test_a_date_window_moves_its_upper_bound_to_the_day_before_the_oldest_bar() -> None:
    chart = spec("FHKST03010100")
    params = {"FID_INPUT_DATE_1": "20240101", "FID_INPUT_DATE_2": "20250321"}
    newest = date(2025, 3, 21)
    full = [(newest - timedelta(days=i)).strftime("%Y%m%d") for i in range(DATE_WINDOW_ROWS)]
    assert full[-1] == "20241212"
    more, key = continuation(chart, params, "", _daily(full))
    assert (more, key) == (True, "20241211")
    assert apply_next_key(chart, params, key)["FID_INPUT_DATE_2"] == "20241211"
    # A short page is the last one; so is a full page that reached the lower bound.
    assert continuation(chart, params, "", _daily(full[:99])) == (False, "")
    assert continuation(chart, {**params, "FID_INPUT_DATE_1": "20241212"}, "", _daily(full)) == (
        False,
        "",
    )
    assert continuation(chart, params, "", body(output2=[{"stck_bsop_date": "x"}] * 100)) == (
        False,
        "",
    )
    with pytest.raises(RequestInvalid, match="not a YYYYMMDD date"):
        check_next_key(chart, "2025-01-01")


def test_an_hour_window_asks_up_to_one_second_before_the_oldest_bar() -> None:
    chart = spec("FHKST03010200")
    minutes = [f"{15 - (i // 60)}{59 - i % 60:02d}00" for i in range(HOUR_WINDOW_ROWS)]
    rows = body(output2=[{"stck_cntg_hour": m} for m in minutes])  # 155900 .. 153000
    assert continuation(chart, {}, "", rows) == (True, "152959")
    assert apply_next_key(chart, {"FID_INPUT_HOUR_1": "160000"}, "152959") == {
        "FID_INPUT_HOUR_1": "152959"
    }
    opening = body(output2=[{"stck_cntg_hour": "090000"}] * HOUR_WINDOW_ROWS)
    assert continuation(chart, {}, "", opening) == (False, "")
    assert continuation(chart, {}, "", b"not json") == (False, "")
    with pytest.raises(RequestInvalid, match="not an HHMMSS time"):
        check_next_key(chart, "256100")


async def test_the_client_sends_tr_cont_n_and_the_cursors_of_a_next_key(
    kis: KisClient, broker, kis_account: AccountConfig, token: AccessToken
) -> None:
    orders = spec("TTTC0081R")
    broker.reply = lambda _: httpx.Response(
        200,
        content=body(rt_cd="0", ctx_area_fk100="F1", ctx_area_nk100="N1", output1=[]),
        headers={"tr_cont": "M"},
    )
    first = await kis.call(orders, {"CANO": "1"}, account=kis_account, token=token)
    sent = broker.last
    assert "tr_cont" not in sent.headers
    # Optional parameters go out blank on the first page, cursors included.
    assert sent.url.params["CTX_AREA_FK100"] == ""
    assert sent.url.params["ODNO"] == ""
    assert first.has_more
    await kis.call(orders, {"CANO": "1"}, account=kis_account, token=token, next_key=first.next_key)
    sent = broker.last
    assert sent.headers["tr_cont"] == "N"
    assert (sent.url.params["CTX_AREA_FK100"], sent.url.params["CTX_AREA_NK100"]) == ("F1", "N1")
