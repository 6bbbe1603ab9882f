"""Turn closed RED windows, edge windows, metric points and log counts into observations,
and template changes and new error groups into novelty anomalies.

Each function is pure and returns observations in a stable order. RED windows give one
series per operation and, merged over operations, one per service: operations are often
too quiet to judge alone, while the service aggregate is not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from faultlens.analysis.anomaly.signals import peer_column, resource_key
from faultlens.analysis.anomaly.types import Anomaly, Direction, Observation, SeriesKey, SeriesKind
from faultlens.analysis.errors.grouping import ErrorGroup
from faultlens.analysis.red.types import EdgeWindow, RedWindow
from faultlens.analysis.sketch import QuantileSketch
from faultlens.analysis.templates.counter import ChangeKind, TemplateChange

SERVICE_WIDE = "*"  # the ``name`` of a series merged over every operation of a service


@dataclass(frozen=True, slots=True)
class SeriesOptions:
    per_operation: bool = True
    per_service: bool = True
    self_time: bool = True


def red_observations(
    windows: Iterable[RedWindow], options: SeriesOptions | None = None, *, coverage: float = 1.0
) -> list[Observation]:
    """Latency p90/p99, error rate, throughput and self time per operation and per service.

    ``coverage`` (0..1] is the part of the window the data covers (a replay that starts
    mid-window), so throughput stays a rate.
    """
    opts = options or SeriesOptions()
    out: list[Observation] = []
    merged: dict[tuple[str, int, int], list[RedWindow]] = {}
    for w in windows:
        if opts.per_operation:
            out.extend(_red_series(w.service, w.operation, w, coverage, opts.self_time))
        merged.setdefault((w.service, w.window_start_ns, w.window_ns), []).append(w)
    if opts.per_service:
        for (service, start, length), group in sorted(merged.items()):
            out.extend(
                _red_series(service, SERVICE_WIDE, _merge(group, start, length), coverage, opts.self_time)
            )
    return out


def _merge(group: list[RedWindow], start: int, length: int) -> RedWindow:
    lat = group[0].latency.copy()
    own = group[0].self_time.copy()
    for w in group[1:]:
        lat.merge(w.latency)
        own.merge(w.self_time)
    return RedWindow(
        service=group[0].service,
        operation=SERVICE_WIDE,
        span_kind=0,
        window_start_ns=start,
        window_ns=length,
        requests=sum(w.requests for w in group),
        errors=sum(w.errors for w in group),
        duration_sum_ns=sum(w.duration_sum_ns for w in group),
        latency=lat,
        self_time_sum_ns=sum(w.self_time_sum_ns for w in group),
        self_time=own,
    )


def _red_series(service: str, name: str, w: RedWindow, coverage: float, self_time: bool) -> list[Observation]:
    start, length, n = w.window_start_ns, w.window_ns, float(w.requests)
    seconds = length / 1e9 * max(min(coverage, 1.0), 1e-3)
    obs = [
        Observation(SeriesKey(SeriesKind.LATENCY_P90, service, name), start, length, w.p90_ns, n),
        Observation(SeriesKey(SeriesKind.LATENCY_P99, service, name), start, length, w.p99_ns, n),
        Observation(SeriesKey(SeriesKind.ERROR_RATE, service, name), start, length, w.error_rate, n),
        Observation(SeriesKey(SeriesKind.THROUGHPUT, service, name), start, length, n / seconds, 1.0),
    ]
    if self_time and w.self_time.count:
        obs.append(
            Observation(
                SeriesKey(SeriesKind.SELF_TIME_P90, service, name),
                start,
                length,
                w.self_time.quantile(0.9),
                n,
            )
        )
    return obs


def edge_observations(windows: Iterable[EdgeWindow]) -> list[Observation]:
    """p90 latency into the callee and the error rate of calls, per caller -> callee."""
    out: list[Observation] = []
    for w in windows:
        n = float(w.calls)
        out.append(
            Observation(
                SeriesKey(SeriesKind.EDGE_LATENCY_P90, w.caller, peer=w.callee),
                w.window_start_ns,
                w.window_ns,
                w.p90_ns,
                n,
            )
        )
        out.append(
            Observation(
                SeriesKey(SeriesKind.EDGE_ERROR_RATE, w.caller, peer=w.callee),
                w.window_start_ns,
                w.window_ns,
                w.error_rate,
                n,
            )
        )
    return out


def resource_observations(
    points: pa.Table, window_ns: int, *, metric_types: tuple[str, ...] = ("gauge",)
) -> list[Observation]:
    """Mean of each numeric gauge series per window, keyed by metric name + resource.

    The resource is the pod when there is one, else the service instance, else the
    service. Rows of other metric types (counters, histograms) are left to other series.
    """
    if points.num_rows == 0:
        return []
    t = points.filter(pc.is_in(points.column("metric_type"), pa.array(list(metric_types))))
    t = t.filter(pc.invert(pc.is_null(t.column("value"))))
    if t.num_rows == 0:
        return []
    resource = pc.coalesce(
        t.column("k8s_pod_name"), t.column("service_instance_id"), t.column("service_name"), pa.scalar("")
    )
    service = pc.coalesce(t.column("service_name"), pa.scalar(""))
    window = pc.multiply(pc.divide(t.column("time_unix_nano"), pa.scalar(window_ns, pa.int64())), window_ns)
    g = pa.table(
        {
            "name": t.column("metric_name"),
            "service": service,
            "resource": resource,
            "peer": peer_column(t),
            "w": window,
            "v": t.column("value"),
        }
    )
    agg = g.group_by(["name", "service", "resource", "peer", "w"]).aggregate([("v", "mean")])
    agg = agg.sort_by(
        [
            ("w", "ascending"),
            ("name", "ascending"),
            ("service", "ascending"),
            ("resource", "ascending"),
            ("peer", "ascending"),
        ]
    )
    out: list[Observation] = []
    for name, svc, res, peer, w, v in zip(
        agg.column("name").to_pylist(),
        agg.column("service").to_pylist(),
        agg.column("resource").to_pylist(),
        agg.column("peer").to_pylist(),
        agg.column("w").to_pylist(),
        agg.column("v_mean").to_pylist(),
        strict=True,
    ):
        if v is not None and np.isfinite(v):
            out.append(Observation(resource_key(svc, name, res, peer), w, window_ns, float(v)))
    return out


def log_count_observations(
    counts: Mapping[tuple[str, str], int],
    window_start_ns: int,
    window_ns: int,
    *,
    known: Iterable[tuple[str, str]] = (),
) -> list[Observation]:
    """Counts of log templates (or severities) per service in one window.

    ``known`` lists (service, template) pairs seen before: those absent from ``counts``
    are observed as zero, so a template that goes missing is a drop, not silence.
    """
    keys = sorted(set(counts) | set(known))
    return [
        Observation(
            SeriesKey(SeriesKind.LOG_COUNT, service, template),
            window_start_ns,
            window_ns,
            float(counts.get((service, template), 0)),
        )
        for service, template in keys
    ]


def merged_latency(windows: Iterable[RedWindow]) -> QuantileSketch | None:
    """All latency of some windows in one sketch (for callers that roll windows up)."""
    out: QuantileSketch | None = None
    for w in windows:
        if out is None:
            out = w.latency.copy()
        else:
            out.merge(w.latency)
    return out


def template_anomalies(changes: Iterable[TemplateChange], *, max_score: float = 10.0) -> list[Anomaly]:
    """NEW and MISSING log templates (the template counter's changes) as novelty anomalies.

    There is no robust z-score for a first sighting; the score is the count in the window
    (new) or the count expected (missing), capped at ``max_score``, so a template seen once
    weighs less than one seen fifty times but never outweighs a value series far out of line.
    """
    out: list[Anomaly] = []
    for ch in changes:
        new = ch.kind is ChangeKind.NEW
        kind = SeriesKind.NEW_LOG_TEMPLATE if new else SeriesKind.MISSING_LOG_TEMPLATE
        window_ns = ch.window.end_ns - ch.window.start_ns
        out.append(
            Anomaly(
                key=SeriesKey(kind, ch.service, ch.template),
                window_start_ns=ch.window.start_ns,
                window_ns=window_ns,
                observed=float(ch.observed),
                expected=float(ch.expected),
                score=round(min(float(ch.observed if new else ch.expected), max_score), 3),
                direction=Direction.UP if new else Direction.DOWN,
                explanation=ch.explanation,
                volume=float(ch.observed),
            )
        )
    return out


def new_error_anomaly(group: ErrorGroup, window_ns: int, *, max_score: float = 10.0) -> Anomaly:
    """A new error fingerprint (a group first seen now) as a novelty anomaly of its service."""
    start = group.first_seen_ns - group.first_seen_ns % window_ns
    what = group.exception_type or group.message_template or group.group_id
    return Anomaly(
        key=SeriesKey(SeriesKind.NEW_ERROR, group.service, what[:200]),
        window_start_ns=start,
        window_ns=window_ns,
        observed=float(group.count),
        expected=0.0,
        score=round(min(float(group.count), max_score), 3),
        direction=Direction.UP,
        explanation=f"{group.service}: new error {what[:160]!r} seen {group.count}x",
        volume=float(group.count),
    )
