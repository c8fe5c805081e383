"""The opt-in OpenTelemetry SDK set-up of a service process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from apihub_runtime import configure_tracing


def test_tracing_stays_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert configure_tracing("apihub-test") is False
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert configure_tracing("apihub-test") is False


def test_an_unknown_exporter_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "carrier-pigeon")
    with pytest.raises(RuntimeError, match="console or otlp"):
        configure_tracing("apihub-test")


SCRIPT = """
from apihub_core import inject_trace, tracer
from apihub_runtime import configure_tracing
from opentelemetry import trace
assert configure_tracing("apihub-test")
with tracer.start_as_current_span("hello-span"):
    carrier = inject_trace()
    assert carrier["traceparent"].startswith("00-"), carrier
trace.get_tracer_provider().shutdown()
"""


def test_console_exporter_prints_spans() -> None:
    # In a child process: the global tracer provider can be set only once per process.
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "svc-x"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "hello-span" in result.stdout
    assert "svc-x" in result.stdout


def test_otlp_without_its_package_says_which_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("opentelemetry.sdk")
    try:
        import opentelemetry.exporter.otlp.proto.http  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the OTLP exporter is installed here")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    with pytest.raises(RuntimeError, match="opentelemetry-exporter-otlp-proto-http"):
        configure_tracing("apihub-test")
