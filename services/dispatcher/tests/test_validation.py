"""validate(): the dispatcher checks a request against the configured catalog (the built-in one
extended by apihub.toml), not a module-global one."""

from __future__ import annotations

from pathlib import Path

import pytest

from apihub_core import Keys, Provider, RequestSubmitted
from apihub_dispatcher._validation import Rejection, validate
from apihub_runtime import Settings, load_settings

KEYS = Keys("apihub")
PRICE = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}

EXTENSION = """\
[[catalog.tr]]
provider = "KIS"
tr_id = "FHKST01010100"
method = "GET"
path = "/uapi/domestic-stock/v1/quotations/inquire-price"
required = ["FID_COND_MRKT_DIV_CODE", "FID_INPUT_ISCD", "FID_EXTRA"]
family = "quotations"

[[catalog.tr]]
provider = "KIS"
tr_id = "FHKST01010900"
method = "GET"
path = "/uapi/domestic-stock/v1/quotations/inquire-investor"
required = ["FID_COND_MRKT_DIV_CODE", "FID_INPUT_ISCD"]
family = "quotations"

[[catalog.tr]]
provider = "KIS"
tr_id = "TTTC0013U"
method = "POST"
path = "/uapi/domestic-stock/v1/trading/order-rvsecncl"
kind = "order"
family = "order"
"""


def request(tr_id: str, params: dict[str, str]) -> RequestSubmitted:
    return RequestSubmitted(request_id="r1", provider="KIS", tr_id=tr_id, params=params)


@pytest.fixture
def extended(tmp_path: Path) -> Settings:
    path = tmp_path / "apihub.toml"
    path.write_text(EXTENSION, encoding="utf-8")
    return load_settings(env={}, config_path=path)


def test_the_built_in_catalog_without_an_extension() -> None:
    settings = load_settings(env={})
    valid = validate(request("FHKST01010100", PRICE), settings, KEYS)
    assert (valid.provider, valid.spec.tr_id, valid.once) == (Provider.KIS, "FHKST01010100", False)
    with pytest.raises(Rejection) as caught:
        validate(request("FHKST01010900", PRICE), settings, KEYS)
    assert caught.value.reason == "unknown_tr"


def test_an_overriding_definition_is_the_one_checked(extended: Settings) -> None:
    with pytest.raises(Rejection) as caught:
        validate(request("FHKST01010100", PRICE), extended, KEYS)
    assert caught.value.reason == "missing_params"
    assert "FID_EXTRA" in caught.value.detail
    valid = validate(request("FHKST01010100", {**PRICE, "FID_EXTRA": "1"}), extended, KEYS)
    assert valid.spec.source.endswith("apihub.toml:1")


def test_an_added_tr_is_accepted_and_an_added_order_is_sent_once(extended: Settings) -> None:
    assert validate(request("FHKST01010900", PRICE), extended, KEYS).spec.family == "quotations"
    order = validate(request("VTTC0013U", {}), extended, KEYS)
    assert order.spec.tr_id == "TTTC0013U"
    assert order.once
