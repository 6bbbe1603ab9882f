"""Export responses and error bodies, in protobuf or OTLP/JSON.

A response carries ``partial_success`` only when something was rejected, as the OTLP
specification asks; otherwise it is the empty message (``{}`` in JSON).
"""

from __future__ import annotations

import json as _json
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from faultlens.decode.base import DecodedBatch
from faultlens.types import Signal

__all__ = ["build_response", "encode_response", "encode_status", "serialize"]

_RESPONSES: dict[Signal, tuple[type[Message], str]] = {
    Signal.TRACES: (ExportTraceServiceResponse, "rejected_spans"),
    Signal.METRICS: (ExportMetricsServiceResponse, "rejected_data_points"),
    Signal.LOGS: (ExportLogsServiceResponse, "rejected_log_records"),
}


def build_response(signal: Signal, batch: DecodedBatch) -> Message:
    """The Export*ServiceResponse for a decoded batch (for gRPC, which wants the message)."""
    cls, field = _RESPONSES[signal]
    response: Any = cls()
    if batch.rejected or batch.error_message:
        setattr(response.partial_success, field, batch.rejected)
        response.partial_success.error_message = batch.error_message
    built: Message = response
    return built


def serialize(message: Message, *, json: bool) -> bytes:
    """A message as protobuf bytes or compact OTLP/JSON (lowerCamelCase keys)."""
    if not json:
        return message.SerializeToString()
    as_dict = json_format.MessageToDict(message, use_integers_for_enums=True)
    return _json.dumps(as_dict, separators=(",", ":"), ensure_ascii=False).encode()


def encode_response(signal: Signal, batch: DecodedBatch, *, json: bool) -> bytes:
    """The serialized export response for a decoded batch."""
    return serialize(build_response(signal, batch), json=json)


def encode_status(code: int, message: str, *, json: bool) -> bytes:
    """A ``google.rpc.Status`` error body (``code`` is a gRPC status code number)."""
    return serialize(Status(code=code, message=message), json=json)
