"""The storage interface: a writer, a reader, and the named query and result values.

As in Jaeger's storage API, queries are named frozen dataclasses rather than argument
lists, results are typed values, and a backend that cannot answer a query exactly raises
:class:`faultlens.errors.UnsupportedQuery` instead of approximating. Every backend runs the
same conformance suite (``tests/store/test_conformance.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from faultlens.decode.base import DecodedBatch
from faultlens.types import TimeRange

# --- queries -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttributeCondition:
    """``key=value`` on one span: its own attribute ``key``, or its resource's, has ``value``
    as text. The text of a value is the string itself, ``true``/``false``, or the JSON text
    of a number, array or map (``200``, ``1.5``, ``[1,2]``), as the store keeps it."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class TraceQuery:
    """Find traces that have at least one span matching every given condition.

    ``status_error`` keeps traces with at least one error span (status code ERROR);
    ``attributes`` and ``span_min_duration_ns``/``span_max_duration_ns`` (both inclusive)
    hold on that same span, with service and operation. ``min_duration_ns`` and
    ``max_duration_ns`` (inclusive) apply to the trace's duration (earliest start to latest
    end). Results are ordered newest first.
    """

    service: str | None = None
    operation: str | None = None
    status_error: bool = False
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None
    attributes: tuple[AttributeCondition, ...] = ()
    span_min_duration_ns: int | None = None
    span_max_duration_ns: int | None = None
    time_range: TimeRange | None = None
    limit: int = 20


@dataclass(frozen=True, slots=True)
class AttributeQuery:
    """What spans say for attributes: with ``key`` None, the attribute keys (the spans' own
    and their resources'); with ``key``, that key's values as text (see
    :class:`AttributeCondition`). Read from the newest ``sample`` spans of the service in the
    range, so the answer is bounded whatever the store holds; most frequent first, ties by
    text, at most ``limit``."""

    service: str | None = None
    key: str | None = None
    time_range: TimeRange | None = None
    sample: int = 2000
    limit: int = 50


@dataclass(frozen=True, slots=True)
class LogQuery:
    """Find log records. ``min_severity`` is a SeverityNumber (e.g. 17 for ERROR and above);
    ``text`` is a case-insensitive substring of the body. Newest first."""

    service: str | None = None
    min_severity: int | None = None
    trace_id: bytes | None = None
    text: str | None = None
    time_range: TimeRange | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class MetricQuery:
    """Find metric data points by metric name and/or service, oldest first."""

    name: str | None = None
    service: str | None = None
    time_range: TimeRange | None = None
    limit: int = 1000


class MetricAggregation(enum.StrEnum):
    """How a metric's points are folded into one value per step (``MetricSeriesQuery``).

    The value of a point is its ``value`` (gauges and sums) or ``sum / count`` (histograms,
    exponential histograms, summaries). ``rate`` is per second over the step, from the
    increase of each series (service and attributes) between consecutive points, a
    decrease counting as a reset (as Prometheus's ``rate``): for cumulative sums and counts.
    """

    AVG = "avg"
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    COUNT = "count"
    RATE = "rate"


@dataclass(frozen=True, slots=True)
class MetricNameQuery:
    """The metric names that have points in the range (and of the service), newest first."""

    service: str | None = None
    time_range: TimeRange | None = None
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class MetricSeriesQuery:
    """One metric folded per ``step_ns`` and per service, over ``time_range`` (required)."""

    name: str
    time_range: TimeRange
    step_ns: int
    aggregation: MetricAggregation = MetricAggregation.AVG
    service: str | None = None


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    kind: int


@dataclass(frozen=True, slots=True)
class SpanEvent:
    time_unix_nano: int
    name: str
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SpanLink:
    trace_id: bytes
    span_id: bytes
    trace_state: str
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SpanRecord:
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes | None
    service: str | None
    name: str
    kind: int
    start_time_unix_nano: int
    end_time_unix_nano: int
    status_code: int
    status_message: str
    attributes: dict[str, Any]
    resource_attributes: dict[str, Any]
    events: tuple[SpanEvent, ...] = ()
    links: tuple[SpanLink, ...] = ()
    scope_name: str | None = None
    trace_state: str | None = None


@dataclass(frozen=True, slots=True)
class LogRecord:
    time_unix_nano: int
    observed_time_unix_nano: int
    severity_number: int
    severity_text: str
    body: str
    trace_id: bytes | None
    span_id: bytes | None
    service: str | None
    attributes: dict[str, Any]
    resource_attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MetricPoint:
    name: str
    metric_type: str
    unit: str
    service: str | None
    time_unix_nano: int
    start_time_unix_nano: int | None
    value: float | None
    count: int | None
    sum: float | None
    attributes: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)  # buckets, quantiles, temporality...


@dataclass(frozen=True, slots=True)
class MetricName:
    name: str
    metric_type: str
    unit: str
    services: tuple[str, ...]
    points: int
    last_seen_unix_nano: int


