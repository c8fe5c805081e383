"""The configuration's shape is checked: a mistake is one line naming it, never ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from apihub_core import ConfigurationError
from apihub_runtime import load_settings


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "apihub.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _refused(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(env=env or {}, config_path=_toml(tmp_path, text))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_valid_file_is_accepted(tmp_path: Path) -> None:
    text = (
        '[hub]\nnamespace = "desk"\nredis_url = "redis://127.0.0.1:6379/0"\n'
        '[accounts.kis]\ndefault_account = "main"\n'
        '[accounts.kis.main]\napp_key_env = "K"\napp_secret_env = "S"\nrate_per_s = 9\n'
        "[accounts.kiwoom.default]\nrate_per_s = 4\n[dispatcher]\nconcurrency = 8\n"
    )
    settings = load_settings(env={"K": "key", "S": "secret"}, config_path=_toml(tmp_path, text))
    assert settings.namespace == "desk"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[hubb]\nnamespace = "x"\n', "'hubb' (did you mean 'hub'?)"),
        ('[hub]\nredis_ur = "redis://h"\n', "[hub]: unknown setting 'redis_ur' (did you mean"),
        ("[accounts.kiss]\n", "[accounts]: unknown setting 'kiss'"),
        (
            '[accounts.kis.main]\napp_key_env = "K"\napp_secret_env = "S"\nvirtaul = true\n',
            "[accounts.kis.main]: unknown setting 'virtaul' (did you mean 'virtual'?)",
        ),
        ("[accounts.kis.default]\nvirtual = true\n", "[accounts.kis.default]: unknown setting"),
        ("[dispatcher]\nconcurency = 3\n", "concurency"),
    ],
)
def test_an_unknown_key_is_refused_by_name(tmp_path: Path, text: str, named: str) -> None:
    message = _refused(tmp_path, text, {"K": "key", "S": "secret"})
    assert named in message
    assert str(tmp_path / "apihub.toml") in message or "[dispatcher]" in message


def test_credentials_in_the_file_keep_their_own_refusal(tmp_path: Path) -> None:
    message = _refused(tmp_path, "[accounts.kis.main]\napp_key = 'oops'\n")
    assert "must not hold credentials" in message
    assert "oops" not in message


@pytest.mark.parametrize("text", ["hub = 3\n", "[accounts]\nkis = 1\n", "[hub]\nnamespace = 7\n"])
def test_a_section_of_the_wrong_type_is_refused(tmp_path: Path, text: str) -> None:
    assert "must be" in _refused(tmp_path, text)


def test_a_toml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    message = _refused(tmp_path, '[hub]\nnamespace = "x"\ndata_dir = \n')
    assert message.startswith(f"{tmp_path / 'apihub.toml'}:3:")
    assert "not valid TOML" in message
    assert "(at line" not in message


@pytest.mark.parametrize(
    "url", ["notaurl", "http://h:6379", "redis://", "redis://h:notaport/0", "redis://h/db"]
)
def test_a_malformed_redis_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="REDIS_URL is not a Redis URL"):
        load_settings(env={"REDIS_URL": url})


def test_a_redis_url_password_never_appears_in_the_refusal() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(env={"REDIS_URL_GATEKEEPER": "redis://:hunter2@h:99999/0"})
    assert "REDIS_URL_GATEKEEPER" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert "***" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:6379/0", "rediss://u:p@h:6380", "unix:///tmp/redis.sock", "redis://h"],
)
def test_well_formed_redis_urls_are_accepted(url: str) -> None:
    assert load_settings(env={"REDIS_URL": url}).redis_url == url


def test_a_malformed_redis_url_in_the_file_names_the_file(tmp_path: Path) -> None:
    message = _refused(tmp_path, '[hub]\nredis_url = "localhost:6379"\n')
    assert "[hub] redis_url is not a Redis URL" in message


def test_a_malformed_base_url_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="APIHUB_KIS_BASE_URL is not an http"):
        load_settings(env={"APIHUB_KIS_BASE_URL": "localhost:8080"})


@pytest.mark.parametrize(
    "env",
    [
        {"APIHUB_KIS_APP_KEY": "key-only"},
        {"APIHUB_KIWOOM_SECRET_KEY": "secret-only"},
    ],
)
def test_half_a_credential_is_refused_without_showing_it(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="must be set together") as caught:
        load_settings(env=env)
    assert "only" not in str(caught.value)
