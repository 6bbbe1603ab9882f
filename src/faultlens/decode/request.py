"""Whole requests: bytes or messages to a :class:`DecodedBatch`.

The protobuf path never builds the generated message: the bytes go straight to the
signal's columnar decoder (see :mod:`faultlens.decode._shadow` for why). The OTLP/JSON
path parses to the generated message first, then serializes it and takes the same road,
so both encodings are decoded by the same code.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
from google.protobuf.message import Message

from faultlens.decode.base import DecodedBatch
from faultlens.decode.logs import decode_logs
from faultlens.decode.metrics import decode_metrics
from faultlens.decode.parse import REQUEST_TYPES, parse_json
from faultlens.decode.spans import decode_spans
from faultlens.errors import InvalidRequest
from faultlens.types import Signal

__all__ = ["decode_bytes", "decode_message", "decode_request"]

_DECODERS: dict[Signal, Callable[[bytes], tuple[pa.Table, int, str]]] = {
    Signal.TRACES: decode_spans,
    Signal.METRICS: decode_metrics,
    Signal.LOGS: decode_logs,
}


def decode_bytes(signal: Signal, data: bytes) -> DecodedBatch:
    """Decode a serialized protobuf Export*ServiceRequest; ``raw`` is ``data``."""
    raw = bytes(data)
    table, rejected, message = _DECODERS[signal](raw)
    return DecodedBatch(signal, table, rejected, message, raw)


def decode_message(signal: Signal, message: Message, raw: bytes | None = None) -> DecodedBatch:
    """Decode a parsed Export*ServiceRequest.

    ``raw`` is its protobuf serialization when the caller has it (saves serializing again);
    the batch's ``raw`` is always set.
    """
    expected = REQUEST_TYPES[signal]
    if not isinstance(message, expected):
        raise TypeError(f"{signal.value} needs a {expected.__name__}, got {type(message).__name__}")
    return decode_bytes(signal, message.SerializeToString() if raw is None else raw)


def decode_request(signal: Signal, data: bytes, *, json: bool) -> DecodedBatch:
    """Parse and decode one request body. Raises :class:`InvalidRequest` when it is malformed."""
    if json:
        message = parse_json(signal, data)
        try:
            raw = message.SerializeToString()
        except Exception as exc:  # upb refuses to serialize what it cannot (e.g. too deep)
            raise InvalidRequest(f"invalid OTLP/JSON {signal.value} request: {exc}") from None
        return decode_bytes(signal, raw)
    return decode_bytes(signal, data)
