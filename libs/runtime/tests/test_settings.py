"""load_settings: environment plus an optional apihub.toml; credentials from the environment only.

Every test passes an explicit ``env`` dict and runs in an empty working directory, so neither the
real environment nor a stray ``apihub.toml`` can leak in.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from apihub_core import ConfigurationError, Provider
from apihub_runtime import (
    AccountConfig,
    AccountRate,
    Catalog,
    CatalogSettings,
    DispatcherSettings,
    Settings,
    TrSpec,
    load_settings,
)

KIS_REAL = "https://openapi.koreainvestment.com:9443"
KIS_VPS = "https://openapivts.koreainvestment.com:29443"
KIWOOM_REAL = "https://api.kiwoom.com"
KIWOOM_VPS = "https://mockapi.kiwoom.com"

KIS_KEY = "PSkisAppKey000000000000000000000001"
KIS_SECRET = "kisAppSecret" + "x" * 168


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def write_toml(tmp_path: Path, text: str, name: str = "apihub.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- demo accounts ------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", list(Provider))
def test_demo_account_when_no_credentials(provider: Provider) -> None:
    account = load_settings(env={}).account(provider)
    assert account.demo is True
    assert account.name == "default"
    assert account.provider is provider
    assert len(account.app_key.reveal()) == 36
    assert len(account.app_secret.reveal()) == 180
    assert account.app_key.reveal().startswith("DEMO")
    assert account.base_url is None


def test_demo_credentials_are_deterministic() -> None:
    first = load_settings(env={}).account(Provider.KIS)
    second = load_settings(env={}).account(Provider.KIS)
    assert first.app_key == second.app_key
    assert first.app_secret == second.app_secret
    assert first.app_key != load_settings(env={}).account(Provider.KIWOOM).app_key


def test_demo_account_has_a_fake_account_number() -> None:
    assert load_settings(env={}).account(Provider.KIS).account_no == "50000000-01"


def test_demo_account_without_url_refuses_require_base_url() -> None:
    account = load_settings(env={}).account(Provider.KIS)
    with pytest.raises(ConfigurationError, match="APIHUB_KIS_BASE_URL"):
        account.require_base_url()


def test_with_demo_base_url_points_demo_accounts_at_the_simulator() -> None:
    settings = load_settings(env={}).with_demo_base_url("http://127.0.0.1:18080")
    for provider in Provider:
        assert settings.account(provider).base_url == "http://127.0.0.1:18080"
        assert settings.account(provider).require_base_url() == "http://127.0.0.1:18080"


def test_with_demo_base_url_leaves_real_and_configured_accounts_alone() -> None:
    env = {
        "APIHUB_KIS_APP_KEY": KIS_KEY,
        "APIHUB_KIS_APP_SECRET": KIS_SECRET,
        "APIHUB_KIWOOM_BASE_URL": "http://kiwoom-sim:9000",
    }
    settings = load_settings(env=env).with_demo_base_url("http://127.0.0.1:18080")
    assert settings.account(Provider.KIS).base_url == KIS_REAL
    kiwoom = settings.account(Provider.KIWOOM)
    assert kiwoom.demo is True
    assert kiwoom.base_url == "http://kiwoom-sim:9000"


# --- real credentials from the environment ------------------------------------------------------


def test_real_kis_credentials_from_env() -> None:
    env = {"APIHUB_KIS_APP_KEY": KIS_KEY, "APIHUB_KIS_APP_SECRET": KIS_SECRET}
    account = load_settings(env=env).account(Provider.KIS)
    assert account.demo is False
    assert account.app_key.reveal() == KIS_KEY
    assert account.app_secret.reveal() == KIS_SECRET
    assert account.base_url == KIS_REAL
    assert account.virtual is False
    assert account.account_no is None


def test_pasted_trailing_newlines_are_stripped() -> None:
    env = {"APIHUB_KIS_APP_KEY": KIS_KEY + "\n", "APIHUB_KIS_APP_SECRET": KIS_SECRET + "\r\n"}
    account = load_settings(env=env).account(Provider.KIS)
    assert account.app_key.reveal() == KIS_KEY
    assert account.app_secret.reveal() == KIS_SECRET


def test_kiwoom_uses_secret_key_variable() -> None:
    env = {"APIHUB_KIWOOM_APP_KEY": "kw-key", "APIHUB_KIWOOM_SECRET_KEY": "kw-secret"}
    account = load_settings(env=env).account(Provider.KIWOOM)
    assert account.demo is False
    assert account.app_secret.reveal() == "kw-secret"
    assert account.base_url == KIWOOM_REAL


@pytest.mark.parametrize(
    "env",
    [
        {"APIHUB_KIS_APP_KEY": KIS_KEY},
        {"APIHUB_KIS_APP_SECRET": KIS_SECRET},
        {"APIHUB_KIS_APP_KEY": KIS_KEY, "APIHUB_KIS_APP_SECRET": "  \n"},
        {"APIHUB_KIWOOM_APP_KEY": "kw-key", "APIHUB_KIWOOM_APP_SECRET": "wrong-name"},
    ],
    ids=["key-only", "secret-only", "blank-secret", "kiwoom-wrong-secret-name"],
)
def test_key_without_secret_is_a_configuration_error(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="must be set together"):
        load_settings(env=env)


def test_configuration_error_never_contains_the_key() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(env={"APIHUB_KIS_APP_KEY": KIS_KEY})
    assert KIS_KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("provider", "key_var", "secret_var", "vps"),
    [
        (Provider.KIS, "APIHUB_KIS_APP_KEY", "APIHUB_KIS_APP_SECRET", KIS_VPS),
        (Provider.KIWOOM, "APIHUB_KIWOOM_APP_KEY", "APIHUB_KIWOOM_SECRET_KEY", KIWOOM_VPS),
    ],
)
@pytest.mark.parametrize("flag", ["1", "true", "YES", " on "])
def test_virtual_selects_the_vps_url(
    provider: Provider, key_var: str, secret_var: str, vps: str, flag: str
) -> None:
    prefix = f"APIHUB_{provider.value}_"
    env = {key_var: "k", secret_var: "s", prefix + "VIRTUAL": flag}
    account = load_settings(env=env).account(provider)
    assert account.virtual is True
    assert account.base_url == vps


@pytest.mark.parametrize("flag", ["0", "false", "no", ""])
def test_falsy_virtual_keeps_the_real_url(flag: str) -> None:
    env = {"APIHUB_KIS_APP_KEY": "k", "APIHUB_KIS_APP_SECRET": "s", "APIHUB_KIS_VIRTUAL": flag}
    account = load_settings(env=env).account(Provider.KIS)
    assert account.virtual is False
    assert account.base_url == KIS_REAL


def test_explicit_base_url_wins_over_virtual() -> None:
    env = {
        "APIHUB_KIS_APP_KEY": "k",
        "APIHUB_KIS_APP_SECRET": "s",
        "APIHUB_KIS_VIRTUAL": "1",
        "APIHUB_KIS_BASE_URL": "http://127.0.0.1:9443",
        "APIHUB_KIS_ACCOUNT_NO": "12345678-01",
    }
    account = load_settings(env=env).account(Provider.KIS)
    assert account.base_url == "http://127.0.0.1:9443"
    assert account.account_no == "12345678-01"


def test_secrets_are_masked_in_the_settings_repr() -> None:
    env = {"APIHUB_KIS_APP_KEY": KIS_KEY, "APIHUB_KIS_APP_SECRET": KIS_SECRET}
    text = repr(load_settings(env=env))
    assert KIS_KEY not in text
    assert KIS_SECRET not in text


# --- hub settings -------------------------------------------------------------------------------


def test_defaults_without_env_or_file() -> None:
    settings = load_settings(env={})
    assert settings.redis_url is None
    assert settings.gatekeeper_url is None
    assert settings.namespace == "apihub"
    assert settings.data_dir == Path(".apihub")
    assert settings.dispatcher == DispatcherSettings()
    assert settings.default_accounts == {}


def test_hub_settings_from_env() -> None:
    env = {
        "REDIS_URL": "redis://main:6379/0",
        "REDIS_URL_GATEKEEPER": "redis://gate:6379/0",
        "APIHUB_NAMESPACE": "prod",
        "APIHUB_DATA_DIR": "/var/lib/apihub",
    }
    settings = load_settings(env=env)
    assert settings.redis_url == "redis://main:6379/0"
    assert settings.gatekeeper_url == "redis://gate:6379/0"
    assert settings.namespace == "prod"
    assert settings.data_dir == Path("/var/lib/apihub")


def test_gatekeeper_url_defaults_to_the_main_redis() -> None:
    settings = load_settings(env={"REDIS_URL": "redis://main:6379/0"})
    assert settings.redis_url_gatekeeper is None
    assert settings.gatekeeper_url == "redis://main:6379/0"


def test_with_redis_url_replaces_only_the_url() -> None:
    settings = load_settings(env={"APIHUB_NAMESPACE": "x"})
    changed = settings.with_redis_url("redis://127.0.0.1:1234/0")
    assert changed.redis_url == "redis://127.0.0.1:1234/0"
    assert changed.namespace == "x"
    assert settings.redis_url is None


def test_env_overrides_toml_for_redis_url_and_namespace(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
        [hub]
        redis_url = "redis://from-file:6379/0"
        redis_url_gatekeeper = "redis://gate-file:6379/0"
        namespace = "filens"
        data_dir = "/from/file"
        """,
    )
    env = {"REDIS_URL": "redis://from-env:6379/0", "APIHUB_NAMESPACE": "envns"}
    settings = load_settings(env=env, config_path=path)
    assert settings.redis_url == "redis://from-env:6379/0"
    assert settings.namespace == "envns"
    assert settings.redis_url_gatekeeper == "redis://gate-file:6379/0"
    assert settings.data_dir == Path("/from/file")


