"""Fixtures of the simulator's own tests: fresh simulators frozen at a known instant, each with
an HTTP client that speaks KIS and Kiwoom.

The plugin's ``sim`` (one running simulator shared by the session) keeps its meaning; these
fixtures start a simulator per use instead, so a test may move its clock and choose its settings.
Tests reach the helpers through the fixtures only (nothing here is imported by a test).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from apihub_broker_sim import KST, SimConfig, ThreadedSimServer

ABSENT = "<absent>"
"""A parameter value the request helpers leave out of the request altogether."""


@dataclass(frozen=True)
class HarnessDefaults:
    """The instant a harness's simulator is frozen at and the credentials the harness signs in
    with (the simulator accepts any well-formed appkey unless it is started with ``apps``)."""

    start_time: datetime = datetime(2025, 3, 21, 13, 0, 30, tzinfo=KST)  # a Friday, mid-session
    kis_appkey: str = "PS" + "a" * 34
    kis_secret: str = "s" * 180
    kiwoom_appkey: str = "KW" + "b" * 34
    kiwoom_secret: str = "k" * 40


class SimHarness:
    """A started simulator (``server``), an httpx client bound to it (``client``), and KIS and
    Kiwoom helpers that sign in with ``defaults``' credentials and keep their tokens."""

    QUOTES = "/uapi/domestic-stock/v1/quotations"
    ABSENT = ABSENT

    def __init__(
        self, server: ThreadedSimServer, client: httpx.Client, defaults: HarnessDefaults
    ) -> None:
        self.server = server
        self.client = client
        self.defaults = defaults
        self._kis_token: str | None = None
        self._kiwoom_token: str | None = None

    def forget_tokens(self) -> None:
        """Make the helpers fetch fresh tokens (e.g. after moving the clock a day)."""
        self._kis_token = None
        self._kiwoom_token = None

    # --- KIS ---
    def kis_issue(self, appkey: str | None = None, secret: str | None = None) -> httpx.Response:
        """``POST /oauth2/tokenP``, by default with the harness's credentials."""
        body = {
            "grant_type": "client_credentials",
            "appkey": self.defaults.kis_appkey if appkey is None else appkey,
            "appsecret": self.defaults.kis_secret if secret is None else secret,
        }
        return self.client.post("/oauth2/tokenP", json=body)

    def kis_token(self) -> str:
        """The harness's KIS token, issued on first use."""
        if self._kis_token is None:
            response = self.kis_issue()
            assert response.status_code == 200, response.text
            self._kis_token = str(response.json()["access_token"])
        return self._kis_token

    def kis_headers(self, tr_id: str, token: str | None = None) -> dict[str, str]:
        """The headers of a KIS call."""
        return {
            "content-type": "application/json; charset=utf-8",
            "authorization": f"Bearer {token or self.kis_token()}",
            "appkey": self.defaults.kis_appkey,
            "appsecret": self.defaults.kis_secret,
            "tr_id": tr_id,
            "custtype": "P",
        }

    def kis_get(self, name: str, tr_id: str, **params: str) -> httpx.Response:
        """A KIS quotations GET."""
        return self.client.get(
            f"{self.QUOTES}/{name}", params=params, headers=self.kis_headers(tr_id)
        )

    def kis_minutes(self, hour: str, code: str = "005930") -> httpx.Response:
        """The KIS minute chart up to ``hour`` (HHMMSS)."""
        return self.kis_get(
            "inquire-time-itemchartprice",
            "FHKST03010200",
            FID_ETC_CLS_CODE="",
            FID_COND_MRKT_DIV_CODE="J",
            FID_INPUT_ISCD=code,
            FID_INPUT_HOUR_1=hour,
            FID_PW_DATA_INCU_YN="Y",
        )

    def kis_day_minutes(
        self, day: str, hour: str, code: str = "005930", **overrides: str
    ) -> httpx.Response:
        """FHKST03010230: the minute bars of ``day`` (YYYYMMDD) up to ``hour`` (HHMMSS), with
        every parameter the KIS examples send; ``overrides`` replace parameters or add others,
        and the value :attr:`ABSENT` leaves a parameter out."""
        params = {
            "FID_COND_MRKT_DIV_CODE": "J",
            "FID_INPUT_ISCD": code,
            "FID_INPUT_HOUR_1": hour,
            "FID_INPUT_DATE_1": day,
            "FID_PW_DATA_INCU_YN": "Y",
            "FID_FAKE_TICK_INCU_YN": "",
            **overrides,
        }
        sent = {name: value for name, value in params.items() if value != ABSENT}
        return self.kis_get("inquire-time-dailychartprice", "FHKST03010230", **sent)

    def kis_daily(self, first: str, last: str, period: str = "D") -> httpx.Response:
        """The KIS period chart between two YYYYMMDD dates."""
        return self.kis_get(
            "inquire-daily-itemchartprice",
            "FHKST03010100",
            FID_COND_MRKT_DIV_CODE="J",
            FID_INPUT_ISCD="005930",
            FID_INPUT_DATE_1=first,
            FID_INPUT_DATE_2=last,
            FID_PERIOD_DIV_CODE=period,
            FID_ORG_ADJ_PRC="0",
        )

    def kis_price(self, code: str = "005930") -> httpx.Response:
        """The KIS current price."""
        return self.kis_get(
            "inquire-price", "FHKST01010100", FID_COND_MRKT_DIV_CODE="J", FID_INPUT_ISCD=code
        )

    # --- KIS account helpers ---
    TRADING = "/uapi/domestic-stock/v1/trading"

    @property
    def kis_account(self) -> dict[str, str]:
        """The KIS account the helpers trade on."""
        return {"CANO": "12345678", "ACNT_PRDT_CD": "01"}

    def kis_trading_get(
        self, name: str, tr_id: str, *, tr_cont: str = "", **params: str
    ) -> httpx.Response:
        """A KIS trading GET with the harness's ``CANO``/``ACNT_PRDT_CD`` (``params`` may
        override them); ``tr_cont`` is the request header (``N`` asks for the next page)."""
        query = {**self.kis_account, **params}
        headers = {**self.kis_headers(tr_id), "tr_cont": tr_cont}
        return self.client.get(f"{self.TRADING}/{name}", params=query, headers=headers)

    def kis_trading_post(self, name: str, tr_id: str, body: dict[str, Any]) -> httpx.Response:
        """A KIS trading POST with the harness's account merged into ``body``."""
        return self.client.post(
            f"{self.TRADING}/{name}",
            json={**self.kis_account, **body},
            headers=self.kis_headers(tr_id),
        )

    def kis_order(
        self, tr_id: str, code: str, quantity: int, price: int = 0, *, market: bool = False
    ) -> httpx.Response:
        """A cash order (``TTTC0012U`` buy, ``TTTC0011U`` sell...), a limit unless ``market``."""
        body = {
            "PDNO": code,
            "ORD_DVSN": "01" if market else "00",
            "ORD_QTY": str(quantity),
            "ORD_UNPR": str(price),
        }
        return self.kis_trading_post("order-cash", tr_id, body)

    def kis_revise(
        self, original: str, *, cancel: bool, quantity: int = 0, price: int = 0, tr_id: str = ""
    ) -> httpx.Response:
        """Modify (``cancel=False``, to a limit at ``price``) or cancel ``quantity`` of an
        order (0: its whole remainder) with ``TTTC0013U`` unless ``tr_id`` says otherwise."""
        body = {
            "KRX_FWDG_ORD_ORGNO": "91252",
            "ORGN_ODNO": original,
            "ORD_DVSN": "00",
            "RVSE_CNCL_DVSN_CD": "02" if cancel else "01",
            "ORD_QTY": str(quantity),
            "ORD_UNPR": str(price),
            "QTY_ALL_ORD_YN": "N" if quantity else "Y",
            "EXCG_ID_DVSN_CD": "KRX",
        }
        return self.kis_trading_post("order-rvsecncl", tr_id or "TTTC0013U", body)

    def kis_walk(
        self, path: str, tr_id: str, params: dict[str, str], *, suffix: str = "100"
    ) -> list[httpx.Response]:
        """Every page of a ``tr_cont``-paged KIS GET of ``path``, following the body cursors
        (``ctx_area_fk``/``ctx_area_nk`` + ``suffix``); asserts each page answers ``rt_cd 0``."""
        fk, nk = f"CTX_AREA_FK{suffix}", f"CTX_AREA_NK{suffix}"
        cursors = {fk: "", nk: ""}
        pages: list[httpx.Response] = []
        tr_cont = ""
        for _ in range(100):
            headers = {**self.kis_headers(tr_id), "tr_cont": tr_cont}
            response = self.client.get(path, params={**params, **cursors}, headers=headers)
            assert response.json()["rt_cd"] == "0", response.text
            pages.append(response)
            if response.headers["tr_cont"] not in ("M", "F"):
                return pages
            body = response.json()
            cursors = {fk: body[fk.lower()], nk: body[nk.lower()]}
            tr_cont = "N"
        raise AssertionError("paging did not end")

    # --- Kiwoom ---
    def kiwoom_issue(self, appkey: str | None = None, secret: str | None = None) -> httpx.Response:
        """``POST /oauth2/token``, by default with the harness's credentials."""
        body = {
            "grant_type": "client_credentials",
            "appkey": self.defaults.kiwoom_appkey if appkey is None else appkey,
            "secretkey": self.defaults.kiwoom_secret if secret is None else secret,
        }
        return self.client.post("/oauth2/token", json=body)

    def kiwoom_token(self) -> str:
        """The harness's Kiwoom token, issued on first use."""
        if self._kiwoom_token is None:
            response = self.kiwoom_issue()
            assert response.json()["return_code"] == 0, response.text
            self._kiwoom_token = str(response.json()["token"])
        return self._kiwoom_token

    def kiwoom(
        self,
        path: str,
        api_id: str,
        body: dict[str, Any],
        *,
        token: str | None = None,
        next_key: str | None = None,
    ) -> httpx.Response:
        """A Kiwoom POST (with ``next_key``: the continuation of a paged answer)."""
        headers = {
            "content-type": "application/json;charset=UTF-8",
            "api-id": api_id,
            "authorization": f"Bearer {token or self.kiwoom_token()}",
            "cont-yn": "Y" if next_key else "N",
            "next-key": next_key or "",
        }
        return self.client.post(path, json=body, headers=headers)

    def kiwoom_walk(self, api_id: str, body: dict[str, Any], list_key: str) -> list[list[Any]]:
        """Follow cont-yn/next-key to the end; returns the pages."""
        pages: list[list[Any]] = []
        next_key: str | None = None
        for _ in range(100):
            response = self.kiwoom("/api/dostk/chart", api_id, body, next_key=next_key)
            assert response.json()["return_code"] == 0, response.text
            pages.append(response.json()[list_key])
            if response.headers["cont-yn"] != "Y":
                return pages
            next_key = response.headers["next-key"]
            assert next_key
        raise AssertionError("paging did not end")

    # --- Kiwoom account helpers ---
    KIWOOM_ORDER = "/api/dostk/ordr"
    KIWOOM_ACCOUNT = "/api/dostk/acnt"

    def kiwoom_order(self, api_id: str, **fields: str) -> dict[str, Any]:
        """A kt10000-kt10003 call; returns the JSON answer."""
        return dict(self.kiwoom(self.KIWOOM_ORDER, api_id, fields).json())

    def kiwoom_buy(
        self, quantity: int, price: int | None = None, code: str = "005930", side: str = "buy"
    ) -> dict[str, Any]:
        """kt10000 (kt10001 with ``side="sell"``) on KRX: a limit order at ``price``, a market
        order without one."""
        return self.kiwoom_order(
            "kt10000" if side == "buy" else "kt10001",
            dmst_stex_tp="KRX",
            stk_cd=code,
            ord_qty=str(quantity),
            ord_uv="" if price is None else str(price),
            trde_tp="3" if price is None else "0",
        )

    def kiwoom_account(
        self, api_id: str, body: dict[str, Any], next_key: str | None = None
    ) -> dict[str, Any]:
        """An ``/api/dostk/acnt`` inquiry (kt00018, ka10075, ka10076); returns the JSON answer."""
        return dict(self.kiwoom(self.KIWOOM_ACCOUNT, api_id, body, next_key=next_key).json())

    def kiwoom_account_walk(
        self, api_id: str, body: dict[str, Any], list_key: str
    ) -> list[list[dict[str, str]]]:
        """Follow an account inquiry's cont-yn/next-key to the end; returns the pages."""
        pages: list[list[dict[str, str]]] = []
        next_key: str | None = None
        for _ in range(100):
            response = self.kiwoom(self.KIWOOM_ACCOUNT, api_id, body, next_key=next_key)
            assert response.json()["return_code"] == 0, response.text
            pages.append(response.json()[list_key])
            if response.headers["cont-yn"] != "Y":
                assert response.headers["next-key"] == ""
                return pages
            next_key = response.headers["next-key"]
            assert next_key
        raise AssertionError("paging did not end")

    def kiwoom_clock(self, *, now: str | None = None, advance_s: float | None = None) -> None:
        """Set (``now``, ISO 8601, frozen) or move (``advance_s``) the simulated clock."""
        body: dict[str, Any] = {}
        if now is not None:
            body["now"] = now
        if advance_s is not None:
            body["advance_s"] = advance_s
        assert self.client.post("/__sim/clock", json=body).status_code == 200


@pytest.fixture(scope="session")
def harness_defaults() -> HarnessDefaults:
    """The start instant and credentials every :class:`SimHarness` uses."""
    return HarnessDefaults()


@pytest.fixture
def make_sim(harness_defaults: HarnessDefaults) -> Iterator[Callable[..., SimHarness]]:
    """Start simulators (``SimConfig`` fields as keyword overrides, and ``state_file``; by default
    frozen at ``harness_defaults.start_time``). Every one started is stopped after the test,
    failed or not."""
    with contextlib.ExitStack() as started:

        def make(*, state_file: Path | None = None, **overrides: Any) -> SimHarness:
            settings: dict[str, Any] = {"start_time": harness_defaults.start_time, "frozen": True}
            settings.update(overrides)
            server = started.enter_context(
                ThreadedSimServer(SimConfig(**settings), state_file=state_file)
            )
            client = started.enter_context(httpx.Client(base_url=server.url, timeout=10.0))
            return SimHarness(server, client, harness_defaults)

        yield make


@pytest.fixture
def frozen_sim(make_sim: Callable[..., SimHarness]) -> SimHarness:
    """A fresh simulator with default settings, frozen at Friday 2025-03-21 13:00:30 KST."""
    return make_sim()
