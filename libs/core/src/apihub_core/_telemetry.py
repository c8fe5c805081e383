"""OpenTelemetry across stream hops: the caller's trace context rides on the request event.

``HubClient`` opens a PRODUCER span and writes its W3C ``traceparent`` into
``RequestSubmitted.trace``; the dispatcher continues that trace with a CONSUMER span and one
CLIENT span per broker attempt, so one call is one trace in Jaeger however many processes it
crossed. Span attributes name the request (id, provider, TR, account, outcome), never a
credential or a token.

Without a configured ``TracerProvider`` the API is a no-op and costs next to nothing; services
install the SDK with ``apihub_runtime.configure_tracing`` when ``OTEL_TRACES_EXPORTER`` asks for
it. This module needs only ``opentelemetry-api``.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import Attributes

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


def tracing_enabled() -> bool:
    """Whether spans are recorded: an SDK tracer provider is installed (not the API's no-op)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def start_span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Attributes = None,
    context: Context | None = None,
) -> AbstractContextManager[Span]:
    """``tracer.start_as_current_span(...)`` when tracing is on; otherwise a context yielding
    the API's invalid span, whose methods do nothing. Even the API's no-op spans cost a
    context switch each, which every call through the hub would pay twice."""
    if tracing_enabled():
        return tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes)
    return nullcontext(trace.INVALID_SPAN)
