"""Shadow protobuf messages: the OTLP wire format read with cheaper Python types.

Why: with upb, every field read from Python costs 100-500 ns and every nested message
read creates a wrapper object, so walking ``span.attributes[i].value.string_value`` for
15 attributes of 1,000 spans costs more than 20 ms. These shadow messages use the same
field numbers and wire types as OTLP, but declare the nested parts we decode in bulk
(attributes, events, links, status, resource, scope, AnyValue) as ``bytes``. Parsing a
request with them is as fast as with the real classes, and the nested parts come out as
raw bytes that :mod:`faultlens.decode.attributes` decodes for a whole request at once
by concatenating them and parsing the concatenation with the ``*Cols`` messages below:
protobuf merges concatenated messages by appending to repeated fields, so one C-level
parse yields every key of every attribute of the request as one list.

A string field stays ``string`` here, so UTF-8 is checked exactly as the real parser does.
Fields we do not declare are skipped as unknown fields.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from faultlens.errors import InvalidRequest

_F = descriptor_pb2.FieldDescriptorProto
_OPT = _F.LABEL_OPTIONAL
_REP = _F.LABEL_REPEATED
_TYPES = {
    "bytes": _F.TYPE_BYTES,
    "string": _F.TYPE_STRING,
    "bool": _F.TYPE_BOOL,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "sint32": _F.TYPE_SINT32,
    "fixed32": _F.TYPE_FIXED32,
    "fixed64": _F.TYPE_FIXED64,
    "double": _F.TYPE_DOUBLE,
    "sfixed64": _F.TYPE_SFIXED64,
}
_PACKAGE = "faultlens.shadow"

# message name -> [(field name, number, type or message name [+ "@oneof"], repeated)]
_MESSAGES: dict[str, list[tuple[str, int, str, bool]]] = {
    # -- shared ------------------------------------------------------------------------
    "Resource": [("attributes", 1, "bytes", True), ("dropped_attributes_count", 2, "uint32", False)],
    "Scope": [
        ("name", 1, "string", False),
        ("version", 2, "string", False),
        ("attributes", 3, "bytes", True),
    ],
    # All keys / all values of a concatenation of KeyValue messages.
    "KeyValueCols": [("key", 1, "string", True), ("value", 2, "bytes", True)],
    # Every oneof case of a concatenation of AnyValue messages, per case.
    "AnyValueCols": [
        ("string_value", 1, "string", True),
        ("bool_value", 2, "bool", True),
        ("int_value", 3, "int64", True),
        ("double_value", 4, "double", True),
        ("array_value", 5, "bytes", True),
        ("kvlist_value", 6, "bytes", True),
        ("bytes_value", 7, "bytes", True),
        ("string_value_strindex", 8, "int32", True),
    ],
    # -- traces ------------------------------------------------------------------------
    "TraceRequest": [("resource_spans", 1, "ResourceSpans", True)],
    "ResourceSpans": [("resource", 1, "bytes", False), ("scope_spans", 2, "ScopeSpans", True)],
    # spans stay serialized: SpanCols reads the fields of all of them in one parse
    "ScopeSpans": [("scope", 1, "bytes", False), ("spans", 2, "bytes", True)],
    "Span": [
        ("trace_id", 1, "bytes", False),
        ("span_id", 2, "bytes", False),
        ("trace_state", 3, "string", False),
        ("parent_span_id", 4, "bytes", False),
        ("name", 5, "string", False),
        ("kind", 6, "int32", False),
        ("start_time_unix_nano", 7, "fixed64", False),
        ("end_time_unix_nano", 8, "fixed64", False),
        ("attributes", 9, "bytes", True),
        ("dropped_attributes_count", 10, "uint32", False),
        ("events", 11, "bytes", True),
        ("dropped_events_count", 12, "uint32", False),
        ("links", 13, "bytes", True),
        ("dropped_links_count", 14, "uint32", False),
        ("status", 15, "bytes", False),
        ("flags", 16, "fixed32", False),
    ],
    "Event": [
        ("time_unix_nano", 1, "fixed64", False),
        ("name", 2, "string", False),
        ("attributes", 3, "bytes", True),
        ("dropped_attributes_count", 4, "uint32", False),
    ],
    "Link": [
        ("trace_id", 1, "bytes", False),
        ("span_id", 2, "bytes", False),
        ("trace_state", 3, "string", False),
        ("attributes", 4, "bytes", True),
        ("dropped_attributes_count", 5, "uint32", False),
        ("flags", 6, "fixed32", False),
    ],
    "Status": [("message", 2, "string", False), ("code", 3, "int32", False)],
    # -- logs --------------------------------------------------------------------------
    "LogsRequest": [("resource_logs", 1, "ResourceLogs", True)],
    "ResourceLogs": [("resource", 1, "bytes", False), ("scope_logs", 2, "ScopeLogs", True)],
    "ScopeLogs": [("scope", 1, "bytes", False), ("log_records", 2, "bytes", True)],
    "LogRecord": [
        ("time_unix_nano", 1, "fixed64", False),
        ("severity_number", 2, "int32", False),
        ("severity_text", 3, "string", False),
        ("body", 5, "bytes", False),
        ("attributes", 6, "bytes", True),
        ("dropped_attributes_count", 7, "uint32", False),
        ("flags", 8, "fixed32", False),
        ("trace_id", 9, "bytes", False),
        ("span_id", 10, "bytes", False),
        ("observed_time_unix_nano", 11, "fixed64", False),
        ("event_name", 12, "string", False),
    ],
    # The same fields, all repeated: parsing the concatenation of many records appends each
    # record's fields to these lists (see faultlens.decode._columns).
    "SpanCols": [
        ("trace_id", 1, "bytes", True),
        ("span_id", 2, "bytes", True),
        ("trace_state", 3, "string", True),
        ("parent_span_id", 4, "bytes", True),
        ("name", 5, "string", True),
        ("kind", 6, "uint64", True),
        ("start_time_unix_nano", 7, "fixed64", True),
        ("end_time_unix_nano", 8, "fixed64", True),
        ("attributes", 9, "bytes", True),
        ("dropped_attributes_count", 10, "uint64", True),
        ("events", 11, "bytes", True),
        ("dropped_events_count", 12, "uint64", True),
        ("links", 13, "bytes", True),
        ("dropped_links_count", 14, "uint64", True),
        ("status", 15, "bytes", True),
        ("flags", 16, "fixed32", True),
    ],
    "LogCols": [
        ("time_unix_nano", 1, "fixed64", True),
        ("severity_number", 2, "uint64", True),
        ("severity_text", 3, "string", True),
        ("body", 5, "bytes", True),
        ("attributes", 6, "bytes", True),
        ("dropped_attributes_count", 7, "uint64", True),
        ("flags", 8, "fixed32", True),
        ("trace_id", 9, "bytes", True),
        ("span_id", 10, "bytes", True),
        ("observed_time_unix_nano", 11, "fixed64", True),
        ("event_name", 12, "string", True),
    ],
    # -- metrics -----------------------------------------------------------------------
    "MetricsRequest": [("resource_metrics", 1, "ResourceMetrics", True)],
    "ResourceMetrics": [("resource", 1, "bytes", False), ("scope_metrics", 2, "ScopeMetrics", True)],
    "ScopeMetrics": [("scope", 1, "bytes", False), ("metrics", 2, "Metric", True)],
    "Metric": [
        ("name", 1, "string", False),
        ("description", 2, "string", False),
        ("unit", 3, "string", False),
        ("gauge", 5, "Gauge@data", False),
        ("sum", 7, "Sum@data", False),
        ("histogram", 9, "Histogram@data", False),
        ("exponential_histogram", 10, "ExponentialHistogram@data", False),
        ("summary", 11, "Summary@data", False),
    ],
    "Gauge": [("data_points", 1, "NumberDataPoint", True)],
    "Sum": [
        ("data_points", 1, "NumberDataPoint", True),
        ("aggregation_temporality", 2, "int32", False),
        ("is_monotonic", 3, "bool", False),
    ],
    "Histogram": [
        ("data_points", 1, "HistogramDataPoint", True),
        ("aggregation_temporality", 2, "int32", False),
    ],
    "ExponentialHistogram": [
        ("data_points", 1, "ExponentialHistogramDataPoint", True),
        ("aggregation_temporality", 2, "int32", False),
    ],
    "Summary": [("data_points", 1, "SummaryDataPoint", True)],
    "NumberDataPoint": [
        ("start_time_unix_nano", 2, "fixed64", False),
        ("time_unix_nano", 3, "fixed64", False),
        ("as_double", 4, "double@value", False),
        ("exemplars", 5, "bytes", True),
        ("as_int", 6, "sfixed64@value", False),
        ("attributes", 7, "bytes", True),
        ("flags", 8, "uint32", False),
    ],
    "HistogramDataPoint": [
        ("start_time_unix_nano", 2, "fixed64", False),
        ("time_unix_nano", 3, "fixed64", False),
        ("count", 4, "fixed64", False),
        ("sum", 5, "optional double", False),
        ("bucket_counts", 6, "fixed64", True),
        ("explicit_bounds", 7, "double", True),
        ("exemplars", 8, "bytes", True),
        ("attributes", 9, "bytes", True),
        ("flags", 10, "uint32", False),
        ("min", 11, "optional double", False),
        ("max", 12, "optional double", False),
    ],
    "ExponentialHistogramDataPoint": [
        ("attributes", 1, "bytes", True),
        ("start_time_unix_nano", 2, "fixed64", False),
        ("time_unix_nano", 3, "fixed64", False),
        ("count", 4, "fixed64", False),
        ("sum", 5, "optional double", False),
        ("scale", 6, "sint32", False),
        ("zero_count", 7, "fixed64", False),
        ("positive", 8, "Buckets", False),
        ("negative", 9, "Buckets", False),
        ("flags", 10, "uint32", False),
        ("exemplars", 11, "bytes", True),
        ("min", 12, "optional double", False),
        ("max", 13, "optional double", False),
        ("zero_threshold", 14, "double", False),
    ],
    "Buckets": [("offset", 1, "sint32", False), ("bucket_counts", 2, "uint64", True)],
    "SummaryDataPoint": [
        ("start_time_unix_nano", 2, "fixed64", False),
        ("time_unix_nano", 3, "fixed64", False),
        ("count", 4, "fixed64", False),
        ("sum", 5, "double", False),
        ("quantile_values", 6, "ValueAtQuantile", True),
        ("attributes", 7, "bytes", True),
        ("flags", 8, "uint32", False),
    ],
    "ValueAtQuantile": [("quantile", 1, "double", False), ("value", 2, "double", False)],
}


def _build() -> dict[str, Any]:
    fdp = descriptor_pb2.FileDescriptorProto(name="faultlens/shadow.proto", package=_PACKAGE, syntax="proto3")
    for name, fields in _MESSAGES.items():
        msg = fdp.message_type.add(name=name)
        oneofs: dict[str, int] = {}
        for fname, number, spec, repeated in fields:
            ftype, _, oneof = spec.partition("@")
            field = msg.field.add(name=fname, number=number, label=_REP if repeated else _OPT)
            if oneof:
                if oneof not in oneofs:
                    oneofs[oneof] = len(msg.oneof_decl)
                    msg.oneof_decl.add(name=oneof)
                field.oneof_index = oneofs[oneof]
            if ftype.startswith("optional "):
                # proto3 explicit presence is a synthetic oneof holding the one field.
                field.type = _TYPES[ftype.removeprefix("optional ")]
                field.proto3_optional = True
                field.oneof_index = len(msg.oneof_decl)
                msg.oneof_decl.add(name=f"_{fname}")
            elif ftype in _TYPES:
                field.type = _TYPES[ftype]
            else:
                field.type = _F.TYPE_MESSAGE
                field.type_name = f".{_PACKAGE}.{ftype}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in _MESSAGES
    }


_CLASSES = _build()

Resource: Any = _CLASSES["Resource"]
Scope: Any = _CLASSES["Scope"]
KeyValueCols: Any = _CLASSES["KeyValueCols"]
AnyValueCols: Any = _CLASSES["AnyValueCols"]
TraceRequest: Any = _CLASSES["TraceRequest"]
Event: Any = _CLASSES["Event"]
Link: Any = _CLASSES["Link"]
Status: Any = _CLASSES["Status"]
LogsRequest: Any = _CLASSES["LogsRequest"]
Span: Any = _CLASSES["Span"]
SpanCols: Any = _CLASSES["SpanCols"]
LogRecord: Any = _CLASSES["LogRecord"]
LogCols: Any = _CLASSES["LogCols"]
MetricsRequest: Any = _CLASSES["MetricsRequest"]


def malformed(what: str, exc: BaseException | None = None) -> InvalidRequest:
    """The error for bytes that are not valid OTLP protobuf."""
    detail = f": {exc}" if exc is not None and str(exc) else ""
    return InvalidRequest(f"malformed OTLP protobuf: invalid {what}{detail}")


def parse(cls: Any, data: bytes, what: str) -> Any:
    """Parse ``data`` with a shadow (or real) class; any parse failure is InvalidRequest."""
    try:
        return cls.FromString(data)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise malformed(what, exc) from None
