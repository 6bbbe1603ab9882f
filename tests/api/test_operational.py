"""/metrics, /healthz, /readyz, OpenAPI, error mapping and the server's lifecycle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from faultlens.api import ApiServer, HealthState, create_app
from faultlens.config import StoreConfig
from faultlens.errors import StoreError, UnsupportedQuery
from faultlens.selfmetrics import CONTENT_TYPE_LATEST, SelfMetrics
from faultlens.store import open_store
from faultlens.store.base import (
    LogQuery,
    LogRecord,
    MetricPoint,
    MetricQuery,
    Operation,
    StoreStats,
    Trace,
    TraceQuery,
    TraceSummary,
    TraceText,
)

from .dataset import Served


def test_metrics_renders_self_metrics_as_prometheus_text(served: Served) -> None:
    served.metrics.store_written_items.labels(signal="traces").inc(4)
    response = served.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert 'faultlens_store_written_items_total{signal="traces"} 4.0' in response.text.splitlines()
    assert "# TYPE faultlens_receiver_received_items_total counter" in response.text


def test_healthz_is_always_ok(served: Served) -> None:
    served.health.set_not_ready("store", "closed")
    response = served.client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_flips_with_component_state(served: Served) -> None:
    health = served.health
    health.set_not_ready("store", "not started")
    health.set_not_ready("receivers", "not started")
    response = served.client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "not ready",
        "components": {"receivers": "not started", "store": "not started"},
        "reasons": ["receivers: not started", "store: not started"],
        "details": {},
    }

    health.set_ready("store")
    health.set_ready("receivers")
    response = served.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "components": {"receivers": "ok", "store": "ok"},
        "reasons": [],
        "details": {},
    }

    health.set_not_ready("store", "store closed for shutdown")
    response = served.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reasons"] == ["store: store closed for shutdown"]
    health.set_ready("store")


def test_readyz_reports_details_without_letting_them_decide_readiness(served: Served) -> None:
    health = HealthState(["store"])
    health.set_ready("store")
    health.add_details("exporters", lambda: {"downstream": {"breaker": "open", "queue_items": 7}})
    health.add_details("broken", lambda: 1 // 0)
    server = ApiServer(create_app(served.store, SelfMetrics(), health), host="127.0.0.1", port=0)
    server.start()
    try:
        response = httpx.get(f"{server.url}/readyz", timeout=10)
    finally:
        server.shutdown()
    assert response.status_code == 200
    details = response.json()["details"]
    assert details["exporters"] == {"downstream": {"breaker": "open", "queue_items": 7}}
    assert "by zero" in details["broken"]["error"]


def test_health_state_starts_declared_components_not_ready() -> None:
    health = HealthState(["store"])
    assert not health.readiness().ready
    assert health.readiness().reasons == ["store: not started"]
    health.set_ready("store")
    assert health.readiness().ready
    assert HealthState().readiness().ready
    with pytest.raises(ValueError):
        health.set_not_ready("store", "")


def test_openapi_documents_every_endpoint(served: Served) -> None:
    spec = served.client.get("/openapi.json").json()
    assert set(spec["paths"]) == {
        "/api/v1/services",
        "/api/v1/operations",
        "/api/v1/traces",
        "/api/v1/traces/{trace_id}",
        "/api/v1/logs",
        "/api/v1/metrics",
        "/api/v1/metrics/names",
        "/api/v1/metrics/series",
        "/api/v1/stats",
        "/metrics",
        "/healthz",
        "/readyz",
    }
    traces = spec["paths"]["/api/v1/traces"]["get"]
    start = next(p for p in traces["parameters"] if p["name"] == "start")
    assert "RFC 3339" in start["description"]
    docs = served.client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


# --- errors from the store ------------------------------------------------------------------


class FailingReader:
    """A reader whose every query raises ``error``: the store failing under the API."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def services(self) -> list[str]:
        raise self.error

    def operations(self, service: str) -> list[Operation]:
        raise self.error

    def find_traces(self, query: TraceQuery) -> list[TraceSummary]:
        raise self.error

    def get_trace(self, trace_id: bytes) -> Trace | None:
        raise self.error

    def get_trace_text(self, trace_id: bytes) -> TraceText | None:
        raise self.error

    def find_logs(self, query: LogQuery) -> list[LogRecord]:
        raise self.error

    def find_metric_points(self, query: MetricQuery) -> list[MetricPoint]:
        raise self.error

    def stats(self) -> StoreStats:
        raise self.error


@pytest.fixture
def serve_failing() -> Iterator[Any]:
    servers: list[ApiServer] = []

    def start(error: Exception) -> httpx.Client:
        server = ApiServer(create_app(FailingReader(error), SelfMetrics(), HealthState()), port=0)
        server.start()
        servers.append(server)
        return httpx.Client(base_url=server.url, timeout=10.0)

    yield start
    for server in servers:
        server.shutdown()


QUERY_PATHS = [
    "/api/v1/services",
    "/api/v1/operations?service=a",
    "/api/v1/traces",
    "/api/v1/traces/0af7651916cd43dd8448eb211c80319c",
    "/api/v1/logs",
    "/api/v1/metrics",
    "/api/v1/stats",
]


@pytest.mark.parametrize("path", QUERY_PATHS)
def test_unsupported_query_is_400_with_its_message(serve_failing: Any, path: str) -> None:
    client = serve_failing(UnsupportedQuery("cannot filter on that exactly"))
    response = client.get(path)
    assert (response.status_code, response.json()) == (400, {"detail": "cannot filter on that exactly"})


@pytest.mark.parametrize("path", QUERY_PATHS)
def test_store_error_is_503_with_a_message(serve_failing: Any, path: str) -> None:
    client = serve_failing(StoreError("database is closed"))
    response = client.get(path)
    assert (response.status_code, response.json()) == (503, {"detail": "store error: database is closed"})


def test_a_closed_real_store_is_503(tmp_path: Path) -> None:
    store = open_store(StoreConfig(data_dir=tmp_path))
    server = ApiServer(create_app(store, SelfMetrics(), HealthState()), port=0)
    server.start()
    try:
        store.close()
        response = httpx.get(server.url + "/api/v1/stats", timeout=5.0)
        assert (response.status_code, response.json()) == (
            503,
            {"detail": "store error: the store is closed"},
        )
    finally:
        server.shutdown()


def test_unexpected_error_is_500_and_the_server_keeps_serving(serve_failing: Any) -> None:
    client = serve_failing(RuntimeError("bug"))
    response = client.get("/api/v1/services")
    assert (response.status_code, response.json()) == (500, {"detail": "internal error"})
    assert client.get("/healthz").status_code == 200


# --- lifecycle ------------------------------------------------------------------------------


def test_api_server_binds_port_zero_and_shuts_down_twice() -> None:
    server = ApiServer(create_app(FailingReader(StoreError("x")), SelfMetrics(), HealthState()), port=0)
    with pytest.raises(RuntimeError):
        _ = server.port
    server.start()
    assert server.port > 0
    assert httpx.get(server.url + "/healthz", timeout=5.0).status_code == 200
    url = server.url
    server.shutdown()
    server.shutdown()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/healthz", timeout=2.0)


def test_api_server_refuses_a_busy_port(served: Served) -> None:
    other = ApiServer(
        create_app(FailingReader(StoreError("x")), SelfMetrics(), HealthState()), port=served.server.port
    )
    with pytest.raises(OSError):
        other.start()
