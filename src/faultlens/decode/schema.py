"""Arrow schemas of the decoded batches: the contract between ``decode`` and every consumer.

One row per span, per log record and per metric data point. Resource and scope are
flattened onto each row; ``service.name`` and the common semantic-convention attributes
get their own columns so that analysis and queries never parse JSON on the hot path,
while every attribute is still kept in the JSON ``attributes`` / ``resource_attributes``
columns. Ids are raw bytes (hex only at the API); times are int64 Unix nanoseconds.

A semantic-convention column is null when the attribute is absent. Where the conventions
renamed an attribute, both names fill the same column (the stable name wins).
"""

from __future__ import annotations

import pyarrow as pa

# (column, arrow type, attribute keys that fill it, in order of preference)
SPAN_SEMCONV: tuple[tuple[str, pa.DataType, tuple[str, ...]], ...] = (
    ("http_method", pa.string(), ("http.request.method", "http.method")),
    ("http_route", pa.string(), ("http.route",)),
    ("http_status_code", pa.int32(), ("http.response.status_code", "http.status_code")),
    ("url_full", pa.string(), ("url.full", "http.url")),
    ("rpc_system", pa.string(), ("rpc.system",)),
    ("rpc_service", pa.string(), ("rpc.service",)),
    ("rpc_method", pa.string(), ("rpc.method",)),
    ("rpc_grpc_status_code", pa.int32(), ("rpc.grpc.status_code",)),
    ("db_system", pa.string(), ("db.system.name", "db.system")),
    ("db_operation", pa.string(), ("db.operation.name", "db.operation")),
    ("db_namespace", pa.string(), ("db.namespace", "db.name")),
    ("messaging_system", pa.string(), ("messaging.system",)),
    ("messaging_destination", pa.string(), ("messaging.destination.name", "messaging.destination")),
    ("server_address", pa.string(), ("server.address", "net.peer.name", "net.host.name")),
    ("server_port", pa.int32(), ("server.port", "net.peer.port", "net.host.port")),
    ("peer_service", pa.string(), ("peer.service",)),
    ("error_type", pa.string(), ("error.type",)),
)

# Resource attributes promoted to columns on every signal.
RESOURCE_SEMCONV: tuple[tuple[str, pa.DataType, tuple[str, ...]], ...] = (
    ("service_name", pa.string(), ("service.name",)),
    ("service_namespace", pa.string(), ("service.namespace",)),
    ("service_instance_id", pa.string(), ("service.instance.id",)),
    ("k8s_pod_name", pa.string(), ("k8s.pod.name",)),
    ("k8s_namespace_name", pa.string(), ("k8s.namespace.name",)),
    ("host_name", pa.string(), ("host.name",)),
)

# Exception columns: from the first ``exception`` span event, or from log record attributes.
EXCEPTION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("exception_type", "exception.type"),
    ("exception_message", "exception.message"),
    ("exception_stacktrace", "exception.stacktrace"),
)

_RESOURCE_FIELDS = [pa.field(name, typ) for name, typ, _ in RESOURCE_SEMCONV]
_SCOPE_FIELDS = [pa.field("scope_name", pa.string()), pa.field("scope_version", pa.string())]
_EXCEPTION_FIELDS = [pa.field(name, pa.string()) for name, _ in EXCEPTION_COLUMNS]
_ATTR_FIELDS = [
    pa.field("attributes", pa.string()),  # JSON object of every attribute of the item
    pa.field("resource_attributes", pa.string()),  # JSON object of every resource attribute
]

EVENT_TYPE = pa.struct(
    [
        pa.field("time_unix_nano", pa.int64()),
        pa.field("name", pa.string()),
        pa.field("attributes", pa.string()),
    ]
)
LINK_TYPE = pa.struct(
    [
        pa.field("trace_id", pa.binary()),
        pa.field("span_id", pa.binary()),
        pa.field("trace_state", pa.string()),
        pa.field("attributes", pa.string()),
    ]
)

