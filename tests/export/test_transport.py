"""Transports against a real backend over loopback: every protocol, every scripted answer."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from faultlens.export.config import ExporterConfig
from faultlens.export.outcome import Delivered, Failed
from faultlens.export.transport import make_transport
from faultlens.testing.otlp_backend import (
    DropConnection,
    Hang,
    OtlpBackend,
    PartialSuccess,
    Reject,
    Throttle,
)
from faultlens.types import Signal

from .helpers import logs_request, metrics_request, trace_body

PROTOCOLS = ["grpc", "http/protobuf", "http/json"]


def _config(backend: OtlpBackend, protocol: str, **kw: object) -> ExporterConfig:
    endpoint = backend.grpc_endpoint if protocol == "grpc" else backend.http_endpoint
    return ExporterConfig.model_validate({"protocol": protocol, "endpoint": endpoint, **kw})


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_delivers_span_ids_and_headers_with_gzip(backend: OtlpBackend, protocol: str) -> None:
    t = make_transport(_config(backend, protocol, headers={"x-tenant": "t1"}, compression="gzip"))
    try:
        assert t.send(Signal.TRACES, trace_body(7, seed=1), 2.0) == Delivered()
    finally:
        t.close()
    assert len(backend.unique_span_ids()) == 7
    assert backend.requests[0].headers.get("x-tenant") == "t1"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_scripted_answers_are_classified(backend: OtlpBackend, protocol: str) -> None:
    backend.script(
        Throttle(0.5, grpc_code=grpc.StatusCode.RESOURCE_EXHAUSTED),
        Throttle(2.0, http_status=503, http_date=True),
        Reject(),
        PartialSuccess(3, "bad spans"),
        Hang(1.0),
    )
    t = make_transport(_config(backend, protocol))
    body = trace_body(5)
    try:
        throttled = t.send(Signal.TRACES, body, 2.0)
        assert isinstance(throttled, Failed) and throttled.retryable
        assert throttled.retry_after_s == pytest.approx(0.5, abs=0.01)
        dated = t.send(Signal.TRACES, body, 2.0)
        assert isinstance(dated, Failed) and dated.retryable
        assert (
            dated.retry_after_s is not None and 0.5 <= dated.retry_after_s <= 2.0
        )  # HTTP date: whole seconds
        rejected = t.send(Signal.TRACES, body, 2.0)
        assert isinstance(rejected, Failed) and not rejected.retryable
        assert t.send(Signal.TRACES, body, 2.0) == Delivered(3, "bad spans")
        hung = t.send(Signal.TRACES, body, 0.3)
        assert isinstance(hung, Failed) and hung.retryable
    finally:
        t.close()


@pytest.mark.parametrize("protocol", ["http/protobuf"])
def test_dropped_connection_is_retryable(backend: OtlpBackend, protocol: str) -> None:
    backend.script(DropConnection())
    t = make_transport(_config(backend, protocol))
    try:
        dropped = t.send(Signal.TRACES, trace_body(2), 2.0)
        assert isinstance(dropped, Failed) and dropped.retryable and dropped.reason == "connection"
    finally:
        t.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_refused_connection_is_retryable_and_recovers(protocol: str) -> None:
    backend = OtlpBackend().start()
    config = _config(backend, protocol)
    backend.stop()
    t = make_transport(config)
    try:
        refused = t.send(Signal.TRACES, trace_body(2), 1.0)
        assert isinstance(refused, Failed) and refused.retryable
        backend.start()
        deadline = time.monotonic() + 5
        result = t.send(Signal.TRACES, trace_body(2), 1.0)
        while not isinstance(result, Delivered) and time.monotonic() < deadline:
            time.sleep(0.1)
            result = t.send(Signal.TRACES, trace_body(2), 1.0)
        assert isinstance(result, Delivered)
    finally:
        t.close()
        backend.stop()


def test_other_signals_reach_their_paths(backend: OtlpBackend) -> None:
    for protocol in PROTOCOLS:
        t = make_transport(_config(backend, protocol))
        try:
            assert t.send(Signal.LOGS, logs_request(4).SerializeToString(), 2.0) == Delivered()
            assert t.send(Signal.METRICS, metrics_request(7).SerializeToString(), 2.0) == Delivered()
        finally:
            t.close()
    assert backend.items(Signal.LOGS) == 12
    assert backend.items(Signal.METRICS) == 21  # 3 protocols x 7 points


def test_http_clients_share_one_tls_context_loaded_only_for_https(backend: OtlpBackend) -> None:
    # Loading the CA certificates costs tens of milliseconds of CPU: once per transport, and
    # never for a plain http:// endpoint (it was once per sender thread, for any endpoint).
    t = make_transport(_config(backend, "http/protobuf"))
    try:
        assert t._verify.cert_store_stats()["x509_ca"] == 0  # type: ignore[attr-defined]
        results: list[object] = []
        threads = [
            threading.Thread(target=lambda s=s: results.append(t.send(Signal.TRACES, trace_body(3, s), 2.0)))
            for s in range(2)
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert results == [Delivered(), Delivered()]
    finally:
        t.close()
    secure = make_transport(
        ExporterConfig.model_validate({"protocol": "http/protobuf", "endpoint": "https://x:4318"})
    )
    try:
        assert secure._verify.cert_store_stats()["x509_ca"] > 0  # type: ignore[attr-defined]
    finally:
        secure.close()
