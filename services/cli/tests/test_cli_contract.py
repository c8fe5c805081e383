"""What scripts rely on: exit codes by outcome, one line on stderr and no traceback for bad input
or configuration, parameters checked before anything is sent, `config check`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apihub_runtime import ExitCode

PRICE = ("KIS", "FHKST01010100")


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("APIHUB_") and k not in {"REDIS_URL", "REDIS_URL_GATEKEEPER"}
    }
    env["APIHUB_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def _run(
    *args: str, env: dict[str, str], module: str = "apihub_cli", stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "hubdata"


# -- parameters: refused before looking for a hub, so no hub is needed -----------------------


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["-p", "A=1", "-p", "A=2"], "parameter 'A' is given twice"),
        (
            ["-p", "FID_INPUT_ISCD=1", "-p", "fid_input_iscd=2"],
            "parameter 'fid_input_iscd' is given twice",
        ),
        (
            ["--params-json", '{"FID_INPUT_ISCD": "005930"}', "-p", "FID_INPUT_ISCD=005930"],
            "parameter 'FID_INPUT_ISCD' is given twice",
        ),
        (
            ["-p", "FID_COND_MRKT_DIV_CODE=J", "-p", "FID_INPUT_ISCX=005930"],
            "parameter 'FID_INPUT_ISCX' is not a parameter of KIS FHKST01010100",
        ),
        (["--params-json", "{not json"], "--params-json is not valid JSON"),
        (["--params-json", "[1, 2]"], "must be a JSON object"),
        (["--params-json", '{"FID_INPUT_ISCD": 5930}'], "the value of 'FID_INPUT_ISCD' must be"),
        (["--params-json", "@/nonexistent/params.json"], "cannot read"),
        (["-p", "novalue"], "is not KEY=VALUE"),
        (["--priority", "urgent"], "--priority 'urgent'"),
        (["--timeout", "0"], "--timeout must be more than 0"),
    ],
)
def test_bad_parameters_are_usage_errors_naming_them(
    data_dir: Path, args: list[str], reason: str
) -> None:
    result = _run("call", *PRICE, *args, env=_env(data_dir))
    assert result.returncode == ExitCode.USAGE
    assert reason in _one_line(result)
    assert result.stdout == ""


def test_unknown_parameter_refusal_lists_the_known_ones_and_the_way_out(data_dir: Path) -> None:
    result = _run("call", *PRICE, "-p", "NOPE=1", env=_env(data_dir))
    line = _one_line(result)
    assert "FID_COND_MRKT_DIV_CODE" in line
    assert "--allow-unknown-params" in line


def test_an_unknown_provider_is_a_usage_error(data_dir: Path) -> None:
    result = _run("call", "FOO", "X", env=_env(data_dir))
    assert result.returncode == ExitCode.USAGE
    assert "unknown provider 'FOO'" in _one_line(result)


def test_allowed_unknown_and_json_parameters_pass_the_checks(
    data_dir: Path, tmp_path: Path
) -> None:
    """Past the parameter checks the next step is finding the hub: none runs, so 24."""
    params = tmp_path / "params.json"
    params.write_text('{"FID_INPUT_ISCD": "005930"}', encoding="utf-8")
    env = _env(data_dir)
    for args, stdin in [
        (["-p", "FID_COND_MRKT_DIV_CODE=J", "-p", "EXTRA=1", "--allow-unknown-params"], None),
        (["-p", "FID_COND_MRKT_DIV_CODE=J", "--params-json", f"@{params}"], None),
        (["--params-json", "-"], '{"FID_COND_MRKT_DIV_CODE": "J"}'),
    ]:
        result = _run("call", *PRICE, *args, env=env, stdin=stdin)
        assert result.returncode == ExitCode.HUB_UNAVAILABLE, result.stderr
        assert "no running hub" in _one_line(result)


# -- configuration: one line, exit 3, every command ----------------------------------------

ENTRY_POINTS = [
    ("apihub_cli", ["call", *PRICE]),
    ("apihub_cli", ["up"]),
    ("apihub_cli", ["dispatcher"]),
    ("apihub_cli", ["token-keeper"]),
    ("apihub_cli", ["reconciler"]),
    ("apihub_cli", ["orders", "reconcile", "some-request-id"]),
    ("apihub_cli", ["config", "check"]),
    ("apihub_dispatcher", []),
    ("apihub_token_keeper", []),
    ("apihub_reconciler", []),
]


@pytest.mark.parametrize(("module", "args"), ENTRY_POINTS)
def test_a_malformed_redis_url_is_a_configuration_error(
    data_dir: Path, module: str, args: list[str]
) -> None:
    result = _run(*args, env=_env(data_dir, REDIS_URL="notaurl"), module=module)
    assert result.returncode == ExitCode.CONFIGURATION
    assert "REDIS_URL is not a Redis URL" in _one_line(result)


@pytest.mark.parametrize(("module", "args"), ENTRY_POINTS)
def test_a_toml_syntax_error_names_file_and_line(
    data_dir: Path, tmp_path: Path, module: str, args: list[str]
) -> None:
    config = tmp_path / "apihub.toml"
    config.write_text('[hub]\nnamespace = "desk\n', encoding="utf-8")
    result = _run(*args, env=_env(data_dir, APIHUB_CONFIG=str(config)), module=module)
    assert result.returncode == ExitCode.CONFIGURATION
    assert f"{config}:2:" in _one_line(result)


@pytest.mark.parametrize(("module", "args"), ENTRY_POINTS)
def test_half_a_credential_is_a_configuration_error(
    data_dir: Path, module: str, args: list[str]
) -> None:
    env = _env(data_dir, APIHUB_KIS_APP_KEY="half-of-a-credential")
    result = _run(*args, env=env, module=module)
    assert result.returncode == ExitCode.CONFIGURATION
    line = _one_line(result)
    assert "APIHUB_KIS_APP_SECRET" in line
    assert "half-of-a-credential" not in result.stderr + result.stdout


def test_an_unknown_key_in_apihub_toml_is_refused_by_name(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "apihub.toml"
    config.write_text('[hub]\nnamspace = "desk"\n', encoding="utf-8")
    result = _run("up", "-c", str(config), env=_env(data_dir))
    assert result.returncode == ExitCode.CONFIGURATION
    assert "unknown setting 'namspace' (did you mean 'namespace'?)" in _one_line(result)


def test_services_without_a_hub_exit_hub_unavailable(data_dir: Path) -> None:
    for module in ("apihub_dispatcher", "apihub_token_keeper", "apihub_reconciler"):
        result = _run(env=_env(data_dir), module=module)
        assert result.returncode == ExitCode.HUB_UNAVAILABLE
        assert "apihub up" in _one_line(result)


def test_python_m_services_answer_help_and_refuse_options(data_dir: Path) -> None:
    for module in ("apihub_dispatcher", "apihub_token_keeper", "apihub_reconciler"):
        assert _run("-h", env=_env(data_dir), module=module).returncode == 0
        assert _run("--bogus", env=_env(data_dir), module=module).returncode == ExitCode.USAGE


def test_a_bad_log_level_is_a_usage_error(data_dir: Path) -> None:
    result = _run("up", "--log-level", "loud", env=_env(data_dir))
    assert result.returncode == ExitCode.USAGE
    assert "Traceback" not in result.stderr


# -- config check --------------------------------------------------------------------------

KEY = "PSabcdefghijklmnopqrstuvwxyz0123456789"
SECRET = "s3cr3t-" + "x" * 40


def test_config_check_shows_what_was_resolved_without_secrets(
    data_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "apihub.toml"
    config.write_text(
        '[hub]\nnamespace = "desk"\n[accounts.kis.paper]\napp_key_env = "PK"\n'
        'app_secret_env = "PS"\nvirtual = true\n',
        encoding="utf-8",
    )
    env = _env(
        data_dir,
        REDIS_URL="redis://:hunter2-password@127.0.0.1:6390/0",
        APIHUB_KIS_APP_KEY=KEY,
        APIHUB_KIS_APP_SECRET=SECRET,
        PK=KEY[::-1],
        PS=SECRET[::-1],
    )
    result = _run("config", "check", "-c", str(config), env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for secret in (KEY, SECRET, KEY[::-1], SECRET[::-1], "hunter2-password"):
        assert secret not in out
    assert "redis://:***@127.0.0.1:6390/0 (REDIS_URL)" in out
    assert "namespace:        desk" in out
    assert "KIS paper: app key " in out
    assert "virtual service" in out
    assert "KIWOOM default (default): demo credentials" in out
    assert out.rstrip().endswith("configuration is valid")

    as_json = _run("config", "check", "-c", str(config), "--format", "json", env=env)
    assert as_json.returncode == 0
    data = json.loads(as_json.stdout)
    assert data["valid"] is True
    assert data["namespace"] == "desk"
    accounts = {(a["provider"], a["name"]): a for a in data["accounts"]}
    fingerprint = accounts[("KIS", "default")]["app_key_fingerprint"]
    assert fingerprint
    assert fingerprint in out
    assert accounts[("KIS", "paper")]["service"] == "virtual"
    assert KEY not in as_json.stdout
    assert SECRET not in as_json.stdout


def test_config_check_refuses_an_invalid_configuration(data_dir: Path) -> None:
    result = _run("config", "check", env=_env(data_dir, APIHUB_TOKEN_KEY="not-a-key"))
    assert result.returncode == ExitCode.CONFIGURATION
    assert "APIHUB_TOKEN_KEY" in _one_line(result)
    assert result.stdout == ""


def test_config_check_without_a_hub_says_how_redis_is_found(data_dir: Path) -> None:
    result = _run("config", "check", env=_env(data_dir))
    assert result.returncode == 0
    assert "`apihub up` embeds a redis-server" in result.stdout


# -- the catalog: `apihub trs`, apihub.toml extensions, pass-through ----------------------------

EXTRA_TR = """\
[[catalog.tr]]
provider = "KIS"
tr_id = "FHKST01010900"
method = "GET"
path = "/uapi/domestic-stock/v1/quotations/inquire-investor"
required = ["FID_COND_MRKT_DIV_CODE", "FID_INPUT_ISCD"]
family = "quotations"
description = "investor flows"
"""


def test_trs_lists_the_configured_catalog_in_three_formats(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "apihub.toml"
    config.write_text(EXTRA_TR, encoding="utf-8")
    env = _env(data_dir)
    listed = _run("trs", "--format", "json", "-c", str(config), env=env)
    assert listed.returncode == ExitCode.OK, listed.stderr
    rows = json.loads(listed.stdout)
    by_id = {row["tr_id"]: row for row in rows}
    assert by_id["TTTC0013U"]["kind"] == "order"
    assert by_id["TTTC8434R"]["virtual_tr_id"] == "VTTC8434R"
    assert by_id["FHKST01010900"]["source"].endswith("apihub.toml:1")  # the extension is in
    assert by_id["ka10075"]["required"] == ["all_stk_tp", "trde_tp", "stex_tp"]
    kiwoom = _run("trs", "kiwoom", "--format", "markdown", env=env)
    assert kiwoom.returncode == ExitCode.OK
    assert "| KIWOOM | `kt10003` |" in kiwoom.stdout
    assert "| KIS |" not in kiwoom.stdout
    table = _run("trs", env=env)
    assert table.returncode == ExitCode.OK
    assert "FHKST01010200" in table.stdout
    assert "order-rvsecncl" in table.stdout
    bad = _run("trs", "--format", "yaml", env=env)
    assert bad.returncode == ExitCode.USAGE
    assert "'yaml' is not one of table, json, markdown" in _one_line(bad)
    assert _run("trs", "NYSE", env=env).returncode == ExitCode.USAGE


def test_a_tr_added_in_apihub_toml_passes_the_parameter_check(
    data_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "apihub.toml"
    config.write_text(EXTRA_TR, encoding="utf-8")
    args = ("call", "KIS", "FHKST01010900", "-p", "FID_INPUT_ISCD=005930", "-p", "TYPO=1")
    refused = _run(*args, "-c", str(config), env=_env(data_dir))
    assert refused.returncode == ExitCode.USAGE
    assert "'TYPO'" in _one_line(refused)
    # Without the typo the checks pass and the call looks for a hub (none here).
    passed = _run(*args[:-2], "-c", str(config), env=_env(data_dir))
    assert passed.returncode == ExitCode.HUB_UNAVAILABLE, passed.stderr


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (["--path", "/uapi/x"], "needs --path and --kind"),
        (["--kind", "query"], "needs --path and --kind"),
        (["--path", "/uapi/x", "--kind", "maybe"], "--kind must be query or order"),
        (
            ["--path", "/uapi/x", "--kind", "query", "--method", "PUT"],
            "--method must be GET or POST",
        ),
        (["--all-pages", "--cont"], "--all-pages starts at the first page"),
    ],
)
def test_pass_through_and_paging_options_are_checked_before_anything_is_sent(
    data_dir: Path, extra: list[str], reason: str
) -> None:
    result = _run("call", "KIS", "FHKST01010999", *extra, env=_env(data_dir))
    assert result.returncode == ExitCode.USAGE
    assert reason in _one_line(result)


def test_a_pass_through_skips_the_catalog_parameter_check(data_dir: Path) -> None:
    result = _run(
        "call",
        "KIS",
        "FHKST01010999",
        "-p",
        "ANY_NAME=1",
        "--path",
        "/uapi/domestic-stock/v1/quotations/x",
        "--kind",
        "query",
        env=_env(data_dir),
    )
    assert result.returncode == ExitCode.HUB_UNAVAILABLE, result.stderr
