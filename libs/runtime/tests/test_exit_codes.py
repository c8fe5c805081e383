"""One exit-code table for every apihub process: each outcome class its own code."""

from __future__ import annotations

from pathlib import Path

import pytest

from apihub_core import (
    CircuitOpen,
    ConfigurationError,
    HubError,
    HubUnavailable,
    OutcomeUnknown,
    RequestInvalid,
    RequestTimeout,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTransient,
)
from apihub_runtime import ExitCode, TokenKeyError, exit_code_for

TABLE = [
    (ConfigurationError("x"), ExitCode.CONFIGURATION, 3),
    (TokenKeyError("x"), ExitCode.CONFIGURATION, 3),
    (RequestInvalid("x"), ExitCode.INVALID, 10),
    (UpstreamRejected("x"), ExitCode.REJECTED, 11),
    (UpstreamAuthError("x"), ExitCode.AUTH, 12),
    (RequestTimeout("x"), ExitCode.TIMEOUT, 20),
    (UpstreamRateLimited("x"), ExitCode.RATE_LIMITED, 21),
    (UpstreamTransient("x"), ExitCode.UPSTREAM_TRANSIENT, 22),
    (CircuitOpen("x"), ExitCode.CIRCUIT_OPEN, 23),
    (HubUnavailable("x"), ExitCode.HUB_UNAVAILABLE, 24),
    (OutcomeUnknown("x"), ExitCode.OUTCOME_UNKNOWN, 30),
]


@pytest.mark.parametrize(("error", "code", "number"), TABLE)
def test_each_error_class_has_its_documented_code(
    error: HubError, code: ExitCode, number: int
) -> None:
    assert exit_code_for(error) is code
    assert int(code) == number


def test_every_code_is_distinct_below_126_and_one_is_only_the_unexpected() -> None:
    values = [int(code) for code in ExitCode]
    assert len(values) == len(set(values))
    assert all(0 <= value < 126 for value in values)
    assert exit_code_for(RuntimeError("a bug")) is ExitCode.FAILURE == 1
    # Unclassified members of the tree are "unexpected" too, never mistaken for a class.
    assert exit_code_for(HubError("x")) is ExitCode.FAILURE
    assert exit_code_for(UpstreamError("x")) is ExitCode.FAILURE
    assert ExitCode.USAGE == 2, "click's own code for bad flags"
    assert 1 not in {int(code) for _, code, _ in TABLE}


def test_a_subclass_gets_its_nearest_class_code() -> None:
    class DeeperOutage(HubUnavailable):
        pass

    assert exit_code_for(DeeperOutage("x")) is ExitCode.HUB_UNAVAILABLE


def test_retry_later_is_exactly_the_transient_outcomes() -> None:
    later = {code for code in ExitCode if code.retry_later}
    assert later == {
        ExitCode.TIMEOUT,
        ExitCode.RATE_LIMITED,
        ExitCode.UPSTREAM_TRANSIENT,
        ExitCode.CIRCUIT_OPEN,
        ExitCode.HUB_UNAVAILABLE,
    }


def test_the_table_in_docs_cli_md_matches_the_enum() -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "cli.md").read_text(encoding="utf-8")
    for code in ExitCode:
        assert f"| {int(code)} | `{code.name}` |" in doc, code.name
