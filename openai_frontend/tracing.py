"""One OpenTelemetry span per generation request (``--otlp-traces-endpoint``, vLLM's
flag name), exported over OTLP/HTTP with the OpenTelemetry SDK.

A caller's W3C ``traceparent`` makes the span a child of the caller's; the span's own
context goes to the engine (vLLM's ``trace_headers``, the remote engine's outgoing
headers), so the engine's spans continue the same trace. Attributes use the
``gen_ai.*`` names vLLM's own spans use. The provider is the gateway's own, not the
global one: in-process vLLM installs the global provider for its spans.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from openai_frontend.generation import ChoiceDelta

SERVICE_NAME = "openai-frontend"
_PROPAGATOR = TraceContextTextMapPropagator()


class RequestTracer:
    """Starts and ends the requests' spans; ``shutdown`` flushes the last ones."""

    def __init__(self, endpoint: str) -> None:
        self._provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
        self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        self._tracer = self._provider.get_tracer("openai_frontend")

    def start(
        self, name: str, headers: Mapping[str, str], request_id: str | None
    ) -> tuple[Span, dict[str, str]]:
        """A span continuing the caller's trace (if its headers carry one), and the
        headers that carry the new span's context on to the engine."""
        parent = _PROPAGATOR.extract(headers)
        span = self._tracer.start_span(name, context=parent, kind=SpanKind.SERVER)
        if request_id is not None:
            span.set_attribute("gen_ai.request.id", request_id)
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        return span, carrier

    def shutdown(self) -> None:
        self._provider.shutdown()


def end_span(span: Span, log_fields: dict, error: BaseException | None) -> None:
    """Record the request's figures (the access log's, which metrics.observe filled in)
    and its outcome: the finish reasons, "cancelled" (the client left) or "error"."""
    attributes = {
        "gen_ai.response.model": log_fields.get("model"),
        "openai_frontend.adapter": log_fields.get("adapter"),
        "gen_ai.usage.prompt_tokens": log_fields.get("prompt_tokens"),
        "gen_ai.usage.completion_tokens": log_fields.get("completion_tokens"),
        "gen_ai.usage.cached_tokens": log_fields.get("cached_tokens"),
    }
    if log_fields.get("ttft_ms") is not None:
        attributes["gen_ai.latency.time_to_first_token"] = log_fields["ttft_ms"] / 1000
    if error is None:
        outcome = ",".join(log_fields.get("finish_reasons") or ()) or "incomplete"
    elif isinstance(error, asyncio.CancelledError | GeneratorExit):
        outcome = "cancelled"
    else:
        outcome = "error"
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    attributes["openai_frontend.outcome"] = outcome
    span.set_attributes({key: value for key, value in attributes.items() if value is not None})
    span.end()


async def traced(
    span: Span, deltas: AsyncIterator[ChoiceDelta], log_fields: dict
) -> AsyncIterator[ChoiceDelta]:
    """Pass deltas through; the span ends however the stream does."""
    error: BaseException | None = None
    try:
        async with aclosing(deltas):
            async for item in deltas:
                yield item
    except BaseException as exc:
        error = exc
        raise
    finally:
        end_span(span, log_fields, error)
