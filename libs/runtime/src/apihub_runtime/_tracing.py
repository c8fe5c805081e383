"""OpenTelemetry SDK set-up for a service process (the wire side lives in ``apihub_core``)."""

from __future__ import annotations

import os

from opentelemetry import trace


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
