"""OTLP wire details shared by the transports and the test backend: service paths, message
classes per signal, partial-success fields, and the OTLP/JSON mapping.

OTLP/JSON is proto3 JSON with two differences that matter here: trace and span ids are hex,
not base64, and enums are integers. :func:`to_json` and :func:`from_json` apply them.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from faultlens.types import Signal

GRPC_METHOD: dict[Signal, str] = {
    Signal.TRACES: "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    Signal.METRICS: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    Signal.LOGS: "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
REQUEST_TYPE: dict[Signal, type[Message]] = {
    Signal.TRACES: trace_service_pb2.ExportTraceServiceRequest,
    Signal.METRICS: metrics_service_pb2.ExportMetricsServiceRequest,
    Signal.LOGS: logs_service_pb2.ExportLogsServiceRequest,
}
RESPONSE_TYPE: dict[Signal, type[Message]] = {
    Signal.TRACES: trace_service_pb2.ExportTraceServiceResponse,
    Signal.METRICS: metrics_service_pb2.ExportMetricsServiceResponse,
    Signal.LOGS: logs_service_pb2.ExportLogsServiceResponse,
}
# Name of the rejected-count field inside ``partial_success``.
REJECTED_FIELD: dict[Signal, str] = {
    Signal.TRACES: "rejected_spans",
    Signal.METRICS: "rejected_data_points",
    Signal.LOGS: "rejected_log_records",
}
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId"})


def partial_success(signal: Signal, response: bytes) -> tuple[int, str]:
    """``(rejected, error_message)`` of a serialized export response; ``(0, "")`` if unreadable."""
    if not response:
        return 0, ""
    try:
        msg: Any = RESPONSE_TYPE[signal].FromString(response)
    except Exception:
        return 0, ""
    ps = msg.partial_success
    return int(getattr(ps, REJECTED_FIELD[signal])), str(ps.error_message)


def partial_success_json(signal: Signal, response: bytes) -> tuple[int, str]:
    """Same as :func:`partial_success` for an OTLP/JSON response body."""
    if not response.strip():
        return 0, ""
    try:
        doc = json.loads(response)
        ps = doc.get("partialSuccess") or doc.get("partial_success") or {}
        camel = "".join(w.capitalize() if i else w for i, w in enumerate(REJECTED_FIELD[signal].split("_")))
        rejected = ps.get(camel, ps.get(REJECTED_FIELD[signal], 0))
        message = ps.get("errorMessage", ps.get("error_message", ""))
        return int(rejected or 0), str(message or "")
    except (ValueError, AttributeError, TypeError):
        return 0, ""


def _map_ids(node: Any, convert: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (convert(v) if k in _ID_KEYS and isinstance(v, str) else _map_ids(v, convert))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_map_ids(v, convert) for v in node]
    return node


def to_json(signal: Signal, body: bytes) -> bytes:
    """Serialized protobuf request -> OTLP/JSON bytes."""
    msg = REQUEST_TYPE[signal].FromString(body)
    doc = json_format.MessageToDict(msg, use_integers_for_enums=True)
    doc = _map_ids(doc, lambda v: base64.b64decode(v).hex())
    return json.dumps(doc, separators=(",", ":")).encode()


def from_json(signal: Signal, body: bytes) -> Message:
    """OTLP/JSON bytes -> request message (hex ids accepted, as the spec requires)."""
    doc = _map_ids(json.loads(body), lambda v: base64.b64encode(bytes.fromhex(v)).decode())
    msg = REQUEST_TYPE[signal]()
    json_format.ParseDict(doc, msg, ignore_unknown_fields=True)
    return msg


def response_json(signal: Signal, rejected: int = 0, message: str = "") -> bytes:
    """An OTLP/JSON export response, with partial success when ``rejected`` or ``message`` is set."""
    if not rejected and not message:
        return b"{}"
    camel = "".join(w.capitalize() if i else w for i, w in enumerate(REJECTED_FIELD[signal].split("_")))
    return json.dumps({"partialSuccess": {camel: str(rejected), "errorMessage": message}}).encode()


def response_proto(signal: Signal, rejected: int = 0, message: str = "") -> bytes:
    """A serialized export response, with partial success when ``rejected`` or ``message`` is set."""
    msg: Any = RESPONSE_TYPE[signal]()
    if rejected or message:
        setattr(msg.partial_success, REJECTED_FIELD[signal], rejected)
        msg.partial_success.error_message = message
    return bytes(msg.SerializeToString())
