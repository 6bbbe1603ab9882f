"""The native span decoder (:mod:`faultlens.decode._native`) as a Table of :data:`SPAN_SCHEMA`.

The C extension parses the request and writes the Arrow buffers of every column; this
module wraps them without copying (``pa.py_buffer`` over the bytes objects it returns,
``pa.Array.from_buffers``). ``decode_spans_native`` gives exactly what
:func:`faultlens.decode.spans.decode_spans_python` gives for the same bytes (the tests
compare them on every kind of input, malformed ones included).

What the extension returns per column, in :data:`SPAN_SCHEMA` order:

- strings and binaries: ``(validity | None, null_count, int32 offsets, data)``
- int64/int32/int8: ``(validity | None, null_count, values)``
- ``events`` / ``links``: ``(int32 list offsets, number of elements, (child entries...))``
  with the children of the struct in its field order.

``NATIVE_ERROR`` holds why the extension could not be imported (None when it was).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from faultlens.decode.schema import EXCEPTION_COLUMNS, RESOURCE_SEMCONV, SPAN_SCHEMA, SPAN_SEMCONV
from faultlens.errors import InvalidRequest

__all__ = ["NATIVE_ERROR", "decode_spans_native", "native_available"]

_decoder: Any = None
NATIVE_ERROR: str | None = None
try:
    from faultlens.decode import _native
except ImportError as exc:  # not built (no compiler at install time) or built for another Python
    NATIVE_ERROR = f"{type(exc).__name__}: {exc}"
else:
    _decoder = _native.SpanDecoder(
        [(keys, pa.types.is_integer(typ)) for _, typ, keys in SPAN_SEMCONV],
        [(keys, pa.types.is_integer(typ)) for _, typ, keys in RESOURCE_SEMCONV],
        [((attr,), False) for _, attr in EXCEPTION_COLUMNS],
        InvalidRequest,
    )


def native_available() -> bool:
    return _decoder is not None


def decode_spans_native(data: bytes) -> tuple[pa.Table, int, str]:
    """Decode a serialized trace request: (table of accepted spans, rejected count, first reason)."""
    if _decoder is None:
        raise RuntimeError(f"the native span decoder is not available ({NATIVE_ERROR})")
    out = _decoder.decode(data)
    if out is None:
        return SPAN_SCHEMA.empty_table(), 0, ""
    rows, rejected, reason, entries = out
    arrays = [_array(f.type, rows, e) for f, e in zip(SPAN_SCHEMA, entries, strict=True)]
    return pa.Table.from_arrays(arrays, schema=SPAN_SCHEMA), rejected, reason


def _buf(b: bytes | None) -> pa.Buffer | None:
    return None if b is None else pa.py_buffer(b)


def _array(typ: pa.DataType, n: int, entry: tuple[Any, ...]) -> pa.Array:
    if pa.types.is_list(typ):
        offsets, m, children = entry
        struct_type = typ.value_type
        kids = [_array(f.type, m, ch) for f, ch in zip(struct_type, children, strict=True)]
        struct = pa.StructArray.from_buffers(struct_type, m, [None], children=kids)
        return pa.ListArray.from_buffers(typ, n, [None, pa.py_buffer(offsets)], children=[struct])
    if len(entry) == 4:
        valid, nulls, offsets, data = entry
        return pa.Array.from_buffers(typ, n, [_buf(valid), pa.py_buffer(offsets), pa.py_buffer(data)], nulls)
    valid, nulls, values = entry
    return pa.Array.from_buffers(typ, n, [_buf(valid), pa.py_buffer(values)], nulls)
