"""Attributes of many items decoded together: KeyValue bytes to JSON objects and columns.

Why in bulk: reading one attribute through upb costs about a microsecond in Python, and
a 1,000-span request carries 15,000 of them. :class:`AttrGroups` takes the raw
``KeyValue`` bytes of every item of a request (spans, events, resources...), checks with
numpy that each one has the canonical layout ``key, value``, parses all keys and all
values with one upb call each (see :mod:`faultlens.decode._shadow`), and builds the JSON
objects and the promoted columns with Arrow kernels. Anything unusual (an empty key, a
field repeated inside a KeyValue, a oneof set twice) sends the whole request down a
slower path that parses each KeyValue with the real OTLP classes; both paths give the
same result.

JSON encoding of an AnyValue: string, bool, int and double as JSON values (doubles that
are whole keep a ``.0``; NaN and infinities become the strings ``"NaN"``, ``"Infinity"``,
``"-Infinity"`` so the JSON stays valid); bytes as a base64 string (as OTLP/JSON does);
arrays as lists; kvlists as objects; an empty AnyValue as ``null``.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from faultlens.decode import _shadow
from faultlens.errors import InvalidRequest

__all__ = ["MAX_ANY_DEPTH", "AttrGroups", "any_to_python", "decode_values", "json_text", "value_texts"]

# Deeper AnyValue nesting than this is refused (upb refuses ~100 message levels anyway).
MAX_ANY_DEPTH = 32

# Value kinds, in the order their JSON texts are concatenated.
_NULL, _STR, _BOOL, _INT, _DOUBLE, _OTHER = 0, 1, 2, 3, 4, 5
# First byte of a canonical AnyValue (field number << 3 | wire type) -> kind.
_TAG_KIND = np.zeros(256, dtype=np.int8)
_TAG_KIND[0x0A] = _STR
_TAG_KIND[0x10] = _BOOL
_TAG_KIND[0x18] = _INT
_TAG_KIND[0x21] = _DOUBLE
_TAG_KIND[0x2A] = _OTHER  # array_value
_TAG_KIND[0x32] = _OTHER  # kvlist_value
_TAG_KIND[0x3A] = _OTHER  # bytes_value
_STRINDEX = 6  # string_value_strindex: a profiles dictionary index, meaningless here (null)
_TAG_KIND[0x40] = _STRINDEX
_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'
_QUOTES = pa.array(["", '"'], pa.string())
# Arrow kernels convert Python str arguments slowly (~0.7 ms a call: it retries an import
# each time), so every literal passed to pyarrow.compute is a prebuilt scalar.
_S = {
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


def _parse_any(raw: bytes) -> AnyValue:
    value: AnyValue = _shadow.parse(AnyValue, raw, "AnyValue")
    return value


@dataclass
class _Values:
    """The values of every KeyValue, split by kind, in KeyValue order within each kind."""

    kinds: np.ndarray  # int8 per KeyValue
    strings: list[str] = field(default_factory=list)
    bools: list[bool] = field(default_factory=list)
    ints: list[int] = field(default_factory=list)
    doubles: list[float] = field(default_factory=list)
    others: list[str] = field(default_factory=list)  # JSON text of bytes/array/kvlist values


def _values_from_python(pyvalues: Sequence[Any], raw_kinds: Sequence[int]) -> _Values:
    """Split converted values by kind; ``raw_kinds`` says which were scalars on the wire."""
    kinds = np.zeros(len(pyvalues), dtype=np.int8)
    out = _Values(kinds)
    for i, (v, k) in enumerate(zip(pyvalues, raw_kinds, strict=True)):
        kinds[i] = k
        if k == _STR:
            out.strings.append(v)
        elif k == _BOOL:
            out.bools.append(v)
        elif k == _INT:
            out.ints.append(v)
        elif k == _DOUBLE:
            out.doubles.append(v if isinstance(v, float) else float(v.replace("Infinity", "inf")))
        elif k == _OTHER:
            out.others.append(json_text(v))
    return out


_ONEOF_KIND = {
    "string_value": _STR,
    "bool_value": _BOOL,
    "int_value": _INT,
    "double_value": _DOUBLE,
    "array_value": _OTHER,
    "kvlist_value": _OTHER,
    "bytes_value": _OTHER,
}


def _values_slow(raws: Sequence[bytes]) -> _Values:
    anys = [_parse_any(r) for r in raws]
    kinds = [_ONEOF_KIND.get(a.WhichOneof("value") or "", _NULL) for a in anys]
    return _values_from_python([any_to_python(a) for a in anys], kinds)


def _values_fast(vbuf: bytes, kinds: np.ndarray, raws: Sequence[bytes]) -> _Values | None:
    """All values parsed with one upb call; None when some value is not a single field.

    Each value adds one entry to the list of its first field, so the per-kind counts equal
    the counts of first tags exactly when no value holds a second field.
    """
    cols = _shadow.parse(_shadow.AnyValueCols, vbuf, "attribute value")
    counts = np.bincount(kinds, minlength=_STRINDEX + 1)
    others = len(cols.array_value) + len(cols.kvlist_value) + len(cols.bytes_value)
    if (
        len(cols.string_value) != counts[_STR]
        or len(cols.bool_value) != counts[_BOOL]
        or len(cols.int_value) != counts[_INT]
        or len(cols.double_value) != counts[_DOUBLE]
        or others != counts[_OTHER]
        or len(cols.string_value_strindex) != counts[_STRINDEX]
    ):
        return None
    out = _Values(np.where(kinds == _STRINDEX, _NULL, kinds).astype(np.int8))
    out.strings = cols.string_value[:]
    out.bools = cols.bool_value[:]
    out.ints = cols.int_value[:]
    out.doubles = cols.double_value[:]
    if others:
        out.others = [
            json_text(any_to_python(_parse_any(raws[int(i)]))) for i in np.flatnonzero(kinds == _OTHER)
        ]
    return out


def decode_values(raws: Sequence[bytes]) -> _Values:
    """Serialized AnyValues, decoded together."""
    if not raws:
        return _Values(np.zeros(0, dtype=np.int8))
    lens = np.fromiter(map(len, raws), dtype=np.int64, count=len(raws))
    buf = b"".join(raws)
    arr = np.frombuffer(buf, dtype=np.uint8)
    starts = np.cumsum(lens) - lens
    first = arr[np.minimum(starts, max(len(arr) - 1, 0))] if len(arr) else np.zeros(len(raws), np.uint8)
    kinds = np.where(lens > 0, _TAG_KIND[first], _NULL).astype(np.int8)
    values = _values_fast(buf, kinds, raws)
    return values if values is not None else _values_slow(raws)


def value_texts(raws: Sequence[bytes]) -> pa.Array:
    """Serialized AnyValues as text: a string as is, anything else as JSON, empty as null."""
    v = decode_values(raws)
    strings = pa.array(v.strings, pa.string())
    bools = pc.if_else(pa.array(v.bools, pa.bool_()), _S["true"], _S["false"])
    ints = pc.cast(pa.array(v.ints, pa.int64()), pa.string())
    doubles = _double_texts(pa.array(v.doubles, pa.float64()))
    others = pa.array(v.others, pa.string())
    return _by_kind(v.kinds, [strings, bools, ints, doubles, others], None)


def _varint(arr: np.ndarray, pos: np.ndarray, limit: np.ndarray, max_bytes: int) -> tuple[np.ndarray, ...]:
    """Decode the varint at each ``pos`` (at most ``max_bytes`` long, before ``limit``).

    Returns (value, size, ok); ``ok`` is False where the varint is longer or runs past
    ``limit``, and then value/size are meaningless.
    """
    last = len(arr) - 1
    value = np.zeros(len(pos), dtype=np.int64)
    size = np.zeros(len(pos), dtype=np.int64)
    done = np.zeros(len(pos), dtype=bool)
    for i in range(max_bytes):
        p = pos + i
        inside = p < limit
        b = arr[np.minimum(p, last)].astype(np.int64)
        active = ~done & inside
        value = np.where(active, value | ((b & 0x7F) << (7 * i)), value)
        ends = active & (b < 0x80)
        size = np.where(ends, i + 1, size)
        done |= ends
    return value, size, done


def _kv_layout(arr: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Where each KeyValue's value lies, if every KeyValue is exactly ``key`` then ``value``.

    Returns (value start, value length) or None when any KeyValue has another layout.
    """
    last = len(arr) - 1
    if not len(arr) or bool(np.any(starts >= ends)):
        return None
    if not bool(np.all(arr[starts] == 0x0A)):
        return None
    klen, ksize, ok = _varint(arr, starts + 1, ends, 3)
    if not bool(np.all(ok)):
        return None
    vtag = starts + 1 + ksize + klen
    if bool(np.any(vtag >= ends)) or not bool(np.all(arr[np.minimum(vtag, last)] == 0x12)):
        return None
    vlen, vsize, ok = _varint(arr, vtag + 1, ends, 4)
    vstart = vtag + 1 + vsize
    if not bool(np.all(ok)) or not bool(np.all(vstart + vlen == ends)):
        return None
    return vstart, vlen


