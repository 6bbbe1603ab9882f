"""Evaluation cases: for each labelled fault, the analysis window and its baseline, as tables.

This is the one place that decides which data an evaluated method sees, so that the later
swap from reading the directory to replaying it through the server stays small.

Policy (:class:`WindowPolicy`), the same for every method evaluated:

- **Window**: ``[injection minute, + window_minutes)``. Only the injection minute of the
  label is used; the faulty pod and the fault type are what the methods predict.
- **Fault horizon**: every fault of the day is taken to disturb
  ``[its injection minute - lead_minutes, + horizon_minutes)``: labels have minute
  resolution and the data shows faults already at work in the minute file before the
  labelled one (in nezha-tt, 2023-01-29 08:51 holds 6 of 7 contacts requests already on
  the faulty path of the 08:52 fault). Baseline data never comes from inside a
  horizon (the label's injection minutes are used for that exclusion and nothing else).
- **Trace/log baseline**: fault-free data in the ``trace_lookback_minutes`` before the
  window (in the Nezha layout a fault's first minute file starts about a minute before
  the injection), plus the day's ``construct_data`` normal minutes that lie outside every
  horizon. Those normal minutes may lie after the injection; they are labelled fault-free
  data of the same system on the same day, which is what a running server would have
  learnt as "normal" before an incident.
- **Metric baseline**: the ``metric_lookback_minutes`` before the window, minus horizons
  (pod metrics cover the whole day, one row a minute).

Where the rows come from is the one thing that varies: by default the directory is read
directly (records turned into tables by :mod:`faultlens.eval.tables`); with a ``source``
(:class:`StoreSource`) they are read back from a faultlens store that the directory was
replayed into over OTLP, so that every method sees what the pipeline decoded and stored.
:func:`needed_ranges` says which stretches of time such a replay must cover.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from faultlens.datasets.nezha import Fault, NezhaDataset, NormalPeriod
from faultlens.decode.schema import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA
from faultlens.eval.tables import TABLES_VERSION, logs_table, metrics_table, spans_table
from faultlens.rca.model import Observations
from faultlens.types import Signal, TimeRange

if TYPE_CHECKING:
    from faultlens.store.base import Store

__all__ = [
    "Case",
    "CaseBuilder",
    "ObservationSource",
    "StoreSource",
    "WindowPolicy",
    "baseline_ranges",
    "needed_ranges",
]

ObservationSource = Callable[[Sequence[TimeRange], Sequence[TimeRange]], Observations]
"""``(trace/log ranges, metric ranges) -> Observations``: where a case's rows come from."""

NS_PER_MIN = 60_000_000_000


@dataclass(frozen=True, slots=True)
class WindowPolicy:
    window_minutes: int = 3
    horizon_minutes: int = 6
    trace_lookback_minutes: int = 10
    metric_lookback_minutes: int = 60
    use_normal_periods: bool = True
    lead_minutes: int = 1


@dataclass(frozen=True, slots=True)
class Case:
    """One labelled fault with the data every method is handed."""

    fault: Fault
    window: TimeRange
    trace_baseline: tuple[TimeRange, ...]
    metric_baseline: tuple[TimeRange, ...]
    current: Observations
    baseline: Observations


def _subtract(span: TimeRange, holes: Sequence[TimeRange]) -> list[TimeRange]:
    parts = [span]
    for h in holes:
        nxt: list[TimeRange] = []
        for p in parts:
            if h.end_ns <= p.start_ns or h.start_ns >= p.end_ns:
                nxt.append(p)
                continue
            if h.start_ns > p.start_ns:
                nxt.append(TimeRange(p.start_ns, h.start_ns))
            if h.end_ns < p.end_ns:
                nxt.append(TimeRange(h.end_ns, p.end_ns))
        parts = nxt
    return [p for p in parts if p.duration_ns > 0]


