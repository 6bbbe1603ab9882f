"""The ``google.rpc.Status`` both transports send for a refusal, with the same details.

The OTLP specification asks for details in two cases, and both receivers add them here so
that a client sees the same thing over gRPC and HTTP:

- a retryable refusal (``Overloaded``) carries a ``google.rpc.RetryInfo`` with the delay
  (on gRPC in the ``grpc-status-details-bin`` trailer, on HTTP in the body next to the
  ``Retry-After`` header);
- bad data (``InvalidRequest``, HTTP 400) carries a ``google.rpc.BadRequest`` describing it.
"""

from __future__ import annotations

from google.protobuf import any_pb2, duration_pb2, json_format
from google.rpc import error_details_pb2, status_pb2

from faultlens.errors import InvalidRequest, OtlpStatus

__all__ = ["encode_rich_status", "retry_info", "rich_status"]


def retry_info(retry_after_s: float) -> error_details_pb2.RetryInfo:
    seconds = max(0.0, retry_after_s)
    delay = duration_pb2.Duration(seconds=int(seconds), nanos=round((seconds % 1) * 1e9))
    return error_details_pb2.RetryInfo(retry_delay=delay)


def rich_status(status: OtlpStatus, error: BaseException | None = None) -> status_pb2.Status:
    """``status`` as a google.rpc.Status, with RetryInfo / BadRequest details where they apply."""
    details = []
    if status.retry_after_s is not None:
        details.append(retry_info(status.retry_after_s))
    if isinstance(error, InvalidRequest):
        violation = error_details_pb2.BadRequest.FieldViolation(field="body", description=status.message)
        details.append(error_details_pb2.BadRequest(field_violations=[violation]))
    packed = []
    for detail in details:
        wrapper = any_pb2.Any()
        wrapper.Pack(detail)
        packed.append(wrapper)
    return status_pb2.Status(code=status.grpc_code.value[0], message=status.message, details=packed)


def encode_rich_status(status: OtlpStatus, error: BaseException | None = None, *, json: bool) -> bytes:
    """The HTTP error body: the rich status as protobuf, or as OTLP/JSON (camelCase keys)."""
    message = rich_status(status, error)
    if json:
        return json_format.MessageToJson(message, indent=None).encode()
    body: bytes = message.SerializeToString()
    return body
