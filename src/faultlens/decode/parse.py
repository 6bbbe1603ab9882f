"""OTLP request bodies (protobuf or OTLP/JSON) to the generated ``Export*ServiceRequest``.

Every failure is an :class:`~faultlens.errors.InvalidRequest` with a message a client can
act on; no parser exception escapes.

OTLP/JSON is the protobuf JSON mapping with the differences the OTLP specification sets:
``traceId``, ``spanId`` and ``parentSpanId`` are hex strings, not base64. Beyond the
specification we are lenient where it costs nothing: keys may be lowerCamelCase or the
proto snake_case names, 64-bit integers may be strings or numbers, enums may be integers
or names, unknown fields are ignored, and an id that is not hex but is valid base64 (what
a generic protobuf JSON encoder writes) is accepted too.
"""

from __future__ import annotations

import base64
import binascii
import json
import string
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from faultlens.errors import InvalidRequest
from faultlens.types import Signal

__all__ = ["MAX_JSON_DEPTH", "REQUEST_TYPES", "parse_json", "parse_protobuf"]

REQUEST_TYPES: dict[Signal, type[Message]] = {
    Signal.TRACES: ExportTraceServiceRequest,
    Signal.METRICS: ExportMetricsServiceRequest,
    Signal.LOGS: ExportLogsServiceRequest,
}

# Nesting of JSON objects/arrays allowed in a request. A span attribute sits at depth ~10;
# each level of AnyValue nesting adds 3. protobuf refuses ~100 message levels, which is
# about this many JSON levels, so both encodings refuse the same requests.
MAX_JSON_DEPTH = 200
# Passed to json_format so that it refuses deep messages before Python recursion does.
_MAX_MESSAGE_DEPTH = 100

_ID_KEYS = frozenset({"traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"})
_HEX = frozenset(string.hexdigits)


def parse_protobuf(signal: Signal, data: bytes) -> Message:
    """Parse a binary protobuf request body of ``signal``."""
    message = REQUEST_TYPES[signal]()
    try:
        message.ParseFromString(bytes(data))
    except (DecodeError, RecursionError, ValueError, TypeError) as exc:
        raise InvalidRequest(
            f"malformed OTLP protobuf {signal.value} request: {exc or type(exc).__name__}"
        ) from None
    return message


def parse_json(signal: Signal, data: bytes) -> Message:
    """Parse an OTLP/JSON request body of ``signal`` (UTF-8 JSON object)."""
    try:
        doc = json.loads(bytes(data))
    except RecursionError:
        raise InvalidRequest(f"OTLP/JSON request nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidRequest(f"malformed OTLP/JSON {signal.value} request: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidRequest(
            f"OTLP/JSON {signal.value} request must be a JSON object, got {type(doc).__name__}"
        )
    _prepare(doc)
    message = REQUEST_TYPES[signal]()
    try:
        json_format.ParseDict(
            doc, message, ignore_unknown_fields=True, max_recursion_depth=_MAX_MESSAGE_DEPTH
        )
    except RecursionError:
        raise InvalidRequest(f"OTLP/JSON request nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (json_format.ParseError, ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise InvalidRequest(f"invalid OTLP/JSON {signal.value} request: {exc}") from None
    return message


def _prepare(doc: dict[str, Any]) -> None:
    """Check nesting depth and turn hex ids into the base64 json_format expects, in place.

    Iterative, so that a hostile document cannot exhaust the Python stack here.
    """
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidRequest(f"OTLP/JSON request nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _ID_KEYS and isinstance(value, str):
                    node[key] = _id_to_base64(key, value)
                elif isinstance(value, dict | list):
                    stack.append((value, depth + 1))
        else:
            for value in node:
                if isinstance(value, dict | list):
                    stack.append((value, depth + 1))


def _id_to_base64(key: str, value: str) -> str:
    if len(value) % 2 == 0 and _HEX.issuperset(value):
        return base64.b64encode(bytes.fromhex(value)).decode("ascii")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise InvalidRequest(f"{key} must be a hex string, got {shown!r}") from None
    return value
