"""Metric names and metric series folded per step, on a real store file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from faultlens.errors import UnsupportedQuery
from faultlens.store import DuckDBStore, MetricAggregation, MetricNameQuery, MetricSeriesQuery
from faultlens.store.testing import metric_row, metrics_batch
from faultlens.types import TimeRange

S = 1_000_000_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    store = DuckDBStore(tmp_path / "faultlens.duckdb")
    rows = []
    for i in range(60):  # a gauge on two services, one point each per second
        rows.append(metric_row(name="cpu", time=i * S, value=float(i), service_name="a"))
        rows.append(metric_row(name="cpu", time=i * S, value=100.0, service_name="b"))
    for i in range(60):  # a cumulative counter per service, with two series (attributes) on "a"
        for attrs in ('{"route": "/x"}', '{"route": "/y"}'):
            total = 10.0 * i if i < 30 else 10.0 * (i - 30)  # reset at 30 s
            rows.append(
                metric_row(
                    name="requests",
                    time=i * S,
                    value=total,
                    metric_type="sum",
                    aggregation_temporality=2,
                    is_monotonic=True,
                    service_name="a",
                    attributes=attrs,
                )
            )
    rows.append(metric_row(name="old", time=0, value=1.0, service_name="c", metric_unit="By"))
    store.write([metrics_batch(rows)])
    try:
        yield store
    finally:
        store.close()


def test_names_newest_first_with_their_services(store: DuckDBStore) -> None:
    names = store.metric_names(MetricNameQuery())
    assert [n.name for n in names] == ["cpu", "requests", "old"]
    cpu = names[0]
    assert (cpu.services, cpu.points, cpu.last_seen_unix_nano, cpu.metric_type) == (
        ("a", "b"),
        120,
        59 * S,
        "gauge",
    )
    assert names[2].unit == "By"
    only_c = store.metric_names(MetricNameQuery(service="c"))
    assert [n.name for n in only_c] == ["old"]
    in_range = store.metric_names(MetricNameQuery(time_range=TimeRange(30 * S, 40 * S)))
    assert [(n.name, n.points) for n in in_range] == [("cpu", 20), ("requests", 20)]


def test_avg_and_max_per_step_and_service(store: DuckDBStore) -> None:
    query = MetricSeriesQuery("cpu", TimeRange(0, 60 * S), 10 * S)
    series = store.metric_series(query)
    assert [s.service for s in series] == ["a", "b"]
    assert [step.value for step in series[0].steps] == [4.5, 14.5, 24.5, 34.5, 44.5, 54.5]
    assert [step.start_unix_nano for step in series[0].steps] == [i * 10 * S for i in range(6)]
    peak = store.metric_series(MetricSeriesQuery("cpu", TimeRange(0, 60 * S), 30 * S, MetricAggregation.MAX))
    assert [step.value for step in peak[0].steps] == [29.0, 59.0]
    counted = store.metric_series(
        MetricSeriesQuery("cpu", TimeRange(0, 80 * S), 20 * S, MetricAggregation.COUNT, service="b")
    )
    assert [s.service for s in counted] == ["b"]
    assert [step.value for step in counted[0].steps] == [20.0, 20.0, 20.0, None]  # no point in the last


def test_rate_adds_each_series_increase_and_counts_a_reset_as_one(store: DuckDBStore) -> None:
    query = MetricSeriesQuery("requests", TimeRange(0, 60 * S), 10 * S, MetricAggregation.RATE)
    (series,) = store.metric_series(query)
    # Two series of 10/s each: 20/s, but the first step has no increase for its first point,
    # and at the reset the new value (0) counts as the increase.
    values = [step.value for step in series.steps]
    assert values[1] == pytest.approx(20.0)
    assert values[0] == pytest.approx(18.0)
    assert values[3] == pytest.approx(18.0)  # 30 s: a reset to 0 adds 0 for each series


def test_too_many_steps_or_an_empty_range_is_refused(store: DuckDBStore) -> None:
    with pytest.raises(UnsupportedQuery, match="at most"):
        store.metric_series(MetricSeriesQuery("cpu", TimeRange(0, 60 * S), 1000))
    with pytest.raises(UnsupportedQuery):
        store.metric_series(MetricSeriesQuery("cpu", TimeRange(10, 10), S))
