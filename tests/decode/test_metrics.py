from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from faultlens.decode import decode_request
from faultlens.decode.schema import METRIC_SCHEMA, METRIC_TYPES
from faultlens.testing.payloads import key_values
from faultlens.types import Signal


def decode(req: ExportMetricsServiceRequest) -> Any:
    return decode_request(Signal.METRICS, req.SerializeToString(), json=False)


def request_of(*metrics: Metric) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend(key_values({"service.name": "api"}))
    sm = rm.scope_metrics.add()
    sm.metrics.extend(metrics)
    return req


def test_every_point_of_every_kind_becomes_a_row(metrics_request: ExportMetricsServiceRequest) -> None:
    batch = decode(metrics_request)
    assert batch.rejected == 0 and batch.table.schema == METRIC_SCHEMA
    assert batch.accepted == 7 * 2 * 3
    assert set(batch.table.column("metric_type").to_pylist()) == set(METRIC_TYPES)
    rows = batch.table.to_pylist()
    by_name = {}
    for row in rows:
        by_name.setdefault(row["metric_name"], row)
    gauge_int = by_name["process.thread.count"]
    assert gauge_int["value_int"] == int(gauge_int["value"])
    total = by_name["http.server.request.count"]
    assert (total["aggregation_temporality"], total["is_monotonic"]) == (2, True)
    hist = by_name["http.server.request.duration"]
    assert len(hist["bucket_counts"]) == len(hist["explicit_bounds"]) + 1 == 11
    assert hist["count"] == sum(hist["bucket_counts"]) and hist["exemplar_count"] == 1
    assert hist["min"] == 0.001 and hist["max"] is not None
    exp = by_name["rpc.server.duration"]
    assert (
        exp["exp_scale"],
        exp["exp_zero_count"],
        exp["exp_positive_offset"],
        exp["exp_negative_offset"],
    ) == (
        3,
        2,
        10,
        -1,
    )
    assert len(exp["exp_positive_bucket_counts"]) == 8
    summary = by_name["gc.pause.duration"]
    assert [q["quantile"] for q in summary["quantiles"]] == [0.0, 0.5, 0.99, 1.0]
    assert json.loads(total["attributes"])["http.request.method"] == "GET"
    assert {r["service_name"] for r in rows} == {"frontend", "checkout"}


def test_points_keep_their_own_scope_and_resource() -> None:
    req = ExportMetricsServiceRequest()
    for service in ("a", "b"):
        rm = req.resource_metrics.add()
        rm.resource.attributes.extend(key_values({"service.name": service}))
        for scope in ("s1", "s2"):
            sm = rm.scope_metrics.add()
            sm.scope.name = scope
            m = sm.metrics.add(name=f"{service}.{scope}")
            m.gauge.data_points.add(time_unix_nano=1, as_int=1)
            m.gauge.data_points.add(time_unix_nano=2, as_int=2)
    rows = decode(req).table.to_pylist()
    assert [(r["metric_name"], r["service_name"], r["scope_name"]) for r in rows] == [
        (f"{svc}.{sc}", svc, sc) for svc in ("a", "b") for sc in ("s1", "s2") for _ in range(2)
    ]


def gauge(name: str, *times: int) -> Metric:
    m = Metric(name=name)
    for t in times:
        m.gauge.data_points.add(time_unix_nano=t, as_double=1.0)
    return m


def test_metric_without_name_is_rejected_with_its_points() -> None:
    batch = decode(request_of(gauge("ok", 1), gauge("", 1, 2, 3)))
    assert (batch.accepted, batch.rejected) == (1, 3)
    assert "metric has no name" in batch.error_message and "of 4 rejected" in batch.error_message


def test_metric_without_data_is_rejected_and_counted() -> None:
    batch = decode(request_of(Metric(name="empty"), gauge("ok", 5)))
    assert (batch.accepted, batch.rejected) == (1, 1)
    assert "metric 'empty' has no data" in batch.error_message


def test_point_without_time_is_rejected() -> None:
    batch = decode(request_of(gauge("g", 1, 0, 3)))
    assert (batch.accepted, batch.rejected) == (2, 1)
    assert batch.error_message == "data point 2 of 3 rejected: g: time_unix_nano is not set"


@pytest.mark.parametrize(
    ("counts", "ok"), [([1, 2, 3], True), ([], True), ([1, 2], False), ([1, 2, 3, 4], False)]
)
def test_histogram_needs_one_more_bucket_than_bounds(counts: list[int], ok: bool) -> None:
    m = Metric(name="h")
    m.histogram.data_points.add(
        time_unix_nano=1, count=sum(counts), bucket_counts=counts, explicit_bounds=[1.0, 2.0]
    )
    batch = decode(request_of(m))
    assert (batch.accepted, batch.rejected) == ((1, 0) if ok else (0, 1))
    if not ok:
        assert f"{len(counts)} bucket_counts for 2 explicit_bounds" in batch.error_message


def test_number_point_without_value_has_null_value() -> None:
    m = Metric(name="g")
    m.gauge.data_points.add(time_unix_nano=1)
    row = decode(request_of(m)).table.to_pylist()[0]
    assert row["value"] is None and row["value_int"] is None
