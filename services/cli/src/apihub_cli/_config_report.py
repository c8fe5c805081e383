"""``apihub config check``: what the configuration resolves to, without a secret in it.

Credentials appear as the fingerprint of the app key only (the same one the token-keeper logs);
a Redis URL's password is masked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from apihub_core import advertised_hub_url, masked_url
from apihub_runtime import AccountConfig, Settings, load_token_key

TOKEN_KEY_ENV = "APIHUB_TOKEN_KEY"  # noqa: S105 - the variable's name, not a key


def config_file(explicit: Path | None, env: Mapping[str, str]) -> Path | None:
    """The TOML file ``load_settings`` reads (the same rule), or ``None``."""
    if explicit is not None:
        return explicit
    configured = env.get("APIHUB_CONFIG")
    if configured:
        return Path(configured)
    default = Path("apihub.toml")
    return default if default.exists() else None


def _redis(settings: Settings, env: Mapping[str, str]) -> dict[str, Any]:
    if settings.redis_url:
        source = "REDIS_URL" if env.get("REDIS_URL") else "[hub] redis_url"
        return {"url": masked_url(settings.redis_url), "source": source}
    running = advertised_hub_url(settings.data_dir)
    return {
        "url": masked_url(running) if running else None,
        "source": "advertised by `apihub up`" if running else "none running",
        "note": "not set: `apihub up` embeds a redis-server; other commands find it",
    }


def _rate(account: AccountConfig) -> str:
    rate = account.rate
    parts = [
        f"{rate.per_second}/s" if rate.per_second else "",
        f"{rate.per_minute}/min" if rate.per_minute else "",
        f"{rate.per_api_id_per_second}/s per api-id" if rate.per_api_id_per_second else "",
    ]
    return ", ".join(part for part in parts if part) or "unlimited"


def _masked_account_no(number: str | None) -> str | None:
    if not number:
        return None
    _, sep, product = number.rpartition("-")
    return f"********-{product}" if sep else "set"


def _account(account: AccountConfig, default: bool) -> dict[str, Any]:
    if account.demo:
        base_url = account.base_url or "the simulator of `apihub up`"
    else:
        base_url = account.base_url or ""
    return {
        "provider": account.provider.value,
        "name": account.name,
        "default": default,
        "credentials": "demo" if account.demo else "real",
        "service": "virtual" if account.virtual else "real",
        "base_url": base_url,
        "app_key_fingerprint": None if account.demo else account.app_key.fingerprint(),
        # An account number is no credential, but personal: its product code (-01) is enough
        # to see that it is set.
        "account_no": _masked_account_no(account.account_no),
        "rate": _rate(account),
    }


def report(settings: Settings, config: Path | None, env: Mapping[str, str]) -> dict[str, Any]:
    """Everything worth seeing of ``settings`` as plain data; raises ``ConfigurationError``
    for what only shows when used (a malformed ``APIHUB_TOKEN_KEY``)."""
    if env.get(TOKEN_KEY_ENV):
        load_token_key(settings.data_dir, env)  # decodes the variable; writes nothing
        token_key = TOKEN_KEY_ENV
    else:
        token_key = str(settings.data_dir / "token.key")
    accounts = [
        _account(acc, acc.name == settings.default_accounts.get(acc.provider, "default"))
        for _, acc in sorted(settings.accounts.items(), key=lambda item: item[0])
    ]
    dispatcher, tokens = settings.dispatcher, settings.token_keeper
    return {
        "config_file": str(config) if config else None,
        "redis": _redis(settings, env),
        "gatekeeper_redis": masked_url(settings.redis_url_gatekeeper)
        if settings.redis_url_gatekeeper
        else "same as redis",
        "namespace": settings.namespace,
        "data_dir": str(settings.data_dir.absolute()),
        "token_key": token_key,
        "accounts": accounts,
        "dispatcher": {
            key: asdict(dispatcher)[key]
            for key in (
                "concurrency",
                "max_deliveries",
                "http_timeout_s",
                "max_request_s",
                "shutdown_grace_s",
                "transport",
                "redis_max_connections",
                "non_idempotent_trs",
            )
        },
        "token_keeper": {
            key: asdict(tokens)[key]
            for key in ("refresh_before_s", "kis_issue_window_s", "token_wait_s", "eager")
        },
        "rate_limiter": {
            "enabled": settings.rate_limiter.enabled,
            "max_wait_s": settings.rate_limiter.max_wait_s,
            "max_requeues": settings.rate_limiter.max_requeues,
        },
        "breaker": {
            "enabled": settings.breaker.enabled,
            "failure_threshold": settings.breaker.failure_threshold,
            "open_s": settings.breaker.open_s,
        },
    }


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "none"
    return "none" if value is None else str(value)


def render(data: Mapping[str, Any]) -> list[str]:
    """The report as aligned text lines."""
    redis = data["redis"]
    redis_line = f"{redis['url']} ({redis['source']})" if redis["url"] else redis["note"]
    lines = [
        f"config file:      {data['config_file'] or 'none (defaults and environment)'}",
        f"redis:            {redis_line}",
        f"gatekeeper redis: {data['gatekeeper_redis']}",
        f"namespace:        {data['namespace']}",
        f"data dir:         {data['data_dir']}",
        f"token key:        {data['token_key']}",
        "accounts:",
    ]
    for acc in data["accounts"]:
        key = (
            f"app key {acc['app_key_fingerprint']}"
            if acc["app_key_fingerprint"]
            else "demo credentials (the simulator only)"
        )
        mark = " (default)" if acc["default"] else ""
        lines.append(f"  {acc['provider']} {acc['name']}{mark}: {key}, {acc['service']} service")
        lines.append(f"    base URL {acc['base_url']}, rate {acc['rate']}")
        if acc["account_no"]:
            lines.append(f"    account no {acc['account_no']}")
    for section in ("dispatcher", "token_keeper", "rate_limiter", "breaker"):
        values = " ".join(f"{k}={_scalar(v)}" for k, v in data[section].items())
        lines.append(f"{section.replace('_', '-') + ':':<17} {values}")
    return lines


def environment() -> Mapping[str, str]:
    """The process environment (a function, so the report reads it once)."""
    return dict(os.environ)
