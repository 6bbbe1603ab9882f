"""Turning result rows into the typed values of :mod:`faultlens.store.base`.

Each ``*_COLUMNS`` tuple is the SELECT list its converter expects, kept side by side so the
order of columns and of tuple unpacking cannot drift apart.
"""

from __future__ import annotations

import json
from typing import Any

from faultlens.store._schema import quote
from faultlens.store.base import (
    LogRecord,
    MetricPoint,
    SpanEvent,
    SpanLink,
    SpanRecord,
    SpanText,
    TraceSummary,
)


def attrs(text: str | None) -> dict[str, Any]:
    """Attributes are stored as JSON objects; a missing or unreadable one reads as empty."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def select_list(columns: tuple[str, ...]) -> str:
    return ", ".join(quote(c) for c in columns)


SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "service_name",
    "name",
    "kind",
    "start_time_unix_nano",
    "end_time_unix_nano",
    "status_code",
    "status_message",
    "attributes",
    "resource_attributes",
    "events",
    "links",
    "scope_name",
    "trace_state",
)


def span_record(row: tuple[Any, ...]) -> SpanRecord:
    (
        trace_id,
        span_id,
        parent,
        service,
        name,
        kind,
        start,
        end,
        status_code,
        status_message,
        attributes,
        resource_attributes,
        events,
        links,
        scope_name,
        trace_state,
    ) = row
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent or None,
        service=service,
        name=name or "",
        kind=kind or 0,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        status_code=status_code or 0,
        status_message=status_message or "",
        attributes=attrs(attributes),
        resource_attributes=attrs(resource_attributes),
        events=tuple(
            SpanEvent(e["time_unix_nano"] or 0, e["name"] or "", attrs(e["attributes"])) for e in events or ()
        ),
        links=tuple(
            SpanLink(
                lk["trace_id"] or b"", lk["span_id"] or b"", lk["trace_state"] or "", attrs(lk["attributes"])
            )
            for lk in links or ()
        ),
        scope_name=scope_name,
        trace_state=trace_state,
    )


_OWN = SPAN_COLUMNS.index("attributes")
_RESOURCE = SPAN_COLUMNS.index("resource_attributes")


def span_text(row: tuple[Any, ...]) -> SpanText:
    """A :data:`SPAN_COLUMNS` row with its two attribute maps kept as their text."""
    own, resource = row[_OWN], row[_RESOURCE]
    bare = list(row)
    bare[_OWN] = bare[_RESOURCE] = None
    return SpanText(span_record(tuple(bare)), own or "", resource or "")


LOG_COLUMNS = (
    "time_unix_nano",
    "observed_time_unix_nano",
    "severity_number",
    "severity_text",
    "body",
    "trace_id",
    "span_id",
    "service_name",
    "attributes",
    "resource_attributes",
)


def log_record(row: tuple[Any, ...]) -> LogRecord:
    t, observed, sev, sev_text, body, trace_id, span_id, service, attributes, resource_attributes = row
    return LogRecord(
        time_unix_nano=t,
        observed_time_unix_nano=observed or 0,
        severity_number=sev or 0,
        severity_text=sev_text or "",
        body=body or "",
        trace_id=trace_id or None,
        span_id=span_id or None,
        service=service,
        attributes=attrs(attributes),
        resource_attributes=attrs(resource_attributes),
    )


# Columns that go into MetricPoint.details when they are not null.
METRIC_DETAIL_COLUMNS = (
    "metric_description",
    "aggregation_temporality",
    "is_monotonic",
    "value_int",
    "min",
    "max",
    "bucket_counts",
    "explicit_bounds",
    "exp_scale",
    "exp_zero_count",
    "exp_zero_threshold",
    "exp_positive_offset",
    "exp_positive_bucket_counts",
    "exp_negative_offset",
    "exp_negative_bucket_counts",
    "quantiles",
    "flags",
    "exemplar_count",
    "scope_name",
    "scope_version",
)

METRIC_COLUMNS = (
    "metric_name",
    "metric_type",
    "metric_unit",
    "service_name",
    "time_unix_nano",
    "start_time_unix_nano",
    "value",
    "count",
    "sum",
    "attributes",
    *METRIC_DETAIL_COLUMNS,
)


def metric_point(row: tuple[Any, ...]) -> MetricPoint:
    name, mtype, unit, service, t, start, value, count, total, attributes = row[:10]
    details = {k: v for k, v in zip(METRIC_DETAIL_COLUMNS, row[10:], strict=True) if v is not None}
    return MetricPoint(
        name=name,
        metric_type=mtype,
        unit=unit or "",
        service=service,
        time_unix_nano=t,
        start_time_unix_nano=start,
        value=value,
        count=count,
        sum=total,
        attributes=attrs(attributes),
        details=details,
    )


# SELECT list aggregating trace_index rows (one per trace per flush) into a trace summary.
TRACE_SUMMARY_SELECT = """
    trace_id,
    min(start_min) AS trace_start,
    max(end_max) - min(start_min) AS trace_duration,
    sum(span_count) AS spans,
    sum(error_count) AS errors,
    list_sort(list_distinct(flatten(list(services)))) AS services,
    arg_min_null(root_service, root_start) FILTER (WHERE root_start IS NOT NULL) AS root_service,
    arg_min_null(root_name, root_start) FILTER (WHERE root_start IS NOT NULL) AS root_name
"""


def trace_summary(row: tuple[Any, ...]) -> TraceSummary:
    trace_id, start, duration, spans, errors, services, root_service, root_name = row
    return TraceSummary(
        trace_id=trace_id,
        start_time_unix_nano=start,
        duration_ns=duration,
        span_count=int(spans),
        error_count=int(errors),
        services=tuple(services or ()),
        root_service=root_service,
        root_name=root_name,
    )
