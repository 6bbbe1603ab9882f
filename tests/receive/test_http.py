"""OTLP/HTTP receiver against real sockets: status codes, body types, limits and counters."""

from __future__ import annotations

import functools
import gzip
import json
import ssl
import time
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from receive_payloads import (
    deep_anyvalue_traces,
    deep_anyvalue_traces_json,
    gzip_bomb,
    logs,
    metrics,
    traces,
    traces_json,
)

from conftest import LIMIT, TOKEN, Certs, RunningReceivers
from faultlens.types import Signal

PB = "application/x-protobuf"
JSON = "application/json"


def post(
    server: RunningReceivers,
    body: bytes | Iterator[bytes],
    *,
    path: str = "/v1/traces",
    content_type: str | None = PB,
    method: str = "POST",
    verify: ssl.SSLContext | bool = True,
    **headers: str,
) -> httpx.Response:
    hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
    if content_type is not None:
        hdrs["content-type"] = content_type
    if verify is True:  # plain HTTP: reuse one client (building an SSL context costs ~50 ms)
        return _plain_client().request(method, server.http_url + path, content=body, headers=hdrs)
    with httpx.Client(verify=verify, timeout=30) as client:
        return client.request(method, server.http_url + path, content=body, headers=hdrs)


@functools.cache
def _plain_client() -> httpx.Client:
    return httpx.Client(timeout=30)


def rpc_status(resp: httpx.Response) -> status_pb2.Status:
    """The google.rpc.Status body, parsed according to the response's content type."""
    media = resp.headers["content-type"].split(";")[0]
    if media == JSON:
        return json_format.Parse(resp.content, status_pb2.Status())
    assert media == PB
    return status_pb2.Status.FromString(resp.content)


def assert_still_serving(server: RunningReceivers) -> None:
    before = server.sink.items(Signal.TRACES)
    resp = post(server, traces(2).SerializeToString())
    assert resp.status_code == 200, resp.content
    assert server.sink.items(Signal.TRACES) == before + 2


def refused(server: RunningReceivers, reason: str, signal: str = "traces") -> float:
    return server.counter(
        "faultlens_receiver_refused_requests_total", signal=signal, transport="http", reason=reason
    )


# --- success -----------------------------------------------------------------------------


def test_protobuf_traces_are_accepted_and_answered_in_protobuf(server: RunningReceivers) -> None:
    resp = post(server, traces(5).SerializeToString())
    assert resp.status_code == 200
    assert resp.headers["content-type"] == PB
    answer = ExportTraceServiceResponse.FromString(resp.content)
    assert not answer.HasField("partial_success")
    assert server.sink.items(Signal.TRACES) == 5
    labels = {"signal": "traces", "transport": "http"}
    assert server.counter("faultlens_receiver_accepted_items_total", **labels) >= 5
    assert server.counter("faultlens_receiver_request_bytes_total", **labels) > 0


def test_json_traces_with_charset_are_answered_in_json(server: RunningReceivers) -> None:
    resp = post(server, traces_json(4), content_type="application/json; charset=utf-8")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == JSON
    json_format.Parse(resp.content, ExportTraceServiceResponse())
    assert server.sink.items(Signal.TRACES) == 4


@pytest.mark.parametrize(
    ("path", "payload", "response_type", "signal"),
    [
        ("/v1/metrics", metrics(6), ExportMetricsServiceResponse, Signal.METRICS),
        ("/v1/logs", logs(7), ExportLogsServiceResponse, Signal.LOGS),
    ],
)
def test_metrics_and_logs_paths(
    server: RunningReceivers, path: str, payload: Any, response_type: Any, signal: Signal
) -> None:
    resp = post(server, payload.SerializeToString(), path=path)
    assert resp.status_code == 200
    assert not response_type.FromString(resp.content).HasField("partial_success")
    assert server.sink.items(signal) == {Signal.METRICS: 6, Signal.LOGS: 7}[signal]


