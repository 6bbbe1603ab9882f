"""Detection evaluation on a Nezha-layout directory, without the server.

``python -m faultlens.analysis.evaluate_detection DIR [--window 60] [--out FILE]``

Reads the directory with :class:`faultlens.datasets.NezhaDataset` and drives the pure
cores in data time, exactly as an orchestrator would::

    spans ──(Arrow, SPAN_SCHEMA)──> RedAggregator ──> RED + edge windows ─┐
    pod / service metric rows ──────────────────────> resource values ───┼─> AnomalyDetector
    log lines (level ERROR and above) ──────────────> error-log counts ──┘        └─> IncidentTracker

Phases: (1) the fault-free ``construct_data`` periods train the baselines (what Nezha's
``construct_data`` is for); (2) every record of the directory is replayed in time order.

Reported per fault: whether an incident opened within the fault window (the injection
minute and the three after it, matched by :func:`faultlens.eval.matching.match_faults` as in
``eval detect``), the delay from injection to the end of the window that
opened it (when an online system would know), and the services of that incident. Reported
overall: false incidents per hour on fault-free periods, separately for the minutes before
each fault that have traces (never seen in training), the construct periods (seen in
training) and all other data time (mostly metrics only). Nothing here is keyed to a service,
pod, operation or time of one data set.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from faultlens.analysis.anomaly import (
    Anomaly,
    AnomalyDetector,
    DetectorConfig,
    Observation,
    SeriesKey,
    SeriesKind,
    edge_observations,
    red_observations,
)
from faultlens.analysis.incidents import IncidentConfig, IncidentTracker, graph_from_edges
from faultlens.analysis.red import EdgeWindow, RedAggregator, RedConfig, RedWindow
from faultlens.datasets import LogRecord, MetricRecord, NezhaDataset, SpanRecord
from faultlens.decode.schema import SPAN_SCHEMA
from faultlens.eval.matching import DETECT_WINDOW, IncidentRecord, match_faults
from faultlens.types import TimeRange

NS_PER_S = 1_000_000_000
COOLDOWN_MINUTES = 3  # after a fault window, effects may linger: neither fault nor fault-free
MIN_COVERAGE = 0.75  # a window judged on spans must hold data over this part of it
ERROR_SEVERITY = 17  # OTLP SeverityNumber ERROR
SPAN_BATCH = 4096


def spans_to_table(spans: list[SpanRecord]) -> pa.Table:
    """SpanRecords as a SPAN_SCHEMA table (service and pod as resource columns)."""
    n = len(spans)
    cols: dict[str, pa.Array] = {
        "trace_id": pa.array([s.trace_id for s in spans], pa.binary()),
        "span_id": pa.array([s.span_id for s in spans], pa.binary()),
        "parent_span_id": pa.array([s.parent_span_id or None for s in spans], pa.binary()),
        "name": pa.array([s.name for s in spans], pa.string()),
        "start_time_unix_nano": pa.array([s.start_ns for s in spans], pa.int64()),
        "end_time_unix_nano": pa.array([s.end_ns for s in spans], pa.int64()),
        "duration_ns": pa.array([s.end_ns - s.start_ns for s in spans], pa.int64()),
        "service_name": pa.array([s.service for s in spans], pa.string()),
        "k8s_pod_name": pa.array([s.pod for s in spans], pa.string()),
    }
    arrays = [cols[f.name] if f.name in cols else pa.nulls(n, f.type) for f in SPAN_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=SPAN_SCHEMA)


@dataclass
class _WindowData:
    red: list[RedWindow] = field(default_factory=list)
    edges: list[EdgeWindow] = field(default_factory=list)
    resources: dict[SeriesKey, list[float]] = field(default_factory=dict)
    logs: dict[str, int] = field(default_factory=dict)
    error_logs: dict[str, int] = field(default_factory=dict)
    span_min_end: int = 1 << 62
    span_max_end: int = -(1 << 62)
    has_logs: bool = False


@dataclass
class OpenedIncident:
    id: str
    opened_window_ns: int
    services: tuple[str, ...]
    title: str
    phase: str


class DetectionRun:
    """Drives RED -> anomalies -> incidents in data time over a stream of dataset records."""

    def __init__(self, window_ns: int, detector: AnomalyDetector, lateness_ns: int = 10 * NS_PER_S) -> None:
        self.window_ns = window_ns
        self.lateness_ns = lateness_ns
        self.detector = detector
        self.tracker = IncidentTracker(IncidentConfig(window_ns=window_ns))
        self.graph: dict[str, set[str]] = {}
        self.windows: dict[int, _WindowData] = defaultdict(_WindowData)
        self.covered: set[int] = set()  # windows with enough trace coverage to be judged on spans
        self.data_windows: set[int] = set()  # windows with any data at all
        self.opened: list[OpenedIncident] = []
        self.anomalies: list[Anomaly] = []
        self.known_log_services: set[str] = set()
        self.spans = 0
        self.red_cpu_s = 0.0
        self._red = RedAggregator(
            RedConfig(
                window_ns=window_ns, allowed_lateness_ns=lateness_ns, settle_ns=min(5 * NS_PER_S, lateness_ns)
            )
        )
        self._batch: list[SpanRecord] = []
        self._now = -(1 << 62)
        self._next_window: int | None = None
        self.phase = "replay"

    def feed(self, records: Iterable[SpanRecord | LogRecord | MetricRecord]) -> None:
        for rec in records:
            if isinstance(rec, SpanRecord):
                self._batch.append(rec)
                if len(self._batch) >= SPAN_BATCH:
                    self._flush_spans()
                t = rec.end_ns
            elif isinstance(rec, MetricRecord):
                w = self.windows[rec.time_ns // self.window_ns * self.window_ns]
                for name, value in rec.values:
                    key = SeriesKey(SeriesKind.RESOURCE, rec.service, name, resource=rec.pod or rec.service)
                    w.resources.setdefault(key, []).append(value)
                t = rec.time_ns
            else:
                w = self.windows[rec.time_ns // self.window_ns * self.window_ns]
                w.has_logs = True
                w.logs[rec.service] = w.logs.get(rec.service, 0) + 1
                if rec.severity_number >= ERROR_SEVERITY:
                    w.error_logs[rec.service] = w.error_logs.get(rec.service, 0) + 1
                t = rec.time_ns
            if t > self._now + 5 * NS_PER_S:
                self._flush_spans()
                self._advance(t)

    def finish(self) -> None:
        self._flush_spans()
        started = time.process_time()
        closed = self._red.flush()
        self.red_cpu_s += time.process_time() - started
        self._collect(closed.red, closed.edges)
        if self.windows:
            self._advance(max(self.windows) + 2 * self.window_ns + self.lateness_ns, final=True)

    def reset_time(self) -> None:
        """Start a new pass (after training): fresh RED and incident state, same baselines."""
        self.finish()
        self._red = RedAggregator(self._red.config)
        self.tracker = IncidentTracker(self.tracker.config)
        self.windows.clear()
        self._now = -(1 << 62)
        self._next_window = None
        self.detector.rewind()

    def _flush_spans(self) -> None:
        if not self._batch:
            return
        table = spans_to_table(self._batch)
        self.spans += len(self._batch)
        ends = np.asarray([s.end_ns for s in self._batch], dtype=np.int64)
        widx = ends // self.window_ns
        for w in np.unique(widx).tolist():
            sel = ends[widx == w]
            wd = self.windows[w * self.window_ns]
            wd.span_min_end = min(wd.span_min_end, int(sel.min()))
            wd.span_max_end = max(wd.span_max_end, int(sel.max()))
        self._batch = []
        started = time.process_time()
        closed = self._red.consume(table)
        self.red_cpu_s += time.process_time() - started
        self._collect(closed.red, closed.edges)

    def _collect(self, red: Iterable[RedWindow], edges: Iterable[EdgeWindow]) -> None:
        for r in red:
            self.windows[r.window_start_ns].red.append(r)
        for e in edges:
            self.windows[e.window_start_ns].edges.append(e)

    def _advance(self, now: int, final: bool = False) -> None:
        self._now = max(self._now, now)
        started = time.process_time()
        closed = self._red.advance(self._now)
        self.red_cpu_s += time.process_time() - started
        self._collect(closed.red, closed.edges)
        horizon = self._now - self.lateness_ns
        for start in sorted(self.windows):
            if start + self.window_ns > horizon and not final:
                break
            self._judge(start, self.windows.pop(start))

    def _judge(self, start: int, wd: _WindowData) -> None:
        wn = self.window_ns
        obs: list[Observation] = []
        graph_from_edges(wd.edges, self.graph)
        if wd.red:
            coverage = max(0.0, (wd.span_max_end - wd.span_min_end) / wn)
            if coverage >= MIN_COVERAGE:
                self.covered.add(start)
                obs += red_observations(wd.red, coverage=coverage)
                obs += edge_observations(wd.edges)
        for key, values in sorted(wd.resources.items()):
            obs.append(Observation(key, start, wn, float(np.mean(values))))
        if wd.has_logs:
            self.known_log_services.update(wd.logs)  # as the engine: every service that logs
            for svc in sorted(self.known_log_services):
                key = SeriesKey(SeriesKind.ERROR_LOGS, svc, "severity>=ERROR")
                volume = float(wd.logs.get(svc, 0))
                obs.append(Observation(key, start, wn, float(wd.error_logs.get(svc, 0)), volume))
        if obs or wd.red:
            self.data_windows.add(start)
        found = self.detector.observe(obs)
        self.anomalies += found
        update = self.tracker.update(start, found, self.graph)
        for inc in update.opened:
            self.opened.append(OpenedIncident(inc.id, start, inc.services, inc.title, self.phase))


def _shifted_windows(ranges: Iterable[TimeRange], window_ns: int) -> set[int]:
    out: set[int] = set()
    for r in ranges:
        w = r.start_ns // window_ns * window_ns
        while w < r.end_ns:
            out.add(w)
            w += window_ns
    return out


def evaluate(root: Path, window_s: int = 60, config: DetectorConfig | None = None) -> dict[str, Any]:
    wall = time.perf_counter()
    ds = NezhaDataset(root)
    wn = window_s * NS_PER_S
    run = DetectionRun(wn, AnomalyDetector(config))
    faults = ds.faults()
    normals = ds.normal_periods()

    # Phase 1: train baselines on the fault-free construct periods.
    run.phase = "train"
    for p in normals:
        run.feed(_records(ds, p.time_range))
    trained_series = len(run.detector)
    run.reset_time()
    run.opened.clear()
    run.covered.clear()
    run.data_windows.clear()

    # Phase 2: replay everything in data time.
    run.phase = "replay"
    run.feed(_records(ds, None))
    run.finish()

    minute = 60 * NS_PER_S
    fault_zone: set[int] = set()
    per_fault: list[dict[str, Any]] = []
    opened = [
        IncidentRecord(o.id, o.opened_window_ns, o.opened_window_ns, o.services, o.title) for o in run.opened
    ]
    for m in match_faults(faults, opened, DETECT_WINDOW):  # the matcher of eval detect and eval live
        f, first = m.fault, m.first
        fault_zone |= _shifted_windows(
            [TimeRange(m.window.start_ns, m.window.end_ns + COOLDOWN_MINUTES * minute)], wn
        )
        delay = m.delay_s(wn, 0)  # to the end of the window that opened it
        per_fault.append(
            {
                "inject_time": f.inject_time.isoformat(),
                "fault_type": f.fault_type,
                "service": f.service,
                "pod": f.pod,
                "detected": first is not None,
                "delay_s": None if delay is None else round(delay, 1),
                "incident": None if first is None else first.id,
                "incident_services": [] if first is None else list(first.services),
                "root_service_in_incident": bool(first and f.service in first.services),
                "title": None if first is None else first.title,
            }
        )
    construct_windows = _shifted_windows([p.time_range for p in normals], wn) - fault_zone
    pre_fault = {w for w in run.covered if w not in fault_zone and w not in construct_windows}
    other = run.data_windows - fault_zone - construct_windows - pre_fault

    def false_rate(windows: set[int]) -> dict[str, Any]:
        n = sum(1 for o in run.opened if o.opened_window_ns in windows)
        hours = len(windows) * wn / (3600 * NS_PER_S)
        return {
            "false_incidents": n,
            "hours": round(hours, 3),
            "per_hour": None if hours == 0 else round(n / hours, 3),
        }

    detected = [row for row in per_fault if row["detected"]]
    delays = [row["delay_s"] for row in detected]
    by_type: dict[str, dict[str, int]] = {}
    for row in per_fault:
        t = by_type.setdefault(row["fault_type"], {"faults": 0, "detected": 0})
        t["faults"] += 1
        t["detected"] += int(row["detected"])
    free = pre_fault | construct_windows
    return {
        "dataset": str(root),
        "window_s": window_s,
        "faults": len(per_fault),
        "detected": len(detected),
        "detection_rate": round(len(detected) / len(per_fault), 3) if per_fault else None,
        "mean_delay_s": round(float(np.mean(delays)), 1) if delays else None,
        "max_delay_s": max(delays) if delays else None,
        "by_fault_type": by_type,
        "false_incidents": {
            "fault_free_labelled": false_rate(free),
            "pre_fault_minutes_with_traces": false_rate(pre_fault),
            "construct_periods_seen_in_training": false_rate(construct_windows),
            "other_data_time_mostly_metrics": false_rate(other),
        },
        "incidents_opened": len(run.opened),
        "anomalies": len(run.anomalies),
        "series_trained": trained_series,
        "series": len(run.detector),
        "spans": run.spans,
        "red_cpu_s_per_100k_spans": round(run.red_cpu_s / max(run.spans, 1) * 1e5, 3),
        "wall_s": round(time.perf_counter() - wall, 1),
        "read_report": _report(ds),
        "per_fault": per_fault,
    }


def _records(ds: NezhaDataset, tr: TimeRange | None) -> Iterator[SpanRecord | LogRecord | MetricRecord]:
    yield from ds.records(tr)


def _report(ds: NezhaDataset) -> Any:
    rep = ds.report
    for attr in ("to_dict", "as_dict", "summary"):
        fn = getattr(rep, attr, None)
        if callable(fn):
            try:
                return fn()
            except TypeError:
                continue
    return str(rep)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m faultlens.analysis.evaluate_detection", description=__doc__)
    ap.add_argument("dir", type=Path, help="a directory in the Nezha layout")
    ap.add_argument("--window", type=int, default=60, help="window length in seconds (60 or 10)")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON report here too")
    ap.add_argument("--summary", action="store_true", help="print the report without the per-fault list")
    args = ap.parse_args(argv)
    report = evaluate(args.dir, args.window)
    text = json.dumps(report, indent=2, default=str)
    if args.out:
        args.out.write_text(text + "\n")
    shown = {k: v for k, v in report.items() if k != "per_fault"} if args.summary else report
    print(json.dumps(shown, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
