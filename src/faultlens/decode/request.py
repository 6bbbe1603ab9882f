"""Whole requests: bytes or messages to a :class:`DecodedBatch`.

The protobuf path never builds the generated message: the bytes go straight to the
signal's columnar decoder (see :mod:`faultlens.decode._shadow` for why). An OTLP/JSON
body is turned into the same protobuf bytes and takes the same road, so both encodings are
decoded by the same code: :mod:`faultlens.decode._jsonwire` writes the bytes of requests
of the usual shapes directly; any other body (unusual spellings, invalid requests) is
parsed to the generated message by :func:`parse_json` (the reference, which also words
every error) and serialized.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
from google.protobuf.message import Message

from faultlens.decode._jsonwire import json_to_wire
from faultlens.decode.base import DecodedBatch
from faultlens.decode.logs import decode_logs
from faultlens.decode.metrics import decode_metrics
from faultlens.decode.parse import REQUEST_TYPES, parse_json
from faultlens.decode.spans import decode_spans
from faultlens.errors import InvalidRequest
from faultlens.types import Signal

__all__ = ["decode_bytes", "decode_message", "decode_request", "json_reference_bytes"]

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
        raw = json_to_wire(signal, data)
        return decode_bytes(signal, json_reference_bytes(signal, data) if raw is None else raw)
    return decode_bytes(signal, data)


def json_reference_bytes(signal: Signal, data: bytes) -> bytes:
    """An OTLP/JSON body as protobuf bytes by the reference path (``json_format``).

    :func:`decode_request` takes it when the fast path declines a body; the tests and
    ``bench/decode.py`` hold the fast path to it.
    """
    message = parse_json(signal, data)
    try:
        return message.SerializeToString()
    except Exception as exc:  # upb refuses to serialize what it cannot (e.g. too deep)
        raise InvalidRequest(f"invalid OTLP/JSON {signal.value} request: {exc}") from None