class AttrGroups:
    """The attributes of ``len(counts)`` items: item ``i`` owns the next ``counts[i]`` KeyValues.

    ``json`` holds one JSON object per item; :meth:`promote` picks one attribute per item
    into a typed column. Raises :class:`InvalidRequest` on malformed bytes.
    """

    def __init__(self, kvs: Sequence[bytes], counts: Sequence[int] | np.ndarray) -> None:
        self.counts = np.asarray(counts, dtype=np.int64)
        self.n_groups = len(self.counts)
        n = len(kvs)
        self._group_of: np.ndarray | None = None
        self._as_str: pa.Array | None = None
        self._as_int: pa.Array | None = None
        if n == 0:
            self.json: pa.Array = pa.array(["{}"] * self.n_groups, pa.string())
            self._key_ids = np.zeros(0, dtype=np.int32)
            self._unique_keys: list[str] = []
            self._values = _Values(np.zeros(0, dtype=np.int8))
            return
        keys, values = self._split(kvs)
        key_arr = pc.dictionary_encode(pa.array(keys, pa.string()))
        self._unique_keys = key_arr.dictionary.to_pylist()
        self._key_ids = key_arr.indices.to_numpy(zero_copy_only=False)
        self._values = values
        key_json = pa.array([json_text(k) + ":" for k in self._unique_keys], pa.string()).take(
            key_arr.indices
        )
        text, quote = self._value_json()
        kv_json = pc.binary_join_element_wise(key_json, quote, text, quote, _S[""])
        offsets = np.zeros(self.n_groups + 1, dtype=np.int32)
        np.cumsum(self.counts, out=offsets[1:])
        grouped = pa.ListArray.from_arrays(pa.array(offsets), kv_json)
        self.json = pc.binary_join_element_wise(_S["{"], pc.binary_join(grouped, _S[","]), _S["}"], _S[""])

    # -- splitting KeyValues into keys and values ---------------------------------------

    def _split(self, kvs: Sequence[bytes]) -> tuple[list[str], _Values]:
        n = len(kvs)
        lens = np.fromiter(map(len, kvs), dtype=np.int64, count=n)
        ends = np.cumsum(lens)
        starts = ends - lens
        buf = b"".join(kvs)
        arr = np.frombuffer(buf, dtype=np.uint8)
        layout = _kv_layout(arr, starts, ends)
        if layout is None:
            return self._split_slow(kvs)
        vstart, vlen = layout
        cols = _shadow.parse(_shadow.KeyValueCols, buf, "attribute")
        keys: list[str] = cols.key[:]
        raw_values = cols.value[:]
        kinds = np.where(vlen > 0, _TAG_KIND[arr[np.minimum(vstart, len(arr) - 1)]], _NULL).astype(np.int8)
        values = _values_fast(b"".join(raw_values), kinds, raw_values)
        if values is None:
            values = _values_slow(raw_values)
        return keys, values

    def _split_slow(self, kvs: Sequence[bytes]) -> tuple[list[str], _Values]:
        keys: list[str] = []
        raws: list[bytes] = []
        for raw in kvs:
            kv = _shadow.parse(KeyValue, raw, "attribute")
            keys.append(kv.key)
            raws.append(kv.value.SerializeToString())
        return keys, _values_slow(raws)

    # -- JSON ---------------------------------------------------------------------------

    def _texts(self, for_json: bool) -> list[pa.Array]:
        """Per kind, the text of each value (for JSON: strings escaped but not quoted)."""
        v = self._values
        strings = pa.array(v.strings, pa.string())
        if for_json:
            strings = _escape_strings(strings, v.strings)
        bools = pc.if_else(pa.array(v.bools, pa.bool_()), _S["true"], _S["false"])
        ints = pc.cast(pa.array(v.ints, pa.int64()), pa.string())
        doubles = _double_texts(pa.array(v.doubles, pa.float64()))
        others = pa.array(v.others if for_json else [None] * len(v.others), pa.string())
        return [strings, bools, ints, doubles, others]

    def _value_json(self) -> tuple[pa.Array, pa.Array]:
        """The JSON text of each value, without quotes, and the quote to put around it."""
        kinds = self._values.kinds
        quoted = kinds == _STR
        doubles = np.asarray(self._values.doubles, dtype=np.float64)
        if len(doubles) and not np.isfinite(doubles).all():
            quoted[np.flatnonzero(kinds == _DOUBLE)[~np.isfinite(doubles)]] = True
        quote = _QUOTES.take(pa.array(quoted.astype(np.int8)))
        return _by_kind(kinds, self._texts(for_json=True), "null"), quote

    # -- promoted columns ---------------------------------------------------------------

    def promote(self, keys: Sequence[str], typ: pa.DataType) -> pa.Array:
        """One column of ``typ`` with, per item, the value of the first of ``keys`` it has.

        Strings are taken as is (other scalars as their text); int columns take ints and
        strings of digits; values that do not fit the type are null.
        """
        return self.promote_many([(keys, typ)])[0]

    def promote_many(self, specs: Sequence[tuple[Sequence[str], pa.DataType]]) -> list[pa.Array]:
        """:meth:`promote` for several columns at once (one pass over the KeyValues)."""
        n = self.n_groups
        chosen = self._choose_many([keys for keys, _ in specs])  # (len(specs), n): KeyValue or -1
        str_rows = [i for i, (_, typ) in enumerate(specs) if not pa.types.is_integer(typ)]
        int_rows = [i for i, (_, typ) in enumerate(specs) if pa.types.is_integer(typ)]
        taken: dict[int, pa.Array] = {}
        for rows, source in ((str_rows, self._strs), (int_rows, self._ints)):
            if not rows:
                continue
            flat = chosen[rows].ravel()
            col = source().take(pa.array(flat, mask=flat < 0, type=pa.int64()))
            for j, row in enumerate(rows):
                taken[row] = col.slice(j * n, n)
        out: list[pa.Array] = []
        for i, (_, typ) in enumerate(specs):
            col = taken[i]
            if pa.types.is_integer(typ) and typ != pa.int64():
                bits = typ.bit_width - 1
                fits = pc.and_(
                    pc.greater_equal(col, pa.scalar(-(2**bits), pa.int64())),
                    pc.less_equal(col, pa.scalar(2**bits - 1, pa.int64())),
                )
                col = pc.if_else(fits, col, pa.scalar(None, pa.int64())).cast(typ)
            out.append(col)
        return out

    def _choose_many(self, key_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """Per spec and item, the index of the KeyValue chosen (-1 where none).

        Earlier keys of a spec win over later ones; among equal keys the last one wins,
        as when building a dict.
        """
        chosen = np.full((len(key_lists), self.n_groups), -1, dtype=np.int64)
        rank: dict[str, list[tuple[int, int]]] = {}
        for spec, keys in enumerate(key_lists):
            for prio, key in enumerate(keys):
                rank.setdefault(key, []).append((spec, prio))
        # (key id, spec, priority) for every wanted key present, sorted by key id
        wanted = [(uid, sp, pr) for uid, k in enumerate(self._unique_keys) for sp, pr in rank.get(k, ())]
        if not wanted:
            return chosen
        table = np.array(wanted, dtype=np.int64)
        kv_uid = self._key_ids.astype(np.int64)
        lo = np.searchsorted(table[:, 0], kv_uid, side="left")
        hits = np.searchsorted(table[:, 0], kv_uid, side="right") - lo
        pos = np.repeat(np.arange(len(kv_uid)), hits)
        if not len(pos):
            return chosen
        starts = np.cumsum(hits) - hits
        row = np.repeat(lo, hits) + (np.arange(len(pos)) - np.repeat(starts, hits))
        spec, prio, group = table[row, 1], table[row, 2], self._groups()[pos]
        order = np.lexsort((-pos, prio, group, spec))
        spec, group, pos = spec[order], group[order], pos[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = (spec[1:] != spec[:-1]) | (group[1:] != group[:-1])
        chosen[spec[first], group[first]] = pos[first]
        return chosen

    def value_at(self, keys: Sequence[str]) -> list[str | None]:
        """Like :meth:`promote` to a string column, as a Python list."""
        result: list[str | None] = self.promote(keys, pa.string()).to_pylist()
        return result

    def _groups(self) -> np.ndarray:
        if self._group_of is None:
            self._group_of = np.repeat(np.arange(self.n_groups, dtype=np.int64), self.counts)
        return self._group_of

    def _strs(self) -> pa.Array:
        if self._as_str is None:
            self._as_str = _by_kind(self._values.kinds, self._texts(for_json=False), None)
        return self._as_str

    def _ints(self) -> pa.Array:
        if self._as_int is None:
            v = self._values
            strings = pa.array(v.strings, pa.string())
            digits = pc.match_substring_regex(strings, r"^-?\d{1,18}$")
            parsed = pc.cast(pc.if_else(digits, strings, pa.scalar(None, pa.string())), pa.int64())
            parts = [
                parsed,
                pa.nulls(len(v.bools), pa.int64()),
                pa.array(v.ints, pa.int64()),
                pa.nulls(len(v.doubles), pa.int64()),
                pa.nulls(len(v.others), pa.int64()),
            ]
            self._as_int = _by_kind(v.kinds, parts, None)
        return self._as_int


def _by_kind(kinds: np.ndarray, parts: list[pa.Array], null_value: Any) -> pa.Array:
    """Interleave per-kind arrays back into KeyValue order (kind 0 gets ``null_value``)."""
    typ = parts[0].type
    pool = pa.concat_arrays([p.cast(typ) for p in parts] + [pa.array([null_value], typ)])
    idx = np.empty(len(kinds), dtype=np.int64)
    base = 0
    for kind, part in enumerate(parts, start=1):
        where = np.flatnonzero(kinds == kind)
        idx[where] = base + np.arange(len(where))
        base += len(part)
    idx[kinds == _NULL] = base
    return pool.take(pa.array(idx))


def _escape_strings(arr: pa.Array, strings: Sequence[str]) -> pa.Array:
    """Strings with JSON escapes applied (without the surrounding quotes)."""
    if not len(arr):
        return arr
    needs = pc.match_substring_regex(arr, _NEEDS_ESCAPE)
    if not pc.any(needs).as_py():
        return arr
    where = np.flatnonzero(needs.to_numpy(zero_copy_only=False))
    escaped = pa.array([json_text(strings[int(i)])[1:-1] for i in where], pa.string())
    return pc.replace_with_mask(arr, needs, escaped)


def _double_texts(arr: pa.Array) -> pa.Array:
    """Shortest round-trip text; whole numbers keep ``.0``; NaN/inf as NaN/Infinity/-Infinity."""
    text = pc.cast(arr, pa.string())
    if not len(arr):
        return text
    whole = pc.match_substring_regex(text, r"^-?\d+$")
    text = pc.if_else(whole, pc.binary_join_element_wise(text, _S[".0"], _S[""]), text)
    finite = pc.is_finite(arr)
    if pc.all(finite).as_py():
        return text
    named = pc.if_else(
        pc.is_nan(arr),
        _S["NaN"],
        pc.if_else(pc.greater(arr, pa.scalar(0.0)), _S["Infinity"], _S["-Infinity"]),
    )
    return pc.if_else(finite, text, named)