def test_empty_request_is_a_success(server: RunningReceivers) -> None:
    resp = post(server, b"")
    assert resp.status_code == 200
    assert not ExportTraceServiceResponse.FromString(resp.content).HasField("partial_success")
    assert server.sink.items() == 0


def test_partial_success_reports_rejected_spans(server: RunningReceivers) -> None:
    resp = post(server, traces(3, bad=2).SerializeToString())
    assert resp.status_code == 200
    partial = ExportTraceServiceResponse.FromString(resp.content).partial_success
    assert partial.rejected_spans == 2
    assert partial.error_message
    assert server.sink.items(Signal.TRACES) == 3
    assert server.counter("faultlens_receiver_rejected_items_total", signal="traces", transport="http") >= 2


def test_partial_success_in_json(server: RunningReceivers) -> None:
    resp = post(server, traces_json(1, bad=1), content_type=JSON)
    assert resp.status_code == 200
    partial = json_format.Parse(resp.content, ExportTraceServiceResponse()).partial_success
    assert partial.rejected_spans == 1


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "identity"])
def test_compressed_bodies_are_inflated(server: RunningReceivers, encoding: str) -> None:
    raw = traces(10).SerializeToString()
    body = {"gzip": gzip.compress, "deflate": zlib.compress, "identity": bytes}[encoding](raw)
    resp = post(server, body, content_encoding=encoding)
    assert resp.status_code == 200
    assert server.sink.items(Signal.TRACES) == 10


def test_concatenated_gzip_members_are_one_body(server: RunningReceivers) -> None:
    raw = traces(4).SerializeToString()
    resp = post(server, gzip.compress(raw[:10]) + gzip.compress(raw[10:]), content_encoding="gzip")
    assert resp.status_code == 200
    assert server.sink.items(Signal.TRACES) == 4


def test_chunked_body_is_read_as_a_stream(server: RunningReceivers) -> None:
    raw = traces(20).SerializeToString()
    resp = post(server, iter([raw[:7], raw[7:100], raw[100:]]))
    assert resp.status_code == 200
    assert server.sink.items(Signal.TRACES) == 20


# --- refusals: each is answered with a Status body and the server keeps serving ----------------


def bad_request(status: status_pb2.Status) -> error_details_pb2.BadRequest:
    detail = error_details_pb2.BadRequest()
    assert len(status.details) == 1 and status.details[0].Unpack(detail)
    return detail


def test_malformed_protobuf_is_400_with_status(server: RunningReceivers) -> None:
    before = refused(server, "malformed")
    resp = post(server, b"\x0a\xff\xff\xff\xff\x0fgarbage")
    assert resp.status_code == 400
    assert resp.headers["content-type"] == PB
    status = rpc_status(resp)
    assert status.message
    assert bad_request(status).field_violations[0].description == status.message
    assert refused(server, "malformed") == before + 1
    assert_still_serving(server)


def test_malformed_json_is_400_with_json_status(server: RunningReceivers) -> None:
    resp = post(server, b'{"resourceSpans": [', content_type=JSON)
    assert resp.status_code == 400
    assert resp.headers["content-type"] == JSON
    assert bad_request(rpc_status(resp)).field_violations
    assert_still_serving(server)


@pytest.mark.parametrize("as_json", [False, True])
def test_deep_anyvalue_nesting_is_400(server: RunningReceivers, as_json: bool) -> None:
    body = deep_anyvalue_traces_json(2000) if as_json else deep_anyvalue_traces(2000)
    resp = post(server, body, content_type=JSON if as_json else PB)
    assert resp.status_code == 400
    assert rpc_status(resp).message
    assert_still_serving(server)


def test_oversized_body_is_413(server: RunningReceivers) -> None:
    before = refused(server, "too_large")
    resp = post(server, bytes(LIMIT + 1))
    assert resp.status_code == 413
    assert resp.headers["content-type"] == PB
    assert "limit" in rpc_status(resp).message
    assert refused(server, "too_large") == before + 1
    assert_still_serving(server)


