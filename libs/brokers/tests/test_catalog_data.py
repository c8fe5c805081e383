"""The catalog as data: the built-in trs.toml, its extension from apihub.toml, the generated
docs/trs.md and the explicit virtual twins the clients send."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest

from apihub_brokers import (
    Catalog,
    CatalogRow,
    KisClient,
    KiwoomClient,
    TrSpec,
    builtin_catalog,
    catalog_markdown,
    catalog_rows,
    configured_catalog,
    known_trs,
    lookup_tr,
)
from apihub_brokers.catalog_doc import REGENERATE, document
from apihub_core import ConfigurationError, Provider
from apihub_runtime import AccessToken, AccountConfig, CatalogSettings, Settings, load_settings

REPO = Path(__file__).resolve().parents[3]
BROKERS = Path(__file__).resolve().parents[1]

_QUOTES = "/uapi/domestic-stock/v1/quotations/"
_KIS_ORDER = (
    "POST",
    "/uapi/domestic-stock/v1/trading/order-cash",
    ("CANO", "ACNT_PRDT_CD", "PDNO", "ORD_DVSN", "ORD_QTY", "ORD_UNPR"),
    ("EXCG_ID_DVSN_CD", "SLL_TYPE", "CNDT_PRIC"),
    True,
    "none",
    "order",
)
_KIWOOM_ORDER = (
    "POST",
    "/api/dostk/ordr",
    ("dmst_stex_tp", "stk_cd", "ord_qty", "trde_tp"),
    ("ord_uv", "cond_uv"),
    True,
    "none",
    "order",
)
_MARKET_STOCK = ("FID_COND_MRKT_DIV_CODE", "FID_INPUT_ISCD")
_KIWOOM_CHART = ("stk_cd", "tic_scope", "upd_stkpc_tp")

# The catalog as the Python code defined it before it became data: every field that changes
# behaviour, (provider, tr_id, virtual twin): (method, path, required, optional, is_order,
# paging, family).
BEFORE = {
    (Provider.KIS, "FHKST01010100", "FHKST01010100"): (
        "GET",
        _QUOTES + "inquire-price",
        _MARKET_STOCK,
        (),
        False,
        "none",
        "quotations",
    ),
    (Provider.KIS, "FHKST01010300", "FHKST01010300"): (
        "GET",
        _QUOTES + "inquire-ccnl",
        _MARKET_STOCK,
        (),
        False,
        "none",
        "quotations",
    ),
    (Provider.KIS, "FHKST01010400", "FHKST01010400"): (
        "GET",
        _QUOTES + "inquire-daily-price",
        (*_MARKET_STOCK, "FID_PERIOD_DIV_CODE", "FID_ORG_ADJ_PRC"),
        (),
        False,
        "none",
        "quotations",
    ),
    (Provider.KIS, "FHKST03010100", "FHKST03010100"): (
        "GET",
        _QUOTES + "inquire-daily-itemchartprice",
        (
            *_MARKET_STOCK,
            "FID_INPUT_DATE_1",
            "FID_INPUT_DATE_2",
            "FID_PERIOD_DIV_CODE",
            "FID_ORG_ADJ_PRC",
        ),
        (),
        False,
        "date_window",
        "chart",
    ),
    (Provider.KIS, "FHKST03010200", "FHKST03010200"): (
        "GET",
        _QUOTES + "inquire-time-itemchartprice",
        (*_MARKET_STOCK, "FID_INPUT_HOUR_1", "FID_PW_DATA_INCU_YN", "FID_ETC_CLS_CODE"),
        (),
        False,
        "hour_window",
        "chart",
    ),
    (Provider.KIS, "TTTC0012U", "VTTC0012U"): _KIS_ORDER,
    (Provider.KIS, "TTTC0011U", "VTTC0011U"): _KIS_ORDER,
    (Provider.KIS, "TTTC0802U", "VTTC0802U"): _KIS_ORDER,
    (Provider.KIS, "TTTC0801U", "VTTC0801U"): _KIS_ORDER,
    (Provider.KIWOOM, "ka10001", "ka10001"): (
        "POST",
        "/api/dostk/stkinfo",
        ("stk_cd",),
        (),
        False,
        "none",
        "quotations",
    ),
    (Provider.KIWOOM, "ka10081", "ka10081"): (
        "POST",
        "/api/dostk/chart",
        ("stk_cd", "base_dt", "upd_stkpc_tp"),
        (),
        False,
        "cont_key",
        "chart",
    ),
    (Provider.KIWOOM, "ka10080", "ka10080"): (
        "POST",
        "/api/dostk/chart",
        _KIWOOM_CHART,
        ("base_dt",),
        False,
        "cont_key",
        "chart",
    ),
    (Provider.KIWOOM, "ka10079", "ka10079"): (
        "POST",
        "/api/dostk/chart",
        _KIWOOM_CHART,
        (),
        False,
        "cont_key",
        "chart",
    ),
    (Provider.KIWOOM, "kt10000", "kt10000"): _KIWOOM_ORDER,
    (Provider.KIWOOM, "kt10001", "kt10001"): _KIWOOM_ORDER,
}


def test_the_trs_the_code_defined_are_still_defined_as_they_were() -> None:
    # The catalog was Python before it became data: the move changed none of those TRs, and
    # they keep their order (later TRs are tested in test_catalog.py).
    found = {
        (s.provider, s.tr_id, s.virtual_tr_id): (
            s.method,
            s.path,
            s.required,
            s.optional,
            s.is_order,
            s.paging,
            s.family,
        )
        for s in builtin_catalog()
    }
    assert {key: found[key] for key in BEFORE} == BEFORE
    before = [(p, t) for p, t, _ in BEFORE]
    assert [(s.provider, s.tr_id) for s in known_trs() if (s.provider, s.tr_id) in before] == (
        before
    )


def test_the_built_in_catalog_is_read_once_and_says_where_each_tr_is_defined() -> None:
    assert builtin_catalog() is builtin_catalog()
    text = (BROKERS / "src" / "apihub_brokers" / "trs.toml").read_text(encoding="utf-8")
    lines = text.splitlines()
    for spec in builtin_catalog():
        file, line = spec.source.rsplit(":", 1)
        assert file == "apihub_brokers/trs.toml"
        assert lines[int(line) - 1] == "[[tr]]"
        assert f'tr_id = "{spec.tr_id}"' in lines[int(line) + 1]


def test_continuation_is_data() -> None:
    kis_daily = lookup_tr(Provider.KIS, "FHKST03010100")
    kis_minute = lookup_tr(Provider.KIS, "FHKST03010200")
    kiwoom = lookup_tr(Provider.KIWOOM, "ka10081")
    price = lookup_tr(Provider.KIS, "FHKST01010100")
    assert kis_daily is not None
    assert kis_minute is not None
    assert kiwoom is not None
    assert price is not None
    assert (kis_daily.cont_headers, kis_daily.cont_fields) == ((), ("FID_INPUT_DATE_2",))
    assert kis_minute.cont_fields == ("FID_INPUT_HOUR_1",)
    assert (kiwoom.cont_headers, kiwoom.cont_fields) == (("cont-yn", "next-key"), ())
    assert (price.cont_headers, price.cont_fields) == ((), ())


def test_the_data_file_is_package_data_in_the_wheel() -> None:
    assert resources.files("apihub_brokers").joinpath("trs.toml").is_file()
    build = tomllib.loads((BROKERS / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    # hatchling ships every file under the package folder, trs.toml included.
    assert build["targets"]["wheel"]["packages"] == ["src/apihub_brokers"]
    assert "exclude" not in build["targets"]["wheel"]


def test_the_built_in_data_passes_the_same_checks() -> None:
    text = (BROKERS / "src" / "apihub_brokers" / "trs.toml").read_text(encoding="utf-8")
    order = text.index('tr_id = "TTTC0012U"')
    broken = text[:order] + text[order:].replace('method = "POST"', 'method = "GET"', 1)
    line = broken[: broken.index('method = "GET"', order)].count("\n") + 1
    with pytest.raises(ConfigurationError) as caught:
        Catalog.from_toml(broken, "apihub_brokers/trs.toml")
    assert str(caught.value).startswith(
        f"apihub_brokers/trs.toml:{line}: [[tr]] KIS TTTC0012U: an order must be a POST"
    )
    with pytest.raises(ConfigurationError, match=r"x\.toml is not valid TOML"):
        Catalog.from_toml("[[tr]\n", "x.toml")


# -- the configured catalog -------------------------------------------------------------------

EXTENSION = """\
[[catalog.tr]]   # replaces the built-in definition
provider = "KIS"
tr_id = "FHKST01010100"
method = "GET"
path = "/uapi/domestic-stock/v1/quotations/inquire-price"
required = ["FID_COND_MRKT_DIV_CODE", "FID_INPUT_ISCD", "FID_EXTRA"]
family = "quotations-fast"
description = "overridden"

