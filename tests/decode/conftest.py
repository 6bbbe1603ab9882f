"""Fixtures for decode tests: realistic requests from the payload builders."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from faultlens.testing.payloads import build_logs_request, build_metrics_request, build_trace_request

BASE_NS = 1_700_000_000_000_000_000


@pytest.fixture(scope="session")
def trace_request() -> ExportTraceServiceRequest:
    return build_trace_request(n_spans=300, services=4, seed=7, error_ratio=0.3, base_time_ns=BASE_NS)


@pytest.fixture(scope="session")
def logs_request() -> ExportLogsServiceRequest:
    return build_logs_request(n_records=200, services=3, seed=3, base_time_ns=BASE_NS)


@pytest.fixture(scope="session")
def metrics_request() -> Any:
    return build_metrics_request(services=2, points_per_metric=3, seed=5, base_time_ns=BASE_NS)
