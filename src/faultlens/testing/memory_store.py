"""A :class:`~faultlens.store.base.Store` in memory: the second backend behind the store door.

It answers every query of the protocol from plain Python over the decoded rows, written to
be obviously right rather than fast, so that the conformance suite
(``tests/store/test_conformance.py``) checks the DuckDB backend against an independent
reading of the same contract, and so that tests of code above the store can run without a
file. Like Jaeger's memory backend it holds everything in the process; unlike it, closing
writes a snapshot (Arrow IPC) into its directory and opening reads it back, because the
suite asks that a reopened store sees what the first one wrote.

Not for production: every query reads every row.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from faultlens.decode.base import DecodedBatch
from faultlens.decode.schema import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA
from faultlens.errors import StoreError, UnsupportedQuery
from faultlens.store._rows import (
    LOG_COLUMNS,
    METRIC_COLUMNS,
    SPAN_COLUMNS,
    attrs,
    log_record,
    metric_point,
    span_record,
    span_text,
)
from faultlens.store.base import (
    AttributeCount,
    AttributeQuery,
    LogQuery,
    LogRecord,
    MetricAggregation,
    MetricName,
    MetricNameQuery,
    MetricPoint,
    MetricQuery,
    MetricSeries,
    MetricSeriesQuery,
    MetricStep,
    Operation,
    RetentionResult,
    StoreStats,
    Trace,
    TraceQuery,
    TraceSummary,
    TraceText,
)
from faultlens.store.window import (
    ALL_SIGNALS,
    DEFAULT_MAX_ROWS,
    LEAN_SPAN_COLUMNS,
    TIEBREAK,
    TelemetryWindow,
    WindowReader,
    with_schema,
)
from faultlens.types import Signal, TimeRange

__all__ = ["MemoryStore", "MemoryWindowReader"]

SNAPSHOT = "memory-store-{signal}.arrow"
STATUS_ERROR = 2
MAX_METRIC_STEPS = 11_000  # as the DuckDB backend

Row = dict[str, Any]

_SCHEMAS = {Signal.TRACES: SPAN_SCHEMA, Signal.LOGS: LOG_SCHEMA, Signal.METRICS: METRIC_SCHEMA}
_TIME = {
    Signal.TRACES: "start_time_unix_nano",
    Signal.LOGS: "time_unix_nano",
    Signal.METRICS: "time_unix_nano",
}


def _in(t: int, r: TimeRange | None) -> bool:
    return r is None or r.start_ns <= t < r.end_ns


def _text(value: Any) -> str | None:
    """An attribute value as the stores compare it: a string as it is, anything else as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _attribute(row: Row, key: str) -> str | None:
    """The text of ``key`` in the span's own attributes, else in its resource's."""
    own = _text(attrs(row["attributes"]).get(key))
    return own if own is not None else _text(attrs(row["resource_attributes"]).get(key))


def _is_root(row: Row) -> bool:
    return not row["parent_span_id"]


