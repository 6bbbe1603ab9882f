"""The SDK exporters in the real OpenTelemetry SDK pipeline, against a live backend."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from faultlens.export import Protocol
from faultlens.export.sdk import LogExporter, MetricExporter, SpanExporter, build_config, temporality_from_env
from faultlens.testing.otlp_backend import OtlpBackend
from faultlens.types import Signal


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_span_exporter_under_batch_span_processor(
    backend: OtlpBackend, tmp_path: Path, protocol: str
) -> None:
    endpoint = backend.grpc_endpoint if protocol == "grpc" else f"{backend.http_endpoint}/v1/traces"
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(SpanExporter(endpoint, protocol=protocol, queue_dir=tmp_path))
    )
    tracer = provider.get_tracer("test")
    for i in range(50):
        with tracer.start_as_current_span(f"op-{i}"):
            pass
    assert provider.force_flush(10_000)
    assert backend.wait_for_spans(50, 10)
    provider.shutdown()


def test_spans_wait_on_disk_through_an_outage_and_a_restart(tmp_path: Path) -> None:
    backend = OtlpBackend().start()
    endpoint = backend.grpc_endpoint
    backend.stop()
    provider = TracerProvider()
    exporter = SpanExporter(endpoint, protocol="grpc", queue_dir=tmp_path, shutdown_timeout=0.5)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for i in range(30):
        with tracer.start_as_current_span(f"op-{i}"):
            pass
    provider.force_flush(1000)  # handed over and on disk, though not sent
    t0 = time.monotonic()
    provider.shutdown()
    assert time.monotonic() - t0 < 2.0
    assert exporter.exporter.health().queue_items == 30

    backend.start()
    try:
        again = SpanExporter(endpoint, protocol="grpc", queue_dir=tmp_path)
        assert again.force_flush(10_000)
        again.shutdown()
        assert len(backend.unique_span_ids()) == 30
    finally:
        backend.stop()


def test_log_exporter_with_logging_handler(backend: OtlpBackend) -> None:
    provider = LoggerProvider()
    provider.add_log_record_processor(
        BatchLogRecordProcessor(LogExporter(f"{backend.http_endpoint}/v1/logs", protocol="http/protobuf"))
    )
    logger = logging.getLogger("faultlens.test.sdk")
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    try:
        for i in range(7):
            logger.warning("disk %d is full", i)
        assert provider.force_flush(10_000)
        assert backend.wait_for_items(Signal.LOGS, 7, 10)
    finally:
        logger.removeHandler(handler)
        provider.shutdown()


def test_metric_exporter_with_periodic_reader(backend: OtlpBackend) -> None:
    exporter = MetricExporter(backend.grpc_endpoint, protocol="grpc")
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("test")
    meter.create_counter("requests").add(3, {"route": "/a"})
    meter.create_histogram("latency").record(12.5)
    provider.force_flush(10_000)
    assert exporter.force_flush(10_000)
    assert backend.wait_for_items(Signal.METRICS, 2, 10)
    provider.shutdown()


def test_configuration_comes_from_the_standard_variables() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=k",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "1500",
        "FAULTLENS_EXPORT_QUEUE_DIR": "/tmp/q",
    }
    cfg = build_config(Signal.TRACES, environ=env)
    assert cfg.protocol is Protocol.HTTP_PROTOBUF
    assert cfg.endpoint_for(Signal.TRACES) == "http://collector:4318/v1/traces"
    assert (cfg.headers, cfg.timeout, str(cfg.queue.directory), cfg.queue.kind) == (
        {"api-key": "k"},
        1.5,
        "/tmp/q",
        "disk",
    )
    explicit = build_config(Signal.TRACES, endpoint="http://other:1/x", timeout=3, environ=env)
    assert explicit.endpoint_for(Signal.TRACES) == "http://other:1/x" and explicit.timeout == 3.0
    assert build_config(Signal.LOGS, environ={}).queue.kind == "memory"


def test_temporality_preference() -> None:
    delta = temporality_from_env({"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta"})
    assert delta[Counter] is AggregationTemporality.DELTA
    assert delta[UpDownCounter] is AggregationTemporality.CUMULATIVE
    low = temporality_from_env({"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "lowmemory"})
    assert low[Histogram] is AggregationTemporality.DELTA
    assert temporality_from_env({})[Counter] is AggregationTemporality.CUMULATIVE


def test_the_example_runs_and_delivers_everything() -> None:
    import subprocess
    import sys

    example = Path(__file__).parents[2] / "examples" / "sdk_exporter.py"
    out = subprocess.run(
        [sys.executable, str(example), "--spans", "60"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "backend received 60 of 60 spans" in out