SPAN_SCHEMA = pa.schema(
    [
        pa.field("trace_id", pa.binary(), nullable=False),
        pa.field("span_id", pa.binary(), nullable=False),
        pa.field("parent_span_id", pa.binary()),  # null for a root span
        pa.field("trace_state", pa.string()),
        pa.field("flags", pa.int64()),
        pa.field("name", pa.string()),
        pa.field("kind", pa.int8()),  # SpanKind enum value, 0..5
        pa.field("start_time_unix_nano", pa.int64(), nullable=False),
        pa.field("end_time_unix_nano", pa.int64(), nullable=False),
        pa.field("duration_ns", pa.int64(), nullable=False),
        pa.field("status_code", pa.int8()),  # 0 unset, 1 ok, 2 error
        pa.field("status_message", pa.string()),
        *_RESOURCE_FIELDS,
        *_SCOPE_FIELDS,
        *[pa.field(name, typ) for name, typ, _ in SPAN_SEMCONV],
        *_EXCEPTION_FIELDS,
        *_ATTR_FIELDS,
        pa.field("events", pa.list_(EVENT_TYPE)),
        pa.field("links", pa.list_(LINK_TYPE)),
        pa.field("dropped_attributes_count", pa.int32()),
        pa.field("dropped_events_count", pa.int32()),
        pa.field("dropped_links_count", pa.int32()),
    ]
)

LOG_SCHEMA = pa.schema(
    [
        pa.field("time_unix_nano", pa.int64(), nullable=False),  # observed time when time is 0
        pa.field("observed_time_unix_nano", pa.int64()),
        pa.field("severity_number", pa.int8()),  # SeverityNumber 0..24
        pa.field("severity_text", pa.string()),
        pa.field("body", pa.string()),  # string body as is; any other AnyValue as JSON
        pa.field("trace_id", pa.binary()),  # null when the record has none
        pa.field("span_id", pa.binary()),
        pa.field("flags", pa.int64()),
        pa.field("event_name", pa.string()),
        *_RESOURCE_FIELDS,
        *_SCOPE_FIELDS,
        *_EXCEPTION_FIELDS,
        pa.field("error_type", pa.string()),
        *_ATTR_FIELDS,
        pa.field("dropped_attributes_count", pa.int32()),
    ]
)

QUANTILE_TYPE = pa.struct([pa.field("quantile", pa.float64()), pa.field("value", pa.float64())])

METRIC_SCHEMA = pa.schema(
    [
        pa.field("metric_name", pa.string(), nullable=False),
        pa.field("metric_description", pa.string()),
        pa.field("metric_unit", pa.string()),
        # gauge | sum | histogram | exponential_histogram | summary
        pa.field("metric_type", pa.string(), nullable=False),
        pa.field("aggregation_temporality", pa.int8()),  # 0 unspecified, 1 delta, 2 cumulative
        pa.field("is_monotonic", pa.bool_()),
        pa.field("time_unix_nano", pa.int64(), nullable=False),
        pa.field("start_time_unix_nano", pa.int64()),
        pa.field("value", pa.float64()),  # gauge/sum value (as_int converted; see value_int)
        pa.field("value_int", pa.int64()),  # gauge/sum as_int, exact
        pa.field("count", pa.int64()),  # histogram, exponential histogram, summary
        pa.field("sum", pa.float64()),
        pa.field("min", pa.float64()),
        pa.field("max", pa.float64()),
        pa.field("bucket_counts", pa.list_(pa.int64())),
        pa.field("explicit_bounds", pa.list_(pa.float64())),
        pa.field("exp_scale", pa.int32()),
        pa.field("exp_zero_count", pa.int64()),
        pa.field("exp_zero_threshold", pa.float64()),
        pa.field("exp_positive_offset", pa.int32()),
        pa.field("exp_positive_bucket_counts", pa.list_(pa.int64())),
        pa.field("exp_negative_offset", pa.int32()),
        pa.field("exp_negative_bucket_counts", pa.list_(pa.int64())),
        pa.field("quantiles", pa.list_(QUANTILE_TYPE)),
        pa.field("flags", pa.int64()),
        pa.field("exemplar_count", pa.int32()),
        *_RESOURCE_FIELDS,
        *_SCOPE_FIELDS,
        *_ATTR_FIELDS,
    ]
)

METRIC_TYPES = ("gauge", "sum", "histogram", "exponential_histogram", "summary")
