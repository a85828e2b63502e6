"""A local OTLP/HTTP trace receiver: a tiny HTTP server that decodes the exported
protobuf (``ExportTraceServiceRequest``, opentelemetry-proto) and records the spans.
The servers under test export to it with the real OpenTelemetry SDK."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PATH = "/v1/traces"


@dataclass(frozen=True)
class RecordedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict


def _value(any_value) -> object:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _decode(body: bytes) -> list[RecordedSpan]:
    request = ExportTraceServiceRequest.FromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    RecordedSpan(
                        service=str(resource.get("service.name", "")),
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                    )
                )
    return spans


class Receiver:
    """Records every span exported to ``url``; ``wait_for`` polls for the ones a test
    needs (the exporters batch, so spans arrive a little after their requests end)."""

    def __init__(self) -> None:
        self.spans: list[RecordedSpan] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    receiver.spans.extend(_decode(body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{PATH}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def in_trace(self, trace_id: str) -> list[RecordedSpan]:
        with self._lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def wait_for(self, trace_id: str, predicate, timeout: float = 120) -> list[RecordedSpan]:
        """The trace's spans once ``predicate(spans)`` holds (a bound for a broken
        export, not a budget: a healthy one arrives within the exporters' batch delay)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = self.in_trace(trace_id)
            if predicate(spans):
                return spans
            time.sleep(0.1)
        raise AssertionError(f"spans of trace {trace_id}: {self.in_trace(trace_id)}")

    def wait_for_span(self, matches, timeout: float = 120) -> RecordedSpan:
        """The first span that ``matches``, once it has arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [span for span in self.spans if matches(span)]
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError("no such span arrived")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