def test_oversized_chunked_body_without_length_is_413(server: RunningReceivers) -> None:
    resp = post(server, iter([bytes(256 * 1024)] * 8))
    assert resp.status_code == 413
    assert_still_serving(server)


def test_body_exactly_at_the_limit_is_read(server: RunningReceivers) -> None:
    # Not a valid request, but it is read in full and reaches the decoder (400, not 413).
    resp = post(server, b"\xff" * LIMIT)
    assert resp.status_code == 400


def test_gzip_that_inflates_past_the_limit_is_413(server: RunningReceivers) -> None:
    resp = post(server, gzip.compress(bytes(LIMIT + 1)), content_encoding="gzip")
    assert resp.status_code == 413
    assert_still_serving(server)


def test_gzip_bomb_is_stopped_quickly_with_bounded_memory(server: RunningReceivers) -> None:
    bomb = gzip_bomb(10)  # ~10 MB on the wire, 10 GiB inflated
    rss_before = psutil.Process().memory_info().rss
    started = time.monotonic()
    resp = post(server, bomb, content_encoding="gzip")
    elapsed = time.monotonic() - started
    grown = psutil.Process().memory_info().rss - rss_before
    assert resp.status_code == 413
    assert elapsed < 5.0
    assert grown < 64 * 1024 * 1024, f"RSS grew by {grown} bytes"
    assert_still_serving(server)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(gzip.compress(traces(50).SerializeToString())[:-12], id="truncated"),
        pytest.param(b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"not deflate at all", id="corrupt"),
        pytest.param(b"plain, not gzip", id="not-gzip"),
    ],
)
def test_bad_gzip_is_400(server: RunningReceivers, body: bytes) -> None:
    resp = post(server, body, content_encoding="gzip")
    assert resp.status_code == 400
    assert rpc_status(resp).message
    assert_still_serving(server)


def test_unsupported_content_type_is_415_with_protobuf_status(server: RunningReceivers) -> None:
    before = refused(server, "unsupported_media_type")
    resp = post(server, b"hello", content_type="text/plain")
    assert resp.status_code == 415
    assert resp.headers["content-type"] == PB
    assert "Content-Type" in rpc_status(resp).message
    assert refused(server, "unsupported_media_type") == before + 1
    assert_still_serving(server)


def test_415_status_is_json_when_the_client_accepts_json(server: RunningReceivers) -> None:
    resp = post(server, b"hello", content_type="text/plain", accept="application/json")
    assert resp.status_code == 415
    assert resp.headers["content-type"] == JSON
    assert json.loads(resp.content)["message"]


def test_missing_content_type_is_415(server: RunningReceivers) -> None:
    resp = post(server, b"hello", content_type=None)
    assert resp.status_code == 415


def test_unsupported_content_encoding_is_415(server: RunningReceivers) -> None:
    resp = post(server, b"x", content_encoding="br")
    assert resp.status_code == 415
    assert "Content-Encoding" in rpc_status(resp).message
    assert_still_serving(server)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_are_405_with_allow(server: RunningReceivers, method: str) -> None:
    resp = post(server, b"", method=method)
    assert resp.status_code == 405
    assert resp.headers["allow"] == "POST"
    assert rpc_status(resp).message
    assert refused(server, "method_not_allowed") >= 1
    assert_still_serving(server)


@pytest.mark.parametrize("path", ["/", "/v1/trace", "/v1/traces/", "/v2/traces", "/v1/profiles"])
def test_unknown_paths_are_404(server: RunningReceivers, path: str) -> None:
    resp = post(server, traces(1).SerializeToString(), path=path)
    assert resp.status_code == 404
    assert rpc_status(resp).message
    assert server.counter(
        "faultlens_receiver_refused_requests_total", signal="unknown", transport="http", reason="not_found"
    )
    assert_still_serving(server)


