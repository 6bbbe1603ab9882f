"""``faultlens serve`` as users run it: a real process, the real OpenTelemetry SDK as client.

Each signal is exported over gRPC, HTTP/protobuf and HTTP/JSON and must come back intact
through the query API; the process must flush on SIGTERM, keep its data over a restart,
and apply retention.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from faultlens.testing.payloads import to_otlp_json
from faultlens.testing.process import ServerProcess, start_server

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_server(tmp_path_factory.mktemp("serve") / "data")
    yield srv
    assert srv.stop() == 0


def _wait_for(fn: Any, timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def _make_spans(service: str) -> list[Any]:
    """Two spans (parent, child with an exception event and an error status) from the SDK."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "k8s.pod.name": f"{service}-0"})
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("faultlens.tests", "1.0")
    with tracer.start_as_current_span(
        "GET /cart",
        kind=trace.SpanKind.SERVER,
        attributes={"http.request.method": "GET", "http.route": "/cart"},
    ) as parent:
        parent.set_attribute("http.response.status_code", 500)
        with tracer.start_as_current_span(
            "SELECT cart", attributes={"db.system.name": "postgresql"}
        ) as child:
            try:
                raise TimeoutError("query timed out after 30s")
            except TimeoutError as e:
                child.record_exception(e)
                child.set_status(Status(StatusCode.ERROR, "timeout"))
    provider.shutdown()
    return list(memory.get_finished_spans())


