"""Response bodies of the query API, and their conversion from the store's result values.

Conventions, the same in every body (see docs/api.md):

- Ids are lowercase hex strings; an absent id is ``null``.
- Times are integers of Unix nanoseconds (``*_unix_nano``, ``duration_ns``). They exceed
  2**53, so JavaScript's ``JSON.parse`` rounds them; such clients need a BigInt-aware parser.
  Integers were chosen over strings because that is what the store holds and what most
  OTLP/Jaeger tooling in Python, Go and Java reads without conversion.
- Enums are names: span kind ``SERVER``, status code ``ERROR``.
- Floats that are not finite are sent as the strings ``"NaN"``, ``"Infinity"`` and
  ``"-Infinity"`` (as proto3 JSON does), since JSON has no such numbers.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from faultlens.api.params import SPAN_KIND_NAMES, STATUS_CODE_NAMES, hex_id
from faultlens.store import base as store
from faultlens.store._rows import attrs


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, ser_json_inf_nan="strings")


def kind_name(kind: int) -> str:
    return SPAN_KIND_NAMES.get(kind, str(kind))


def status_name(code: int) -> str:
    return STATUS_CODE_NAMES.get(code, str(code))


_PLAIN = frozenset((str, int, bool, type(None)))


def json_safe(value: Any) -> Any:
    """Replace non-finite floats inside free-form values (attributes, details) by strings.

    A flat dict of plain values (most attribute maps) is returned as it is, after one pass
    over its values: walking and copying every map cost most of a 5,000-span trace's answer."""
    if type(value) is dict and all(
        type(k) is str and (type(v) in _PLAIN or (type(v) is float and math.isfinite(v)))
        for k, v in value.items()
    ):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


# --- services, operations, stats ------------------------------------------------------------


class ServicesResponse(_Body):
    services: list[str] = Field(description="Every service with stored items of any signal, sorted.")


class OperationOut(_Body):
    name: str
    kind: str = Field(
        description="Span kind name: UNSPECIFIED, INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER."
    )


class OperationsResponse(_Body):
    service: str
    operations: list[OperationOut]


class StatsResponse(_Body):
    spans: int
    logs: int
    metric_points: int


# --- traces ---------------------------------------------------------------------------------


class TraceSummaryOut(_Body):
    trace_id: str
    start_time_unix_nano: int
    duration_ns: int
    span_count: int
    error_count: int
    services: list[str]
    root_service: str | None
    root_name: str | None

    @classmethod
    def of(cls, s: store.TraceSummary) -> TraceSummaryOut:
        return cls(
            trace_id=s.trace_id.hex(),
            start_time_unix_nano=s.start_time_unix_nano,
            duration_ns=s.duration_ns,
            span_count=s.span_count,
            error_count=s.error_count,
            services=list(s.services),
            root_service=s.root_service,
            root_name=s.root_name,
        )


class TracesResponse(_Body):
    traces: list[TraceSummaryOut] = Field(description="Newest first.")
    limit: int
    truncated: bool = Field(description="True when more traces matched than `limit`.")


class EventOut(_Body):
    time_unix_nano: int
    name: str
    attributes: dict[str, Any]


class LinkOut(_Body):
    trace_id: str
    span_id: str
    trace_state: str
    attributes: dict[str, Any]


class SpanOut(_Body):
    trace_id: str
    span_id: str
    parent_span_id: str | None = Field(description="null for a root span.")
    service: str | None
    name: str
    kind: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    duration_ns: int
    status_code: str = Field(description="UNSET, OK or ERROR.")
    status_message: str
    trace_state: str | None
    scope_name: str | None
    attributes: dict[str, Any]
    resource_attributes: dict[str, Any]
    events: list[EventOut]
    links: list[LinkOut]

    @classmethod
    def of(cls, s: store.SpanRecord) -> SpanOut:
        return cls.model_validate(span_fields(s))


def span_fields(s: store.SpanRecord) -> dict[str, Any]:
    """A span as :class:`SpanOut`'s fields, in their order, as plain JSON-ready values: the
    one mapping from the store's span to the API's, used by the model and by :func:`trace_json`."""
    return {
        "trace_id": s.trace_id.hex(),
        "span_id": s.span_id.hex(),
        "parent_span_id": hex_id(s.parent_span_id or None),
        "service": s.service,
        "name": s.name,
        "kind": kind_name(s.kind),
        "start_time_unix_nano": s.start_time_unix_nano,
        "end_time_unix_nano": s.end_time_unix_nano,
        "duration_ns": s.end_time_unix_nano - s.start_time_unix_nano,
        "status_code": status_name(s.status_code),
        "status_message": s.status_message,
        "trace_state": s.trace_state,
        "scope_name": s.scope_name,
        "attributes": json_safe(s.attributes),
        "resource_attributes": json_safe(s.resource_attributes),
        "events": [
            {"time_unix_nano": e.time_unix_nano, "name": e.name, "attributes": json_safe(e.attributes)}
            for e in s.events
        ],
        "links": [
            {
                "trace_id": lk.trace_id.hex(),
                "span_id": lk.span_id.hex(),
                "trace_state": lk.trace_state,
                "attributes": json_safe(lk.attributes),
            }
            for lk in s.links
        ],
    }