def test_overloaded_consumer_is_503_with_retry_after(server: RunningReceivers) -> None:
    server.sink.refuse(retry_after_s=2.5)
    resp = post(server, traces(3).SerializeToString())
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "3"  # whole seconds, rounded up
    retry = error_details_pb2.RetryInfo()
    assert rpc_status(resp).details[0].Unpack(retry)  # the exact delay, as on gRPC
    assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (2, 500_000_000)
    labels = {"signal": "traces", "transport": "http"}
    assert server.counter("faultlens_receiver_refused_items_total", **labels) >= 3
    assert refused(server, "overloaded") >= 1
    server.sink.allow()
    assert_still_serving(server)


def test_unexpected_error_is_500_with_status_and_server_keeps_serving(
    server: RunningReceivers, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(batch: Any) -> None:
        raise RuntimeError("bug in a consumer")

    monkeypatch.setattr(server.sink, "consume", broken)
    resp = post(
        server,
        traces(1).SerializeToString(),
    )
    assert resp.status_code == 500
    assert rpc_status(resp).message == "internal error"
    assert refused(server, "internal") >= 1
    monkeypatch.undo()
    assert_still_serving(server)


def test_memory_soft_limit_is_503_with_retry_after(tiny_memory_server: RunningReceivers) -> None:
    resp = post(tiny_memory_server, traces(1).SerializeToString(), content_type=JSON)
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "3"
    assert resp.headers["content-type"] == JSON
    status = rpc_status(resp)
    assert "memory soft limit" in status.message
    assert status.details[0].type_url.endswith("google.rpc.RetryInfo")
    assert tiny_memory_server.sink.items() == 0
    assert tiny_memory_server.counter("faultlens_process_rss_bytes") > 1024 * 1024
    assert tiny_memory_server.counter("faultlens_admission_memory_soft_limit_bytes") == 1024 * 1024


# --- auth ---------------------------------------------------------------------------------


def test_auth_missing_token_is_401_with_www_authenticate(auth_server: RunningReceivers) -> None:
    resp = post(auth_server, traces(1).SerializeToString())
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert rpc_status(resp).message
    assert auth_server.sink.items() == 0


@pytest.mark.parametrize("value", ["Bearer wrong", "Basic czNjcmV0", "Bearer", TOKEN])
def test_auth_bad_credentials_are_401(auth_server: RunningReceivers, value: str) -> None:
    resp = post(auth_server, traces(1).SerializeToString(), authorization=value)
    assert resp.status_code == 401


def test_auth_good_token_is_accepted(auth_server: RunningReceivers) -> None:
    resp = post(auth_server, traces(2).SerializeToString(), authorization=f"bearer {TOKEN}")
    assert resp.status_code == 200
    assert auth_server.sink.items(Signal.TRACES) >= 2


def test_auth_off_needs_no_token(server: RunningReceivers) -> None:
    resp = post(server, traces(1).SerializeToString(), authorization="Bearer anything")
    assert resp.status_code == 200


# --- TLS ----------------------------------------------------------------------------------


def client_tls(certs: Certs, *, with_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.server_cert))
    if with_client_cert:
        context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    return context


def test_https_with_self_signed_certificate(tls_server: RunningReceivers, certs: Certs) -> None:
    resp = post(tls_server, traces(2).SerializeToString(), verify=client_tls(certs))
    assert resp.status_code == 200
    assert tls_server.sink.items(Signal.TRACES) >= 2


def test_plain_http_to_tls_port_fails(tls_server: RunningReceivers) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.post(f"http://127.0.0.1:{tls_server.ports.http}/v1/traces", content=b"", timeout=5)


def test_mtls_requires_a_client_certificate(mtls_server: RunningReceivers, certs: Certs) -> None:
    body = traces(1).SerializeToString()
    with pytest.raises(httpx.HTTPError):
        post(mtls_server, body, verify=client_tls(certs))
    resp = post(mtls_server, body, verify=client_tls(certs, with_client_cert=True))
    assert resp.status_code == 200
