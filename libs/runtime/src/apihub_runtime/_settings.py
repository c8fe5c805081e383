"""Settings from the environment plus an optional ``apihub.toml``.

Credentials come from the environment only; a TOML file names *which* variables hold them, so
the file can be committed. Every variable is listed in ``docs/configuration.md``.

========================== =====================================================================
Variable                   Meaning
========================== =====================================================================
``REDIS_URL``              Redis for streams and state. Unset: ``apihub up`` embeds a redis-server.
``REDIS_URL_GATEKEEPER``   Optional second Redis for rate limits (defaults to ``REDIS_URL``).
``APIHUB_NAMESPACE``       Prefix of every key and stream (default ``apihub``).
``APIHUB_DATA_DIR``        Where the embedded Redis keeps its AOF (default ``./.apihub``).
``APIHUB_CONFIG``          Path of the TOML file (default ``./apihub.toml`` when it exists).
``APIHUB_KIS_APP_KEY``     KIS app key of the ``default`` account (also ``_APP_SECRET``,
                           ``_BASE_URL``, ``_VIRTUAL``, ``_ACCOUNT_NO``).
``APIHUB_KIWOOM_APP_KEY``  Kiwoom app key of the ``default`` account (also ``_SECRET_KEY``,
                           ``_BASE_URL``, ``_VIRTUAL``).
``APIHUB_<P>_RATE_PER_S``  Budget of the ``default`` account per sliding second (also
                           ``_RATE_PER_MIN``; Kiwoom ``_RATE_PER_API_ID_PER_S``).
``APIHUB_TOKEN_KEY``       AES-256 key of the token store (else ``<data dir>/token.key``).
========================== =====================================================================
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from apihub_core import DISPATCHER_GROUP, TOKEN_KEEPER_GROUP, ConfigurationError, Provider

from ._catalog import Catalog, parse_tr_tables
from ._config_checks import check_document, check_http_url, check_redis_url, toml_error
from ._market_settings import (
    DEMO_WATCHLIST,
    ArchiveSettings,
    BackfillSettings,
    CollectorSettings,
    MarketSettings,
    SentinelSettings,
    WatchEntry,
    collector_settings,
)
from ._secret import Secret

_S = TypeVar("_S")

DEFAULT_NAMESPACE = "apihub"
DEFAULT_ACCOUNT = "default"

REAL_BASE_URLS: Mapping[Provider, tuple[str, str]] = {
    # (real, virtual): KIS's kis_devlp.yaml (koreainvestment/open-trading-api) and the Kiwoom
    # REST API guide (https://openapi.kiwoom.com).
    Provider.KIS: (
        "https://openapi.koreainvestment.com:9443",
        "https://openapivts.koreainvestment.com:29443",
    ),
    Provider.KIWOOM: ("https://api.kiwoom.com", "https://mockapi.kiwoom.com"),
}

_SECRET_ENV_NAMES: Mapping[Provider, tuple[str, str]] = {
    Provider.KIS: ("APP_KEY", "APP_SECRET"),
    Provider.KIWOOM: ("APP_KEY", "SECRET_KEY"),
}


def _demo_secret(provider: Provider, what: str, length: int) -> Secret:
    # Deterministic, obviously fake credentials in the broker's own lengths (KIS: 36 and 180), so
    # the simulator sees realistic headers and nobody mistakes them for real ones.
    seed = f"apihub-demo-{provider.value}-{what}".encode()
    text = ""
    while len(text) < length:
        seed = hashlib.sha256(seed).digest()
        text += seed.hex()
    return Secret(("DEMO" + text)[:length])


@dataclass(frozen=True, slots=True)
class AccountRate:
    """The broker's budget for one app key, enforced fleet-wide by the gatekeeper.

    ``per_second``/``per_minute`` cover every call of the account (REST and WebSocket alike);
    ``per_api_id_per_second`` adds one budget per TR (Kiwoom counts per api-id). ``None`` means
    no such limit.
    """

    per_second: int | None = None
    per_minute: int | None = None
    per_api_id_per_second: int | None = None


KIS_REAL_RATE = AccountRate(per_second=18)
"""18 requests per second per app key on the real service (was 20), per the KIS portal notice
"API 호출 유량 안내" of 2026-04-20 (https://apiportal.koreainvestment.com)."""
KIS_VIRTUAL_RATE = AccountRate(per_second=1)
"""1 request per second on the virtual (모의) service (was 2), per the same KIS notice."""
KIWOOM_RATE = AccountRate(per_second=5, per_api_id_per_second=1)
"""Kiwoom publishes no figure: third-party measurements report ~1/s per api-id as safe, and 5/s
overall is the common folklore. Conservative on purpose: raise it in ``apihub.toml`` once
measured."""


def default_rate(provider: Provider, virtual: bool) -> AccountRate:
    """The budget an account gets when its configuration names none."""
    if provider is Provider.KIS:
        return KIS_VIRTUAL_RATE if virtual else KIS_REAL_RATE
    return KIWOOM_RATE


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One app key of one broker: what the dispatcher needs to call it.

    ``base_url`` is ``None`` only for demo accounts before ``apihub up`` points them at its
    simulator.
    """

    provider: Provider
    name: str
    app_key: Secret
    app_secret: Secret
    base_url: str | None
    virtual: bool = False
    account_no: str | None = None
    demo: bool = False
    rate: AccountRate = field(default_factory=AccountRate)

    def require_base_url(self) -> str:
        """The broker URL, or a :class:`ConfigurationError` saying which variable to set."""
        if not self.base_url:
            raise ConfigurationError(
                f"no base URL for {self.provider.value} account {self.name!r}: set "
                f"APIHUB_{self.provider.value}_BASE_URL or run `apihub up` with its simulator"
            )
        return self.base_url


SERVICE_CONNECTIONS = 8
"""Connections a service holds besides its request handlers: the consumer's blocking read and
reclaim pass, the token watcher, event flushers."""


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    """Tuning of the dispatcher consumer group (``[dispatcher]`` in ``apihub.toml``)."""

    group: str = DISPATCHER_GROUP
    concurrency: int = 256
    read_count: int = 64
    block_ms: int = 500
    reclaim_idle_ms: int = 30_000
    reclaim_interval_s: float = 5.0
    max_deliveries: int = 5
    max_entry_bytes: int = 64 * 1024
    http_timeout_s: float = 10.0
    shutdown_grace_s: float = 8.0
    transport: str = "aiohttp"
    non_idempotent_trs: tuple[str, ...] = ()
    """TR ids treated like orders (sent at most once, never retried after they may have left)
    on top of the catalog's order TRs."""
    max_request_s: float = 300.0
    """The longest a request may take in the dispatcher: its deadline when it has none (and a
    cap on any deadline), so every wait inside is bounded."""
    redis_max_connections: int = 0
    """Connections to the hub's Redis (and to the gatekeeper's). 0 sizes the pool from
    ``concurrency``: every request in flight holds at most one at a time, plus the service's
    own readers. When all are busy a command waits for one (within the request's deadline)
    instead of failing."""

    def pool_size(self) -> int:
        """The Redis pool size this tuning asks for (``redis_max_connections`` or derived)."""
        return self.redis_max_connections or self.concurrency + SERVICE_CONNECTIONS

    def pool_is_enough(self) -> bool:
        """Whether the pool can never run out: one connection per request in flight plus the
        service's own (then the cheaper non-waiting pool serves)."""
        return self.pool_size() >= self.concurrency + SERVICE_CONNECTIONS


@dataclass(frozen=True, slots=True)
class RateLimiterSettings:
    """Tuning of the gatekeeper (``[rate_limiter]`` in ``apihub.toml``).

    ``initial_margin_ms`` is the extra spacing of each run of ``limit`` permits before enough
    calls were observed to measure the jitter; afterwards the margin follows the observed
    spread of permit-to-answer times over the calls of the last ``jitter_window_s`` seconds
    (at most ``jitter_samples``). An upstream rate
    error adds ``penalty_ms`` of spacing that decays linearly over ``penalty_decay_s``.
    ``pacing`` spreads the grants of sub-minute windows evenly, one every
    ``pacing * (window + margin) / limit`` on a schedule (0 = bursts allowed: a full window may
    leave at once). ``priority_offsets_ms`` age requests: a request of class C competes as if it
    had arrived ``offset[C]`` later, so higher classes go first and a waiting low class still
    gets served.
    """

    initial_margin_ms: float = 50.0
    min_margin_ms: float = 2.0
    max_margin_ms: float = 1000.0
    jitter_samples: int = 200
    jitter_window_s: float = 5.0
    pacing: float = 1.0
    penalty_ms: float = 100.0
    penalty_decay_s: float = 30.0
    priority_offsets_ms: dict[str, float] = field(
        default_factory=lambda: {
            "order": 0.0,
            "interactive": 500.0,
            "collector": 2000.0,
            "backfill": 5000.0,
        }
    )
    max_wait_s: float = 30.0
    max_requeues: int = 5
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """Tuning of the shared circuit breaker (``[breaker]`` in ``apihub.toml``)."""

    failure_threshold: int = 5
    open_s: float = 30.0
    probe_timeout_s: float = 15.0
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class TokenKeeperSettings:
    """Tuning of the token-keeper (``[token_keeper]`` in ``apihub.toml``) and of how services
    wait for it.

    ``token_wait_s`` is how long a service waits for *any* answer of the keeper to a token
    request (an issuance, a deferral, a failure) before concluding it is not running; once the
    keeper has answered, a caller waits for the token as long as its own deadline allows.
    """

    refresh_before_s: float = 300.0
    max_retries: int = 3
    retry_backoff_s: float = 1.0
    kis_issue_window_s: float = 60.0
    kiwoom_issue_window_s: float = 1.0
    lock_ttl_ms: int = 30_000
    scan_interval_s: float = 5.0
    token_wait_s: float = 10.0
    eager: bool = False
    group: str = TOKEN_KEEPER_GROUP
    block_ms: int = 500
    redis_max_connections: int = 32
    """Connections of the keeper's Redis pool (its jobs run one per account at a time)."""


@dataclass(frozen=True, slots=True)
class CatalogSettings:
    """The ``[catalog]`` section of ``apihub.toml``.

    ``trs`` holds the ``[[catalog.tr]]`` definitions only: the catalog in force is the built-in
    one (shipped with ``apihub_brokers``) extended by them, where a definition here replaces
    the built-in one sharing its provider and id (``apihub_brokers.configured_catalog``).
    ``passthrough`` lets callers reach a TR the catalog does not know by naming its method,
    path and kind on the request (``RequestSubmitted.passthrough``); an operator who wants
    every call catalogued turns it off.
    """

    trs: Catalog = field(default_factory=Catalog)
    passthrough: bool = True


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a service needs, resolved once at start-up."""

    redis_url: str | None = None
    redis_url_gatekeeper: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    data_dir: Path = field(default_factory=lambda: Path(".apihub"))
    accounts: Mapping[tuple[Provider, str], AccountConfig] = field(default_factory=dict)
    default_accounts: Mapping[Provider, str] = field(default_factory=dict)
    dispatcher: DispatcherSettings = field(default_factory=DispatcherSettings)
    rate_limiter: RateLimiterSettings = field(default_factory=RateLimiterSettings)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    token_keeper: TokenKeeperSettings = field(default_factory=TokenKeeperSettings)
    catalog: CatalogSettings = field(default_factory=CatalogSettings)
    market: MarketSettings = field(default_factory=MarketSettings)
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    collector: CollectorSettings = field(default_factory=CollectorSettings)
    sentinel: SentinelSettings = field(default_factory=SentinelSettings)
    backfill: BackfillSettings = field(default_factory=BackfillSettings)

    @property
    def gatekeeper_url(self) -> str | None:
        """The Redis for rate limits: its own URL when set, else the main one."""
        return self.redis_url_gatekeeper or self.redis_url

    @property
    def watchlist(self) -> tuple[WatchEntry, ...]:
        """What the collector polls and the sentinel keeps complete: ``[[collector.watch]]``,
        else :data:`DEMO_WATCHLIST` when the KIS default account is the simulator's demo
        account, else nothing."""
        if self.collector.watch:
            return self.collector.watch
        try:
            demo = self.account(Provider.KIS).demo
        except KeyError:
            demo = False
        return DEMO_WATCHLIST if demo else ()

    def account(self, provider: Provider, name: str | None = None) -> AccountConfig:
        """The named account of ``provider`` or its default; ``KeyError`` when unknown."""
        resolved = name or self.default_accounts.get(provider, DEFAULT_ACCOUNT)
        return self.accounts[(provider, resolved)]

    def with_demo_base_url(self, base_url: str) -> Settings:
        """Point every demo account without a URL at ``base_url`` (the embedded simulator)."""
        accounts = {
            key: replace(acc, base_url=base_url) if acc.demo and not acc.base_url else acc
            for key, acc in self.accounts.items()
        }
        return replace(self, accounts=accounts)

    def with_redis_url(self, url: str) -> Settings:
        """The same settings talking to ``url`` (the embedded Redis)."""
        return replace(self, redis_url=url)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _positive(value: object, what: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(str(value))
    except ValueError:
        raise ConfigurationError(f"{what} must be a whole number, not {value!r}") from None
    if number <= 0:
        raise ConfigurationError(f"{what} must be positive, not {number}")
    return number


def _rate(
    base: AccountRate, per_s: object, per_min: object, per_api_id: object, where: str
) -> AccountRate:
    return AccountRate(
        per_second=_positive(per_s, f"{where} per-second rate") or base.per_second,
        per_minute=_positive(per_min, f"{where} per-minute rate") or base.per_minute,
        per_api_id_per_second=_positive(per_api_id, f"{where} per-api-id rate")
        or base.per_api_id_per_second,
    )


def _env_rate(provider: Provider, virtual: bool, env: Mapping[str, str]) -> AccountRate:
    prefix = f"APIHUB_{provider.value}_"
    return _rate(
        default_rate(provider, virtual),
        env.get(prefix + "RATE_PER_S"),
        env.get(prefix + "RATE_PER_MIN"),
        env.get(prefix + "RATE_PER_API_ID_PER_S"),
        prefix + "RATE_*",
    )


def _env_account(provider: Provider, env: Mapping[str, str]) -> AccountConfig:
    account = _env_account_credentials(provider, env)
    return replace(account, rate=_env_rate(provider, account.virtual, env))


def _env_account_credentials(provider: Provider, env: Mapping[str, str]) -> AccountConfig:
    prefix = f"APIHUB_{provider.value}_"
    key_name, secret_name = _SECRET_ENV_NAMES[provider]
    app_key = env.get(prefix + key_name, "").strip()
    app_secret = env.get(prefix + secret_name, "").strip()
    virtual = _truthy(env.get(prefix + "VIRTUAL"))
    base_url = env.get(prefix + "BASE_URL") or None
    if base_url is not None:
        check_http_url(base_url, prefix + "BASE_URL")
    if bool(app_key) != bool(app_secret):
        raise ConfigurationError(
            f"{prefix}{key_name} and {prefix}{secret_name} must be set together"
        )
    if not app_key:
        return AccountConfig(
            provider=provider,
            name=DEFAULT_ACCOUNT,
            app_key=_demo_secret(provider, "key", 36),
            app_secret=_demo_secret(provider, "secret", 180),
            base_url=base_url,
            virtual=virtual,
            account_no=env.get(prefix + "ACCOUNT_NO") or "50000000-01",
            demo=True,
        )
    real, vps = REAL_BASE_URLS[provider]
    return AccountConfig(
        provider=provider,
        name=DEFAULT_ACCOUNT,
        # Trailing newlines in pasted secrets are a classic EGW00105; strip() above handles it.
        app_key=Secret(app_key),
        app_secret=Secret(app_secret),
        base_url=base_url or (vps if virtual else real),
        virtual=virtual,
        account_no=env.get(prefix + "ACCOUNT_NO") or None,
    )


def _refuse_credentials(provider: Provider, name: str, spec: Mapping[str, Any]) -> None:
    for forbidden in ("app_key", "app_secret", "secret_key", "token"):
        if forbidden in spec:
            raise ConfigurationError(
                f"apihub.toml must not hold credentials ({provider.value}.{name}.{forbidden}); "
                "name an environment variable with app_key_env / app_secret_env instead"
            )


def _toml_account(
    provider: Provider, name: str, spec: Mapping[str, Any], env: Mapping[str, str]
) -> AccountConfig:
    _refuse_credentials(provider, name, spec)
    key_env = spec.get("app_key_env")
    secret_env = spec.get("app_secret_env")
    if not key_env or not secret_env:
        raise ConfigurationError(
            f"account {provider.value}.{name} needs app_key_env and app_secret_env"
        )
    app_key = env.get(str(key_env), "").strip()
    app_secret = env.get(str(secret_env), "").strip()
    if not app_key or not app_secret:
        raise ConfigurationError(
            f"account {provider.value}.{name}: environment variables {key_env} and "
            f"{secret_env} must both be set"
        )
    virtual = bool(spec.get("virtual", False))
    real, vps = REAL_BASE_URLS[provider]
    return AccountConfig(
        provider=provider,
        name=name,
        app_key=Secret(app_key),
        app_secret=Secret(app_secret),
        base_url=str(spec.get("base_url") or (vps if virtual else real)),
        virtual=virtual,
        account_no=spec.get("account_no"),
        rate=_spec_rate(provider, name, virtual, spec),
    )


def _spec_rate(
    provider: Provider, name: str, virtual: bool, spec: Mapping[str, Any]
) -> AccountRate:
    return _rate(
        default_rate(provider, virtual),
        spec.get("rate_per_s"),
        spec.get("rate_per_min"),
        spec.get("rate_per_api_id_per_s"),
        f"account {provider.value}.{name}",
    )


def _load_toml(path: Path | None, env: Mapping[str, str]) -> tuple[dict[str, Any], Path | None]:
    if path is None:
        configured = env.get("APIHUB_CONFIG")
        path = Path(configured) if configured else Path("apihub.toml")
        if not configured and not path.exists():
            return {}, None
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh), path
    except FileNotFoundError:
        raise ConfigurationError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise toml_error(path, exc) from None


def _section(doc: Mapping[str, Any], name: str, kind: type[_S]) -> _S:
    spec = doc.get(name, {})
    known = set(kind.__dataclass_fields__)  # type: ignore[attr-defined]
    unknown = set(spec) - known
    if unknown:
        raise ConfigurationError(f"unknown [{name}] settings: {', '.join(sorted(unknown))}")
    try:
        return msgspec.convert(dict(spec), type=kind, dec_hook=_path_hook)
    except msgspec.ValidationError as exc:
        raise ConfigurationError(f"bad [{name}] settings: {exc}") from None


def _path_hook(kind: type, value: Any) -> Any:
    # msgspec has no Path type: a path in TOML is a string (``~`` expanded; a relative one is
    # relative to the working directory, like ``[hub] data_dir``).
    if kind is Path and isinstance(value, str):
        return Path(value).expanduser()
    raise TypeError(f"expected a path string, got {type(value).__name__}")


def _catalog(doc: Mapping[str, Any], path: Path | None) -> CatalogSettings:
    spec = doc.get("catalog")
    if spec is None or path is None:
        return CatalogSettings()
    if not isinstance(spec, dict):
        raise ConfigurationError(f"{path}: [catalog] must be a table")
    unknown = set(spec) - {"tr", "passthrough"}
    if unknown:
        raise ConfigurationError(
            f"{path}: unknown [catalog] settings: {', '.join(sorted(unknown))}"
        )
    passthrough = spec.get("passthrough", True)
    if not isinstance(passthrough, bool):
        raise ConfigurationError(f"{path}: [catalog] passthrough must be true or false")
    # tomllib keeps no positions: the definitions are located again in the text for errors.
    text = path.read_text(encoding="utf-8")
    trs = parse_tr_tables(spec.get("tr", []), text, str(path), "catalog.tr")
    return CatalogSettings(trs=trs, passthrough=passthrough)


def load_settings(
    env: Mapping[str, str] | None = None, config_path: Path | None = None
) -> Settings:
    """Resolve settings from ``env`` (default ``os.environ``) and the optional TOML file.

    The environment wins over the file for the Redis URLs, namespace and data directory.
    """
    env = os.environ if env is None else env
    doc, source = _load_toml(config_path, env)
    if source is not None:
        check_document(doc, str(source))
    hub = doc.get("hub", {})
    accounts: dict[tuple[Provider, str], AccountConfig] = {}
    defaults: dict[Provider, str] = {}
    for provider in Provider:
        accounts[(provider, DEFAULT_ACCOUNT)] = _env_account(provider, env)
        section = doc.get("accounts", {}).get(provider.value.lower(), {})
        for name, spec in section.items():
            if name == "default_account":
                defaults[provider] = str(spec)
                continue
            if name == DEFAULT_ACCOUNT and "app_key_env" not in spec:
                # The environment's default account, with its limits from the file.
                _refuse_credentials(provider, name, spec)
                env_account = accounts[(provider, DEFAULT_ACCOUNT)]
                accounts[(provider, name)] = replace(
                    env_account,
                    rate=_spec_rate(provider, name, env_account.virtual, spec),
                )
                continue
            accounts[(provider, name)] = _toml_account(provider, name, spec, env)
        if provider in defaults and (provider, defaults[provider]) not in accounts:
            raise ConfigurationError(
                f"default_account {defaults[provider]!r} of {provider.value} is not configured"
            )
    redis_urls = {
        name: (env.get(name) or "").strip() or hub.get(key) or None
        for name, key in (
            ("REDIS_URL", "redis_url"),
            ("REDIS_URL_GATEKEEPER", "redis_url_gatekeeper"),
        )
    }
    for name, url in redis_urls.items():
        if url is not None:
            check_redis_url(url, name if env.get(name) else f"{source}: [hub] {name.lower()}")
    return Settings(
        redis_url=redis_urls["REDIS_URL"],
        redis_url_gatekeeper=redis_urls["REDIS_URL_GATEKEEPER"],
        namespace=env.get("APIHUB_NAMESPACE") or hub.get("namespace") or DEFAULT_NAMESPACE,
        data_dir=Path(env.get("APIHUB_DATA_DIR") or hub.get("data_dir") or ".apihub"),
        accounts=accounts,
        default_accounts=defaults,
        dispatcher=_section(doc, "dispatcher", DispatcherSettings),
        rate_limiter=_section(doc, "rate_limiter", RateLimiterSettings),
        breaker=_section(doc, "breaker", BreakerSettings),
        token_keeper=_section(doc, "token_keeper", TokenKeeperSettings),
        catalog=_catalog(doc, source),
        market=_section(doc, "market", MarketSettings),
        archive=_section(doc, "archive", ArchiveSettings),
        collector=collector_settings(doc, str(source)),
        sentinel=_section(doc, "sentinel", SentinelSettings),
        backfill=_section(doc, "backfill", BackfillSettings),
    )
