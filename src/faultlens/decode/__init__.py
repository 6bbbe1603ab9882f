"""decode: OTLP (protobuf or JSON) to Arrow tables, once per request.

Public surface::

    parse_protobuf(signal, data) -> Export*ServiceRequest       # InvalidRequest when malformed
    parse_json(signal, data) -> Export*ServiceRequest           # OTLP/JSON: hex ids, camelCase
    decode_request(signal, data, *, json) -> DecodedBatch       # parse + decode, raw kept
    decode_message(signal, message, raw=None) -> DecodedBatch   # already-parsed request
    encode_response(signal, batch, *, json) -> bytes            # Export*ServiceResponse
    encode_status(code, message, *, json) -> bytes              # google.rpc.Status body

Tables follow :mod:`faultlens.decode.schema`; partial success (items rejected one by one)
is reported in ``DecodedBatch.rejected`` / ``error_message``. See ``spans``, ``logs`` and
``metrics`` for each signal's rules and ``attributes`` for how attributes become JSON.
"""

from faultlens.decode.base import SCHEMAS, DecodedBatch
from faultlens.decode.parse import parse_json, parse_protobuf
from faultlens.decode.request import decode_bytes, decode_message, decode_request
from faultlens.decode.response import build_response, encode_response, encode_status

__all__ = [
    "SCHEMAS",
    "DecodedBatch",
    "build_response",
    "decode_bytes",
    "decode_message",
    "decode_request",
    "encode_response",
    "encode_status",
    "parse_json",
    "parse_protobuf",
]