@dataclass(frozen=True, slots=True)
class MetricStep:
    """A step of one service's series: the step's start and the folded value (None: no point)."""

    start_unix_nano: int
    value: float | None


@dataclass(frozen=True, slots=True)
class MetricSeries:
    service: str | None
    steps: tuple[MetricStep, ...]


@dataclass(frozen=True, slots=True)
class AttributeCount:
    """An attribute key or value (:class:`AttributeQuery`) and the sampled spans holding it."""

    text: str
    spans: int


@dataclass(frozen=True, slots=True)
class TraceSummary:
    trace_id: bytes
    start_time_unix_nano: int
    duration_ns: int
    span_count: int
    error_count: int
    services: tuple[str, ...]
    root_service: str | None
    root_name: str | None


@dataclass(frozen=True, slots=True)
class Trace:
    trace_id: bytes
    spans: tuple[SpanRecord, ...]
    logs: tuple[LogRecord, ...]


@dataclass(frozen=True, slots=True)
class SpanText:
    """A span as :meth:`StoreReader.get_trace_text` reads it: its own and its resource's
    attributes as the JSON text the store holds ("" where it holds none), not parsed, and
    ``record`` with those two maps empty (its events' and links' attributes are parsed).

    For a reader that only writes the maps on as JSON (the API's trace body): parsing
    10,000 maps to write them again was most of a 5,000-span trace's answer. The text is
    what was stored, so it may be any text; ``faultlens.store._rows.attrs`` (the one
    reading of stored attribute JSON) reads it as :meth:`StoreReader.get_trace` does."""

    record: SpanRecord
    attributes: str
    resource_attributes: str


@dataclass(frozen=True, slots=True)
class TraceText:
    """:class:`Trace` with each span's attribute maps as stored text (:class:`SpanText`)."""

    trace_id: bytes
    spans: tuple[SpanText, ...]
    logs: tuple[LogRecord, ...]


@dataclass(frozen=True, slots=True)
class StoreStats:
    spans: int
    logs: int
    metric_points: int


@dataclass(frozen=True, slots=True)
class RetentionResult:
    cutoff_unix_nano: int
    spans_deleted: int
    logs_deleted: int
    metric_points_deleted: int


# --- interfaces ----------------------------------------------------------------------------


class StoreWriter(Protocol):
    def write(self, batches: list[DecodedBatch], intake_seqs: Sequence[int] = ()) -> None:
        """Persist the batches (any mix of signals) durably before returning.

        ``intake_seqs`` are the intake log sequence numbers of the requests the batches hold;
        they are recorded in the same transaction as the rows (see :meth:`applied_intake`).
        Called from one writer thread; may block. An empty list is a no-op. Not idempotent
        by itself: a caller that is unsure whether a write landed asks :meth:`applied_intake`.
        Raises :class:`faultlens.errors.StoreError` if nothing could be written.
        """
        ...

    def applied_intake(self, seqs: Sequence[int]) -> set[int]:
        """Which of ``seqs`` a committed :meth:`write` recorded."""
        ...

    def forget_intake(self, below: int) -> None:
        """Drop the recorded sequence numbers below ``below`` (their log is trimmed)."""
        ...


class StoreReader(Protocol):
    def services(self) -> list[str]: ...

    def operations(self, service: str) -> list[Operation]: ...

    def find_traces(self, query: TraceQuery) -> list[TraceSummary]: ...

    def attribute_counts(self, query: AttributeQuery) -> list[AttributeCount]:
        """Attribute keys, or one key's values, of the newest spans (the search's suggestions)."""
        ...

    def get_trace(self, trace_id: bytes, time_hint: TimeRange | None = None) -> Trace | None:
        """Every span of the trace and every log record carrying its trace id, or None.

        ``time_hint`` (Jaeger's): where to look; only the spans that start and the log
        records timed within it are returned, and None if there are none. Without it the
        lookup is exact over the whole store, only slower."""
        ...

    def get_trace_text(self, trace_id: bytes, time_hint: TimeRange | None = None) -> TraceText | None:
        """:meth:`get_trace`, the same spans and logs in the same order, with each span's
        attribute maps left as the stored JSON text (:class:`SpanText`)."""
        ...

    def find_logs(self, query: LogQuery) -> list[LogRecord]: ...

    def find_metric_points(self, query: MetricQuery) -> list[MetricPoint]: ...

    def metric_names(self, query: MetricNameQuery) -> list[MetricName]: ...

    def metric_series(self, query: MetricSeriesQuery) -> list[MetricSeries]:
        """Every step of the range for each service (``value`` None where it had no point)."""
        ...

    def stats(self) -> StoreStats: ...


class Store(StoreWriter, StoreReader, Protocol):
    """A backend: writer, reader, retention and lifecycle. Thread-safe."""

    def enforce_retention(self, now_unix_nano: int, retention_ns: int) -> RetentionResult:
        """Delete everything older than ``now - retention`` (by item time)."""
        ...

    def close(self) -> None:
        """Flush and release the backend; safe to call twice."""
        ...
