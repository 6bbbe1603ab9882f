"""The analysis engine: drives every pure core over decoded batches, in data time.

::

    spans ──┬─> detect_span_errors ──────────────┐
            ├─> RedAggregator ─> RED + edge windows ──────────────┐
            └─> recent span ids (to correlate error logs)         │
    logs  ──┬─> detect_log_errors ───────────────┴─> ErrorGrouper ─> group snapshots ─> new ─┐
            ├─> LogTemplateAnalyzer ─> templates, window counts, NEW/MISSING ────────────────┤
            └─> error-log counts per service and window ──────────┤              novelty anomalies
    points ───> gauge means per resource and window ──────────────┤                          │
                                                                  v                          v
    data time (largest item time seen) - lateness passes a window end:
        window ─> observations ─> AnomalyDetector ─> anomalies ─┬────────────────> IncidentTracker
                                                                 └─> Agreement ─> agreed ─┘   └─> incidents

It does no I/O and reads no clock for its results: the same batches give the same groups,
windows, anomalies and incidents whether they are replayed or live. Every call returns a
:class:`Step` holding what to persist (:class:`~faultlens.store.analysis_base.AnalysisResults`)
and the incidents that opened or resolved (for notifications). Its whole state goes out and
comes back as plain JSON-ready data, except the RED windows still open, which are rebuilt from
the data that arrives after a restart (the store merges the two halves of such a window).

Not thread-safe: one worker owns it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from faultlens.analysis.anomaly import (
    Anomaly,
    AnomalyDetector,
    DetectorConfig,
    Observation,
    SeriesKey,
    SeriesKind,
    edge_observations,
    new_error_anomaly,
    red_observations,
    template_anomalies,
)
from faultlens.analysis.anomaly.agreement import Agreement, AgreementConfig, reporting_services
from faultlens.analysis.anomaly.signals import error_ratio
from faultlens.analysis.errors import (
    Classifier,
    ErrorEvent,
    ErrorGroup,
    ErrorGrouper,
    GrouperConfig,
    detect_log_errors,
    detect_span_errors,
)
from faultlens.analysis.incidents import Incident, IncidentConfig, IncidentTracker, graph_from_edges
from faultlens.analysis.red import ClosedWindows, RedAggregator, RedConfig
from faultlens.analysis.runtime.windows import ERROR_LOGS, Segments, WindowData, add_logs, add_resources
from faultlens.analysis.templates import (
    LogTemplateAnalyzer,
    TemplateAnalyzerConfig,
    TemplateCounterConfig,
    TemplateObservation,
)
from faultlens.decode.base import DecodedBatch
from faultlens.store.analysis_base import AnalysisResults, TemplateSeen
from faultlens.types import Signal

SECOND_NS = 1_000_000_000
_STATE_VERSION = 1
_NEVER = -(1 << 62)
MAX_METRIC_NAMES = 10_000
# Services the engine keeps per-service state for (first seen, last seen, log sender, graph
# node). Past it a new service is still analysed, but not remembered: it gets no novelty
# warm-up and no zero error-log counts, and is no node of the incident graph until others go.
MAX_SERVICES = 10_000


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """How the engine cuts and judges windows; the cores' own configs ride along.

    ``min_coverage``: a window is judged on spans only when the span stream covered at least
    this part of it (see :class:`~.windows.Segments`), and on error-log counts only when the
    log stream did (a window half covered holds half the errors). ``max_future_ns``: an item time more
    than this ahead of the wall clock does not move data time (one bad timestamp must not
    close every window); it is still analysed. ``recent_spans``: span ids kept to correlate
    error logs with spans that came in earlier batches. ``service_idle_ns``: a service that
    sent neither spans nor logs for this long (data time) is forgotten: its first-seen time,
    its place among the senders of logs (whose error-log count is otherwise judged 0 in every
    window) and its node in the incident graph; so services that come and go (renamed,
    scaled away) do not grow the state, nor the observations judged per window, without end;
    one that comes back starts afresh. At most :data:`MAX_SERVICES` are kept at any time.
    ``resource_opens_incidents``: when
    false (the default), anomalies of resource gauges (CPU, memory, network, pod-level
    metrics) never open an incident on their own: an incident starts from what callers feel
    (requests, errors, latency, calls between services, error logs), and resource anomalies
    of the services involved (or their neighbours) in the same window join it as evidence. Resource gauges are
    many and noisy; alone they would page someone for every busy minute, unless they agree
    (``agreement``: several series of one service out of line together). New and missing log
    templates and new error fingerprints are anomalies too (novelty kinds), treated the same
    way; ``novelty_warmup_windows``: a new error fingerprint of a service counts as news only
    once the service has sent data for that many windows (at first every error is new).
    """

    window_ns: int = 60 * SECOND_NS
    lateness_ns: int = 10 * SECOND_NS
    min_coverage: float = 0.75
    max_future_ns: int = 3600 * SECOND_NS
    recent_spans: int = 200_000
    service_idle_ns: int = 86400 * SECOND_NS
    resource_opens_incidents: bool = False
    novelty_warmup_windows: int = 5
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    agreement: AgreementConfig = field(default_factory=AgreementConfig)
    incidents: IncidentConfig | None = None  # None: the defaults, with this window length
    grouper: GrouperConfig | None = None  # None: the defaults, with buckets of the window length

    def __post_init__(self) -> None:
        if self.window_ns <= 0 or self.lateness_ns < 0:
            raise ValueError("analysis window must be positive and lateness not negative")
        if not 0.0 <= self.min_coverage <= 1.0:
            raise ValueError("min_coverage must be in [0, 1]")
        if self.service_idle_ns < self.window_ns:
            raise ValueError("service_idle_ns must be at least one window")

    def incident_config(self) -> IncidentConfig:
        return self.incidents or IncidentConfig(window_ns=self.window_ns)

    def grouper_config(self) -> GrouperConfig:
        return self.grouper or GrouperConfig(bucket_ns=self.window_ns)

    def red_config(self) -> RedConfig:
        return RedConfig(
            window_ns=self.window_ns,
            allowed_lateness_ns=self.lateness_ns,
            settle_ns=min(5 * SECOND_NS, self.lateness_ns),
        )

    def template_config(self) -> TemplateAnalyzerConfig:
        return TemplateAnalyzerConfig(
            counter=TemplateCounterConfig(window_ns=self.window_ns, lateness_ns=self.lateness_ns)
        )


@dataclass(frozen=True, slots=True)
class Step:
    """What one call produced: the results to persist and the incident transitions."""

    results: AnalysisResults = field(default_factory=AnalysisResults)
    opened: tuple[Incident, ...] = ()
    resolved: tuple[Incident, ...] = ()
    items: int = 0


@dataclass(slots=True)
class _Collect:
    groups: dict[str, ErrorGroup] = field(default_factory=dict)
    templates: list[TemplateSeen] = field(default_factory=list)
    template_windows: list[Any] = field(default_factory=list)
    template_changes: list[Any] = field(default_factory=list)
    red: list[Any] = field(default_factory=list)
    edges: list[Any] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    incidents: dict[str, Incident] = field(default_factory=dict)
    opened: dict[str, Incident] = field(default_factory=dict)
    resolved: dict[str, Incident] = field(default_factory=dict)

    def step(self, items: int) -> Step:
        return Step(
            AnalysisResults(
                error_groups=tuple(self.groups.values()),
                templates=tuple(self.templates),
                template_windows=tuple(self.template_windows),
                template_changes=tuple(self.template_changes),
                red_windows=tuple(self.red),
                edge_windows=tuple(self.edges),
                anomalies=tuple(self.anomalies),
                incidents=tuple(self.incidents.values()),
            ),
            tuple(self.opened.values()),
            tuple(self.resolved.values()),
            items,
        )


class AnalysisEngine:
    """Feed decoded batches with :meth:`process`; persist each returned :class:`Step`."""

    def __init__(
        self,
        config: EngineConfig | None = None,
        *,
        classifier: Classifier | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = c = config or EngineConfig()
        self._wall_ns = wall_ns
        self.grouper = ErrorGrouper(c.grouper_config(), classifier)
        self.templates = LogTemplateAnalyzer(c.template_config())
        self.red = RedAggregator(c.red_config())
        self.detector = AnomalyDetector(c.detector)
        self.tracker = IncidentTracker(c.incident_config())
        self.agreement = Agreement(c.agreement)
        self.metric_units: dict[str, str] = {}  # metric name -> unit, as last reported (bounded)
        self._novel: list[Anomaly] = []  # novelty anomalies waiting for their window's judgement
        self._service_since: dict[str, int] = {}  # service -> time of its first span or log seen
        self._service_last: dict[str, int] = {}  # service -> time of its latest batch (bounded)
        self._known_errors: set[str] = set()  # error group ids seen
        self.graph: dict[str, set[str]] = {}
        self.segments = Segments(gap_ns=c.window_ns)  # of the span stream
        self.log_segments = Segments(gap_ns=c.window_ns)
        self.known_log_services: set[str] = set()  # services that have sent logs
        self.watermark_ns = _NEVER
        self.judged_until_ns = _NEVER  # every window starting before this has been judged
        self._pending: dict[int, WindowData] = {}
        self._recent_spans: deque[pa.Table] = deque()
        self._recent_rows = 0
        self.late_items = 0  # items of windows already judged (still grouped and stored)

    # -- feeding -------------------------------------------------------------------------------

    def process(self, batch: DecodedBatch) -> Step:
        """Analyse one batch, then judge every window data time has passed."""
        out = _Collect()
        table = batch.table
        if table.num_rows == 0:
            return Step()
        if batch.signal is Signal.TRACES:
            newest = self._spans(table, out)
        elif batch.signal is Signal.LOGS:
            newest = self._logs(table, out)
        else:
            newest = self._metrics(table)
        if newest is not None and newest <= self._wall_ns() + self.config.max_future_ns:
            self.watermark_ns = max(self.watermark_ns, newest)
        self._advance(self.watermark_ns, out)
        return out.step(table.num_rows)

    def seed(self, history: Iterable[Observation]) -> int:
        """Teach the detector past observations (in window order) without judging anything.

        For a start without saved state: baselines come from what the store already holds
        (:func:`~faultlens.analysis.anomaly.seed.red_history`), so the first fault after a
        start is not lost to warm-up. Anomalies it would flag are not reported; the window
        order guard is reset after, so live windows are judged whatever the seed held.
        Returns how many observations were taught.
        """
        obs = sorted(history, key=lambda o: o.window_start_ns)
        self.detector.observe(obs)
        self.detector.rewind()
        return len(obs)

    def advance(self, now_ns: int) -> Step:
        """Move data time forward without data (a quiet stream), judging what is due."""
        out = _Collect()
        self.watermark_ns = max(self.watermark_ns, now_ns)
        self._advance(self.watermark_ns, out)
        return out.step(0)

    def close_all(self) -> Step:
        """Close and judge every open window (end of a replay). Later data counts as late."""
        out = _Collect()
        self._collect_red(self.red.flush(), out)
        windows, changes = self.templates.flush()
        out.template_windows.extend(windows)
        out.template_changes.extend(changes)
        self._novel += template_anomalies(changes)
        if self._pending:
            end = max(self._pending) + self.config.window_ns
            self._judge_due(end, out)
        return out.step(0)

    # -- signals -------------------------------------------------------------------------------

    def _spans(self, table: pa.Table, out: _Collect) -> int | None:
        self._group(detect_span_errors(table), out)
        self._remember_spans(table)
        self._collect_red(self.red.consume(table), out)
        ends = _int64(table.column("end_time_unix_nano"))
        self.segments.add_times(ends)
        self._note_services(table.column("service_name"), int(ends.min()), int(ends.max()))
        return int(ends.max())

    def _logs(self, table: pa.Table, out: _Collect) -> int | None:
        times = table.column("time_unix_nano")
        self._note_services(
            table.column("service_name"), int(pc.min(times).as_py()), int(pc.max(times).as_py())
        )
        self._group(detect_log_errors(table, self._spans_for(table)), out)
        result = self.templates.observe_logs(table)
        out.template_windows.extend(result.windows)
        out.template_changes.extend(result.changes)
        self._novel += template_anomalies(result.changes)
        out.templates.extend(_templates_seen(m for m in result.matches if m is not None))
        add_logs(self._pending, table, self.config.window_ns)
        self.log_segments.add_times(_int64(table.column("time_unix_nano")))
        self._count_late(table.column("time_unix_nano"))
        return int(pc.max(table.column("time_unix_nano")).as_py())

    def _metrics(self, table: pa.Table) -> int | None:
        add_resources(self._pending, table, self.config.window_ns)
        self._note_units(table)
        self._count_late(table.column("time_unix_nano"))
        return int(pc.max(table.column("time_unix_nano")).as_py())

    def _note_units(self, table: pa.Table) -> None:
        """Remember each metric's unit (agreement tells utilisation from latency by it); at
        most :data:`MAX_METRIC_NAMES` names, the first seen kept."""
        pairs = (
            table.select(["metric_name", "metric_unit"])
            .group_by(["metric_name", "metric_unit"])
            .aggregate([])
        )
        for name, unit in zip(
            pairs.column("metric_name").to_pylist(), pairs.column("metric_unit").to_pylist(), strict=True
        ):
            if name is not None and (name in self.metric_units or len(self.metric_units) < MAX_METRIC_NAMES):
                self.metric_units[name] = unit or ""

    def _count_late(self, times: pa.ChunkedArray) -> None:
        if self.judged_until_ns > _NEVER:
            self.late_items += int(pc.sum(pc.less(times, self.judged_until_ns)).as_py() or 0)

    def _group(self, events: list[ErrorEvent], out: _Collect) -> None:
        if not events:
            return
        since = min(e.time_ns for e in events)
        bucket = self.grouper.config.bucket_ns
        since -= since % bucket
        wn = self.config.window_ns
        warmup = self.config.novelty_warmup_windows * wn
        for g in self.grouper.add(events):
            # Only the buckets this batch can have touched go to the store.
            out.groups[g.group_id] = _with_buckets(g, tuple(b for b in g.buckets if b[0] >= since))
            if g.group_id not in self._known_errors:
                self._known_errors.add(g.group_id)
                first = self._service_since.get(g.service)
                seen_for = g.first_seen_ns - g.first_seen_ns % wn - (first - first % wn) if first else -1
                if seen_for >= warmup:
                    self._novel.append(new_error_anomaly(g, wn))
        if len(self._known_errors) > 4 * self.grouper.config.max_groups:  # evicted groups: forget them
            self._known_errors = {g.group_id for g in self.grouper.groups()}

    def _note_services(self, services: pa.ChunkedArray, t_ns: int, last_ns: int) -> None:
        """Record first and latest times of the batch's services (at most MAX_SERVICES)."""
        last = self._service_last
        for svc in pc.unique(services).to_pylist():
            if svc is None:
                continue
            if svc in last:
                last[svc] = max(last[svc], last_ns)
            elif len(last) < MAX_SERVICES:
                last[svc] = last_ns
                self._service_since.setdefault(svc, t_ns)

    def _forget_idle_services(self, now_ns: int, data: WindowData) -> None:
        """Forget the services idle for ``service_idle_ns`` (see :class:`EngineConfig`).

        Both ends of the window's call edges count as seen (a callee may be a virtual node,
        a database, that sends nothing itself), and so do, from now, the graph's nodes and
        the log senders a restored state brought without latest times.
        """
        last = self._service_last

        def seen(svc: str) -> None:
            if svc in last:
                last[svc] = max(last[svc], now_ns)
            elif len(last) < MAX_SERVICES:
                last[svc] = now_ns

        for e in data.edges:
            seen(e.caller)
            seen(e.callee)
        for svc in self.known_log_services.difference(last):
            seen(svc)
        for caller, callees in self.graph.items():
            if caller not in last:
                seen(caller)
            for svc in callees.difference(last):
                seen(svc)
        cutoff = now_ns - self.config.service_idle_ns
        idle = [svc for svc, t in last.items() if t < cutoff]
        for svc in idle:
            del last[svc]
            self._service_since.pop(svc, None)
        if idle or len(last) >= MAX_SERVICES:  # at the bound, some names may be strays
            self.known_log_services.intersection_update(last)
            self.graph = {
                caller: callees.intersection(last) for caller, callees in self.graph.items() if caller in last
            }

    def _remember_spans(self, table: pa.Table) -> None:
        ids = table.select(["trace_id", "span_id", "name"])
        self._recent_spans.append(ids)
        self._recent_rows += ids.num_rows
        while self._recent_rows - self._recent_spans[0].num_rows >= self.config.recent_spans:
            self._recent_rows -= self._recent_spans.popleft().num_rows

    def _spans_for(self, logs: pa.Table) -> pa.Table | None:
        """The remembered spans whose id some log record of ``logs`` carries (few, usually)."""
        if not self._recent_spans:
            return None
        wanted = pc.unique(pc.drop_null(logs.column("span_id")))
        if len(wanted) == 0:
            return None
        found = [t.filter(pc.is_in(t.column("span_id"), value_set=wanted)) for t in self._recent_spans]
        found = [t for t in found if t.num_rows]
        return pa.concat_tables(found) if found else None

    def _collect_red(self, closed: ClosedWindows, out: _Collect) -> None:
        if not closed:
            return
        out.red.extend(closed.red)
        out.edges.extend(closed.edges)
        for w in closed.red:
            if w.window_start_ns >= self.judged_until_ns:
                self._pending.setdefault(w.window_start_ns, WindowData()).red.append(w)
        for e in closed.edges:
            if e.window_start_ns >= self.judged_until_ns:
                self._pending.setdefault(e.window_start_ns, WindowData()).edges.append(e)

    # -- judging -------------------------------------------------------------------------------

    def _advance(self, watermark: int, out: _Collect) -> None:
        if watermark == _NEVER:
            return
        self._collect_red(self.red.advance(watermark), out)
        self._judge_due(watermark - self.config.lateness_ns, out)

    def _judge_due(self, horizon: int, out: _Collect) -> None:
        wn = self.config.window_ns
        due = sorted(w for w in self._pending if w + wn <= horizon)
        for start in due:
            data = self._pending.pop(start)
            if start < self.judged_until_ns:
                continue  # judged before (a restart re-closed it): the baselines saw it already
            self._judge(start, data, out)
            self.judged_until_ns = start + wn
        last = horizon - horizon % wn - wn  # the latest window fully behind the horizon
        if last >= self.judged_until_ns and self.judged_until_ns > _NEVER:
            self._track(self.tracker.advance(last), out)  # quiet windows still resolve incidents
            self.judged_until_ns = last + wn

    def _judge(self, start: int, data: WindowData, out: _Collect) -> None:
        wn = self.config.window_ns
        graph_from_edges(data.edges, self.graph)
        self._forget_idle_services(start, data)
        obs: list[Observation] = []
        if data.red:
            coverage = self.segments.coverage(start, start + wn)
            if coverage >= self.config.min_coverage:
                obs += red_observations(data.red, coverage=coverage)
                obs += edge_observations(data.edges)
        for key, (total, n) in sorted(data.resources.items()):
            ratio = error_ratio(key.name, self.metric_units.get(key.name))
            if ratio is None:
                obs.append(Observation(key, start, wn, total / n))
            else:  # a share of failed requests: an error signal, not a resource (see signals)
                obs.append(
                    Observation(
                        replace(key, kind=SeriesKind.GAUGE_ERROR_RATE),
                        start,
                        wn,
                        ratio.failed_share(total / n),
                    )
                )
        if data.has_logs:
            self.known_log_services.update(data.logs)
            if self.log_segments.coverage(start, start + wn) >= self.config.min_coverage:
                for svc in sorted(self.known_log_services):
                    key = SeriesKey(SeriesKind.ERROR_LOGS, svc, ERROR_LOGS)
                    volume = float(data.logs.get(svc, 0))
                    obs.append(Observation(key, start, wn, float(data.error_logs.get(svc, 0)), volume))
        self._decide(start, obs, out)

    def _decide(self, start: int, obs: list[Observation], out: _Collect) -> None:
        """Judge one window's observations, add the novelty due, and update the incidents."""
        wn = self.config.window_ns
        found = self.detector.observe(obs)
        novel = [a for a in self._novel if a.window_start_ns < start + wn]
        if novel:
            self._novel = [a for a in self._novel if a.window_start_ns >= start + wn]
            found += novel
        out.anomalies.extend(found)
        agreed = self.agreement.observe(
            start,
            found,
            reporting_services((o.key.kind, o.key.service, o.key.name) for o in obs),
            self.metric_units,
        )
        self._track(self.tracker.update(start, self._incident_evidence(found), self.graph, agreed), out)

    def _incident_evidence(self, found: list[Anomaly]) -> list[Anomaly]:
        """The anomalies the incident tracker sees (see ``resource_opens_incidents``).

        Resource and novelty anomalies (the tracker's supporting kinds) go along only in a
        window that also has a symptom, and only for the services of those symptoms and their
        neighbours: so they neither open incidents nor keep one open through a quiet stretch
        after the symptoms stopped. Those that agree go to the tracker apart (``agreed``).
        """
        if self.config.resource_opens_incidents:
            return found
        weak = self.tracker.config.supporting_kinds
        symptoms = [a for a in found if a.key.kind not in weak]
        involved = {s for a in symptoms for s in a.key.services}
        if not involved:
            return []
        near = set(involved)
        for caller, callees in self.graph.items():
            if caller in involved:
                near.update(callees)
            elif callees & involved:
                near.add(caller)
        return symptoms + [a for a in found if a.key.kind in weak and a.key.service in near]

    def _track(self, update: Any, out: _Collect) -> None:
        for inc in update.opened:
            out.opened[inc.id] = inc
            out.incidents[inc.id] = inc
        for inc in update.updated:
            out.incidents[inc.id] = inc
        for inc in update.resolved:
            out.resolved[inc.id] = inc
            out.incidents[inc.id] = inc

    def state_sizes(self) -> dict[str, int]:
        """How many entries each piece of state that grows with cardinality holds now (each
        is bounded; the tests fill them past their bounds and read these)."""
        return {
            "services": len(self._service_last),
            "services_first_seen": len(self._service_since),
            "log_services": len(self.known_log_services),
            "graph_nodes": len(self.graph.keys() | {c for cs in self.graph.values() for c in cs}),
            "metric_units": len(self.metric_units),
            "known_errors": len(self._known_errors),
            "recent_span_rows": self._recent_rows,
            "pending_windows": len(self._pending),
            "novel": len(self._novel),
            "detector_series": len(self.detector),
        }

    # -- state ---------------------------------------------------------------------------------

    def export_state(self) -> dict[str, dict[str, Any]]:
        """One JSON-ready part per core, saved under its name; see :meth:`restore`."""
        return {
            "engine": {
                "version": _STATE_VERSION,
                "window_ns": self.config.window_ns,
                "watermark_ns": self.watermark_ns,
                "judged_until_ns": self.judged_until_ns,
                "graph": {k: sorted(v) for k, v in self.graph.items()},
                "segments": self.segments.export(),
                "log_segments": self.log_segments.export(),
                "known_log_services": sorted(self.known_log_services),
            },
            "errors": self.grouper.export_state(),
            "templates": self.templates.export_state(),
            "anomalies": self.detector.export_state(),
            "incidents": self.tracker.export_state(),
        }

    def restore(self, parts: dict[str, dict[str, Any] | None]) -> list[str]:
        """Restore the parts that are present and fit this config; returns what was restored.

        A part saved with another window length is left out (its windows would not line up).
        """
        restored: list[str] = []
        engine = parts.get("engine")
        if engine is not None:
            if engine.get("version") != _STATE_VERSION or engine.get("window_ns") != self.config.window_ns:
                return restored  # another layout of time: start afresh rather than mix
            self.watermark_ns = int(engine["watermark_ns"])
            self.judged_until_ns = int(engine["judged_until_ns"])
            self.graph = {k: set(v) for k, v in engine["graph"].items()}
            self.segments.spans = [[int(a), int(b)] for a, b in engine["segments"]]
            self.log_segments.spans = [[int(a), int(b)] for a, b in engine.get("log_segments", [])]
            self.known_log_services = set(engine["known_log_services"])
            restored.append("engine")
        if (errors := parts.get("errors")) is not None:
            self.grouper = ErrorGrouper.from_state(errors, self.grouper.config, self.grouper.classifier)
            self._known_errors = {g.group_id for g in self.grouper.groups()}
            restored.append("errors")
        if (templates := parts.get("templates")) is not None:
            self.templates = LogTemplateAnalyzer.from_state(templates, self.templates.config)
            restored.append("templates")
        if (anomalies := parts.get("anomalies")) is not None:
            self.detector.import_state(anomalies)
            restored.append("anomalies")
        if (incidents := parts.get("incidents")) is not None:
            self.tracker.import_state(incidents)
            restored.append("incidents")
        return restored


def _templates_seen(matches: Iterable[TemplateObservation]) -> list[TemplateSeen]:
    acc: dict[tuple[str, int], list[Any]] = {}
    for m in matches:
        a = acc.get((m.service, m.template_id))
        if a is None:
            acc[(m.service, m.template_id)] = [m.template, m.time_ns, m.time_ns, 1]
        else:
            a[0] = m.template  # the latest text: Drain generalises templates as it learns
            a[1] = min(a[1], m.time_ns)
            a[2] = max(a[2], m.time_ns)
            a[3] += 1
    return [TemplateSeen(s, tid, t, lo, hi, n) for (s, tid), (t, lo, hi, n) in acc.items()]


def _with_buckets(g: ErrorGroup, buckets: tuple[tuple[int, int], ...]) -> ErrorGroup:
    return replace(g, buckets=buckets)


def _int64(col: pa.ChunkedArray | pa.Array) -> Any:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int64)
