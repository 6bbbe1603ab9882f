"""OTLP/JSON requests straight to protobuf wire bytes, for the common shapes.

Why: the reference path (:func:`faultlens.decode.parse.parse_json`) hands the parsed
document to ``json_format.ParseDict``, which walks every field of every span through
descriptors and sets it on a upb message one Python call at a time; that walk costs far
more than the JSON parse and the columnar decode together. Here ``orjson`` parses the body
and a hand-written encoder per message type writes the wire bytes directly: each field is
read with one ``dict.get`` and written as ready-made tag bytes, and a KeyValue whose value
is a string is encoded once per request and reused (attribute keys and most values repeat
from span to span). The bytes then take the protobuf road (:func:`decode_bytes`), so the
native span decoder reads them.

The contract is narrow on purpose: :func:`json_to_wire` returns exactly the bytes that
``parse_json(signal, data).SerializeToString()`` returns, or ``None`` when the request is
anything it is not sure of; the caller then takes the reference path, which also produces
every error message. So this module never raises its own errors and never accepts what the
reference refuses. What it handles (the way the OpenTelemetry SDKs and the Collector write
OTLP/JSON): camelCase or snake_case keys (not both for one field), hex ids, 64-bit integers
as decimal strings or numbers, enums as numbers or their names, ``null`` as an absent
field, unknown keys with scalar values (ignored, as the reference does), every AnyValue
kind but ``stringValueStrindex``, nested at most :data:`MAX_ANY_DEPTH` levels. What sends a
request to the reference path: any other spelling of a value (``1.0`` for an integer,
``"1.5"`` for a double, an id in base64), unknown keys holding objects or arrays (the
reference checks their depth) or named like ids or extensions, the fields this encoder does
not write (``entityRefs``, ``keyStrindex``), and invalid requests.

Traces first go through a C twin of this encoder when the native extension is built
(``traces_json_to_wire`` in :mod:`faultlens.decode._native`, ``native/jsonwire.c``): it
walks the same document for the shape senders use most (camelCase keys only, numbers for
enums, no ``bytesValue``, see ``jsonwire.h``) and returns the very bytes the encoder below
would, or None, and then the encoder below runs. ``FAULTLENS_NATIVE_DECODE=0`` turns it off
with the native span decoder.

Wire form, as upb serializes (the tests compare bytes): fields in field-number order,
proto3 scalars left out when zero or empty, a message field present (even empty) when the
JSON names it with an object, a oneof member or a proto3 ``optional`` field written even
when zero, a double without presence left out only when its bits are zero (``-0.0`` is
written), repeated numbers packed, negative int32 (enums) sign-extended to ten bytes.
"""

from __future__ import annotations

import base64
import gc
import re
import struct
from collections.abc import Callable
from typing import Any

import orjson
from google.protobuf.descriptor import Descriptor
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs, SeverityNumber
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Exemplar,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
    Summary,
    SummaryDataPoint,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from faultlens.decode import spans
from faultlens.types import Signal

__all__ = ["MAX_ANY_DEPTH", "json_to_wire"]

# AnyValue nesting (arrays and kvlists inside values) handled here; deeper goes to the
# reference path, whose depth limits then apply.
MAX_ANY_DEPTH = 16

_U32 = 2**32 - 1
_U64 = 2**64 - 1
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1
_ID_KEYS = frozenset({"traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"})
# json_format treats such keys as extensions and refuses them even when ignoring unknown fields.
_EXTENSION_NAME = re.compile(r"\[[a-zA-Z0-9\._]*\]$")
_DOUBLE_WORDS = frozenset({"NaN", "Infinity", "-Infinity"})
_pack_double = struct.Struct("<d").pack
_fromhex = bytes.fromhex
_SMALL = [bytes((i,)) for i in range(128)]


def _native_encoders() -> dict[Signal, Callable[[Any], bytes | None]]:
    """The C encoders that run before the Python ones: traces, when native code is on."""
    if not spans.NATIVE:
        return {}
    from faultlens.decode import _native

    # an extension built before it had the encoder (an install not yet rebuilt) has none
    traces = getattr(_native, "traces_json_to_wire", None)
    return {} if traces is None else {Signal.TRACES: traces}


_NATIVE_ENCODERS = _native_encoders()


class _Bail(Exception):
    """Not sure: let the reference path decide."""


# What a surprise in a value raises on the way (a wrong type, a bad base64, a lone
# surrogate, a huge number): all mean "take the reference path".
_BAIL = (_Bail, ValueError, TypeError, AttributeError, KeyError, OverflowError, RecursionError)


def json_to_wire(signal: Signal, data: bytes) -> bytes | None:
    """The protobuf serialization of an OTLP/JSON request, or None to take the reference path.

    The cyclic garbage collector is paused meanwhile. The parsed document is a tree of a
    few dozen containers per span, free of cycles, that lives only for this call; with the
    collector running, its young generations keep promoting the document's containers,
    which soon triggers full collections, and in a server a full collection walks every
    object of the process. Reference counting frees the document before the collector
    resumes, so the pause leaves nothing behind for it.
    """
    encode = _ENCODERS.get(signal)
    if encode is None:
        return None
    collecting = gc.isenabled()
    if collecting:
        gc.disable()
    try:
        return _encode_body(encode, _NATIVE_ENCODERS.get(signal), data)
    finally:
        if collecting:
            gc.enable()


