"""One call is one trace: the caller's span, the dispatcher's span and the broker call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from apihub_broker_sim import KIS_PRICE
from apihub_core import HubClient, Provider, UpstreamRateLimited, tracing_enabled
from apihub_dispatcher import Dispatcher
from apihub_runtime import Settings
from apihub_testing import async_wait_until

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="session")
def span_recorder() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """An SDK tracer provider recording into memory; not installed (see ``spans``)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


@pytest.fixture
def spans(
    span_recorder: tuple[TracerProvider, InMemorySpanExporter],
) -> Iterator[InMemorySpanExporter]:
    """The recorder installed as the global tracer provider for this test only.

    ``trace.set_tracer_provider`` works once per process and would leave tracing on for every
    later test (the hub records spans only when a provider is installed), so the provider is
    put in place and taken out again the way OpenTelemetry's own test utilities do it.
    """
    provider, exporter = span_recorder
    exporter.clear()
    was_on = tracing_enabled()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trace, "_TRACER_PROVIDER", provider)
        assert tracing_enabled()
        yield exporter
    exporter.clear()
    assert tracing_enabled() is was_on, "the tests that follow see tracing as it was"


def _by_kind(finished: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in finished if span.kind is kind]


async def test_one_call_is_one_trace_across_the_stream_hop(
    hub: HubClient,
    dispatcher: Dispatcher,
    spans: InMemorySpanExporter,
    settings: Settings,
    redis: aioredis.Redis,
    stored_tokens: Callable[[], Awaitable[list[str]]],
) -> None:
    response = await hub.execute("KIS", "FHKST01010100", KIS_PRICE)
    # The dispatcher's span closes after its commit, which may be just after the reply arrived.
    await async_wait_until(lambda: _by_kind(spans.get_finished_spans(), SpanKind.CONSUMER))
    finished = spans.get_finished_spans()
    (producer,) = _by_kind(finished, SpanKind.PRODUCER)
    (consumer,) = _by_kind(finished, SpanKind.CONSUMER)
    (client,) = _by_kind(finished, SpanKind.CLIENT)
    assert producer.context is not None
    assert consumer.context is not None
    trace_id = producer.context.trace_id
    assert {s.context.trace_id for s in (producer, consumer, client) if s.context} == {trace_id}
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    assert client.parent is not None
    assert client.parent.span_id == consumer.context.span_id
    assert producer.attributes is not None
    assert producer.attributes["apihub.request_id"] == response.request_id
    assert client.name == "KIS FHKST01010100"
    assert client.attributes is not None
    assert client.attributes["http.response.status_code"] == 200

    # Spans carry identifiers, never credentials or tokens.
    secrets = []
    for provider in Provider:
        account = settings.account(provider)
        secrets += [account.app_key.reveal(), account.app_secret.reveal()]
    tokens = await stored_tokens()
    assert tokens, "the call used a stored token"
    secrets += tokens
    for span in finished:
        text = repr(dict(span.attributes or {})) + span.name + repr(span.events)
        for secret in secrets:
            assert secret not in text


async def test_failures_mark_the_spans(
    hub: HubClient,
    dispatcher: Dispatcher,
    spans: InMemorySpanExporter,
    sim_admin: httpx.AsyncClient,
) -> None:
    fault = {"match": {"tr_id": "FHKST01010100"}, "count": -1, "action": {"kind": "egw00201"}}
    (await sim_admin.post("/__sim/faults", json=fault)).raise_for_status()
    with pytest.raises(UpstreamRateLimited):
        await hub.execute("KIS", "FHKST01010100", KIS_PRICE)
    finished = spans.get_finished_spans()
    (producer,) = _by_kind(finished, SpanKind.PRODUCER)
    attempts = _by_kind(finished, SpanKind.CLIENT)
    assert producer.status.status_code is StatusCode.ERROR
    assert attempts, "every broker attempt is a span"
    assert all(
        span.attributes and span.attributes["apihub.broker_code"] == "EGW00201" for span in attempts
    )
    assert [span.attributes and span.attributes["apihub.attempt"] for span in attempts] == list(
        range(1, len(attempts) + 1)
    )
