"""Small OTLP requests with known ids, built here so the exporter tests depend on nothing else."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

BASE_NS = 1_700_000_000_000_000_000


def span_id(seed: int, i: int) -> bytes:
    return (seed * 1_000_003 + i + 1).to_bytes(8, "big")


def trace_id(seed: int, t: int) -> bytes:
    # The sampler reads the low 8 bytes: spread them so sampling by trace id is fair.
    low = ((seed * 7919 + t + 1) * 0x9E3779B97F4A7C15) % (1 << 64)
    return (seed + 1).to_bytes(8, "big") + low.to_bytes(8, "big")


def trace_request(
    n_spans: int = 10,
    seed: int = 0,
    spans_per_trace: int = 5,
    error_traces: Sequence[int] = (),
    services: int = 2,
) -> ExportTraceServiceRequest:
    """``n_spans`` spans in traces of ``spans_per_trace``; the first span of each trace in
    ``error_traces`` (trace numbers within this request) has status ERROR."""
    req = ExportTraceServiceRequest()
    scopes = []
    for s in range(services):
        rs = req.resource_spans.add()
        attr = rs.resource.attributes.add()
        attr.key, attr.value.string_value = "service.name", f"svc-{s}"
        scopes.append(rs.scope_spans.add())
    for i in range(n_spans):
        t = i // spans_per_trace
        span = scopes[i % services].spans.add(
            trace_id=trace_id(seed, t),
            span_id=span_id(seed, i),
            name=f"op-{i % 7}",
            kind=2,
            start_time_unix_nano=BASE_NS + i * 1000,
            end_time_unix_nano=BASE_NS + i * 1000 + 500,
        )
        if t in error_traces and i % spans_per_trace == 0:
            span.status.code = 2
    return req


def trace_body(n_spans: int = 10, seed: int = 0) -> bytes:
    """A serialized trace request of ``n_spans`` spans (ids differ between seeds)."""
    return bytes(trace_request(n_spans, seed).SerializeToString())


def logs_request(n: int = 4, seed: int = 0, error_every: int = 0) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    sl = req.resource_logs.add().scope_logs.add()
    for i in range(n):
        rec = sl.log_records.add(time_unix_nano=BASE_NS + i, severity_number=9)
        rec.body.string_value = f"message {i}"
        rec.trace_id = trace_id(seed, 1000 + i)
        if error_every and i % error_every == 0:
            rec.severity_number = 17
    return req


def metrics_request(points: int = 3) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    m = req.resource_metrics.add().scope_metrics.add().metrics.add(name="requests")
    for i in range(points):
        m.gauge.data_points.add(time_unix_nano=BASE_NS + i, as_int=i)
    return req
