"""OTLP/gRPC receiver against real sockets: status codes, rich status details, limits."""

from __future__ import annotations

import functools
import gzip
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from receive_payloads import deep_anyvalue_traces, logs, metrics, oversized_traces, traces

from conftest import LIMIT, TOKEN, Certs, RunningReceivers
from faultlens.types import Signal

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
METRICS_EXPORT = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
LOGS_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"

Call = Callable[..., Any]


@functools.cache
def _channel(target: str) -> grpc.Channel:
    # The client may send more than the server accepts: that is what the limit tests do.
    return grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)])


def export(
    target: str | grpc.Channel,
    body: bytes,
    *,
    method: str = TRACE_EXPORT,
    response: Any = ExportTraceServiceResponse,
    metadata: tuple[tuple[str, str], ...] = (),
    compression: grpc.Compression | None = None,
) -> Any:
    """Send raw bytes (so malformed messages can be sent) and parse the typed response."""
    channel = _channel(target) if isinstance(target, str) else target
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=response.FromString)
    return call(body, metadata=metadata, compression=compression, timeout=30)


def rpc_error(target: str, body: bytes, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        export(target, body, **kwargs)
    return info.value


def rich_status(error: Any) -> status_pb2.Status:
    """The google.rpc.Status from the ``grpc-status-details-bin`` trailer."""
    trailers = dict(error.trailing_metadata() or ())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert status.code == error.code().value[0]
    assert status.message == error.details()
    return status


def assert_still_serving(server: RunningReceivers) -> None:
    before = server.sink.items(Signal.TRACES)
    export(server.grpc_target, traces(2).SerializeToString())
    assert server.sink.items(Signal.TRACES) == before + 2


def refused(server: RunningReceivers, reason: str) -> float:
    return server.counter(
        "faultlens_receiver_refused_requests_total", signal="traces", transport="grpc", reason=reason
    )


# --- success -----------------------------------------------------------------------------


def test_traces_are_accepted(server: RunningReceivers) -> None:
    answer = export(server.grpc_target, traces(5).SerializeToString())
    assert not answer.HasField("partial_success")
    assert server.sink.items(Signal.TRACES) == 5
    labels = {"signal": "traces", "transport": "grpc"}
    assert server.counter("faultlens_receiver_accepted_items_total", **labels) >= 5
    assert server.counter("faultlens_receiver_received_items_total", **labels) >= 5


def test_metrics_and_logs_services(server: RunningReceivers) -> None:
    export(
        server.grpc_target,
        metrics(4).SerializeToString(),
        method=METRICS_EXPORT,
        response=ExportMetricsServiceResponse,
    )
    export(
        server.grpc_target,
        logs(3).SerializeToString(),
        method=LOGS_EXPORT,
        response=ExportLogsServiceResponse,
    )
    assert server.sink.items(Signal.METRICS) == 4
    assert server.sink.items(Signal.LOGS) == 3


def test_partial_success_reports_rejected_spans(server: RunningReceivers) -> None:
    answer = export(server.grpc_target, traces(2, bad=3).SerializeToString())
    assert answer.partial_success.rejected_spans == 3
    assert answer.partial_success.error_message
    assert server.sink.items(Signal.TRACES) == 2


def test_gzip_compressed_request_is_accepted(server: RunningReceivers) -> None:
    export(server.grpc_target, traces(10).SerializeToString(), compression=grpc.Compression.Gzip)
    assert server.sink.items(Signal.TRACES) == 10


def test_empty_request_is_a_success(server: RunningReceivers) -> None:
    assert not export(server.grpc_target, b"").HasField("partial_success")


# --- refusals ------------------------------------------------------------------------------


def test_malformed_protobuf_is_invalid_argument_with_a_reason(server: RunningReceivers) -> None:
    before = refused(server, "malformed")
    error = rpc_error(server.grpc_target, b"\x0a\xff\xff\xff\xff\x0fgarbage")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details()
    bad = error_details_pb2.BadRequest()
    assert rich_status(error).details[0].Unpack(bad)
    assert bad.field_violations[0].description == error.details()
    assert refused(server, "malformed") == before + 1
    assert_still_serving(server)


def test_deep_anyvalue_nesting_is_invalid_argument(server: RunningReceivers) -> None:
    error = rpc_error(server.grpc_target, deep_anyvalue_traces(2000))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert_still_serving(server)


def test_oversized_message_is_resource_exhausted(server: RunningReceivers) -> None:
    big = oversized_traces(LIMIT)
    error = rpc_error(server.grpc_target, big)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_still_serving(server)


def test_gzip_message_inflating_past_the_limit_is_resource_exhausted(server: RunningReceivers) -> None:
    big = oversized_traces(LIMIT)
    assert len(gzip.compress(big)) < LIMIT // 100
    error = rpc_error(server.grpc_target, big, compression=grpc.Compression.Gzip)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_still_serving(server)


def test_overloaded_consumer_is_unavailable_with_retry_info(server: RunningReceivers) -> None:
    server.sink.refuse(retry_after_s=2.5)
    error = rpc_error(server.grpc_target, traces(3).SerializeToString())
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    details = rich_status(error).details
    assert len(details) == 1
    retry = error_details_pb2.RetryInfo()
    assert details[0].Unpack(retry)
    assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (2, 500_000_000)
    # The same RetryInfo alone, as the OpenTelemetry Python/Java exporters read it.
    alone = dict(error.trailing_metadata())["google.rpc.retryinfo-bin"]
    assert error_details_pb2.RetryInfo.FromString(alone) == retry
    assert server.counter("faultlens_receiver_refused_items_total", signal="traces", transport="grpc") >= 3
    assert refused(server, "overloaded") >= 1
    server.sink.allow()
    assert_still_serving(server)


def test_memory_soft_limit_is_unavailable_with_retry_info(tiny_memory_server: RunningReceivers) -> None:
    error = rpc_error(tiny_memory_server.grpc_target, traces(1).SerializeToString())
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "memory soft limit" in error.details()
    retry = error_details_pb2.RetryInfo()
    assert rich_status(error).details[0].Unpack(retry)
    assert retry.retry_delay.seconds == 3
    assert tiny_memory_server.sink.items() == 0


def test_unexpected_error_is_internal_and_server_keeps_serving(
    server: RunningReceivers, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(batch: Any) -> None:
        raise RuntimeError("bug in a consumer")

    monkeypatch.setattr(server.sink, "consume", broken)
    error = rpc_error(server.grpc_target, traces(1).SerializeToString())
    assert error.code() == grpc.StatusCode.INTERNAL
    assert refused(server, "internal") >= 1
    monkeypatch.undo()
    assert_still_serving(server)


def test_unknown_method_is_unimplemented(server: RunningReceivers) -> None:
    error = rpc_error(
        server.grpc_target, b"", method="/opentelemetry.proto.collector.trace.v1.TraceService/Nope"
    )
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert_still_serving(server)


# --- auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer wrong"),), (("authorization", TOKEN),)])
def test_auth_bad_credentials_are_unauthenticated(
    auth_server: RunningReceivers, metadata: tuple[tuple[str, str], ...]
) -> None:
    error = rpc_error(auth_server.grpc_target, traces(1).SerializeToString(), metadata=metadata)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert auth_server.counter(
        "faultlens_receiver_refused_requests_total",
        signal="traces",
        transport="grpc",
        reason="unauthenticated",
    )


def test_auth_good_token_is_accepted(auth_server: RunningReceivers) -> None:
    before = auth_server.sink.items(Signal.TRACES)
    export(
        auth_server.grpc_target,
        traces(2).SerializeToString(),
        metadata=(("authorization", f"Bearer {TOKEN}"),),
    )
    assert auth_server.sink.items(Signal.TRACES) == before + 2


# --- TLS ----------------------------------------------------------------------------------


@pytest.fixture
def tls_channel(certs: Certs) -> Iterator[Callable[..., grpc.Channel]]:
    opened: list[grpc.Channel] = []

    def open_channel(server: RunningReceivers, *, client_cert: bool = False) -> grpc.Channel:
        creds = grpc.ssl_channel_credentials(
            root_certificates=certs.server_cert.read_bytes(),
            private_key=certs.client_key.read_bytes() if client_cert else None,
            certificate_chain=certs.client_cert.read_bytes() if client_cert else None,
        )
        channel = grpc.secure_channel(f"localhost:{server.ports.grpc}", creds)
        opened.append(channel)
        return channel

    yield open_channel
    for channel in opened:
        channel.close()


def test_tls_with_self_signed_certificate(
    tls_server: RunningReceivers, tls_channel: Callable[..., grpc.Channel]
) -> None:
    export(tls_channel(tls_server), traces(2).SerializeToString())
    assert tls_server.sink.items(Signal.TRACES) >= 2


def test_mtls_requires_a_client_certificate(
    mtls_server: RunningReceivers, tls_channel: Callable[..., grpc.Channel]
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        export(tls_channel(mtls_server), traces(1).SerializeToString())
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    export(tls_channel(mtls_server, client_cert=True), traces(1).SerializeToString())
    assert mtls_server.sink.items(Signal.TRACES) >= 1
