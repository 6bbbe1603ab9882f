"""Serialized ``ExportMetricsServiceRequest`` to one Arrow table of :data:`METRIC_SCHEMA`.

One row per data point of every kind. Metric requests carry far fewer items than trace
requests, so points are walked one by one in Python; their attributes still go through
:class:`AttrGroups` in bulk.

Rejections (each counted in data points): a metric without a name or without data (it
counts as at least one point, so the client learns it was refused); a point with no
time; a histogram point whose ``bucket_counts`` is not one longer than
``explicit_bounds``; a point whose times or counts do not fit int64.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from faultlens.decode import _shadow
from faultlens.decode._common import I64_MAX, Owners
from faultlens.decode.attributes import AttrGroups
from faultlens.decode.schema import METRIC_SCHEMA

__all__ = ["decode_metrics"]

_ROW_COLUMNS = [
    f.name
    for f in METRIC_SCHEMA
    if f.name
    not in {
        "attributes",
        "resource_attributes",
        "scope_name",
        "scope_version",
        "service_name",
        "service_namespace",
        "service_instance_id",
        "k8s_pod_name",
        "k8s_namespace_name",
        "host_name",
    }
]


@dataclass
class _Rows:
    """Accepted points, column by column, plus rejection bookkeeping."""

    cols: dict[str, list[Any]] = field(default_factory=lambda: {c: [] for c in _ROW_COLUMNS})
    attrs: list[bytes] = field(default_factory=list)
    attr_counts: list[int] = field(default_factory=list)
    scope_of_row: list[int] = field(default_factory=list)
    seen: int = 0
    rejected: int = 0
    first: str = ""

    def reject(self, count: int, reason: str) -> None:
        if not self.first:
            self.first = f"data point {self.seen + 1} rejected: {reason}"
        self.rejected += count
        self.seen += count


def decode_metrics(data: bytes) -> tuple[pa.Table, int, str]:
    """Decode a serialized metrics request: (table of accepted points, rejected count, first reason)."""
    req = _shadow.parse(_shadow.MetricsRequest, data, "metrics request")
    owners = Owners()
    rows = _Rows()
    for rm in req.resource_metrics:
        owners.resources.append(rm.resource)
        for sm in rm.scope_metrics:
            owners.add_scope(sm.scope, 0)
            scope_index = len(owners.scopes) - 1
            for metric in sm.metrics:
                _metric(metric, scope_index, rows)
    n = len(rows.scope_of_row)
    total = rows.seen
    if n == 0:
        return METRIC_SCHEMA.empty_table(), rows.rejected, _with_total(rows.first, total)
    # Points were appended scope by scope, so counting them per scope lays them out as Owners expects.
    owners.items_per_scope = np.bincount(rows.scope_of_row, minlength=len(owners.scopes)).tolist()
    attr_groups = AttrGroups.of(rows.attrs, rows.attr_counts)
    arrays = {name: pa.array(values, METRIC_SCHEMA.field(name).type) for name, values in rows.cols.items()}
    arrays["attributes"] = attr_groups.json
    arrays.update(owners.columns())
    table = pa.Table.from_arrays([arrays[f.name] for f in METRIC_SCHEMA], schema=METRIC_SCHEMA)
    return table, rows.rejected, _with_total(rows.first, total)


def _with_total(first: str, total: int) -> str:
    return first.replace(" rejected:", f" of {total} rejected:", 1) if first else ""


_KINDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


def _metric(metric: Any, scope_index: int, rows: _Rows) -> None:
    kind = metric.WhichOneof("data")
    points = getattr(metric, kind).data_points if kind else ()
    if not metric.name or kind is None:
        why = "metric has no name" if not metric.name else f"metric {metric.name!r} has no data"
        rows.reject(max(len(points), 1), why)
        return
    data = getattr(metric, kind)
    temporality = (
        data.aggregation_temporality if kind in ("sum", "histogram", "exponential_histogram") else None
    )
    monotonic = data.is_monotonic if kind == "sum" else None
    for p in points:
        reason = _check(kind, p)
        if reason:
            rows.reject(1, f"{metric.name}: {reason}")
            continue
        rows.seen += 1
        c = rows.cols
        c["metric_name"].append(metric.name)
        c["metric_description"].append(metric.description)
        c["metric_unit"].append(metric.unit)
        c["metric_type"].append(kind)
        c["aggregation_temporality"].append(
            temporality if temporality is None or 0 <= temporality <= 2 else None
        )
        c["is_monotonic"].append(monotonic)
        c["time_unix_nano"].append(p.time_unix_nano)
        c["start_time_unix_nano"].append(p.start_time_unix_nano or None)
        c["flags"].append(p.flags)
        _values(kind, p, c)
        rows.attrs.extend(p.attributes)
        rows.attr_counts.append(len(p.attributes))
        rows.scope_of_row.append(scope_index)


def _check(kind: str, p: Any) -> str:
    if p.time_unix_nano == 0:
        return "time_unix_nano is not set"
    if p.time_unix_nano > I64_MAX or p.start_time_unix_nano > I64_MAX:
        return "time is out of range"
    if kind in ("histogram", "exponential_histogram", "summary") and p.count > I64_MAX:
        return f"count {p.count} is out of range"
    if kind == "histogram":
        n_counts, n_bounds = len(p.bucket_counts), len(p.explicit_bounds)
        if n_counts and n_counts != n_bounds + 1:
            return (
                f"histogram has {n_counts} bucket_counts for {n_bounds} explicit_bounds (want {n_bounds + 1})"
            )
        if n_counts and max(p.bucket_counts) > I64_MAX:
            return "a bucket count is out of range"
    if kind == "exponential_histogram":
        if p.zero_count > I64_MAX:
            return "zero_count is out of range"
        for side in (p.positive, p.negative):
            if len(side.bucket_counts) and max(side.bucket_counts) > I64_MAX:
                return "a bucket count is out of range"
    return ""


def _values(kind: str, p: Any, c: dict[str, list[Any]]) -> None:
    value = value_int = count = total = lo = hi = None
    bounds = counts = quantiles = None
    scale = zero_count = zero_threshold = pos_offset = neg_offset = pos_counts = neg_counts = None
    exemplars = 0
    if kind in ("gauge", "sum"):
        which = p.WhichOneof("value")
        if which == "as_int":
            value_int = p.as_int
            value = float(value_int)
        elif which == "as_double":
            value = p.as_double
        exemplars = len(p.exemplars)
    elif kind == "summary":
        count, total = p.count, p.sum
        quantiles = [{"quantile": q.quantile, "value": q.value} for q in p.quantile_values]
    else:
        count = p.count
        total = p.sum if p.HasField("sum") else None
        lo = p.min if p.HasField("min") else None
        hi = p.max if p.HasField("max") else None
        exemplars = len(p.exemplars)
        if kind == "histogram":
            counts = p.bucket_counts[:]
            bounds = p.explicit_bounds[:]
        else:
            scale, zero_count, zero_threshold = p.scale, p.zero_count, p.zero_threshold
            pos_offset, pos_counts = p.positive.offset, p.positive.bucket_counts[:]
            neg_offset, neg_counts = p.negative.offset, p.negative.bucket_counts[:]
    c["value"].append(value)
    c["value_int"].append(value_int)
    c["count"].append(count)
    c["sum"].append(total)
    c["min"].append(lo)
    c["max"].append(hi)
    c["bucket_counts"].append(counts)
    c["explicit_bounds"].append(bounds)
    c["exp_scale"].append(scale)
    c["exp_zero_count"].append(zero_count)
    c["exp_zero_threshold"].append(zero_threshold)
    c["exp_positive_offset"].append(pos_offset)
    c["exp_positive_bucket_counts"].append(pos_counts)
    c["exp_negative_offset"].append(neg_offset)
    c["exp_negative_bucket_counts"].append(neg_counts)
    c["quantiles"].append(quantiles)
    c["exemplar_count"].append(exemplars)