[[catalog.tr]]   # a new one
provider = "KIS"
tr_id = "TTTC8036R"
method = "GET"
path = "/uapi/domestic-stock/v1/trading/inquire-psbl-rvsecncl"
required = ["CANO", "ACNT_PRDT_CD", "CTX_AREA_FK100", "CTX_AREA_NK100"]
family = "account"
paging = "tr_cont"
description = "주식정정취소가능주문조회, legacy id"
"""


@pytest.fixture
def extended(tmp_path: Path) -> Settings:
    path = tmp_path / "apihub.toml"
    path.write_text(EXTENSION, encoding="utf-8")
    return load_settings(env={}, config_path=path)


def test_apihub_toml_definitions_win_over_the_built_in_ones(extended: Settings) -> None:
    catalog = configured_catalog(extended)
    assert catalog is configured_catalog(extended)  # built once per extension
    price = catalog.lookup(Provider.KIS, "fhkst01010100")
    assert price is not None
    assert (price.family, price.description) == ("quotations-fast", "overridden")
    assert price.required[-1] == "FID_EXTRA"
    assert price.source.endswith("apihub.toml:1")
    balance = catalog.lookup(Provider.KIS, "VTTC8036R")
    assert balance is not None
    assert balance.tr_id == "TTTC8036R"
    assert len(catalog) == len(builtin_catalog()) + 1
    # The override keeps the built-in's place; new TRs come last.
    assert [s.tr_id for s in catalog][:2] == ["FHKST01010100", "FHKST01010300"]
    assert list(catalog)[-1] is balance
    # The built-in catalog (lookup_tr) is untouched.
    assert lookup_tr(Provider.KIS, "FHKST01010100") is next(iter(builtin_catalog()))
    assert lookup_tr(Provider.KIS, "TTTC8036R") is None


def test_without_an_extension_the_configured_catalog_is_the_built_in_one() -> None:
    assert configured_catalog(Settings()) is builtin_catalog()
    assert configured_catalog(Settings(catalog=CatalogSettings())) is builtin_catalog()


# -- the table --------------------------------------------------------------------------------


def test_rows_carry_the_table_and_the_rest_of_the_definition(extended: Settings) -> None:
    rows = catalog_rows(configured_catalog(extended))
    assert len(rows) == len(builtin_catalog()) + 1
    order = next(row for row in catalog_rows() if row.tr_id == "TTTC0012U")
    assert order.cells() == (
        "KIS",
        "TTTC0012U",
        "VTTC0012U",
        "POST",
        "/uapi/domestic-stock/v1/trading/order-cash",
        "order",
        "none",
        "주식주문(현금) buy",
    )
    assert len(order.cells()) == len(CatalogRow.HEADERS)
    assert (order.family, order.required[0], order.optional[-1]) == ("order", "CANO", "CNDT_PRIC")
    assert rows[-1].tr_id == "TTTC8036R"
    assert rows[-1].source.endswith("apihub.toml:10")
    with pytest.raises(dataclasses.FrozenInstanceError):
        order.tr_id = "X"  # type: ignore[misc]


def test_markdown_has_one_line_per_tr_and_escapes_pipes() -> None:
    table = catalog_markdown()
    lines = table.splitlines()
    assert lines[0] == (
        "| Provider | TR | Virtual twin | Method | Path | Kind | Paging | Description |"
    )
    assert lines[1] == "|---|---|---|---|---|---|---|---|"
    assert len(lines) == 2 + len(builtin_catalog())
    assert "| KIWOOM | `ka10081` | `ka10081` | POST | `/api/dostk/chart` | query | cont_key |" in (
        table
    )
    piped = Catalog([TrSpec(Provider.KIS, "X1", "GET", "/p", (), description="a | b")])
    assert catalog_markdown(piped).splitlines()[2].endswith("| a \\| b |")


def test_docs_trs_md_is_generated_from_the_data() -> None:
    committed = (REPO / "docs" / "trs.md").read_text(encoding="utf-8")
    assert committed == document(), f"docs/trs.md is stale: run `{REGENERATE}`"
    assert REGENERATE in committed
    assert catalog_markdown() in committed


def test_the_module_prints_the_document() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "apihub_brokers.catalog_doc"],
        capture_output=True,
        check=True,
        timeout=20,
    )
    assert printed.stdout.decode("utf-8") == document()
    assert printed.stderr == b""


# -- the clients send the data's twin ---------------------------------------------------------

TWINNED = {
    Provider.KIS: TrSpec(Provider.KIS, "TTTC0012U", "POST", "/o", (), virtual_tr_id="VTTC9999U"),
    Provider.KIWOOM: TrSpec(Provider.KIWOOM, "kt10000", "POST", "/o", (), virtual_tr_id="kt90000"),
}


@pytest.mark.anyio
@pytest.mark.parametrize("provider", list(Provider))
@pytest.mark.parametrize("virtual", [False, True])
async def test_a_virtual_account_sends_the_twin_the_data_names(
    kis: KisClient,
    kiwoom: KiwoomClient,
    broker,
    account_factory: Callable[..., AccountConfig],
    token: AccessToken,
    provider: Provider,
    virtual: bool,
) -> None:
    spec = TWINNED[provider]
    client = kis if provider is Provider.KIS else kiwoom
    await client.call(spec, {}, account=account_factory(provider, virtual=virtual), token=token)
    header = "tr_id" if provider is Provider.KIS else "api-id"
    assert broker.last.headers[header] == (spec.virtual_tr_id if virtual else spec.tr_id)


def test_a_spec_built_in_code_gets_the_rule_twin() -> None:
    assert TrSpec(Provider.KIS, "JTTT1002U", "POST", "/o", ()).virtual_tr_id == "VTTT1002U"
    assert TrSpec(Provider.KIS, "CTSC9115R", "GET", "/o", ()).virtual_tr_id == "VTSC9115R"
    quote = TrSpec(Provider.KIS, "FHKST01010100", "GET", "/q", ())
    assert quote.virtual_tr_id == "FHKST01010100"
    assert TrSpec(Provider.KIWOOM, "ka10001", "POST", "/q", ()).virtual_tr_id == "ka10001"
