"""AnyValue to JSON: the one mapping every decoder uses (see :mod:`faultlens.decode.attributes`)."""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from faultlens.decode import _shadow
from faultlens.errors import InvalidRequest

__all__ = [
    "MAX_ANY_DEPTH",
    "SCALAR_ONEOFS",
    "S",
    "any_to_python",
    "double_str",
    "double_texts",
    "json_text",
    "parse_any",
    "scalar_text",
    "to_int",
]

# The oneof cases whose value may fill a promoted (semantic-convention) column.
SCALAR_ONEOFS = frozenset({"string_value", "bool_value", "int_value", "double_value"})
_DIGITS = re.compile(r"-?[0-9]{1,18}")

# Deeper AnyValue nesting than this is refused (upb refuses ~100 message levels anyway).
MAX_ANY_DEPTH = 32

# Arrow kernels convert Python str arguments slowly (~0.7 ms a call: it retries an import
# each time), so every literal passed to pyarrow.compute is a prebuilt scalar.
S = {
    t: pa.scalar(t, pa.string())
    for t in ("", "{", "}", ",", "true", "false", ".0", "NaN", "Infinity", "-Infinity")
}


def any_to_python(value: AnyValue, depth: int = 0) -> Any:
    """An AnyValue as a JSON-ready Python value (see the module docstring for the mapping)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        d = value.double_value
        if math.isfinite(d):
            return d
        return "NaN" if math.isnan(d) else ("Infinity" if d > 0 else "-Infinity")
    if kind is None or kind == "string_value_strindex":
        return None
    if depth >= MAX_ANY_DEPTH:
        raise InvalidRequest(f"attribute value nested deeper than {MAX_ANY_DEPTH} levels")
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if kind == "array_value":
        return [any_to_python(v, depth + 1) for v in value.array_value.values]
    return {kv.key: any_to_python(kv.value, depth + 1) for kv in value.kvlist_value.values}


def json_text(value: Any) -> str:
    """Compact JSON of a value produced by :func:`any_to_python` (never NaN tokens)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def parse_any(raw: bytes) -> AnyValue:
    """A serialized AnyValue; InvalidRequest when malformed."""
    value: AnyValue = _shadow.parse(AnyValue, raw, "AnyValue")
    return value


def double_texts(arr: pa.Array) -> pa.Array:
    """Shortest round-trip text; whole numbers keep ``.0``; NaN/inf as NaN/Infinity/-Infinity."""
    text = pc.cast(arr, pa.string())
    if not len(arr):
        return text
    whole = pc.match_substring_regex(text, r"^-?\d+$")
    text = pc.if_else(whole, pc.binary_join_element_wise(text, S[".0"], S[""]), text)
    finite = pc.is_finite(arr)
    if pc.all(finite).as_py():
        return text
    named = pc.if_else(
        pc.is_nan(arr),
        S["NaN"],
        pc.if_else(pc.greater(arr, pa.scalar(0.0)), S["Infinity"], S["-Infinity"]),
    )
    return pc.if_else(finite, text, named)


def double_str(d: float) -> str:
    """A double as promoted-column text (NaN and infinities by name)."""
    if d != d:
        return "NaN"
    if d in (float("inf"), float("-inf")):
        return "Infinity" if d > 0 else "-Infinity"
    return repr(d)


def scalar_text(v: Any) -> str | None:
    """Text of a converted scalar value for a string column (lists and objects: null)."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    return None


def to_int(v: Any) -> int | None:
    """Ints as they are, strings of digits parsed; anything else is null."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and _DIGITS.fullmatch(v):
        return int(v)
    return None
