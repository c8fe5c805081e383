"""validate(): the dispatcher checks a request against the configured catalog (the built-in one
extended by apihub.toml), not a module-global one."""

from __future__ import annotations

from pathlib import Path

import pytest

from apihub_core import ConfigurationError, Keys, Passthrough, Provider, RequestSubmitted
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


def passthrough(
    tr_id: str,
    *,
    method: str = "GET",
    path: str = "/uapi/domestic-stock/v1/quotations/inquire-investor",
    kind: str = "query",
    provider: str = "KIS",
) -> RequestSubmitted:
    return RequestSubmitted(
        request_id="r1",
        provider=provider,
        tr_id=tr_id,
        params=PRICE,
        passthrough=Passthrough(method=method, path=path, kind=kind),  # type: ignore[arg-type]
    )


def test_a_pass_through_reaches_an_uncatalogued_tr_governed_by_its_declared_kind() -> None:
    settings = load_settings(env={})
    query = validate(passthrough("FHKST01010900"), settings, KEYS)
    assert (query.spec.method, query.spec.path, query.spec.required) == (
        "GET",
        "/uapi/domestic-stock/v1/quotations/inquire-investor",
        (),
    )
    assert (query.once, query.spec.family, query.spec.paging) == (False, "passthrough", "tr_cont")
    order = validate(
        passthrough("TTTC9999U", method="POST", path="/uapi/x/order", kind="order"), settings, KEYS
    )
    assert (order.once, order.spec.family) == (True, "order")
    assert order.spec.wire_tr_id(virtual=True) == "VTTC9999U"
    kiwoom = validate(
        passthrough("kt00004", method="POST", path="/api/dostk/acnt", provider="KIWOOM"),
        settings,
        KEYS,
    )
    assert kiwoom.spec.paging == "cont_key"


def test_a_pass_through_may_not_redescribe_a_catalogued_tr() -> None:
    settings = load_settings(env={})
    agreeing = passthrough("FHKST01010100", path="/uapi/domestic-stock/v1/quotations/inquire-price")
    assert validate(agreeing, settings, KEYS).spec.family == "quotations"
    # Declaring an order a query would let the hub retry it: refused, naming the catalog's view.
    sneaky = passthrough(
        "TTTC0012U", method="POST", path="/uapi/domestic-stock/v1/trading/order-cash"
    )
    with pytest.raises(Rejection) as caught:
        validate(sneaky, settings, KEYS)
    assert caught.value.reason == "passthrough_conflict"
    assert "(order)" in caught.value.detail


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (passthrough("X1", path="uapi/relative"), "bad_passthrough"),
        (passthrough("X1", path="/uapi/../oauth2/tokenP"), "bad_passthrough"),
        (passthrough("X1", path="https://evil.example/uapi"), "bad_passthrough"),
        (passthrough("X1", path="/uapi/a?b=c"), "bad_passthrough"),
        (passthrough("X1", path="/uapi/a b"), "bad_passthrough"),
        (passthrough("kt1", method="GET", path="/api/x", provider="KIWOOM"), "bad_passthrough"),
        (passthrough(" "), "bad_passthrough"),
    ],
)
def test_a_pass_through_with_an_unsafe_description_is_refused(
    request_: RequestSubmitted, reason: str
) -> None:
    with pytest.raises(Rejection) as caught:
        validate(request_, load_settings(env={}), KEYS)
    assert caught.value.reason == reason


def test_an_operator_can_refuse_pass_through(tmp_path: Path) -> None:
    path = tmp_path / "apihub.toml"
    path.write_text("[catalog]\npassthrough = false\n", encoding="utf-8")
    settings = load_settings(env={}, config_path=path)
    with pytest.raises(Rejection) as caught:
        validate(passthrough("FHKST01010900"), settings, KEYS)
    assert caught.value.reason == "passthrough_disabled"
    path.write_text('[catalog]\npassthrough = "yes"\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match="passthrough must be true or false"):
        load_settings(env={}, config_path=path)


def test_unknown_tr_names_the_two_ways_in_and_a_bad_next_key_is_refused_before_any_call() -> None:
    settings = load_settings(env={})
    with pytest.raises(Rejection) as caught:
        validate(request("FHKST01010900", PRICE), settings, KEYS)
    assert "[[catalog.tr]]" in caught.value.detail
    assert "pass-through" in caught.value.detail
    paged = RequestSubmitted(
        request_id="r1",
        provider="KIS",
        tr_id="FHKST03010100",
        params={},
        next_key="yesterday",
    )
    with pytest.raises(Rejection) as caught:
        validate(paged, settings, KEYS)
    assert caught.value.reason == "bad_next_key"
