"""The real OpenTelemetry SDK exporters against the receivers: what users will run.

They show that real clients get through (plain, gzip, with a bearer token), and that they
react to the receivers' answers as the OTLP specification intends: a partial success is a
success that is not retried, and throttling is retried after the delay the server asked for
(Retry-After on HTTP, RetryInfo on gRPC).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext, TraceFlags

from conftest import TOKEN, RunningReceivers
from faultlens.types import Signal


def make_spans(n: int) -> list[ReadableSpan]:
    tracer = TracerProvider(resource=Resource.create({"service.name": "sdk-test"})).get_tracer("t")
    spans = []
    for i in range(n):
        span = tracer.start_span(f"op-{i}")
        span.set_attribute("http.request.method", "GET")
        span.end()
        assert isinstance(span, ReadableSpan)
        spans.append(span)
    return spans


def invalid_span() -> ReadableSpan:
    """A span with the all-zero (invalid) trace id, which the receiver rejects on its own."""
    context = SpanContext(trace_id=0, span_id=0x1234, is_remote=False, trace_flags=TraceFlags(1))
    return ReadableSpan(name="no-trace-id", context=context, start_time=1, end_time=2)


@pytest.fixture
def http_exporter(server: RunningReceivers) -> Iterator[HttpSpanExporter]:
    exporter = HttpSpanExporter(endpoint=f"{server.http_url}/v1/traces", timeout=10)
    yield exporter
    exporter.shutdown()


@pytest.fixture
def grpc_exporter(server: RunningReceivers) -> Iterator[GrpcSpanExporter]:
    exporter = GrpcSpanExporter(endpoint=server.grpc_target, insecure=True, timeout=10)
    yield exporter
    exporter.shutdown()


# --- HTTP ------------------------------------------------------------------------------------


def test_http_exporter_gets_through(server: RunningReceivers, http_exporter: HttpSpanExporter) -> None:
    assert http_exporter.export(make_spans(5)) is SpanExportResult.SUCCESS
    assert server.sink.items(Signal.TRACES) == 5


def test_http_exporter_with_gzip_and_token(auth_server: RunningReceivers) -> None:
    exporter = HttpSpanExporter(
        endpoint=f"{auth_server.http_url}/v1/traces",
        headers={"authorization": f"Bearer {TOKEN}"},
        compression=HttpCompression.Gzip,
        timeout=10,
    )
    before = auth_server.sink.items(Signal.TRACES)
    assert exporter.export(make_spans(3)) is SpanExportResult.SUCCESS
    assert auth_server.sink.items(Signal.TRACES) == before + 3
    exporter.shutdown()


def test_http_exporter_without_token_fails_without_retrying(auth_server: RunningReceivers) -> None:
    exporter = HttpSpanExporter(endpoint=f"{auth_server.http_url}/v1/traces", timeout=10)
    started = time.monotonic()
    assert exporter.export(make_spans(1)) is SpanExportResult.FAILURE
    assert time.monotonic() - started < 1.0  # 401 is not retryable
    exporter.shutdown()


def test_http_exporter_sees_partial_success_as_success_once(
    server: RunningReceivers, http_exporter: HttpSpanExporter
) -> None:
    decoded = server.counter("faultlens_decode_seconds_count", signal="traces")
    assert http_exporter.export([*make_spans(2), invalid_span()]) is SpanExportResult.SUCCESS
    assert server.sink.items(Signal.TRACES) == 2
    assert server.counter("faultlens_decode_seconds_count", signal="traces") == decoded + 1  # no retry
    assert server.counter("faultlens_receiver_rejected_items_total", signal="traces", transport="http") >= 1


def test_http_exporter_honours_retry_after_when_throttled(
    server: RunningReceivers, http_exporter: HttpSpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    server.sink.refuse(times=1, retry_after_s=1.0)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        assert http_exporter.export(make_spans(4)) is SpanExportResult.SUCCESS
    elapsed = time.monotonic() - started
    assert server.sink.refused == 1
    assert server.sink.items(Signal.TRACES) == 4
    assert 0.9 <= elapsed < 3.0, elapsed
    assert any("retrying in 1.00s" in r.getMessage() for r in caplog.records)


# --- gRPC ------------------------------------------------------------------------------------


def test_grpc_exporter_gets_through(server: RunningReceivers, grpc_exporter: GrpcSpanExporter) -> None:
    assert grpc_exporter.export(make_spans(5)) is SpanExportResult.SUCCESS
    assert server.sink.items(Signal.TRACES) == 5


def test_grpc_exporter_with_gzip_and_token(auth_server: RunningReceivers) -> None:
    from grpc import Compression

    exporter = GrpcSpanExporter(
        endpoint=auth_server.grpc_target,
        insecure=True,
        headers=(("authorization", f"Bearer {TOKEN}"),),
        compression=Compression.Gzip,
        timeout=10,
    )
    before = auth_server.sink.items(Signal.TRACES)
    assert exporter.export(make_spans(3)) is SpanExportResult.SUCCESS
    assert auth_server.sink.items(Signal.TRACES) == before + 3
    exporter.shutdown()


def test_grpc_exporter_sees_partial_success_as_success_once(
    server: RunningReceivers, grpc_exporter: GrpcSpanExporter
) -> None:
    decoded = server.counter("faultlens_decode_seconds_count", signal="traces")
    assert grpc_exporter.export([*make_spans(2), invalid_span()]) is SpanExportResult.SUCCESS
    assert server.sink.items(Signal.TRACES) == 2
    assert server.counter("faultlens_decode_seconds_count", signal="traces") == decoded + 1


def test_grpc_exporter_honours_retry_info_when_throttled(
    server: RunningReceivers, grpc_exporter: GrpcSpanExporter
) -> None:
    # Without RetryInfo the exporter would back off ~1 s (0.8-1.2 s); with it, 0.2 s.
    server.sink.refuse(times=1, retry_after_s=0.2)
    started = time.monotonic()
    assert grpc_exporter.export(make_spans(4)) is SpanExportResult.SUCCESS
    elapsed = time.monotonic() - started
    assert server.sink.refused == 1
    assert server.sink.items(Signal.TRACES) == 4
    assert 0.2 <= elapsed < 0.75, elapsed
