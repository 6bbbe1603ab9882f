"""What the engine gathers per window of data time until the window is judged.

The cores close their own windows (RED and edges by span end time, templates by log time);
judging a window for anomalies needs everything of that window together: its RED and edge
windows, the mean of each resource gauge, the log and error-log counts per service, and how much of
the window the span stream actually covered. :class:`WindowData` holds that; the helpers
here fill it from Arrow tables column-wise, without a Python loop per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from faultlens.analysis.anomaly.signals import peer_column, resource_key
from faultlens.analysis.anomaly.types import SeriesKey
from faultlens.analysis.red.types import EdgeWindow, RedWindow

SEVERITY_ERROR = 17  # OTLP SeverityNumber ERROR; 17..24 are ERROR..FATAL4
ERROR_LOGS = "severity>=ERROR"  # the ``name`` of the per-service error-log count series


@dataclass(slots=True)
class WindowData:
    red: list[RedWindow] = field(default_factory=list)
    edges: list[EdgeWindow] = field(default_factory=list)
    resources: dict[SeriesKey, list[float]] = field(default_factory=dict)  # key -> [sum, count]
    logs: dict[str, int] = field(default_factory=dict)  # log records per service
    error_logs: dict[str, int] = field(default_factory=dict)  # of which severity ERROR+
    has_logs: bool = False


class Segments:
    """Stretches of data time in which spans kept arriving (gaps shorter than ``gap_ns``).

    The coverage of a window is the part of it inside a segment: a replay that starts
    mid-window, or a stream that stops, leaves partial windows whose throughput and
    percentiles would mislead a baseline, so the engine judges spans only in windows
    that are covered enough. Only the last ``keep`` segments are remembered.
    """

    def __init__(self, gap_ns: int, keep: int = 64) -> None:
        self.gap_ns = gap_ns
        self.keep = keep
        self.spans: list[list[int]] = []  # [first, last], ordered by first

    def add(self, lo: int, hi: int) -> None:
        for seg in self.spans:
            if lo <= seg[1] + self.gap_ns and hi >= seg[0] - self.gap_ns:
                seg[0], seg[1] = min(seg[0], lo), max(seg[1], hi)
                break
        else:
            self.spans.append([lo, hi])
        self.spans.sort()
        merged: list[list[int]] = []
        for seg in self.spans:
            if merged and seg[0] <= merged[-1][1] + self.gap_ns:
                merged[-1][1] = max(merged[-1][1], seg[1])
            else:
                merged.append(seg)
        self.spans = merged[-self.keep :]

    def add_times(self, times: npt.NDArray[np.int64]) -> None:
        """Add the stretches of ``times`` (any order): a batch that holds data from both sides
        of a gap (batches merged in a queue, a replay) must not cover the gap."""
        if times.size == 0:
            return
        ordered = np.sort(times)
        cuts = np.flatnonzero(np.diff(ordered) > self.gap_ns)
        first = 0
        for cut in cuts.tolist():
            self.add(int(ordered[first]), int(ordered[cut]))
            first = cut + 1
        self.add(int(ordered[first]), int(ordered[-1]))

    def coverage(self, start: int, end: int) -> float:
        covered = 0
        for lo, hi in self.spans:
            a, b = max(start, lo), min(end, hi)
            if b > a:
                covered += b - a
        return covered / (end - start) if end > start else 0.0

    def export(self) -> list[list[int]]:
        return [list(s) for s in self.spans]


def add_resources(windows: dict[int, WindowData], points: pa.Table, window_ns: int) -> None:
    """Sum and count of every numeric gauge per (metric, service, resource, window).

    The resource is the pod when there is one, else the service instance, else the service;
    a gauge about calls to or from a ``peer.service`` is a series of that call edge
    (:func:`~faultlens.analysis.anomaly.signals.resource_key`).
    """
    t = points.filter(
        pc.and_(pc.equal(points.column("metric_type"), "gauge"), pc.is_valid(points.column("value")))
    )
    if t.num_rows == 0:
        return
    resource = pc.coalesce(
        t.column("k8s_pod_name"), t.column("service_instance_id"), t.column("service_name"), pa.scalar("")
    )
    times = _int64(t.column("time_unix_nano"))
    g = pa.table(
        {
            "name": t.column("metric_name"),
            "service": pc.coalesce(t.column("service_name"), pa.scalar("")),
            "resource": resource,
            "peer": peer_column(t),
            "w": pa.array(times - times % window_ns, pa.int64()),
            "v": t.column("value"),
        }
    )
    agg = g.group_by(["name", "service", "resource", "peer", "w"]).aggregate([("v", "sum"), ("v", "count")])
    for name, svc, res, peer, w, total, n in zip(
        *(
            agg.column(c).to_pylist()
            for c in ("name", "service", "resource", "peer", "w", "v_sum", "v_count")
        ),
        strict=True,
    ):
        if total is None or not np.isfinite(total):
            continue
        key = resource_key(svc, name, res, peer)
        acc = windows.setdefault(int(w), WindowData()).resources.setdefault(key, [0.0, 0.0])
        acc[0] += float(total)
        acc[1] += float(n)


def add_logs(windows: dict[int, WindowData], logs: pa.Table, window_ns: int) -> None:
    """Count log records and error logs (severity ERROR+) per service and window."""
    if logs.num_rows == 0:
        return
    times = _int64(logs.column("time_unix_nano"))
    sev = pc.fill_null(logs.column("severity_number"), 0)
    t = pa.table(
        {
            "service": pc.coalesce(logs.column("service_name"), pa.scalar("unknown_service")),
            "w": pa.array(times - times % window_ns, pa.int64()),
            "e": pc.cast(pc.greater_equal(sev, SEVERITY_ERROR), pa.int64()),
        }
    )
    agg = t.group_by(["service", "w"]).aggregate([([], "count_all"), ("e", "sum")])
    for svc, w, n, errors in zip(
        agg.column("service").to_pylist(),
        agg.column("w").to_pylist(),
        agg.column("count_all").to_pylist(),
        agg.column("e_sum").to_pylist(),
        strict=True,
    ):
        wd = windows.setdefault(int(w), WindowData())
        wd.has_logs = True
        wd.logs[svc] = wd.logs.get(svc, 0) + int(n)
        if errors:
            wd.error_logs[svc] = wd.error_logs.get(svc, 0) + int(errors)


def _int64(col: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.int64]:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int64)
