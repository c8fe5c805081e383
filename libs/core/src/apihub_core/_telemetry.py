"""OpenTelemetry across stream hops: the caller's trace context rides on the request event.

``HubClient`` opens a PRODUCER span and writes its W3C ``traceparent`` into
``RequestSubmitted.trace``; the dispatcher continues that trace with a CONSUMER span and one
CLIENT span per broker attempt, so one call is one trace in Jaeger however many processes it
crossed. Span attributes name the request (id, provider, TR, account, outcome), never a
credential or a token.

Without a configured ``TracerProvider`` the API is a no-op and costs next to nothing;
:func:`configure_tracing` installs the SDK when ``OTEL_TRACES_EXPORTER`` asks for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context

TRACER_NAME = "apihub"

tracer = trace.get_tracer(TRACER_NAME)
"""The tracer every apihub component records with."""


def inject_trace() -> dict[str, str]:
    """The current trace context as a carrier for ``RequestSubmitted.trace`` (empty if none)."""
    carrier: dict[str, str] = {}
    if trace.get_current_span().get_span_context().is_valid:
        propagate.inject(carrier)
    return carrier


def extract_trace(carrier: Mapping[str, str]) -> Context | None:
    """The context a producer put on the wire, or ``None`` to start a new trace."""
    return propagate.extract(dict(carrier)) if carrier else None


def configure_tracing(service_name: str) -> bool:
    """Install the OpenTelemetry SDK for ``service_name`` if the environment asks for it.

    ``OTEL_TRACES_EXPORTER=console`` prints spans on stderr; ``otlp`` sends them to
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` (Jaeger accepts OTLP) and needs the
    ``opentelemetry-exporter-otlp`` package. Returns whether tracing was enabled.
    """
    wanted = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if wanted in ("", "none"):
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    exporter: SpanExporter
    if wanted == "console":
        exporter = ConsoleSpanExporter()
    elif wanted == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        except ImportError as exc:
            raise RuntimeError(
                "OTEL_TRACES_EXPORTER=otlp needs the opentelemetry-exporter-otlp-proto-http package"
            ) from exc
        exporter = OTLPSpanExporter()
    else:
        raise RuntimeError(f"unsupported OTEL_TRACES_EXPORTER {wanted!r} (console or otlp)")
    name = os.environ.get("OTEL_SERVICE_NAME", service_name)
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True