def baseline_ranges(
    fault: Fault,
    day_faults: Sequence[Fault],
    normal: Sequence[NormalPeriod],
    policy: WindowPolicy,
) -> tuple[TimeRange, list[TimeRange], list[TimeRange]]:
    """The window, the trace/log baseline ranges and the metric baseline ranges of ``fault``."""
    start = fault.minute_ns
    window = TimeRange(start, start + policy.window_minutes * NS_PER_MIN)
    lead = policy.lead_minutes * NS_PER_MIN
    horizons = [
        TimeRange(f.minute_ns - lead, f.minute_ns + policy.horizon_minutes * NS_PER_MIN) for f in day_faults
    ]
    holes = [*horizons, window]
    trace = _subtract(TimeRange(start - policy.trace_lookback_minutes * NS_PER_MIN, start), holes)
    if policy.use_normal_periods:
        for p in normal:
            trace.extend(_subtract(p.time_range, holes))
    metric = _subtract(TimeRange(start - policy.metric_lookback_minutes * NS_PER_MIN, start), holes)
    return window, _union(trace), _union(metric)


def needed_ranges(
    dataset: NezhaDataset, faults: Sequence[Fault], policy: WindowPolicy
) -> tuple[list[TimeRange], list[TimeRange]]:
    """The spans/logs ranges and the metric ranges the cases of ``faults`` read, each a union.

    Every window is in both; trace baselines in the first, metric baselines in the second.
    A replay of exactly these ranges holds every row :class:`CaseBuilder` will ask for.
    """
    trace: list[TimeRange] = []
    metric: list[TimeRange] = []
    for day in sorted({f.day for f in faults}):
        day_faults = dataset.faults(day)
        normal = dataset.normal_periods(day)
        for fault in [f for f in faults if f.day == day]:
            window, trace_base, metric_base = baseline_ranges(fault, day_faults, normal, policy)
            trace += [window, *trace_base]
            metric += [window, *metric_base]
    return _union(trace), _union(metric)


def _union(ranges: Sequence[TimeRange]) -> list[TimeRange]:
    """Sorted, non-overlapping ranges covering the same time (so no row is read twice)."""
    out: list[TimeRange] = []
    for r in sorted(ranges, key=lambda r: r.start_ns):
        if out and r.start_ns <= out[-1].end_ns:
            out[-1] = TimeRange(out[-1].start_ns, max(out[-1].end_ns, r.end_ns))
        else:
            out.append(r)
    return out


class _DayTables:
    """All spans, logs and metric points of one day, read once (and cached as Parquet)."""

    def __init__(self, dataset: NezhaDataset, day: dt.date, cache_dir: Path | None) -> None:
        lo = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1_000_000_000
        rng = TimeRange(lo, lo + 24 * 60 * NS_PER_MIN)
        self.spans = self._load(cache_dir, dataset, day, "spans", lambda: spans_table(dataset.spans(rng)))
        self.logs = self._load(cache_dir, dataset, day, "logs", lambda: logs_table(dataset.logs(rng)))
        self.metrics = self._load(
            cache_dir, dataset, day, "metrics", lambda: metrics_table(dataset.metrics(rng))
        )

    @staticmethod
    def _load(
        cache_dir: Path | None, dataset: NezhaDataset, day: dt.date, kind: str, build: object
    ) -> pa.Table:
        path = None
        if cache_dir is not None:
            key = str(dataset.root.resolve()).strip("/").replace("/", "_")
            path = cache_dir / key / f"{day.isoformat()}-{kind}-v{TABLES_VERSION}.parquet"
            if path.is_file():
                return pq.read_table(path)
        assert callable(build)
        table: pa.Table = build()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path)
        return table


def _select(table: pa.Table, column: str, ranges: Sequence[TimeRange]) -> pa.Table:
    if not ranges or table.num_rows == 0:
        return table.slice(0, 0)
    t = table.column(column)
    mask = None
    for r in ranges:
        m = pc.and_(pc.greater_equal(t, r.start_ns), pc.less(t, r.end_ns))
        mask = m if mask is None else pc.or_(mask, m)
    return table.filter(mask)