class MemoryStore:
    """:class:`faultlens.store.base.Store` in memory, snapshotted to ``directory`` on close."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._rows: dict[Signal, list[Row]] = {s: [] for s in Signal}
        self._applied: set[int] = set()
        self._closed = False
        for signal in Signal:
            path = self.directory / SNAPSHOT.format(signal=signal.value)
            if path.exists():
                with ipc.open_file(path) as f:
                    self._rows[signal] = f.read_all().to_pylist()
        applied = self.directory / "memory-store-intake.json"
        if applied.exists():
            self._applied = set(json.loads(applied.read_text()))

    # --- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Write the snapshot; safe to call twice. Any later call raises StoreError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.directory.mkdir(parents=True, exist_ok=True)
            for signal, rows in self._rows.items():
                table = pa.Table.from_pylist(rows, schema=_SCHEMAS[signal])
                with ipc.new_file(self.directory / SNAPSHOT.format(signal=signal.value), table.schema) as f:
                    f.write_table(table)
            (self.directory / "memory-store-intake.json").write_text(json.dumps(sorted(self._applied)))

    def _rows_of(self, signal: Signal) -> list[Row]:
        """The rows of ``signal`` as of now (a copy of the list, so reads need no lock after)."""
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed")
            return list(self._rows[signal])

    # --- writing -------------------------------------------------------------------------

    def write(self, batches: list[DecodedBatch], intake_seqs: Sequence[int] = ()) -> None:
        """Append every row (all batches at once: readers see all of them or none)."""
        added = {s: [r for b in batches if b.signal is s for r in b.table.to_pylist()] for s in Signal}
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed")
            for signal, rows in added.items():
                self._rows[signal] = self._rows[signal] + rows
            self._applied.update(intake_seqs)

    def applied_intake(self, seqs: Sequence[int]) -> set[int]:
        with self._lock:
            return {s for s in seqs if s in self._applied}

    def forget_intake(self, below: int) -> None:
        with self._lock:
            self._applied = {s for s in self._applied if s >= below}

    def enforce_retention(self, now_unix_nano: int, retention_ns: int) -> RetentionResult:
        """Delete spans (by start time), logs and points (by time) before ``now - retention``."""
        cutoff = now_unix_nano - retention_ns
        deleted: dict[Signal, int] = {}
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed")
            for signal in Signal:
                kept = [r for r in self._rows[signal] if r[_TIME[signal]] >= cutoff]
                deleted[signal] = len(self._rows[signal]) - len(kept)
                self._rows[signal] = kept
        return RetentionResult(cutoff, deleted[Signal.TRACES], deleted[Signal.LOGS], deleted[Signal.METRICS])

    # --- reading -------------------------------------------------------------------------

    def stats(self) -> StoreStats:
        return StoreStats(*(len(self._rows_of(s)) for s in (Signal.TRACES, Signal.LOGS, Signal.METRICS)))

    def services(self) -> list[str]:
        names = {r["service_name"] for s in Signal for r in self._rows_of(s)}
        return sorted(n for n in names if n is not None)

    def operations(self, service: str) -> list[Operation]:
        seen = {(r["name"], r["kind"]) for r in self._rows_of(Signal.TRACES) if r["service_name"] == service}
        return [Operation(name, kind) for name, kind in sorted(seen)]

    def find_traces(self, query: TraceQuery) -> list[TraceSummary]:
        """Traces with one span matching every span condition, whose whole duration is within
        the bounds; newest first (by trace start), ties by trace id."""
        if query.limit <= 0:
            return []
        spans = self._rows_of(Signal.TRACES)

        def matches(r: Row) -> bool:
            return (
                (query.service is None or r["service_name"] == query.service)
                and (query.operation is None or r["name"] == query.operation)
                and (not query.status_error or r["status_code"] == STATUS_ERROR)
                and (query.span_min_duration_ns is None or r["duration_ns"] >= query.span_min_duration_ns)
                and (query.span_max_duration_ns is None or r["duration_ns"] <= query.span_max_duration_ns)
                and _in(r["start_time_unix_nano"], query.time_range)
                and all(_attribute(r, c.key) == c.value for c in query.attributes)
            )

        wanted = {r["trace_id"] for r in spans if matches(r)}
        by_trace: dict[bytes, list[Row]] = {}
        for r in spans:
            if r["trace_id"] in wanted:
                by_trace.setdefault(r["trace_id"], []).append(r)
        found = [_summary(tid, rows) for tid, rows in by_trace.items()]
        found = [
            s
            for s in found
            if (query.min_duration_ns is None or s.duration_ns >= query.min_duration_ns)
            and (query.max_duration_ns is None or s.duration_ns <= query.max_duration_ns)
        ]
        found.sort(key=lambda s: (-s.start_time_unix_nano, s.trace_id))
        return found[: query.limit]

    def attribute_counts(self, query: AttributeQuery) -> list[AttributeCount]:
        """Keys (or one key's values) of the newest ``sample`` spans of the service in the range."""
        if query.limit <= 0 or query.sample <= 0:
            return []
        spans = [
            r
            for r in self._rows_of(Signal.TRACES)
            if (query.service is None or r["service_name"] == query.service)
            and _in(r["start_time_unix_nano"], query.time_range)
        ]
        spans.sort(key=lambda r: -r["start_time_unix_nano"])
        counts: dict[str, int] = {}
        for r in spans[: query.sample]:
            if query.key is None:
                held: Iterable[str] = set(attrs(r["attributes"])) | set(attrs(r["resource_attributes"]))
            else:
                value = _attribute(r, query.key)
                held = () if value is None else (value,)
            for text in held:
                counts[text] = counts.get(text, 0) + 1
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return [AttributeCount(text, n) for text, n in ranked[: query.limit]]

    def get_trace(self, trace_id: bytes, time_hint: TimeRange | None = None) -> Trace | None:
        """Spans ordered by start time (then span id), then logs ordered by time."""
        spans, logs = self._trace_items(trace_id, time_hint)
        if not spans and not logs:
            return None
        return Trace(trace_id, tuple(span_record(r) for r in spans), tuple(log_record(r) for r in logs))

    def get_trace_text(self, trace_id: bytes, time_hint: TimeRange | None = None) -> TraceText | None:
        """:meth:`get_trace` with each span's attribute maps as the stored text."""
        spans, logs = self._trace_items(trace_id, time_hint)
        if not spans and not logs:
            return None
        return TraceText(trace_id, tuple(span_text(r) for r in spans), tuple(log_record(r) for r in logs))

    def _trace_items(
        self, trace_id: bytes, time_hint: TimeRange | None
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """The trace's rows in their order, as ``SPAN_COLUMNS`` and ``LOG_COLUMNS`` tuples."""
        spans = [
            r
            for r in self._rows_of(Signal.TRACES)
            if r["trace_id"] == trace_id and _in(r["start_time_unix_nano"], time_hint)
        ]
        logs = [
            r
            for r in self._rows_of(Signal.LOGS)
            if r["trace_id"] == trace_id and _in(r["time_unix_nano"], time_hint)
        ]
        spans.sort(key=lambda r: (r["start_time_unix_nano"], r["span_id"]))
        logs.sort(key=lambda r: (r["time_unix_nano"], r["observed_time_unix_nano"] or 0))
        return [_tuple(r, SPAN_COLUMNS) for r in spans], [_tuple(r, LOG_COLUMNS) for r in logs]

    def find_logs(self, query: LogQuery) -> list[LogRecord]:
        """Log records matching every condition, newest first."""
        if query.limit <= 0:
            return []
        text = query.text.lower() if query.text is not None else None
        logs = [
            r
            for r in self._rows_of(Signal.LOGS)
            if _in(r["time_unix_nano"], query.time_range)
            and (query.service is None or r["service_name"] == query.service)
            and (query.min_severity is None or (r["severity_number"] or 0) >= query.min_severity)
            and (text is None or text in (r["body"] or "").lower())
            and (query.trace_id is None or r["trace_id"] == query.trace_id)
        ]
        logs.sort(key=lambda r: (-r["time_unix_nano"], -(r["observed_time_unix_nano"] or 0)))
        return [log_record(_tuple(r, LOG_COLUMNS)) for r in logs[: query.limit]]

    def find_metric_points(self, query: MetricQuery) -> list[MetricPoint]:
        """Data points matching every condition, oldest first (ties by metric name)."""
        if query.limit <= 0:
            return []
        points = self._points(query.name, query.service, query.time_range)
        points.sort(key=lambda r: (r["time_unix_nano"], r["metric_name"]))
        return [metric_point(_tuple(r, METRIC_COLUMNS)) for r in points[: query.limit]]

    def metric_names(self, query: MetricNameQuery) -> list[MetricName]:
        """Metric names with points in the range (and of the service), newest first."""
        if query.limit <= 0:
            return []
        by_name: dict[str, list[Row]] = {}
        for r in self._points(None, query.service, query.time_range):
            by_name.setdefault(r["metric_name"], []).append(r)
        names = [
            MetricName(
                name,
                rows[0]["metric_type"],
                next((r["metric_unit"] for r in rows if r["metric_unit"] is not None), ""),
                tuple(sorted({r["service_name"] for r in rows if r["service_name"] is not None})),
                len(rows),
                max(r["time_unix_nano"] for r in rows),
            )
            for name, rows in by_name.items()
        ]
        names.sort(key=lambda m: (-m.last_seen_unix_nano, m.name))
        return names[: query.limit]

    def metric_series(self, query: MetricSeriesQuery) -> list[MetricSeries]:
        """One metric folded per step and per service (see :class:`MetricAggregation`)."""
        start, end, step = query.time_range.start_ns, query.time_range.end_ns, query.step_ns
        if step <= 0 or end <= start:
            raise UnsupportedQuery("a metric series needs a positive step and a non-empty range")
        steps = -(-(end - start) // step)
        if steps > MAX_METRIC_STEPS:
            raise UnsupportedQuery(
                f"{steps} steps of {step} ns in the range: at most {MAX_METRIC_STEPS}; take a longer step"
            )
        agg = query.aggregation
        values: dict[str | None, dict[int, list[float]]] = {}
        points = sorted(
            self._points(query.name, query.service, query.time_range), key=lambda r: r["time_unix_nano"]
        )
        if agg is MetricAggregation.RATE:
            previous: dict[tuple[str | None, str | None], float | None] = {}
            for r in points:
                v = r["value"] if r["value"] is not None else r["count"]
                series = (r["service_name"], r["attributes"])
                prev = previous.get(series)
                previous[series] = v
                increase = _increase(prev, v)
                b = values.setdefault(r["service_name"], {}).setdefault(
                    (r["time_unix_nano"] - start) // step, []
                )
                if increase is not None:
                    b.append(float(increase))
        else:
            for r in points:
                v = r["value"]
                if v is None and r["sum"] is not None and r["count"]:
                    v = r["sum"] / r["count"]
                b = values.setdefault(r["service_name"], {}).setdefault(
                    (r["time_unix_nano"] - start) // step, []
                )
                if v is not None or agg is MetricAggregation.COUNT:
                    b.append(float("nan") if v is None else float(v))
        fold: Callable[[list[float]], float | None] = {
            MetricAggregation.RATE: lambda xs: sum(xs) / (step / 1e9) if xs else None,
            MetricAggregation.COUNT: lambda xs: float(len(xs)),
            MetricAggregation.AVG: lambda xs: sum(xs) / len(xs) if xs else None,
            MetricAggregation.MIN: lambda xs: min(xs) if xs else None,
            MetricAggregation.MAX: lambda xs: max(xs) if xs else None,
            MetricAggregation.SUM: lambda xs: sum(xs) if xs else None,
        }[agg]
        return [
            MetricSeries(
                service,
                tuple(
                    MetricStep(start + i * step, fold(buckets[i]) if i in buckets else None)
                    for i in range(steps)
                ),
            )
            for service, buckets in sorted(values.items(), key=lambda kv: kv[0] or "")
        ]

    def _points(self, name: str | None, service: str | None, time_range: TimeRange | None) -> list[Row]:
        return [
            r
            for r in self._rows_of(Signal.METRICS)
            if (name is None or r["metric_name"] == name)
            and (service is None or r["service_name"] == service)
            and _in(r["time_unix_nano"], time_range)
        ]


class MemoryWindowReader(WindowReader):
    """The window reads of a :class:`MemoryStore` (what ``WindowReader.for_store`` is to the
    DuckDB store): the same tables, order and bound."""

    def __init__(self, store: MemoryStore, *, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self._store = store
        self.max_rows = max_rows

    def read(
        self, time_range: TimeRange, signals: frozenset[Signal] = ALL_SIGNALS, *, lean: bool = False
    ) -> TelemetryWindow:
        tables = {s: _SCHEMAS[s].empty_table() for s in Signal}
        rows = {s: [r for r in self._store._rows_of(s) if _in(r[_TIME[s]], time_range)] for s in signals}
        for signal, found in rows.items():
            if len(found) > self.max_rows:
                raise UnsupportedQuery(
                    f"the window holds {len(found):,} {signal.item_name}, more than the "
                    f"{self.max_rows:,} a window may hold; narrow the time range"
                )
        for signal, found in rows.items():
            keys = [(c, "ascending") for c in (_TIME[signal], *TIEBREAK[signal])]
            table = pa.Table.from_pylist(found, schema=_SCHEMAS[signal]).sort_by(keys)
            if lean and signal is Signal.TRACES:
                table = with_schema(table.drop_columns(sorted(LEAN_SPAN_COLUMNS)), _SCHEMAS[signal])
            tables[signal] = table
        return TelemetryWindow(time_range, tables[Signal.TRACES], tables[Signal.LOGS], tables[Signal.METRICS])


def _increase(previous: float | None, value: float | None) -> float | None:
    """A counter's increase since its previous point; a decrease is a reset (as Prometheus)."""
    if previous is None or value is None:
        return None
    return value - previous if value >= previous else value


def _tuple(row: Row, columns: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(row[c] for c in columns)


def _summary(trace_id: bytes, rows: list[Row]) -> TraceSummary:
    start = min(r["start_time_unix_nano"] for r in rows)
    roots = sorted((r for r in rows if _is_root(r)), key=lambda r: r["start_time_unix_nano"])
    root = roots[0] if roots else None
    return TraceSummary(
        trace_id=trace_id,
        start_time_unix_nano=start,
        duration_ns=max(r["end_time_unix_nano"] for r in rows) - start,
        span_count=len(rows),
        error_count=sum(1 for r in rows if r["status_code"] == STATUS_ERROR),
        services=tuple(sorted({r["service_name"] for r in rows if r["service_name"] is not None})),
        root_service=root["service_name"] if root else None,
        root_name=root["name"] if root else None,
    )
