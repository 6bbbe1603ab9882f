"""The small, fully known data set the API tests serve, and the handle the tests get.

The data set (times relative to ``T0`` = 2024-05-01T12:00:00Z):

- trace A (``TRACE_A``): ``frontend`` ``GET /checkout`` SERVER root [T0, T0+50 ms) calls
  ``payment`` ``POST /charge`` SERVER [T0+10 ms+1 ns, T0+40 ms), which ends in ERROR and carries
  one event and one link;
- trace B (``TRACE_B``): ``frontend`` ``GET /home`` SERVER [T0+1 s, T0+1 s+5 ms), OK;
- trace C (``TRACE_C``): ``payment`` ``SELECT orders`` CLIENT [T0+2 s, T0+2 s+200 ms), UNSET;
- three logs: ERROR in trace A, INFO in trace B, WARN without a trace;
- three metric points: gauge ``queue.depth`` (3 at T0, 5 at T0+1 s), histogram
  ``http.server.duration`` at T0+1.5 s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pyarrow as pa

from faultlens.api import ApiServer, HealthState
from faultlens.decode.schema import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA
from faultlens.selfmetrics import SelfMetrics
from faultlens.store.base import Store

T0 = 1_714_564_800_000_000_000  # 2024-05-01T12:00:00Z
MS = 1_000_000
S = 1_000_000_000

TRACE_A = bytes.fromhex("0AF7651916CD43DD8448EB211C80319C")
TRACE_B = bytes.fromhex("11111111111111111111111111111111")
TRACE_C = bytes.fromhex("c0ffee00c0ffee00c0ffee00c0ffee00")
SPAN_A1 = bytes.fromhex("B7AD6B7169203331")
SPAN_A2 = bytes.fromhex("00f067aa0ba902b7")
SPAN_B1 = bytes.fromhex("2222222222222222")
SPAN_C1 = bytes.fromhex("3333333333333333")
LINKED_TRACE = bytes.fromhex("ffffffffffffffffffffffffffffffff")
LINKED_SPAN = bytes.fromhex("4444444444444444")


def _resource(service: str) -> dict[str, Any]:
    return {"service_name": service, "resource_attributes": json.dumps({"service.name": service})}


def span(
    trace_id: bytes,
    span_id: bytes,
    parent: bytes | None,
    service: str,
    name: str,
    kind: int,
    start: int,
    end: int,
    status_code: int = 0,
    status_message: str = "",
    attributes: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    links: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent,
        "trace_state": "",
        "flags": 1,
        "name": name,
        "kind": kind,
        "start_time_unix_nano": start,
        "end_time_unix_nano": end,
        "duration_ns": end - start,
        "status_code": status_code,
        "status_message": status_message,
        "scope_name": "test-scope",
        "scope_version": "1.0",
        "attributes": json.dumps(attributes or {}),
        "events": events or [],
        "links": links or [],
        "dropped_attributes_count": 0,
        "dropped_events_count": 0,
        "dropped_links_count": 0,
        **_resource(service),
    }


def log(
    t: int,
    severity: int,
    severity_text: str,
    body: str,
    service: str,
    trace_id: bytes | None = None,
    span_id: bytes | None = None,
) -> dict[str, Any]:
    return {
        "time_unix_nano": t,
        "observed_time_unix_nano": t + 1,
        "severity_number": severity,
        "severity_text": severity_text,
        "body": body,
        "trace_id": trace_id,
        "span_id": span_id,
        "flags": 0,
        "scope_name": "test-scope",
        "attributes": json.dumps({"code.function": "handle"}),
        "dropped_attributes_count": 0,
        **_resource(service),
    }


def spans_table() -> pa.Table:
    rows = [
        span(
            TRACE_A,
            SPAN_A1,
            None,
            "frontend",
            "GET /checkout",
            2,
            T0,
            T0 + 50 * MS,
            attributes={"http.route": "/checkout", "http.response.status_code": 500},
        ),
        span(
            TRACE_A,
            SPAN_A2,
            SPAN_A1,
            "payment",
            "POST /charge",
            2,
            T0 + 10 * MS + 1,  # odd, above 2**53: not representable as a float64
            T0 + 40 * MS,
            status_code=2,
            status_message="card declined",
            attributes={"retry": True, "amount": 12.5},
            events=[
                {
                    "time_unix_nano": T0 + 39 * MS,
                    "name": "exception",
                    "attributes": json.dumps({"exception.type": "CardDeclined"}),
                }
            ],
            links=[
                {
                    "trace_id": LINKED_TRACE,
                    "span_id": LINKED_SPAN,
                    "trace_state": "k=v",
                    "attributes": json.dumps({"link.kind": "follows"}),
                }
            ],
        ),
        span(TRACE_B, SPAN_B1, None, "frontend", "GET /home", 2, T0 + S, T0 + S + 5 * MS, status_code=1),
        span(TRACE_C, SPAN_C1, None, "payment", "SELECT orders", 3, T0 + 2 * S, T0 + 2 * S + 200 * MS),
    ]
    return pa.Table.from_pylist(rows, schema=SPAN_SCHEMA)


def logs_table() -> pa.Table:
    rows = [
        log(T0 + 20 * MS, 17, "ERROR", "payment failed: card declined", "payment", TRACE_A, SPAN_A2),
        log(T0 + S + MS, 9, "INFO", "home rendered", "frontend", TRACE_B, SPAN_B1),
        log(T0 + 3 * S, 13, "WARN", "Cache MISS for user 7", "frontend"),
    ]
    return pa.Table.from_pylist(rows, schema=LOG_SCHEMA)


def metrics_table() -> pa.Table:
    def point(t: int, **fields: Any) -> dict[str, Any]:
        return {"time_unix_nano": t, "start_time_unix_nano": T0 - S, "attributes": "{}", **fields}

    gauge = {
        "metric_name": "queue.depth",
        "metric_type": "gauge",
        "metric_unit": "{items}",
        **_resource("payment"),
    }
    rows = [
        point(T0, value=3.0, **gauge),
        point(T0 + S, value=5.0, **gauge),
        point(
            T0 + 1500 * MS,
            metric_name="http.server.duration",
            metric_type="histogram",
            metric_unit="ms",
            aggregation_temporality=2,
            count=4,
            sum=12.5,
            bucket_counts=[1, 2, 1],
            explicit_bounds=[1.0, 5.0],
            **_resource("frontend"),
        ),
    ]
    return pa.Table.from_pylist(rows, schema=METRIC_SCHEMA)


@dataclass
class Served:
    """A running API server over a store, with what the tests need to poke at."""

    client: httpx.Client
    store: Store
    metrics: SelfMetrics
    health: HealthState
    server: ApiServer