class StoreSource:
    """Rows read back from a faultlens store (:func:`faultlens.store.window.read_window`).

    Each range is read on its own (so the row bound applies per range) and the tables are
    concatenated; the ranges from :func:`baseline_ranges` are disjoint, so no row twice.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def __call__(self, trace_ranges: Sequence[TimeRange], metric_ranges: Sequence[TimeRange]) -> Observations:
        from faultlens.store.window import read_window

        traces = frozenset({Signal.TRACES, Signal.LOGS})
        spans: list[pa.Table] = []
        logs: list[pa.Table] = []
        metrics: list[pa.Table] = []
        for r in trace_ranges:
            w = read_window(self.store, r, signals=traces)
            spans.append(w.spans)
            logs.append(w.logs)
        for r in metric_ranges:
            metrics.append(read_window(self.store, r, signals=frozenset({Signal.METRICS})).metrics)
        return Observations(
            _concat(spans, Signal.TRACES), _concat(logs, Signal.LOGS), _concat(metrics, Signal.METRICS)
        )


def _concat(tables: list[pa.Table], signal: Signal) -> pa.Table:
    if tables:
        return pa.concat_tables(tables)
    schema = {Signal.TRACES: SPAN_SCHEMA, Signal.LOGS: LOG_SCHEMA, Signal.METRICS: METRIC_SCHEMA}[signal]
    return schema.empty_table()


class CaseBuilder:
    """Builds :class:`Case` values for the faults of a Nezha-layout directory.

    The dataset always gives the labels (faults, normal periods); the rows come from
    ``source`` when given (and ``cache_dir`` is then unused), else from the dataset.
    """

    def __init__(
        self,
        dataset: NezhaDataset,
        policy: WindowPolicy | None = None,
        cache_dir: Path | None = None,
        source: ObservationSource | None = None,
    ) -> None:
        self.dataset = dataset
        self.policy = policy or WindowPolicy()
        self.cache_dir = cache_dir
        self.source = source
        self._days: dict[dt.date, _DayTables] = {}

    def _day(self, day: dt.date) -> _DayTables:
        tables = self._days.get(day)
        if tables is None:
            self._days.clear()  # one day in memory at a time
            tables = self._days[day] = _DayTables(self.dataset, day, self.cache_dir)
        return tables

    def cases(self, faults: Sequence[Fault] | None = None) -> Iterator[Case]:
        """Cases of ``faults`` (all faults when None), grouped by day."""
        chosen = list(self.dataset.faults()) if faults is None else list(faults)
        for day in sorted({f.day for f in chosen}):
            day_faults = self.dataset.faults(day)
            normal = self.dataset.normal_periods(day)
            for fault in [f for f in chosen if f.day == day]:
                yield self.case(fault, day_faults, normal)

    def case(self, fault: Fault, day_faults: Sequence[Fault], normal: Sequence[NormalPeriod]) -> Case:
        window, trace_base, metric_base = baseline_ranges(fault, day_faults, normal, self.policy)
        if self.source is not None:
            current = self.source([window], [window])
            baseline = self.source(trace_base, metric_base)
        elif self.cache_dir is None:
            # No cache: read only the ranges this case needs (fast for a few faults).
            current = self._read([window], [window])
            baseline = self._read(trace_base, metric_base)
        else:
            day = self._day(fault.day)
            current = Observations(
                _select(day.spans, "start_time_unix_nano", [window]),
                _select(day.logs, "time_unix_nano", [window]),
                _select(day.metrics, "time_unix_nano", [window]),
            )
            baseline = Observations(
                _select(day.spans, "start_time_unix_nano", trace_base),
                _select(day.logs, "time_unix_nano", trace_base),
                _select(day.metrics, "time_unix_nano", metric_base),
            )
        return Case(fault, window, tuple(trace_base), tuple(metric_base), current, baseline)

    def _read(self, trace_ranges: Sequence[TimeRange], metric_ranges: Sequence[TimeRange]) -> Observations:
        ds = self.dataset
        spans = [r for tr in trace_ranges for r in ds.spans(tr)]
        logs = [r for tr in trace_ranges for r in ds.logs(tr)]
        # Metric files hold whole days: read their hull once, then keep the ranges.
        metrics = metrics_table(ds.metrics(_hull(metric_ranges))) if metric_ranges else metrics_table([])
        return Observations(
            spans_table(spans), logs_table(logs), _select(metrics, "time_unix_nano", metric_ranges)
        )


def _hull(ranges: Sequence[TimeRange]) -> TimeRange:
    return TimeRange(min(r.start_ns for r in ranges), max(r.end_ns for r in ranges))
