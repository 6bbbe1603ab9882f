"""Requests produced by the real OpenTelemetry Python SDK and its OTLP encoders."""

from __future__ import annotations

import json

from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from faultlens.decode import decode_request
from faultlens.testing.payloads import to_otlp_json
from faultlens.types import Signal

RESOURCE = Resource.create({"service.name": "sdk-svc", "k8s.pod.name": "sdk-pod-1"})


def test_sdk_spans_decode_with_ids_parents_events_and_status() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("faultlens.tests", "1.0")
    with tracer.start_as_current_span("GET /orders", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.request.method", "GET")
        root.set_attribute("http.response.status_code", 500)
        with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT) as child:
            child.set_attribute("db.system.name", "postgresql")
            child.set_attribute("db.rows", [1, 2, 3])
            try:
                raise TimeoutError("db timed out")
            except TimeoutError as exc:
                child.record_exception(exc)
                child.set_status(Status(StatusCode.ERROR, "timeout"))
    spans = exporter.get_finished_spans()
    request = encode_spans(spans)
    for as_json in (False, True):
        body = to_otlp_json(request) if as_json else request.SerializeToString()
        batch = decode_request(Signal.TRACES, body, json=as_json)
        assert batch.rejected == 0
        rows = {r["name"]: r for r in batch.table.to_pylist()}
        root_row, child_row = rows["GET /orders"], rows["SELECT orders"]
        assert root_row["parent_span_id"] is None
        assert child_row["parent_span_id"] == root_row["span_id"]
        assert child_row["trace_id"] == root_row["trace_id"] == spans[0].context.trace_id.to_bytes(16, "big")
        assert (root_row["kind"], root_row["http_method"], root_row["http_status_code"]) == (2, "GET", 500)
        assert (child_row["status_code"], child_row["status_message"]) == (2, "timeout")
        assert child_row["exception_type"] == "TimeoutError"
        assert child_row["exception_message"] == "db timed out"
        assert "TimeoutError" in child_row["exception_stacktrace"]
        assert json.loads(child_row["attributes"])["db.rows"] == [1, 2, 3]
        assert child_row["db_system"] == "postgresql"
        assert child_row["service_name"] == "sdk-svc" and child_row["k8s_pod_name"] == "sdk-pod-1"
        assert child_row["scope_name"] == "faultlens.tests" and child_row["scope_version"] == "1.0"
        assert child_row["end_time_unix_nano"] >= child_row["start_time_unix_nano"] > 0


def test_sdk_metrics_decode() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter = provider.get_meter("faultlens.tests")
    counter = meter.create_counter("requests", unit="{request}")
    histogram = meter.create_histogram("latency", unit="ms")
    for route in ("/a", "/b"):
        counter.add(3, {"http.route": route})
        histogram.record(12.5, {"http.route": route})
    request = encode_metrics(reader.get_metrics_data())
    batch = decode_request(Signal.METRICS, request.SerializeToString(), json=False)
    assert batch.rejected == 0 and batch.accepted == 4
    rows = batch.table.to_pylist()
    sums = [r for r in rows if r["metric_type"] == "sum"]
    assert {json.loads(r["attributes"])["http.route"] for r in sums} == {"/a", "/b"}
    assert all(r["value_int"] == 3 and r["is_monotonic"] for r in sums)
    hists = [r for r in rows if r["metric_type"] == "histogram"]
    assert all(r["count"] == 1 and r["sum"] == 12.5 for r in hists)
    assert all(len(r["bucket_counts"]) == len(r["explicit_bounds"]) + 1 for r in hists)


def test_sdk_logs_decode() -> None:
    import logging

    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger("faultlens.tests.sdk")
    logger.propagate = False
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    try:
        logger.warning("disk %s almost full", "/var")
        try:
            raise KeyError("sku-1")
        except KeyError:
            logger.exception("lookup failed")
    finally:
        logger.removeHandler(handler)
    request = encode_logs(exporter.get_finished_logs())
    batch = decode_request(Signal.LOGS, request.SerializeToString(), json=False)
    assert batch.rejected == 0
    rows = batch.table.to_pylist()
    assert [r["body"] for r in rows] == ["disk /var almost full", "lookup failed"]
    assert [r["severity_text"] for r in rows] == ["WARN", "ERROR"]
    assert rows[1]["exception_type"] == "KeyError"
    assert rows[0]["service_name"] == "sdk-svc"