def test_toml_hub_settings_apply_when_env_is_silent(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[hub]\nredis_url = "redis://file:6379/0"\nnamespace = "filens"\n')
    settings = load_settings(env={}, config_path=path)
    assert settings.redis_url == "redis://file:6379/0"
    assert settings.gatekeeper_url == "redis://file:6379/0"
    assert settings.namespace == "filens"


# --- the TOML file ------------------------------------------------------------------------------


def test_apihub_toml_in_the_working_directory_is_read(tmp_path: Path) -> None:
    write_toml(tmp_path, '[hub]\nnamespace = "cwdfile"\n')
    assert load_settings(env={}).namespace == "cwdfile"


def test_apihub_config_names_the_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[hub]\nnamespace = "named"\n', name="elsewhere.toml")
    assert load_settings(env={"APIHUB_CONFIG": str(path)}).namespace == "named"


def test_apihub_config_pointing_at_a_missing_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_settings(env={"APIHUB_CONFIG": str(missing)})


def test_explicit_missing_config_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_settings(env={}, config_path=tmp_path / "nope.toml")


def test_bad_toml_is_a_configuration_error(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[hub\nnamespace = \n")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_settings(env={}, config_path=path)


def test_toml_accounts_read_credentials_from_the_named_variables(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
        [accounts.kis.trading]
        app_key_env = "MY_KIS_KEY"
        app_secret_env = "MY_KIS_SECRET"
        account_no = "87654321-01"

        [accounts.kiwoom.paper]
        app_key_env = "MY_KW_KEY"
        app_secret_env = "MY_KW_SECRET"
        virtual = true
        """,
    )
    env = {
        "MY_KIS_KEY": "kis-key\n",
        "MY_KIS_SECRET": "kis-secret",
        "MY_KW_KEY": "kw-key",
        "MY_KW_SECRET": "kw-secret",
    }
    settings = load_settings(env=env, config_path=path)
    trading = settings.account(Provider.KIS, "trading")
    assert trading == AccountConfig(
        provider=Provider.KIS,
        name="trading",
        app_key=trading.app_key,
        app_secret=trading.app_secret,
        base_url=KIS_REAL,
        virtual=False,
        account_no="87654321-01",
        rate=AccountRate(per_second=18),
    )
    assert trading.app_key.reveal() == "kis-key"
    assert trading.app_secret.reveal() == "kis-secret"
    paper = settings.account(Provider.KIWOOM, "paper")
    assert paper.virtual is True
    assert paper.base_url == KIWOOM_VPS
    assert paper.demo is False
    # The env-derived default account is still there next to the named ones.
    assert settings.account(Provider.KIS).demo is True


def test_toml_account_base_url_is_kept(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
        [accounts.kis.local]
        app_key_env = "K"
        app_secret_env = "S"
        base_url = "http://127.0.0.1:9443"
        virtual = true
        """,
    )
    account = load_settings(env={"K": "k", "S": "s"}, config_path=path).account(
        Provider.KIS, "local"
    )
    assert account.base_url == "http://127.0.0.1:9443"


@pytest.mark.parametrize("forbidden", ["app_key", "app_secret", "secret_key", "token"])
def test_credentials_inside_toml_are_rejected(tmp_path: Path, forbidden: str) -> None:
    path = write_toml(
        tmp_path,
        f"""
        [accounts.kis.leaky]
        app_key_env = "K"
        app_secret_env = "S"
        {forbidden} = "PSliteralCredentialInTheFile"
        """,
    )
    with pytest.raises(ConfigurationError, match="must not hold credentials") as caught:
        load_settings(env={"K": "k", "S": "s"}, config_path=path)
    assert "PSliteralCredentialInTheFile" not in str(caught.value)


def test_toml_account_without_env_names_is_rejected(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[accounts.kis.half]\napp_key_env = "K"\n')
    with pytest.raises(ConfigurationError, match="needs app_key_env and app_secret_env"):
        load_settings(env={"K": "k"}, config_path=path)


@pytest.mark.parametrize(
    "env", [{}, {"MY_KEY": "k"}, {"MY_SECRET": "s"}, {"MY_KEY": "k", "MY_SECRET": "\n"}]
)
def test_missing_env_var_for_a_toml_account(tmp_path: Path, env: dict[str, str]) -> None:
    path = write_toml(
        tmp_path,
        '[accounts.kis.main]\napp_key_env = "MY_KEY"\napp_secret_env = "MY_SECRET"\n',
    )
    with pytest.raises(ConfigurationError, match="MY_KEY and MY_SECRET must both be set"):
        load_settings(env=env, config_path=path)


def test_default_account_selects_the_named_account(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
        [accounts.kis]
        default_account = "main"

        [accounts.kis.main]
        app_key_env = "K"
        app_secret_env = "S"
        """,
    )
    settings = load_settings(env={"K": "k", "S": "s"}, config_path=path)
    assert settings.default_accounts == {Provider.KIS: "main"}
    assert settings.account(Provider.KIS).name == "main"
    assert settings.account(Provider.KIS, "default").demo is True
    assert settings.account(Provider.KIWOOM).name == "default"


def test_default_account_must_be_configured(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[accounts.kiwoom]\ndefault_account = "ghost"\n')
    with pytest.raises(ConfigurationError, match="'ghost' of KIWOOM is not configured"):
        load_settings(env={}, config_path=path)


def test_unknown_account_name_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        load_settings(env={}).account(Provider.KIS, "nobody")


def test_dispatcher_settings_from_toml(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        '[dispatcher]\nconcurrency = 8\nmax_deliveries = 3\ntransport = "httpx"\n',
    )
    dispatcher = load_settings(env={}, config_path=path).dispatcher
    assert dispatcher == DispatcherSettings(concurrency=8, max_deliveries=3, transport="httpx")


def test_unknown_dispatcher_keys_are_rejected(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[dispatcher]\nconcurency = 8\nworkers = 2\n")
    with pytest.raises(
        ConfigurationError, match="unknown \\[dispatcher\\] settings: concurency, workers"
    ):
        load_settings(env={}, config_path=path)


def test_wrongly_typed_dispatcher_setting_is_rejected(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[dispatcher]\nconcurrency = "many"\n')
    with pytest.raises(ConfigurationError, match="bad \\[dispatcher\\] settings"):
        load_settings(env={}, config_path=path)


def test_settings_default_constructor_is_empty() -> None:
    settings = Settings()
    assert settings.accounts == {}
    assert settings.gatekeeper_url is None


def test_rate_defaults_follow_the_brokers_published_limits(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
        [accounts.kis.paper]
        app_key_env = "K"
        app_secret_env = "S"
        virtual = true

        [accounts.kis.fast]
        app_key_env = "K"
        app_secret_env = "S"
        rate_per_s = 10
        rate_per_min = 500

        [accounts.kiwoom.default]
        rate_per_api_id_per_s = 4
        """,
    )
    settings = load_settings(env={"K": "k", "S": "s"}, config_path=path)
    assert settings.account(Provider.KIS).rate == AccountRate(per_second=18)
    assert settings.account(Provider.KIS, "paper").rate == AccountRate(per_second=1)
    assert settings.account(Provider.KIS, "fast").rate == AccountRate(per_second=10, per_minute=500)
    kiwoom = settings.account(Provider.KIWOOM)
    assert kiwoom.demo is True
    assert kiwoom.rate == AccountRate(per_second=5, per_api_id_per_second=4)


def test_rate_from_the_environment_and_refused_when_not_positive() -> None:
    settings = load_settings(env={"APIHUB_KIS_RATE_PER_S": "3", "APIHUB_KIS_RATE_PER_MIN": "100"})
    assert settings.account(Provider.KIS).rate == AccountRate(per_second=3, per_minute=100)
    with pytest.raises(ConfigurationError, match="must be positive"):
        load_settings(env={"APIHUB_KIS_RATE_PER_S": "0"})
    with pytest.raises(ConfigurationError, match="whole number"):
        load_settings(env={"APIHUB_KIWOOM_RATE_PER_API_ID_PER_S": "fast"})


def test_default_account_section_may_not_hold_credentials(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[accounts.kis.default]\napp_key = "x"\n')
    with pytest.raises(ConfigurationError, match="must not hold credentials"):
        load_settings(env={}, config_path=path)


def test_governance_sections_are_read_and_checked(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
        [rate_limiter]
        penalty_ms = 250
        [breaker]
        failure_threshold = 3
        open_s = 10
        [token_keeper]
        refresh_before_s = 600
        """,
    )
    settings = load_settings(env={}, config_path=path)
    assert settings.rate_limiter.penalty_ms == 250
    assert settings.breaker.failure_threshold == 3
    assert settings.breaker.open_s == 10
    assert settings.token_keeper.refresh_before_s == 600
    bad = write_toml(tmp_path, "[breaker]\nthreshold = 3\n")
    with pytest.raises(ConfigurationError, match=r"unknown \[breaker\] settings: threshold"):
        load_settings(env={}, config_path=bad)


# --- the TR catalog: [[catalog.tr]] ----------------------------------------------------------

PRICE_TWIN = """\
[hub]
namespace = "x"

[[catalog.tr]]
provider = "kis"
tr_id = "fhkst01010900"
method = "get"
path = "/uapi/domestic-stock/v1/quotations/inquire-investor"
required = ["FID_COND_MRKT_DIV_CODE", "FID_INPUT_ISCD"]
family = "quotations"
description = "주식현재가 투자자"

[[catalog.tr]]
provider = "KIS"
tr_id = "TTTC8434R"
method = "GET"
path = "/uapi/domestic-stock/v1/trading/inquire-balance"
required = ["CANO", "ACNT_PRDT_CD", "CTX_AREA_FK100", "CTX_AREA_NK100"]
family = "account"
paging = "tr_cont"

[[catalog.tr]]
provider = "KIWOOM"
tr_id = "KA10082"
method = "POST"
path = "/api/dostk/chart"
required = ["stk_cd", "base_dt", "upd_stkpc_tp"]
family = "chart"
paging = "cont_key"

[[catalog.tr]]
provider = "KIS"
tr_id = "TTTC0013U"
virtual_tr_id = "VTTC0013U"
method = "POST"
path = "/uapi/domestic-stock/v1/trading/order-rvsecncl"
required = ["CANO"]
kind = "order"
family = "order"
"""


def test_no_catalog_section_means_no_extension() -> None:
    settings = load_settings(env={})
    assert len(settings.catalog.trs) == 0
    assert settings.catalog == CatalogSettings()
    assert Settings().catalog.trs == Catalog()


def test_catalog_definitions_are_read_normalised_and_defaulted(tmp_path: Path) -> None:
    path = write_toml(tmp_path, PRICE_TWIN)
    trs = load_settings(env={}, config_path=path).catalog.trs
    assert [(s.provider, s.tr_id) for s in trs] == [
        (Provider.KIS, "FHKST01010900"),
        (Provider.KIS, "TTTC8434R"),
        (Provider.KIWOOM, "ka10082"),
        (Provider.KIS, "TTTC0013U"),
    ]
    investor, balance, weekly, amend = trs
    assert (investor.method, investor.kind, investor.paging) == ("GET", "query", "none")
    assert investor.virtual_tr_id == "FHKST01010900"  # not T/J/C: the same id on vps
    assert (investor.cont_headers, investor.cont_fields) == ((), ())
    assert investor.description == "주식현재가 투자자"
    assert investor.source == f"{path}:4"
    # The T/J/C → V rule is the default twin; the tr_cont paging brings its defaults.
    assert balance.virtual_tr_id == "VTTC8434R"
    assert balance.cont_headers == ("tr_cont",)
    assert balance.cont_fields == ("CTX_AREA_FK100", "CTX_AREA_NK100")
    assert balance.wire_tr_id(virtual=True) == "VTTC8434R"
    assert balance.wire_tr_id(virtual=False) == "TTTC8434R"
    assert (weekly.cont_headers, weekly.virtual_tr_id) == (("cont-yn", "next-key"), "ka10082")
    assert amend.is_order
    assert amend.kind == "order"
    assert amend.source == f"{path}:31"
    assert trs.lookup(Provider.KIS, "vttc0013u") is amend
    assert trs.lookup(Provider.KIWOOM, "KA10082") is weekly
    assert trs.lookup(Provider.KIWOOM, "TTTC0013U") is None


BAD_DEFINITIONS = {
    "unknown field": (
        'provider = "KIS"\ntr_id = "FHKST01010900"\nmetod = "GET"\n',
        r":7: \[\[catalog.tr\]\] #1: unknown field 'metod' \(did you mean 'method'\?\)$",
    ),
    "missing field": (
        'provider = "KIS"\ntr_id = "FHKST01010900"\nmethod = "GET"\nfamily = "q"\n',
        r":4: \[\[catalog.tr\]\] #1: missing field path$",
    ),
    "bad method": (
        'provider = "KIS"\ntr_id = "FHKST01010900"\nmethod = "PUT"\npath = "/p"\nfamily = "q"\n',
        r':7: \[\[catalog.tr\]\] KIS FHKST01010900: method must be "GET" or "POST", not .PUT.$',
    ),
    "bad paging": (
        'provider = "KIS"\ntr_id = "FHKST01010900"\nmethod = "GET"\npath = "/p"\nfamily = "q"\n'
        'paging = "cursor"\n',
        r":10: \[\[catalog.tr\]\] KIS FHKST01010900: paging must be one of none, tr_cont, "
        r"cont_key, date_window, hour_window, not 'cursor'$",
    ),
    "paging of the other broker": (
        'provider = "KIWOOM"\ntr_id = "ka10099"\nmethod = "POST"\npath = "/p"\nfamily = "q"\n'
        'paging = "tr_cont"\n',
        r":10: \[\[catalog.tr\]\] KIWOOM ka10099: KIWOOM TRs page with none, cont_key, "
        r"not 'tr_cont'$",
    ),
    "path without a leading slash": (
        'provider = "KIS"\ntr_id = "FHKST01010900"\nmethod = "GET"\n'
        'path = "uapi/domestic-stock/v1/quotations/x"\nfamily = "q"\n',
        r":8: \[\[catalog.tr\]\] KIS FHKST01010900: path must start with /",
    ),
    "an order as GET": (
        'provider = "KIS"\ntr_id = "TTTC0013U"\nmethod = "GET"\npath = "/p"\nfamily = "order"\n'
        'kind = "order"\n',
        r":7: \[\[catalog.tr\]\] KIS TTTC0013U: an order must be a POST",
    ),
    "a Kiwoom GET": (
        'provider = "KIWOOM"\ntr_id = "ka10099"\nmethod = "GET"\npath = "/p"\nfamily = "q"\n',
        r":7: \[\[catalog.tr\]\] KIWOOM ka10099: every Kiwoom TR is a POST$",
    ),
    "bad kind": (
        'provider = "KIS"\ntr_id = "FHKST01010900"\nmethod = "GET"\npath = "/p"\nfamily = "q"\n'
        'kind = "write"\n',
        r":10: \[\[catalog.tr\]\] KIS FHKST01010900: kind must be \"query\" or \"order\"",
    ),
    "an unknown field unlike any": (
        'provider = "KIS"\ntr_id = "FHKST01010900"\nparams = []\n',
        r":7: \[\[catalog.tr\]\] #1: unknown field 'params' \(fields: provider, tr_id, virtual",
    ),
    "a description of two lines": (
        'provider = "KIS"\ntr_id = "FHKST01010900"\nmethod = "GET"\npath = "/p"\nfamily = "q"\n'
        'description = """one\ntwo"""\n',
        r":10: \[\[catalog.tr\]\] KIS FHKST01010900: description must be one line$",
    ),
    "bad provider": (
        'provider = "NH"\ntr_id = "X1"\nmethod = "GET"\npath = "/p"\nfamily = "q"\n',
        r":5: \[\[catalog.tr\]\] #1: unknown provider 'NH' \(known: KIS, KIWOOM\)$",
    ),
    "a list that is not one": (
        'provider = "KIS"\ntr_id = "FHKST01010900"\nmethod = "GET"\npath = "/p"\nfamily = "q"\n'
        'required = "FID_INPUT_ISCD"\n',
        r":10: \[\[catalog.tr\]\] #1: required must be a list of names, not 'FID_INPUT_ISCD'$",
    ),
    "a cursor that is no parameter": (
        'provider = "KIS"\ntr_id = "TTTC8434R"\nmethod = "GET"\npath = "/p"\nfamily = "a"\n'
        'paging = "tr_cont"\nrequired = ["CANO"]\n',
        r":4: \[\[catalog.tr\]\] KIS TTTC8434R: cont_fields CTX_AREA_FK100 is not one of the "
        r"TR's parameters$",
    ),
    "continuation without paging": (
        'provider = "KIWOOM"\ntr_id = "ka10099"\nmethod = "POST"\npath = "/p"\nfamily = "q"\n'
        'cont_headers = ["cont-yn"]\n',
        r":10: \[\[catalog.tr\]\] KIWOOM ka10099: cont_headers needs a paging other than",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_DEFINITIONS))
def test_a_wrong_definition_is_refused_naming_file_and_line(tmp_path: Path, case: str) -> None:
    body, message = BAD_DEFINITIONS[case]
    path = write_toml(tmp_path, f'[hub]\nnamespace = "x"\n\n[[catalog.tr]]\n{body}')
    with pytest.raises(ConfigurationError) as caught:
        load_settings(env={}, config_path=path)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(f"{path}:")
    assert re.search(message, text), text


def test_a_duplicate_tr_id_is_refused_at_the_second_definition(tmp_path: Path) -> None:
    one = 'provider = "KIS"\ntr_id = "{}"\nmethod = "POST"\npath = "/p"\nfamily = "order"\n'
    text = "\n".join(
        f"[[catalog.tr]]\n{one.format(tr_id)}" for tr_id in ("TTTC0013U", "X1", "vttc0013u")
    )
    path = write_toml(tmp_path, text)
    with pytest.raises(
        ConfigurationError,
        match=r"apihub.toml:15: \[\[catalog.tr\]\] KIS VTTC0013U: duplicate tr_id VTTC0013U "
        r"\(already defined at line 1\)$",
    ):
        load_settings(env={}, config_path=path)


def test_inline_definitions_are_located_by_their_tr_id(tmp_path: Path) -> None:
    text = """\
[catalog]
tr = [
  { provider = "KIS", tr_id = "FHKST01010900", method = "GET", path = "/p", family = "q" },
  { provider = "KIS", tr_id = "FHKST01011000", method = "PUT", path = "/p", family = "q" },
]
"""
    path = write_toml(tmp_path, text)
    with pytest.raises(ConfigurationError, match=r"apihub.toml:4: .*KIS FHKST01011000: method"):
        load_settings(env={}, config_path=path)


def test_unknown_catalog_settings_are_refused(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[catalog]\npass_through = true\n")
    with pytest.raises(ConfigurationError, match=r"unknown \[catalog\] settings: pass_through"):
        load_settings(env={}, config_path=path)
    not_tables = write_toml(tmp_path, '[catalog]\ntr = "FHKST01010100"\n')
    with pytest.raises(ConfigurationError, match=r"apihub.toml:2: catalog.tr must be tables"):
        load_settings(env={}, config_path=not_tables)


def test_catalog_extension_and_equality() -> None:
    base = Catalog([TrSpec(Provider.KIS, "TTTC0012U", "POST", "/o", ("CANO",), is_order=True)])
    assert base.lookup(Provider.KIS, "VTTC0012U") is next(iter(base))
    replacement = TrSpec(Provider.KIS, "TTTC0012U", "POST", "/o2", ())
    added = TrSpec(Provider.KIWOOM, "ka10001", "POST", "/i", ("stk_cd",))
    merged = base.extended([added, replacement])
    assert list(merged) == [replacement, added]
    assert merged.lookup(Provider.KIS, "vttc0012u") is replacement
    assert base.extended(Catalog()) is base
    assert merged == Catalog([replacement, added])
    assert hash(merged) == hash(Catalog([replacement, added]))
    assert merged != base
    assert added in merged
    assert merged.of(Provider.KIWOOM) == [added]
    assert "KIS TTTC0012U" in repr(merged)
    with pytest.raises(ValueError, match="defined twice"):
        Catalog([replacement, replacement])


# --- paths in market-data sections ------------------------------------------------------------


def test_paths_in_toml_become_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    path = write_toml(
        tmp_path,
        '[archive]\ndir = "/srv/market"\n\n[market]\ncalendar_override = "~/days.toml"\n',
    )
    settings = load_settings(env={}, config_path=path)
    assert settings.archive.dir == Path("/srv/market")
    assert settings.archive.root(Path("ignored")) == Path("/srv/market")
    assert settings.market.calendar_override == tmp_path / "days.toml"


def test_a_path_that_is_no_string_is_a_configuration_error(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[archive]\ndir = 3\n")
    with pytest.raises(ConfigurationError, match=r"bad \[archive\] settings: .*\$\.dir"):
        load_settings(env={}, config_path=path)