def _encode_body(
    encode: Callable[[Any], bytes], native: Callable[[Any], bytes | None] | None, data: bytes
) -> bytes | None:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if native is not None and (wire := native(doc)) is not None:
        return wire
    try:
        return encode(doc)
    except _BAIL:
        return None


# -- field names -----------------------------------------------------------------------


class _Names:
    """How one message's JSON keys map to its fields, from the generated descriptor.

    ``camel``: the lowerCamelCase names this encoder writes (the fast check: a dict whose
    keys are all among them needs no renaming). ``canonical`` maps both spellings of a
    field to the camelCase one; a field missing from ``written`` is one the encoder does
    not write, and its presence sends the request to the reference path.
    """

    def __init__(self, descriptor: Descriptor, written: frozenset[str]) -> None:
        fields = {f.json_name for f in descriptor.fields}
        unknown = written - fields
        if unknown:
            raise RuntimeError(f"{descriptor.full_name} has no fields {sorted(unknown)}")
        self.camel = written
        self.canonical = {f.json_name: f.json_name for f in descriptor.fields}
        self.canonical.update({f.name: f.json_name for f in descriptor.fields})


def _names(descriptor: Descriptor, *written: str) -> _Names:
    return _Names(descriptor, frozenset(written))


def _canonical(d: dict[str, Any], names: _Names) -> dict[str, Any]:
    """``d`` with camelCase keys only, unknown scalar keys dropped; bails where unsure."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = names.canonical.get(key)
        if name is None:
            if isinstance(value, dict | list) or key in _ID_KEYS or _EXTENSION_NAME.match(key):
                raise _Bail
            continue
        if value is None:  # null: the field stays unset, as in the reference
            continue
        if name in out or name not in names.camel:
            raise _Bail
        out[name] = value
    return out


def _fields(d: Any, names: _Names) -> dict[str, Any]:
    if type(d) is not dict:
        raise _Bail
    if names.camel.issuperset(d):
        return d
    return _canonical(d, names)


# -- scalars ---------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    """Unsigned varint of 0 <= n < 2**64."""
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _ld(tag: bytes, body: bytes) -> bytes:
    return tag + _varint(len(body)) + body


def _uint(v: Any, high: int) -> int:
    if type(v) is str and v.isdigit() and v.isascii():
        n = int(v)
    elif type(v) is int:
        n = v
    else:
        raise _Bail
    if not 0 <= n <= high:
        raise _Bail
    return n


def _int(v: Any, low: int, high: int) -> int:
    if type(v) is str:
        digits = v[1:] if v[:1] == "-" else v
        if not (digits.isdigit() and digits.isascii()):
            raise _Bail
        n = int(v)
    elif type(v) is int:
        n = v
    else:
        raise _Bail
    if not low <= n <= high:
        raise _Bail
    return n


def _enum(v: Any, by_name: dict[str, int]) -> int:
    if type(v) is str:
        return by_name[v]  # KeyError: a name not in the enum (or digits) -> reference
    if type(v) is not int or not _I32_MIN <= v <= _I32_MAX:
        raise _Bail
    return v


def _string(tag: bytes, v: Any) -> bytes:
    """A proto3 string field: left out when empty."""
    if type(v) is not str:
        raise _Bail
    if not v:
        return b""
    return _ld(tag, v.encode())


def _hex_id(tag: bytes, v: Any) -> bytes:
    """An id field: a hex string (json_format's base64 is the reference path's business)."""
    b = bytes.fromhex(v)  # TypeError if not a str, ValueError if not hex
    if len(b) * 2 != len(v):  # fromhex skips whitespace; an id with any is not hex
        raise _Bail
    return _ld(tag, b) if b else b""


def _fixed64(tag: bytes, v: Any) -> bytes:
    n = _uint(v, _U64)
    return tag + n.to_bytes(8, "little") if n else b""


def _fixed32(tag: bytes, v: Any) -> bytes:
    n = _uint(v, _U32)
    return tag + n.to_bytes(4, "little") if n else b""


def _uint32(tag: bytes, v: Any) -> bytes:
    n = _uint(v, _U32)
    return tag + _varint(n) if n else b""


def _enum_field(tag: bytes, v: Any, by_name: dict[str, int]) -> bytes:
    n = _enum(v, by_name)
    return tag + _varint(n & _U64) if n else b""


def _double(v: Any) -> float:
    if type(v) is float:
        if v - v != 0.0:  # inf or nan: the reference refuses unquoted ones
            raise _Bail
        return v
    if type(v) is int or v in _DOUBLE_WORDS:
        return float(v)
    raise _Bail


# -- AnyValue and KeyValue ---------------------------------------------------------------

_ANY = _names(
    AnyValue.DESCRIPTOR,
    "stringValue",
    "boolValue",
    "intValue",
    "doubleValue",
    "arrayValue",
    "kvlistValue",
    "bytesValue",
)
_KV = _names(KeyValue.DESCRIPTOR, "key", "value")
_VALUES = _names(ArrayValue.DESCRIPTOR, "values")
_KVLIST = _names(KeyValueList.DESCRIPTOR, "values")
assert _VALUES.canonical == _names(KeyValueList.DESCRIPTOR, "values").canonical

# Attribute cache of one request: (tag, key, value kind, string value) -> tag, length,
# KeyValue; and key (a str, never equal to such a tuple) -> the key's encoded field.
_Memo = tuple[bytes, Any, Any, Any]
_Cache = dict[_Memo | str, bytes]


def _any_value(v: Any, depth: int) -> bytes:
    if type(v) is not dict:
        raise _Bail
    if len(v) != 1:
        if v:  # several members of the oneof, or nulls beside one: the reference decides
            raise _Bail
        return b""
    ((kind, x),) = v.items()
    if kind not in _ANY.camel:
        v = _canonical(v, _ANY)
        if not v:
            return b""
        ((kind, x),) = v.items()
    if x is None:
        return b""
    if kind == "stringValue":
        if type(x) is not str:
            raise _Bail
        return _ld(b"\x0a", x.encode())
    if kind == "intValue":
        return b"\x18" + _varint(_int(x, _I64_MIN, _I64_MAX) & _U64)
    if kind == "boolValue":
        if type(x) is not bool:
            raise _Bail
        return b"\x10\x01" if x else b"\x10\x00"
    if kind == "doubleValue":
        return b"\x21" + _pack_double(_double(x))
    if kind == "bytesValue":
        if type(x) is not str:
            raise _Bail
        raw = x.encode()
        # what json_format does with a bytes field, so that both accept the same strings
        return _ld(b"\x3a", base64.urlsafe_b64decode(raw + b"=" * (4 - len(raw) % 4)))
    if depth >= MAX_ANY_DEPTH:
        raise _Bail
    if kind == "arrayValue":
        items = _fields(x, _VALUES).get("values")
        parts: list[bytes] = []
        if items is not None:
            if type(items) is not list:
                raise _Bail
            for item in items:
                parts.append(_ld(b"\x0a", _any_value(item, depth + 1)))
        return _ld(b"\x2a", b"".join(parts))
    # kvlistValue
    kvs = _fields(x, _KVLIST).get("values")
    parts = []
    if kvs is not None:
        _attributes(kvs, b"\x0a", parts.append, None, depth + 1)
    return _ld(b"\x32", b"".join(parts))


def _key_value(kv: Any, depth: int) -> bytes:
    """A KeyValue message, length-prefixed (its tag is the caller's)."""
    kv = _fields(kv, _KV)
    key = kv.get("key")
    body = b"" if key is None else _string(b"\x0a", key)
    value = kv.get("value")
    if value is not None:
        body += _ld(b"\x12", _any_value(value, depth))
    return _varint(len(body)) + body


def _attributes(
    kvs: Any, tag: bytes, out: Callable[[bytes], object], cache: _Cache | None, depth: int
) -> None:
    """Append each KeyValue of ``kvs`` to ``out``: ``tag``, length, message.

    With a ``cache``, a KeyValue of the common form ``{"key": k, "value": {kind: x}}`` with
    a string ``x`` is encoded once per request. Only entries whose key, kind and ``x`` are
    all strings are stored, so a hit cannot be a ``1`` taken for a ``True``.
    """
    if type(kvs) is not list:
        raise _Bail
    if cache is None:
        for kv in kvs:
            out(tag + _key_value(kv, depth))
        return
    get = cache.get
    for kv in kvs:
        # A KeyValue of the form seen before in this request costs one lookup. Anything of
        # another shape raises on the way (a kv or value that is no dict, a key missing, a
        # value with several members, an unhashable value) and takes _key_value_slow.
        try:
            if len(kv) == 2:
                ((kind, x),) = kv["value"].items()
                memo = (tag, kv["key"], kind, x)
                enc = get(memo)
                if enc is not None:
                    out(enc)
                    continue
            else:
                memo = None
        except (TypeError, AttributeError, KeyError, ValueError):
            memo = None
        out(_key_value_slow(kv, tag, memo, cache, depth))


def _key_value_slow(kv: Any, tag: bytes, memo: _Memo | None, cache: _Cache, depth: int) -> bytes:
    """``tag``, length and KeyValue, stored in ``cache`` when its key, kind and value are strings.

    Only such entries are stored: a string equals nothing but a string, so a hit in
    :func:`_attributes` is exactly a KeyValue encoded here (a ``1`` is never taken for a
    ``True``, nor ``1.0`` for ``1``). ``memo`` is ``(tag, key, kind, value)`` when ``kv``
    is ``{"key": key, "value": {kind: value}}``, else None.
    """
    if memo is not None:
        _, key, kind, x = memo
        if type(key) is str:
            key_field = cache.get(key)  # the key's field, once per request (keys repeat most)
            if key_field is None:
                key_field = cache[key] = _string(b"\x0a", key)
            if type(x) is str and type(kind) is str:
                if kind == "stringValue":
                    xb = x.encode()
                    av = b"\x0a" + _varint(len(xb)) + xb
                else:
                    av = _any_value(kv["value"], depth)
                enc = cache[memo] = tag + _key_value_bytes(key_field, av)
                return enc
            if type(x) is float and kind == "doubleValue":
                return tag + _key_value_bytes(key_field, b"\x21" + _pack_double(_double(x)))
            if (x is True or x is False) and kind == "boolValue":
                return tag + _key_value_bytes(key_field, b"\x10\x01" if x else b"\x10\x00")
    return tag + _key_value(kv, depth)


def _key_value_bytes(key_field: bytes, any_value: bytes) -> bytes:
    """A length-prefixed KeyValue of an encoded key field and an encoded AnyValue."""
    body = key_field + b"\x12" + _varint(len(any_value)) + any_value
    return _varint(len(body)) + body


# -- resource and scope ------------------------------------------------------------------

_RESOURCE = _names(Resource.DESCRIPTOR, "attributes", "droppedAttributesCount")
_SCOPE = _names(InstrumentationScope.DESCRIPTOR, "name", "version", "attributes", "droppedAttributesCount")


def _resource(d: Any, cache: _Cache) -> bytes:
    d = _fields(d, _RESOURCE)
    parts: list[bytes] = []
    attrs = d.get("attributes")
    if attrs is not None:
        _attributes(attrs, b"\x0a", parts.append, cache, 0)
    v = d.get("droppedAttributesCount")
    if v is not None:
        parts.append(_uint32(b"\x10", v))
    return b"".join(parts)


def _scope(d: Any, cache: _Cache) -> bytes:
    d = _fields(d, _SCOPE)
    parts: list[bytes] = []
    v = d.get("name")
    if v is not None:
        parts.append(_string(b"\x0a", v))
    v = d.get("version")
    if v is not None:
        parts.append(_string(b"\x12", v))
    attrs = d.get("attributes")
    if attrs is not None:
        _attributes(attrs, b"\x1a", parts.append, cache, 0)
    v = d.get("droppedAttributesCount")
    if v is not None:
        parts.append(_uint32(b"\x20", v))
    return b"".join(parts)


_Item = Callable[[Any, _Cache], bytes]


def _request(doc: Any, names: _Names, outer_key: str, inner_key: str, items_key: str, item: _Item) -> bytes:
    """``Export*ServiceRequest``: resources, their scopes, and each scope's items.

    All three levels have the same shape in traces and logs: ``resource`` (1), the list of
    scopes (2) and ``schemaUrl`` (3); a scope has ``scope`` (1), the items (2) and
    ``schemaUrl`` (3).
    """
    outer_names, inner_names = _OUTER[outer_key], _INNER[inner_key]
    doc = _fields(doc, names)
    resources = doc.get(outer_key)
    if resources is None:
        return b""
    if type(resources) is not list:
        raise _Bail
    cache: _Cache = {}
    out: list[bytes] = []
    for rs in resources:
        rs = _fields(rs, outer_names)
        parts: list[bytes] = []
        v = rs.get("resource")
        if v is not None:
            parts.append(_ld(b"\x0a", _resource(v, cache)))
        scopes = rs.get(inner_key)
        if scopes is not None:
            if type(scopes) is not list:
                raise _Bail
            for ss in scopes:
                parts.append(_ld(b"\x12", _scope_items(ss, inner_names, items_key, item, cache)))
        v = rs.get("schemaUrl")
        if v is not None:
            parts.append(_string(b"\x1a", v))
        out.append(_ld(b"\x0a", b"".join(parts)))
    return b"".join(out)


def _scope_items(ss: Any, names: _Names, items_key: str, item: _Item, cache: _Cache) -> bytes:
    ss = _fields(ss, names)
    parts: list[bytes] = []
    v = ss.get("scope")
    if v is not None:
        parts.append(_ld(b"\x0a", _scope(v, cache)))
    items = ss.get(items_key)
    if items is not None:
        if type(items) is not list:
            raise _Bail
        for it in items:
            body = item(it, cache)
            parts.append(b"\x12")
            parts.append(_varint(len(body)))
            parts.append(body)
    v = ss.get("schemaUrl")
    if v is not None:
        parts.append(_string(b"\x1a", v))
    return b"".join(parts)


# -- traces ------------------------------------------------------------------------------

_SPAN = _names(
    Span.DESCRIPTOR,
    "traceId",
    "spanId",
    "traceState",
    "parentSpanId",
    "name",
    "kind",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "attributes",
    "droppedAttributesCount",
    "events",
    "droppedEventsCount",
    "links",
    "droppedLinksCount",
    "status",
    "flags",
)
_EVENT = _names(Span.Event.DESCRIPTOR, "timeUnixNano", "name", "attributes", "droppedAttributesCount")
_LINK = _names(
    Span.Link.DESCRIPTOR, "traceId", "spanId", "traceState", "attributes", "droppedAttributesCount", "flags"
)
_STATUS = _names(Status.DESCRIPTOR, "message", "code")
_SPAN_KINDS: dict[str, int] = {k: int(v) for k, v in Span.SpanKind.items()}
_STATUS_CODES: dict[str, int] = {k: int(v) for k, v in Status.StatusCode.items()}


def _span(d: Any, cache: _Cache) -> bytes:
    d = _fields(d, _SPAN)
    parts: list[bytes] = []
    add = parts.append
    get = d.get
    # ids and times inline in their usual spelling (ids of the right length, times as
    # decimal strings of at most 19 digits, so below 2**64); the helpers take the rest.
    if (v := get("traceId")) is not None:
        b = _fromhex(v)
        add(b"\x0a\x10" + b if len(b) == 16 and len(v) == 32 else _hex_id(b"\x0a", v))
    if (v := get("spanId")) is not None:
        b = _fromhex(v)
        add(b"\x12\x08" + b if len(b) == 8 and len(v) == 16 else _hex_id(b"\x12", v))
    if (v := get("traceState")) is not None:
        add(_string(b"\x1a", v))
    if (v := get("parentSpanId")) is not None:
        b = _fromhex(v)
        add(b"\x22\x08" + b if len(b) == 8 and len(v) == 16 else _hex_id(b"\x22", v))
    if (v := get("name")) is not None:
        add(_string(b"\x2a", v))
    if (v := get("kind")) is not None:
        add(_enum_field(b"\x30", v, _SPAN_KINDS))
    if (v := get("startTimeUnixNano")) is not None:
        if type(v) is str and len(v) < 20 and v.isdigit() and v.isascii() and (n := int(v)):
            add(b"\x39" + n.to_bytes(8, "little"))
        else:
            add(_fixed64(b"\x39", v))
    if (v := get("endTimeUnixNano")) is not None:
        if type(v) is str and len(v) < 20 and v.isdigit() and v.isascii() and (n := int(v)):
            add(b"\x41" + n.to_bytes(8, "little"))
        else:
            add(_fixed64(b"\x41", v))
    if (v := get("attributes")) is not None:
        _attributes(v, b"\x4a", add, cache, 0)
    if (v := get("droppedAttributesCount")) is not None:
        add(_uint32(b"\x50", v))
    if (v := get("events")) is not None:
        if type(v) is not list:
            raise _Bail
        for ev in v:
            add(_ld(b"\x5a", _event(ev, cache)))
    if (v := get("droppedEventsCount")) is not None:
        add(_uint32(b"\x60", v))
    if (v := get("links")) is not None:
        if type(v) is not list:
            raise _Bail
        for link in v:
            add(_ld(b"\x6a", _link(link, cache)))
    if (v := get("droppedLinksCount")) is not None:
        add(_uint32(b"\x70", v))
    if (v := get("status")) is not None:
        add(_ld(b"\x7a", _status(v)))
    if (v := get("flags")) is not None:
        add(_fixed32(b"\x85\x01", v))
    return b"".join(parts)


def _event(d: Any, cache: _Cache) -> bytes:
    d = _fields(d, _EVENT)
    parts: list[bytes] = []
    if (v := d.get("timeUnixNano")) is not None:
        parts.append(_fixed64(b"\x09", v))
    if (v := d.get("name")) is not None:
        parts.append(_string(b"\x12", v))
    if (v := d.get("attributes")) is not None:
        _attributes(v, b"\x1a", parts.append, cache, 0)
    if (v := d.get("droppedAttributesCount")) is not None:
        parts.append(_uint32(b"\x20", v))
    return b"".join(parts)


def _link(d: Any, cache: _Cache) -> bytes:
    d = _fields(d, _LINK)
    parts: list[bytes] = []
    if (v := d.get("traceId")) is not None:
        parts.append(_hex_id(b"\x0a", v))
    if (v := d.get("spanId")) is not None:
        parts.append(_hex_id(b"\x12", v))
    if (v := d.get("traceState")) is not None:
        parts.append(_string(b"\x1a", v))
    if (v := d.get("attributes")) is not None:
        _attributes(v, b"\x22", parts.append, cache, 0)
    if (v := d.get("droppedAttributesCount")) is not None:
        parts.append(_uint32(b"\x28", v))
    if (v := d.get("flags")) is not None:
        parts.append(_fixed32(b"\x35", v))
    return b"".join(parts)


def _status(d: Any) -> bytes:
    d = _fields(d, _STATUS)
    out = b""
    if (v := d.get("message")) is not None:
        out = _string(b"\x12", v)
    if (v := d.get("code")) is not None:
        out += _enum_field(b"\x18", v, _STATUS_CODES)
    return out


# -- logs --------------------------------------------------------------------------------

_LOG = _names(
    LogRecord.DESCRIPTOR,
    "timeUnixNano",
    "severityNumber",
    "severityText",
    "body",
    "attributes",
    "droppedAttributesCount",
    "flags",
    "traceId",
    "spanId",
    "observedTimeUnixNano",
    "eventName",
)
_SEVERITIES: dict[str, int] = {k: int(v) for k, v in SeverityNumber.items()}


def _log_record(d: Any, cache: _Cache) -> bytes:
    d = _fields(d, _LOG)
    parts: list[bytes] = []
    add = parts.append
    get = d.get
    if (v := get("timeUnixNano")) is not None:
        add(_fixed64(b"\x09", v))
    if (v := get("severityNumber")) is not None:
        add(_enum_field(b"\x10", v, _SEVERITIES))
    if (v := get("severityText")) is not None:
        add(_string(b"\x1a", v))
    if (v := get("body")) is not None:
        add(_ld(b"\x2a", _any_value(v, 0)))
    if (v := get("attributes")) is not None:
        _attributes(v, b"\x32", add, cache, 0)
    if (v := get("droppedAttributesCount")) is not None:
        add(_uint32(b"\x38", v))
    if (v := get("flags")) is not None:
        add(_fixed32(b"\x45", v))
    if (v := get("traceId")) is not None:
        add(_hex_id(b"\x4a", v))
    if (v := get("spanId")) is not None:
        add(_hex_id(b"\x52", v))
    if (v := get("observedTimeUnixNano")) is not None:
        add(_fixed64(b"\x59", v))
    if (v := get("eventName")) is not None:
        add(_string(b"\x62", v))
    return b"".join(parts)


# -- metrics -----------------------------------------------------------------------------

_METRIC = _names(
    Metric.DESCRIPTOR,
    "name",
    "description",
    "unit",
    "gauge",
    "sum",
    "histogram",
    "exponentialHistogram",
    "summary",
    "metadata",
)
_GAUGE = _names(Gauge.DESCRIPTOR, "dataPoints")
_SUM = _names(Sum.DESCRIPTOR, "dataPoints", "aggregationTemporality", "isMonotonic")
_HISTOGRAM = _names(Histogram.DESCRIPTOR, "dataPoints", "aggregationTemporality")
_EXP_HISTOGRAM = _names(ExponentialHistogram.DESCRIPTOR, "dataPoints", "aggregationTemporality")
_SUMMARY = _names(Summary.DESCRIPTOR, "dataPoints")
_NUMBER_POINT = _names(
    NumberDataPoint.DESCRIPTOR,
    "startTimeUnixNano",
    "timeUnixNano",
    "asDouble",
    "exemplars",
    "asInt",
    "attributes",
    "flags",
)
_EXEMPLAR = _names(
    Exemplar.DESCRIPTOR, "timeUnixNano", "asDouble", "spanId", "traceId", "asInt", "filteredAttributes"
)
_HISTOGRAM_POINT = _names(
    HistogramDataPoint.DESCRIPTOR,
    "startTimeUnixNano",
    "timeUnixNano",
    "count",
    "sum",
    "bucketCounts",
    "explicitBounds",
    "exemplars",
    "attributes",
    "flags",
    "min",
    "max",
)
_EXP_POINT = _names(
    ExponentialHistogramDataPoint.DESCRIPTOR,
    "attributes",
    "startTimeUnixNano",
    "timeUnixNano",
    "count",
    "sum",
    "scale",
    "zeroCount",
    "positive",
    "negative",
    "flags",
    "exemplars",
    "min",
    "max",
    "zeroThreshold",
)
_BUCKETS = _names(ExponentialHistogramDataPoint.Buckets.DESCRIPTOR, "offset", "bucketCounts")
_SUMMARY_POINT = _names(
    SummaryDataPoint.DESCRIPTOR,
    "startTimeUnixNano",
    "timeUnixNano",
    "count",
    "sum",
    "quantileValues",
    "attributes",
    "flags",
)
_QUANTILE = _names(SummaryDataPoint.ValueAtQuantile.DESCRIPTOR, "quantile", "value")
_TEMPORALITIES: dict[str, int] = {k: int(v) for k, v in AggregationTemporality.items()}
_ZERO_DOUBLE = bytes(8)


def _double_field(tag: bytes, v: Any) -> bytes:
    """A proto3 double without presence: left out when its bits are zero (so -0.0 is written)."""
    packed = _pack_double(_double(v))
    return b"" if packed == _ZERO_DOUBLE else tag + packed


def _sfixed64(tag: bytes, v: Any) -> bytes:
    """A oneof member (``asInt``): written even when zero."""
    return tag + (_int(v, _I64_MIN, _I64_MAX) & _U64).to_bytes(8, "little")


def _sint32(tag: bytes, v: Any) -> bytes:
    n = _int(v, _I32_MIN, _I32_MAX)
    return tag + _varint((n << 1) ^ (n >> 31)) if n else b""


def _bool(tag: bytes, v: Any) -> bytes:
    if v is True:
        return tag + b"\x01"
    if v is False:
        return b""
    raise _Bail


def _repeated(v: Any) -> list[Any]:
    if type(v) is not list or None in v:
        raise _Bail
    return v


def _packed_fixed64(tag: bytes, v: Any) -> bytes:
    body = b"".join(_uint(x, _U64).to_bytes(8, "little") for x in _repeated(v))
    return _ld(tag, body) if body else b""


def _packed_uint64(tag: bytes, v: Any) -> bytes:
    body = b"".join(_varint(_uint(x, _U64)) for x in _repeated(v))
    return _ld(tag, body) if body else b""


def _packed_double(tag: bytes, v: Any) -> bytes:
    body = b"".join(_pack_double(_double(x)) for x in _repeated(v))
    return _ld(tag, body) if body else b""


def _value_oneof(d: dict[str, Any]) -> tuple[float | None, int | None]:
    """``asDouble`` / ``asInt`` of a point or exemplar: at most one of them."""
    as_double, as_int = d.get("asDouble"), d.get("asInt")
    if as_double is not None and as_int is not None:
        raise _Bail
    return (
        None if as_double is None else _double(as_double),
        None if as_int is None else _int(as_int, _I64_MIN, _I64_MAX),
    )


def _messages(tag: bytes, v: Any, encode: Callable[[Any, _Cache], bytes], cache: _Cache) -> bytes:
    return b"".join(_ld(tag, encode(item, cache)) for item in _repeated(v))


def _exemplar(d: Any, cache: _Cache) -> bytes:
    d = _fields(d, _EXEMPLAR)
    as_double, as_int = _value_oneof(d)
    parts: list[bytes] = []
    if (v := d.get("timeUnixNano")) is not None:
        parts.append(_fixed64(b"\x11", v))
    if as_double is not None:
        parts.append(b"\x19" + _pack_double(as_double))
    if (v := d.get("spanId")) is not None:
        parts.append(_hex_id(b"\x22", v))
    if (v := d.get("traceId")) is not None:
        parts.append(_hex_id(b"\x2a", v))
    if as_int is not None:
        parts.append(b"\x31" + (as_int & _U64).to_bytes(8, "little"))
    if (v := d.get("filteredAttributes")) is not None:
        _attributes(v, b"\x3a", parts.append, cache, 0)
    return b"".join(parts)


def _number_point(d: Any, cache: _Cache) -> bytes:
    d = _fields(d, _NUMBER_POINT)
    as_double, as_int = _value_oneof(d)
    parts: list[bytes] = []
    if (v := d.get("startTimeUnixNano")) is not None:
        parts.append(_fixed64(b"\x11", v))
    if (v := d.get("timeUnixNano")) is not None:
        parts.append(_fixed64(b"\x19", v))
    if as_double is not None:
        parts.append(b"\x21" + _pack_double(as_double))
    if (v := d.get("exemplars")) is not None:
        parts.append(_messages(b"\x2a", v, _exemplar, cache))
    if as_int is not None:
        parts.append(b"\x31" + (as_int & _U64).to_bytes(8, "little"))
    if (v := d.get("attributes")) is not None:
        _attributes(v, b"\x3a", parts.append, cache, 0)
    if (v := d.get("flags")) is not None:
        parts.append(_uint32(b"\x40", v))
    return b"".join(parts)


def _histogram_point(d: Any, cache: _Cache) -> bytes:
    d = _fields(d, _HISTOGRAM_POINT)
    parts: list[bytes] = []
    if (v := d.get("startTimeUnixNano")) is not None:
        parts.append(_fixed64(b"\x11", v))
    if (v := d.get("timeUnixNano")) is not None:
        parts.append(_fixed64(b"\x19", v))
    if (v := d.get("count")) is not None:
        parts.append(_fixed64(b"\x21", v))
    if (v := d.get("sum")) is not None:  # optional: written when present, even 0
        parts.append(b"\x29" + _pack_double(_double(v)))
    if (v := d.get("bucketCounts")) is not None:
        parts.append(_packed_fixed64(b"\x32", v))
    if (v := d.get("explicitBounds")) is not None:
        parts.append(_packed_double(b"\x3a", v))
    if (v := d.get("exemplars")) is not None:
        parts.append(_messages(b"\x42", v, _exemplar, cache))
    if (v := d.get("attributes")) is not None:
        _attributes(v, b"\x4a", parts.append, cache, 0)
    if (v := d.get("flags")) is not None:
        parts.append(_uint32(b"\x50", v))
    if (v := d.get("min")) is not None:
        parts.append(b"\x59" + _pack_double(_double(v)))
    if (v := d.get("max")) is not None:
        parts.append(b"\x61" + _pack_double(_double(v)))
    return b"".join(parts)


def _buckets(d: Any) -> bytes:
    d = _fields(d, _BUCKETS)
    out = b""
    if (v := d.get("offset")) is not None:
        out = _sint32(b"\x08", v)
    if (v := d.get("bucketCounts")) is not None:
        out += _packed_uint64(b"\x12", v)
    return out


def _exp_histogram_point(d: Any, cache: _Cache) -> bytes:
    d = _fields(d, _EXP_POINT)
    parts: list[bytes] = []
    if (v := d.get("attributes")) is not None:
        _attributes(v, b"\x0a", parts.append, cache, 0)
    if (v := d.get("startTimeUnixNano")) is not None:
        parts.append(_fixed64(b"\x11", v))
    if (v := d.get("timeUnixNano")) is not None:
        parts.append(_fixed64(b"\x19", v))
    if (v := d.get("count")) is not None:
        parts.append(_fixed64(b"\x21", v))
    if (v := d.get("sum")) is not None:
        parts.append(b"\x29" + _pack_double(_double(v)))
    if (v := d.get("scale")) is not None:
        parts.append(_sint32(b"\x30", v))
    if (v := d.get("zeroCount")) is not None:
        parts.append(_fixed64(b"\x39", v))
    if (v := d.get("positive")) is not None:
        parts.append(_ld(b"\x42", _buckets(v)))
    if (v := d.get("negative")) is not None:
        parts.append(_ld(b"\x4a", _buckets(v)))
    if (v := d.get("flags")) is not None:
        parts.append(_uint32(b"\x50", v))
    if (v := d.get("exemplars")) is not None:
        parts.append(_messages(b"\x5a", v, _exemplar, cache))
    if (v := d.get("min")) is not None:
        parts.append(b"\x61" + _pack_double(_double(v)))
    if (v := d.get("max")) is not None:
        parts.append(b"\x69" + _pack_double(_double(v)))
    if (v := d.get("zeroThreshold")) is not None:
        parts.append(_double_field(b"\x71", v))
    return b"".join(parts)


def _quantile(d: Any, cache: _Cache) -> bytes:
    d = _fields(d, _QUANTILE)
    out = b""
    if (v := d.get("quantile")) is not None:
        out = _double_field(b"\x09", v)
    if (v := d.get("value")) is not None:
        out += _double_field(b"\x11", v)
    return out


def _summary_point(d: Any, cache: _Cache) -> bytes:
    d = _fields(d, _SUMMARY_POINT)
    parts: list[bytes] = []
    if (v := d.get("startTimeUnixNano")) is not None:
        parts.append(_fixed64(b"\x11", v))
    if (v := d.get("timeUnixNano")) is not None:
        parts.append(_fixed64(b"\x19", v))
    if (v := d.get("count")) is not None:
        parts.append(_fixed64(b"\x21", v))
    if (v := d.get("sum")) is not None:
        parts.append(_double_field(b"\x29", v))
    if (v := d.get("quantileValues")) is not None:
        parts.append(_messages(b"\x32", v, _quantile, cache))
    if (v := d.get("attributes")) is not None:
        _attributes(v, b"\x3a", parts.append, cache, 0)
    if (v := d.get("flags")) is not None:
        parts.append(_uint32(b"\x40", v))
    return b"".join(parts)


# Each data kind of a Metric: its field tag, names, the tag of its points, how to encode a
# point, and whether it has aggregationTemporality (field 2) and isMonotonic (field 3).
_DATA: dict[str, tuple[bytes, _Names, Callable[[Any, _Cache], bytes], bool, bool]] = {
    "gauge": (b"\x2a", _GAUGE, _number_point, False, False),
    "sum": (b"\x3a", _SUM, _number_point, True, True),
    "histogram": (b"\x4a", _HISTOGRAM, _histogram_point, True, False),
    "exponentialHistogram": (b"\x52", _EXP_HISTOGRAM, _exp_histogram_point, True, False),
    "summary": (b"\x5a", _SUMMARY, _summary_point, False, False),
}


def _metric(d: Any, cache: _Cache) -> bytes:
    d = _fields(d, _METRIC)
    parts: list[bytes] = []
    if (v := d.get("name")) is not None:
        parts.append(_string(b"\x0a", v))
    if (v := d.get("description")) is not None:
        parts.append(_string(b"\x12", v))
    if (v := d.get("unit")) is not None:
        parts.append(_string(b"\x1a", v))
    present = [kind for kind in _DATA if d.get(kind) is not None]
    if len(present) > 1:  # several members of the oneof
        raise _Bail
    for kind in present:
        tag, names, point, temporality, monotonic = _DATA[kind]
        data = _fields(d[kind], names)
        body = b""
        if (v := data.get("dataPoints")) is not None:
            body = _messages(b"\x0a", v, point, cache)
        if temporality and (v := data.get("aggregationTemporality")) is not None:
            body += _enum_field(b"\x10", v, _TEMPORALITIES)
        if monotonic and (v := data.get("isMonotonic")) is not None:
            body += _bool(b"\x18", v)
        parts.append(_ld(tag, body))
    if (v := d.get("metadata")) is not None:
        _attributes(v, b"\x62", parts.append, cache, 0)
    return b"".join(parts)


# -- requests ----------------------------------------------------------------------------

_OUTER = {
    "resourceSpans": _names(ResourceSpans.DESCRIPTOR, "resource", "scopeSpans", "schemaUrl"),
    "resourceLogs": _names(ResourceLogs.DESCRIPTOR, "resource", "scopeLogs", "schemaUrl"),
    "resourceMetrics": _names(ResourceMetrics.DESCRIPTOR, "resource", "scopeMetrics", "schemaUrl"),
}
_INNER = {
    "scopeSpans": _names(ScopeSpans.DESCRIPTOR, "scope", "spans", "schemaUrl"),
    "scopeLogs": _names(ScopeLogs.DESCRIPTOR, "scope", "logRecords", "schemaUrl"),
    "scopeMetrics": _names(ScopeMetrics.DESCRIPTOR, "scope", "metrics", "schemaUrl"),
}
_TRACES = _names(ExportTraceServiceRequest.DESCRIPTOR, "resourceSpans")
_LOGS = _names(ExportLogsServiceRequest.DESCRIPTOR, "resourceLogs")
_METRICS = _names(ExportMetricsServiceRequest.DESCRIPTOR, "resourceMetrics")

_ENCODERS: dict[Signal, Callable[[Any], bytes]] = {
    Signal.TRACES: lambda doc: _request(doc, _TRACES, "resourceSpans", "scopeSpans", "spans", _span),
    Signal.LOGS: lambda doc: _request(doc, _LOGS, "resourceLogs", "scopeLogs", "logRecords", _log_record),
    Signal.METRICS: lambda doc: _request(
        doc, _METRICS, "resourceMetrics", "scopeMetrics", "metrics", _metric
    ),
}
