"""Client helpers for the simulator tests (imported by the tests through conftest's path)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from apihub_broker_sim import KST, ThreadedSimServer

NOW = datetime(2025, 3, 21, 13, 0, 30, tzinfo=KST)  # a Friday, mid-session
APPKEY = "PS" + "a" * 34
SECRET = "s" * 180
KW_APPKEY = "KW" + "b" * 34
KW_SECRET = "k" * 40
QUOTES = "/uapi/domestic-stock/v1/quotations"


class Harness:
    """A started simulator and an httpx client bound to it."""

    def __init__(self, server: ThreadedSimServer) -> None:
        self.server = server
        self.client = httpx.Client(base_url=server.url, timeout=10.0)
        self._kis_token: str | None = None
        self._kiwoom_token: str | None = None

    def forget_tokens(self) -> None:
        """Make the helpers fetch fresh tokens (e.g. after moving the clock a day)."""
        self._kis_token = None
        self._kiwoom_token = None

    # --- KIS ---
    def kis_issue(self, appkey: str = APPKEY, secret: str = SECRET) -> httpx.Response:
        body = {"grant_type": "client_credentials", "appkey": appkey, "appsecret": secret}
        return self.client.post("/oauth2/tokenP", json=body)

    def kis_token(self) -> str:
        if self._kis_token is None:
            response = self.kis_issue()
            assert response.status_code == 200, response.text
            self._kis_token = response.json()["access_token"]
        return self._kis_token

    def kis_headers(self, tr_id: str, token: str | None = None) -> dict[str, str]:
        return {
            "content-type": "application/json; charset=utf-8",
            "authorization": f"Bearer {token or self.kis_token()}",
            "appkey": APPKEY,
            "appsecret": SECRET,
            "tr_id": tr_id,
            "custtype": "P",
        }

    def kis_get(self, name: str, tr_id: str, **params: str) -> httpx.Response:
        return self.client.get(f"{QUOTES}/{name}", params=params, headers=self.kis_headers(tr_id))

    def kis_minutes(self, hour: str, code: str = "005930") -> httpx.Response:
        return self.kis_get(
            "inquire-time-itemchartprice",
            "FHKST03010200",
            FID_ETC_CLS_CODE="",
            FID_COND_MRKT_DIV_CODE="J",
            FID_INPUT_ISCD=code,
            FID_INPUT_HOUR_1=hour,
            FID_PW_DATA_INCU_YN="Y",
        )

    def kis_daily(self, first: str, last: str, period: str = "D") -> httpx.Response:
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
        return self.kis_get(
            "inquire-price", "FHKST01010100", FID_COND_MRKT_DIV_CODE="J", FID_INPUT_ISCD=code
        )

    # --- Kiwoom ---
    def kiwoom_issue(self, appkey: str = KW_APPKEY, secret: str = KW_SECRET) -> httpx.Response:
        body = {"grant_type": "client_credentials", "appkey": appkey, "secretkey": secret}
        return self.client.post("/oauth2/token", json=body)

    def kiwoom_token(self) -> str:
        if self._kiwoom_token is None:
            response = self.kiwoom_issue()
            assert response.json()["return_code"] == 0, response.text
            self._kiwoom_token = response.json()["token"]
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