# --- logs -----------------------------------------------------------------------------------


class LogOut(_Body):
    time_unix_nano: int
    observed_time_unix_nano: int
    severity_number: int
    severity_text: str
    body: str
    trace_id: str | None
    span_id: str | None
    service: str | None
    attributes: dict[str, Any]
    resource_attributes: dict[str, Any]

    @classmethod
    def of(cls, r: store.LogRecord) -> LogOut:
        return cls.model_validate(log_fields(r))


def log_fields(r: store.LogRecord) -> dict[str, Any]:
    """A log record as :class:`LogOut`'s fields, in their order (see :func:`span_fields`)."""
    return {
        "time_unix_nano": r.time_unix_nano,
        "observed_time_unix_nano": r.observed_time_unix_nano,
        "severity_number": r.severity_number,
        "severity_text": r.severity_text,
        "body": r.body,
        "trace_id": hex_id(r.trace_id or None),
        "span_id": hex_id(r.span_id or None),
        "service": r.service,
        "attributes": json_safe(r.attributes),
        "resource_attributes": json_safe(r.resource_attributes),
    }


class LogsResponse(_Body):
    logs: list[LogOut] = Field(description="Newest first.")
    limit: int
    truncated: bool = Field(description="True when more records matched than `limit`.")


class TraceOut(_Body):
    trace_id: str
    spans: list[SpanOut] = Field(description="Every stored span of the trace, by start time.")
    logs: list[LogOut] = Field(description="Every stored log record carrying this trace id.")

    @classmethod
    def of(cls, t: store.Trace) -> TraceOut:
        return cls.model_validate(_trace_fields(t))


def _trace_fields(t: store.Trace) -> dict[str, Any]:
    spans = sorted(t.spans, key=lambda s: (s.start_time_unix_nano, s.span_id))
    logs = sorted(t.logs, key=lambda r: r.time_unix_nano)
    return {
        "trace_id": t.trace_id.hex(),
        "spans": [span_fields(s) for s in spans],
        "logs": [log_fields(r) for r in logs],
    }


def trace_json(t: store.Trace) -> bytes:
    """``TraceOut.of(t).model_dump_json()``, byte for byte, without building the models.

    Validating a model per span was half of a 5,000-span trace's answer; the plain fields
    (already JSON-safe, see :func:`json_safe`) are written by orjson instead. A value orjson
    refuses (an integer beyond 64 bits, a string that is not valid UTF-8) takes the models'
    way, which answers it as before."""
    fields = _trace_fields(t)
    try:
        return orjson.dumps(fields)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return TraceOut.model_validate(fields).model_dump_json().encode()


def attributes_json(text: str, seen: dict[str, Any] | None = None) -> Any:
    """What the body writes for a span's stored attribute map: the stored text itself (an
    ``orjson.Fragment``, written as it is) when it is a JSON object spelled exactly as orjson
    writes it back, else the map as :meth:`~faultlens.store.base.StoreReader.get_trace`
    reads it, made JSON-safe. Either way the body's bytes are the same.

    The project's encoder (compact ``json.dumps``) spells most maps as orjson does; it does
    not for floats with an exponent (``1e-07``, orjson ``1e-7``), for instance, and the text
    may come from elsewhere, so each text is checked: orjson reads it and writes it back, a
    few times faster than ``json.loads`` alone. ``seen`` memoises answers by text (a trace's
    spans share a few resources)."""
    if seen is not None and (known := seen.get(text)) is not None:
        return known
    try:
        value = orjson.loads(text)
        same = type(value) is dict and orjson.dumps(value) == text.encode()
    except (orjson.JSONDecodeError, TypeError):  # not JSON, or a value orjson cannot write
        same = False
    answer = orjson.Fragment(text) if same else json_safe(attrs(text))
    if seen is not None:
        seen[text] = answer
    return answer


