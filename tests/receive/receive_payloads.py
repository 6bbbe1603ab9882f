"""Real OTLP payloads for the receiver tests, built with the opentelemetry-proto messages."""

from __future__ import annotations

import json
import zlib
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

T0 = 1_700_000_000_000_000_000
BAD_TRACE_ID = b"\x01\x02\x03"  # not 16 bytes: the decoder rejects such a span


def _resource(service: str) -> Resource:
    return Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))])


def span(i: int, *, trace_id: bytes | None = None) -> Span:
    return Span(
        trace_id=trace_id if trace_id is not None else (i + 1).to_bytes(16, "big"),
        span_id=(i + 1).to_bytes(8, "big"),
        name=f"GET /item/{i}",
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=T0 + i,
        end_time_unix_nano=T0 + i + 1_000_000,
    )


def traces(n: int = 3, *, bad: int = 0, service: str = "checkout") -> ExportTraceServiceRequest:
    """``n`` valid spans plus ``bad`` spans with an invalid trace id."""
    spans = [span(i) for i in range(n)] + [span(n + i, trace_id=BAD_TRACE_ID) for i in range(bad)]
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=_resource(service), scope_spans=[ScopeSpans(spans=spans)])]
    )


def metrics(n: int = 3) -> ExportMetricsServiceRequest:
    points = [NumberDataPoint(time_unix_nano=T0 + i, as_double=float(i)) for i in range(n)]
    metric = Metric(name="queue.depth", unit="1", gauge=Gauge(data_points=points))
    return ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(resource=_resource("checkout"), scope_metrics=[ScopeMetrics(metrics=[metric])])
        ]
    )


def logs(n: int = 3) -> ExportLogsServiceRequest:
    records = [
        LogRecord(time_unix_nano=T0 + i, severity_number=9, body=AnyValue(string_value=f"line {i}"))
        for i in range(n)
    ]
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(resource=_resource("checkout"), scope_logs=[ScopeLogs(log_records=records)])
        ]
    )


def traces_json(n: int = 3, *, bad: int = 0) -> bytes:
    """OTLP/JSON: hex ids, integer enums, int64 as strings (the OTLP JSON mapping)."""

    def one(i: int, trace_hex: str) -> dict[str, Any]:
        return {
            "traceId": trace_hex,
            "spanId": (i + 1).to_bytes(8, "big").hex(),
            "name": f"GET /item/{i}",
            "kind": 2,
            "startTimeUnixNano": str(T0 + i),
            "endTimeUnixNano": str(T0 + i + 1_000_000),
        }

    spans = [one(i, (i + 1).to_bytes(16, "big").hex()) for i in range(n)]
    spans += [one(n + i, BAD_TRACE_ID.hex()) for i in range(bad)]
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
                "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
            }
        ]
    }
    return json.dumps(doc).encode()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def deep_anyvalue_traces(depth: int) -> bytes:
    """A span whose one attribute nests ``depth`` kvlist AnyValues, encoded by hand (the
    Python protobuf runtime refuses to build messages that deep)."""
    value = _field(1, b"leaf")  # AnyValue.string_value
    for _ in range(depth):
        key_value = _field(1, b"k") + _field(2, value)  # KeyValue{key, value}
        value = _field(6, _field(1, key_value))  # AnyValue.kvlist_value{values=[...]}
    attribute = _field(1, b"deep") + _field(2, value)
    one_span = span(0).SerializeToString() + _field(9, attribute)  # Span.attributes = 9
    return _field(1, _field(2, _field(2, one_span)))  # ResourceSpans.scope_spans.spans


def deep_anyvalue_traces_json(depth: int) -> bytes:
    """The OTLP/JSON form of :func:`deep_anyvalue_traces`, written as text (``json.dumps``
    itself would hit Python's recursion limit)."""
    one = {
        "traceId": "01" * 16,
        "spanId": "01" * 8,
        "name": "deep",
        "startTimeUnixNano": str(T0),
        "endTimeUnixNano": str(T0 + 1),
        "attributes": [{"key": "deep", "value": "@DEEP@"}],
    }
    text = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [one]}]}]})
    nested = '{"kvlistValue": {"values": [{"key": "k", "value": ' * depth
    nested += '{"stringValue": "leaf"}' + "}]}}" * depth
    return text.replace('"@DEEP@"', nested).encode()


def oversized_traces(size: int) -> bytes:
    """A well-formed trace request of at least ``size`` bytes (padding in an unknown field,
    which protobuf parsers must skip)."""
    return traces(1).SerializeToString() + _field(15, bytes(size))


def gzip_bomb(inflated_gib: int = 10) -> bytes:
    """A gzip stream that inflates to ``inflated_gib`` GiB of zeros, built in milliseconds.

    Each 1 MiB of zeros is compressed after a full flush, which resets the compressor's
    history, so every such block is byte-identical and can be repeated. The trailer's CRC
    is not that of 10 GiB of zeros: a receiver that honours its limit never reads that far.
    """
    chunk = bytes(1024 * 1024)
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    tail = c.flush()
    return head + block * (inflated_gib * 1024 - 1) + tail
