"""Checks of the configuration's shape, so a mistake is one line naming it instead of a
setting silently ignored or a traceback later: unknown keys of ``apihub.toml`` (with the
nearest known one), tables that are not tables, URLs that are not URLs, a TOML syntax error as
``file:line:column``. Used by :func:`~apihub_runtime.load_settings`; never prints a secret (a
URL's password is masked)."""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from apihub_core import ConfigurationError, masked_url

SECTIONS: Final = frozenset(
    {
        "hub",
        "accounts",
        "dispatcher",
        "rate_limiter",
        "breaker",
        "token_keeper",
        "catalog",
        "market",
        "archive",
        "collector",
        "sentinel",
        "backfill",
    }
)
HUB_KEYS: Final = frozenset({"namespace", "data_dir", "redis_url", "redis_url_gatekeeper"})
PROVIDER_TABLES: Final = frozenset({"kis", "kiwoom"})
ACCOUNT_KEYS: Final = frozenset(
    {
        "app_key_env",
        "app_secret_env",
        "base_url",
        "virtual",
        "account_no",
        "rate_per_s",
        "rate_per_min",
        "rate_per_api_id_per_s",
    }
)
RATE_KEYS: Final = frozenset({"rate_per_s", "rate_per_min", "rate_per_api_id_per_s"})
CREDENTIAL_KEYS: Final = frozenset({"app_key", "app_secret", "secret_key", "token"})
"""Refused with their own message (a file must never hold credentials), not as unknown."""

REDIS_SCHEMES: Final = ("redis", "rediss", "unix")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def unknown_keys(
    keys: Iterable[str], known: Iterable[str], where: str, *, ignore: Iterable[str] = ()
) -> None:
    """Refuse the first key of ``keys`` not in ``known``, naming it and the nearest known one."""
    allowed = set(known)
    for key in sorted(set(keys) - allowed - set(ignore)):
        close = difflib.get_close_matches(key, sorted(allowed), n=1)
        hint = (
            f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(allowed))})"
        )
        raise ConfigurationError(f"{where}: unknown setting {key!r}{hint}")


def table(value: object, where: str) -> Mapping[str, Any]:
    """``value`` when it is a TOML table, else a :class:`ConfigurationError`."""
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{where} must be a table, not {type(value).__name__}")
    return value


def check_document(doc: Mapping[str, Any], source: str) -> None:
    """Refuse what ``load_settings`` would otherwise ignore: unknown sections and keys of
    ``[hub]`` and the accounts, and sections that are not tables. The tuning sections
    (``[dispatcher]`` …) check their own keys."""
    unknown_keys(doc, SECTIONS, source)
    for name in SECTIONS & set(doc):
        table(doc[name], f"{source}: [{name}]")
    unknown_keys(doc.get("hub", {}), HUB_KEYS, f"{source}: [hub]")
    for name, value in doc.get("hub", {}).items():
        if not isinstance(value, str):
            raise ConfigurationError(f"{source}: [hub] {name} must be a string")
    accounts = doc.get("accounts", {})
    unknown_keys(accounts, PROVIDER_TABLES, f"{source}: [accounts]")
    for provider in PROVIDER_TABLES & set(accounts):
        where = f"{source}: [accounts.{provider}]"
        for name, spec in table(accounts[provider], where).items():
            if name == "default_account":
                if not isinstance(spec, str):
                    raise ConfigurationError(f"{where} default_account must be a string")
                continue
            account = f"{source}: [accounts.{provider}.{name}]"
            # The environment's default account takes only its budget from the file.
            known = RATE_KEYS if name == "default" and "app_key_env" not in spec else ACCOUNT_KEYS
            unknown_keys(table(spec, account), known, account, ignore=CREDENTIAL_KEYS)
            if spec.get("base_url") is not None:
                check_http_url(spec["base_url"], account + " base_url")


def check_redis_url(url: str, what: str) -> str:
    """``url`` when redis-py can connect with it (``redis://``, ``rediss://``, ``unix://``),
    else a :class:`ConfigurationError` naming ``what`` and showing the URL masked."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        parts, port = None, None
    ok = parts is not None and parts.scheme in REDIS_SCHEMES
    if parts is not None and ok and parts.scheme != "unix":
        database = parts.path.lstrip("/")
        ok = bool(parts.hostname) and (database == "" or database.isdigit())
        ok = ok and (port is None or 0 < port < 65536)
    elif parts is not None and ok:
        ok = bool(parts.path)
    if not ok:
        raise ConfigurationError(
            f"{what} is not a Redis URL: {masked_url(url)!r} (expected "
            "redis://[[user]:password@]host[:port][/db], rediss://… or unix:///path)"
        )
    return url


def check_http_url(url: object, what: str) -> str:
    """``url`` when it is an ``http(s)://host…`` URL, else a :class:`ConfigurationError`."""
    text = str(url)
    try:
        parts = urlsplit(text)
        _ = parts.port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{what} is not an http(s) URL: {masked_url(text)!r} (expected https://host[:port])"
        )
    return text


def toml_error(path: Path, exc: tomllib.TOMLDecodeError) -> ConfigurationError:
    """A TOML syntax error as ``file:line:column: reason``, the way compilers say it."""
    reason = str(exc)
    found = _TOML_POSITION.search(reason)
    if found is None:
        return ConfigurationError(f"{path}: not valid TOML: {reason}")
    line, column = found.groups()
    return ConfigurationError(f"{path}:{line}:{column}: not valid TOML: {reason[: found.start()]}")