def _export_spans(server: ServerProcess, transport: str, spans: list[Any]) -> None:
    if transport == "grpc":
        GrpcSpanExporter(endpoint=f"127.0.0.1:{server.grpc_port}", insecure=True).export(spans)
    elif transport == "http-protobuf":
        HttpSpanExporter(endpoint=f"http://127.0.0.1:{server.http_port}/v1/traces").export(spans)
    else:
        body = to_otlp_json(encode_spans(spans))
        r = httpx.post(
            f"http://127.0.0.1:{server.http_port}/v1/traces",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("transport", ["grpc", "http-protobuf", "http-json"])
def test_sdk_spans_arrive_intact(server: ServerProcess, transport: str) -> None:
    service = f"cart-{transport}"
    spans = _make_spans(service)
    _export_spans(server, transport, spans)
    child = next(s for s in spans if s.name == "SELECT cart")
    trace_hex = f"{child.context.trace_id:032x}"
    got = _wait_for(lambda: httpx.get(f"{server.api}/api/v1/traces/{trace_hex}").status_code == 200)
    assert got, f"trace {trace_hex} never became queryable"
    body = httpx.get(f"{server.api}/api/v1/traces/{trace_hex}").json()
    by_name = {s["name"]: s for s in body["spans"]}
    assert set(by_name) == {"GET /cart", "SELECT cart"}
    parent_sdk = next(s for s in spans if s.name == "GET /cart")
    p, c = by_name["GET /cart"], by_name["SELECT cart"]
    assert p["span_id"] == f"{parent_sdk.context.span_id:016x}"
    assert p["parent_span_id"] is None
    assert c["parent_span_id"] == p["span_id"]
    assert c["trace_id"] == trace_hex
    assert p["start_time_unix_nano"] == parent_sdk.start_time
    assert p["end_time_unix_nano"] == parent_sdk.end_time
    assert p["service"] == service
    assert p["attributes"]["http.route"] == "/cart"
    assert p["attributes"]["http.response.status_code"] == 500
    assert c["status_code"] in (2, "ERROR", "STATUS_CODE_ERROR")
    assert c["status_message"] == "timeout"
    (event,) = c["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "TimeoutError"
    assert event["attributes"]["exception.message"] == "query timed out after 30s"
    # and it is found by the search endpoints
    found = httpx.get(f"{server.api}/api/v1/traces", params={"service": service, "status": "error"}).json()
    assert trace_hex in [t["trace_id"] for t in found["traces"]]
    assert service in httpx.get(f"{server.api}/api/v1/services").json()["services"]


def _make_log_records(service: str) -> list[Any]:
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = logging.getLogger(f"faultlens.tests.{service}")
    logger.propagate = False
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("work"):
        logger.error("payment %s failed: connection refused", "p-42")
    logger.removeHandler(handler)
    provider.shutdown()
    return list(memory.get_finished_logs())


@pytest.mark.parametrize("transport", ["grpc", "http-protobuf", "http-json"])
def test_sdk_logs_arrive_intact(server: ServerProcess, transport: str) -> None:
    service = f"payments-{transport}"
    records = _make_log_records(service)
    (record,) = records
    if transport == "grpc":
        GrpcLogExporter(endpoint=f"127.0.0.1:{server.grpc_port}", insecure=True).export(records)
    elif transport == "http-protobuf":
        HttpLogExporter(endpoint=f"http://127.0.0.1:{server.http_port}/v1/logs").export(records)
    else:
        r = httpx.post(
            f"http://127.0.0.1:{server.http_port}/v1/logs",
            content=to_otlp_json(encode_logs(records)),
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 200, r.text
    logs = _wait_for(
        lambda: httpx.get(f"{server.api}/api/v1/logs", params={"service": service}).json()["logs"]
    )
    assert len(logs) == 1
    (log,) = logs
    sdk_record = record.log_record
    assert log["body"] == "payment p-42 failed: connection refused"
    assert log["severity_number"] == SeverityNumber.ERROR.value
    assert log["trace_id"] == f"{sdk_record.trace_id:032x}"
    assert log["span_id"] == f"{sdk_record.span_id:016x}"
    assert log["time_unix_nano"] == sdk_record.timestamp
    errors = httpx.get(f"{server.api}/api/v1/logs", params={"service": service, "severity": "ERROR"}).json()
    assert len(errors["logs"]) == 1
    by_trace = httpx.get(f"{server.api}/api/v1/logs", params={"trace_id": log["trace_id"]}).json()
    assert [x["body"] for x in by_trace["logs"]] == [log["body"]]


@pytest.mark.parametrize("transport", ["grpc", "http-protobuf", "http-json"])
def test_sdk_metrics_arrive_intact(server: ServerProcess, transport: str) -> None:
    service = f"orders-{transport}"
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=Resource.create({"service.name": service}), metric_readers=[reader])
    meter = provider.get_meter("faultlens.tests")
    counter = meter.create_counter("orders.placed", unit="1")
    histogram = meter.create_histogram("orders.latency", unit="ms")
    counter.add(3, {"region": "eu"})
    for v in (5.0, 15.0, 250.0):
        histogram.record(v)
    data = reader.get_metrics_data()
    assert data is not None
    if transport == "grpc":
        GrpcMetricExporter(endpoint=f"127.0.0.1:{server.grpc_port}", insecure=True).export(data)
    elif transport == "http-protobuf":
        HttpMetricExporter(endpoint=f"http://127.0.0.1:{server.http_port}/v1/metrics").export(data)
    else:
        from opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder import encode_metrics

        r = httpx.post(
            f"http://127.0.0.1:{server.http_port}/v1/metrics",
            content=to_otlp_json(encode_metrics(data)),
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 200, r.text
    provider.shutdown()

    def points(name: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{server.api}/api/v1/metrics", params={"name": name, "service": service})
        return list(r.json()["points"])

    counted = _wait_for(lambda: points("orders.placed"))
    assert len(counted) == 1
    assert counted[0]["value"] == 3
    assert counted[0]["attributes"] == {"region": "eu"}
    (hist,) = _wait_for(lambda: points("orders.latency"))
    assert hist["count"] == 3
    assert hist["sum"] == pytest.approx(270.0)


def test_bad_request_does_not_stop_the_server(server: ServerProcess) -> None:
    r = httpx.post(
        f"http://127.0.0.1:{server.http_port}/v1/traces",
        content=b"\xff\xff\xff not protobuf",
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert r.status_code == 400
    assert httpx.get(f"{server.api}/healthz").status_code == 200
    assert httpx.get(f"{server.api}/readyz").status_code == 200
    metrics = httpx.get(f"{server.api}/metrics").text
    assert "faultlens_receiver_refused_requests_total" in metrics


def test_sigterm_flushes_and_restart_keeps_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server(data)
    spans = _make_spans("restart-check")
    _export_spans(srv, "grpc", spans)
    # Stop at once: what was accepted must be flushed by the shutdown, not lost.
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(60) == 0
    assert any("shutting down" in line for line in srv.output)

    again = start_server(data)
    try:
        trace_hex = f"{spans[0].context.trace_id:032x}"
        r = httpx.get(f"{again.api}/api/v1/traces/{trace_hex}")
        assert r.status_code == 200
        assert len(r.json()["spans"]) == 2
        assert again.stats()["spans"] == 2
    finally:
        assert again.stop() == 0


def test_retention_removes_old_data_and_keeps_new(tmp_path: Path) -> None:
    from faultlens.testing.payloads import build_trace_request

    srv = start_server(
        tmp_path / "data",
        env={"FAULTLENS_STORE__RETENTION": "1h", "FAULTLENS_STORE__RETENTION_CHECK_INTERVAL": "1s"},
    )
    try:
        old = build_trace_request(
            n_spans=50, services=2, seed=1, base_time_ns=time.time_ns() - 2 * 3600 * 10**9
        )
        new = build_trace_request(n_spans=30, services=2, seed=2, base_time_ns=time.time_ns() - 60 * 10**9)
        for req in (old, new):
            r = httpx.post(
                f"http://127.0.0.1:{srv.http_port}/v1/traces",
                content=req.SerializeToString(),
                headers={"Content-Type": "application/x-protobuf"},
            )
            assert r.status_code == 200
        assert _wait_for(lambda: srv.stats()["spans"] == 30, timeout_s=20), srv.stats()
    finally:
        assert srv.stop() == 0


def test_config_error_names_the_key(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("receivers:\n  grpc:\n    prot: 4317\n")
    r = subprocess.run(
        [sys.executable, "-m", "faultlens.cli", "serve", "--config", str(bad)], capture_output=True, text=True
    )
    assert r.returncode == 2
    assert "receivers.grpc.prot" in r.stderr
    assert "unknown key" in r.stderr


@pytest.mark.parametrize(
    ("flag", "names"),
    [
        ("--api-port", ("query API", "api.port")),
        ("--otlp-http-port", ("OTLP/HTTP receiver", "receivers.http.port")),
        ("--otlp-grpc-port", ("OTLP/gRPC receiver", "receivers.grpc.port")),
    ],
)
def test_a_port_in_use_is_one_line_naming_the_listener_and_its_setting(
    tmp_path: Path, flag: str, names: tuple[str, str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ports = {"--otlp-grpc-port": "0", "--otlp-http-port": "0", "--api-port": "0", flag: str(port)}
        args = [a for kv in ports.items() for a in kv]
        done = subprocess.run(
            [sys.executable, "-m", "faultlens.cli", "serve", "--data-dir", str(tmp_path), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot start: ")
    assert f"127.0.0.1:{port}" in last and names[0] in last and names[1] in last
    assert "Traceback" not in done.stderr