def trace_text_json(t: store.TraceText) -> bytes:
    """:func:`trace_json` of the same trace read with its attribute maps as stored text
    (``get_trace_text``), byte for byte: each map's text is written as it is where
    :func:`attributes_json` finds it spelled as orjson would spell it (a check by orjson,
    ~3 times cheaper than the ``json.loads`` it replaces), else as its parse."""
    seen: dict[str, Any] = {}
    spans = []
    for s in sorted(t.spans, key=lambda s: (s.record.start_time_unix_nano, s.record.span_id)):
        fields = span_fields(s.record)
        fields["attributes"] = attributes_json(s.attributes, seen)
        fields["resource_attributes"] = attributes_json(s.resource_attributes, seen)
        spans.append(fields)
    logs = sorted(t.logs, key=lambda r: r.time_unix_nano)
    try:
        body = {"trace_id": t.trace_id.hex(), "spans": spans, "logs": [log_fields(r) for r in logs]}
        return orjson.dumps(body)
    except TypeError:  # a value orjson refuses elsewhere: the parsed trace takes the models' way
        return trace_json(parsed_trace(t))


def parsed_trace(t: store.TraceText) -> store.Trace:
    """The trace as ``get_trace`` returns it: each span's attribute text read (``attrs``)."""
    return store.Trace(t.trace_id, tuple(_parsed_span(s) for s in t.spans), t.logs)


def _parsed_span(s: store.SpanText) -> store.SpanRecord:
    own, resource = attrs(s.attributes), attrs(s.resource_attributes)
    return replace(s.record, attributes=own, resource_attributes=resource)


# --- metrics --------------------------------------------------------------------------------


class MetricPointOut(_Body):
    name: str
    type: str = Field(description="gauge, sum, histogram, exponential_histogram or summary.")
    unit: str
    service: str | None
    time_unix_nano: int
    start_time_unix_nano: int | None
    value: float | None = Field(description="Gauge or sum value; null for distributions.")
    count: int | None
    sum: float | None
    attributes: dict[str, Any]
    details: dict[str, Any] = Field(description="Buckets, quantiles, temporality and the like.")

    @classmethod
    def of(cls, p: store.MetricPoint) -> MetricPointOut:
        return cls(
            name=p.name,
            type=p.metric_type,
            unit=p.unit,
            service=p.service,
            time_unix_nano=p.time_unix_nano,
            start_time_unix_nano=p.start_time_unix_nano,
            value=p.value,
            count=p.count,
            sum=p.sum,
            attributes=json_safe(p.attributes),
            details=json_safe(p.details),
        )


class MetricsResponse(_Body):
    points: list[MetricPointOut] = Field(description="Oldest first.")
    limit: int
    truncated: bool = Field(description="True when more points matched than `limit`.")


class MetricNameOut(_Body):
    name: str
    type: str
    unit: str
    services: list[str]
    points: int = Field(description="Points in the range asked for.")
    last_seen_unix_nano: int

    @classmethod
    def of(cls, n: store.MetricName) -> MetricNameOut:
        return cls(
            name=n.name,
            type=n.metric_type,
            unit=n.unit,
            services=list(n.services),
            points=n.points,
            last_seen_unix_nano=n.last_seen_unix_nano,
        )


class MetricNamesResponse(_Body):
    names: list[MetricNameOut] = Field(description="Newest point first.")
    limit: int
    truncated: bool


class MetricStepOut(_Body):
    start_unix_nano: int
    value: float | None = Field(description="None when the service had no point in the step.")


class MetricSeriesOut(_Body):
    service: str | None
    steps: list[MetricStepOut]


class MetricSeriesResponse(_Body):
    name: str
    aggregation: str
    step_ns: int
    start_unix_nano: int
    end_unix_nano: int
    series: list[MetricSeriesOut] = Field(description="One per service, by service name.")

    @classmethod
    def of(cls, query: store.MetricSeriesQuery, series: list[store.MetricSeries]) -> MetricSeriesResponse:
        return cls(
            name=query.name,
            aggregation=query.aggregation.value,
            step_ns=query.step_ns,
            start_unix_nano=query.time_range.start_ns,
            end_unix_nano=query.time_range.end_ns,
            series=[
                MetricSeriesOut(
                    service=s.service,
                    steps=[MetricStepOut(start_unix_nano=t.start_unix_nano, value=t.value) for t in s.steps],
                )
                for s in series
            ],
        )


# --- health ---------------------------------------------------------------------------------


class HealthResponse(_Body):
    status: str


class ReadinessResponse(_Body):
    status: str = Field(description="'ready' or 'not ready'.")
    components: dict[str, str] = Field(description="Each component: 'ok' or why it is not ready.")
    reasons: list[str] = Field(description="'<component>: <reason>' for every component not ready.")
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="Figures that inform but do not decide readiness, e.g. `exporters`: per "
        "destination the breaker state, queue depth/bytes, oldest item age, sent/failed/retried/dropped "
        "counts, last error.",
    )


class ErrorResponse(_Body):
    detail: str
