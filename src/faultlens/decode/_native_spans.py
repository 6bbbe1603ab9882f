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

from collections.abc import Callable
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
    arrays = [wrap(rows, entry) for wrap, entry in zip(_WRAPPERS, entries, strict=True)]
    return pa.Table.from_arrays(arrays, schema=SPAN_SCHEMA), rejected, reason


_Wrap = Callable[[int, tuple[Any, ...]], pa.Array]
_from_buffers = pa.Array.from_buffers
_py_buffer = pa.py_buffer


def _wrapper(typ: pa.DataType) -> _Wrap:
    """How to turn one column entry of the extension into an array of ``typ`` (see above)."""
    if pa.types.is_list(typ):
        struct_type = typ.value_type
        kids = [_wrapper(f.type) for f in struct_type]

        def wrap_list(n: int, entry: tuple[Any, ...]) -> pa.Array:
            offsets, m, children = entry
            arrays = [k(m, ch) for k, ch in zip(kids, children, strict=True)]
            struct = pa.StructArray.from_buffers(struct_type, m, [None], children=arrays)
            return pa.ListArray.from_buffers(typ, n, [None, _py_buffer(offsets)], children=[struct])

        return wrap_list
    if pa.types.is_string(typ) or pa.types.is_binary(typ):

        def wrap_var(n: int, entry: tuple[Any, ...]) -> pa.Array:
            valid, nulls, offsets, data = entry
            bits = None if valid is None else _py_buffer(valid)
            return _from_buffers(typ, n, [bits, _py_buffer(offsets), _py_buffer(data)], nulls)

        return wrap_var

    def wrap_fixed(n: int, entry: tuple[Any, ...]) -> pa.Array:
        valid, nulls, values = entry
        bits = None if valid is None else _py_buffer(valid)
        return _from_buffers(typ, n, [bits, _py_buffer(values)], nulls)

    return wrap_fixed


_WRAPPERS = [_wrapper(f.type) for f in SPAN_SCHEMA]
