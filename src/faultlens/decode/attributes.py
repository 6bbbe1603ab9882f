"""Attributes of many items decoded together: KeyValue bytes to JSON objects and columns.

Why in bulk: reading one attribute through upb costs about a microsecond in Python, and
a 1,000-span request carries 15,000 of them. :class:`AttrGroups` takes the serialized
``KeyValue``s of every item of a request part (spans, events, resources...) and builds
one JSON object per item plus the promoted (semantic-convention) columns. Three
implementations give the same result (the tests compare them):

- *wire* (:mod:`faultlens.decode._kvfast`): the JSON is assembled from the wire bytes
  with numpy and one Arrow ``take``; used for large inputs of canonical KeyValues, which
  is what every OTLP encoder writes.
- *tiny*: plain Python per KeyValue; cheaper below a few hundred KeyValues.
- *general*: any KeyValues (an empty key, a field repeated inside a KeyValue...), parsed
  with upb, JSON built with Arrow kernels; the wire path falls back to it.

JSON encoding of an AnyValue: string, bool, int and double as JSON values (doubles that
are whole keep a ``.0``; NaN and infinities become the strings ``"NaN"``, ``"Infinity"``,
``"-Infinity"`` so the JSON stays valid); bytes as a base64 string (as OTLP/JSON does);
arrays as lists; kvlists as objects; an empty AnyValue as ``null``. Keys repeated within
one item keep the last value, as a protobuf map or a dict would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from faultlens.decode import _shadow
from faultlens.decode._anyvalue import (
    MAX_ANY_DEPTH,
    SCALAR_ONEOFS,
    S,
    any_to_python,
    double_str,
    double_texts,
    json_text,
    parse_any,
    scalar_text,
    to_int,
)
from faultlens.decode._columns import Packed
from faultlens.decode._kvfast import FastKV, kv_layout

__all__ = ["MAX_ANY_DEPTH", "AttrGroups", "any_to_python", "decode_values", "json_text", "value_texts"]

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
_parse_any = parse_any
# Up to this many KeyValues in a request part, decode them with plain Python.
TINY = 256  # measured: below ~350 KeyValues plain Python is faster than numpy
Path = Literal["auto", "wire", "tiny", "general"]


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
    bools = pc.if_else(pa.array(v.bools, pa.bool_()), S["true"], S["false"])
    ints = pc.cast(pa.array(v.ints, pa.int64()), pa.string())
    doubles = double_texts(pa.array(v.doubles, pa.float64()))
    others = pa.array(v.others, pa.string())
    return _by_kind(v.kinds, [strings, bools, ints, doubles, others], None)


class AttrGroups:
    """The attributes of many items: item ``i`` owns the next ``kvs.counts[i]`` KeyValues.

    ``json`` holds one JSON object per item; :meth:`promote_many` picks one attribute per
    item into typed columns. Raises :class:`InvalidRequest` on malformed bytes.

    ``path`` picks the implementation: ``"wire"`` (:class:`FastKV`, from the wire bytes;
    used for canonical KeyValues, i.e. all of them in practice), ``"tiny"`` (plain Python,
    for a few KeyValues), ``"general"`` (any KeyValues, via upb and Arrow kernels).
    ``"auto"`` chooses; all give the same result, which the tests check.
    """

    def __init__(self, kvs: Packed, *, path: Path = "auto") -> None:
        self.counts = kvs.counts
        self.n_groups = len(self.counts)
        if len(kvs) != int(self.counts.sum()):
            raise ValueError(f"{len(kvs)} KeyValues but counts add up to {int(self.counts.sum())}")
        self._group_of: np.ndarray | None = None
        self._impl: FastKV | _General | _Tiny
        if path == "auto":
            path = "tiny" if len(kvs) <= TINY else "wire"
        if path == "tiny":
            self._impl = _Tiny(kvs.items(), self.counts)
        elif path == "wire":
            self._impl = FastKV.build(kvs) or _General(kvs.items(), self.counts)
        else:
            self._impl = _General(kvs.items(), self.counts)
        self.json: pa.Array = self._impl.json

    @classmethod
    def of(
        cls, kvs: Sequence[bytes], counts: Sequence[int] | np.ndarray, *, path: Path = "auto"
    ) -> AttrGroups:
        """From a list of serialized KeyValues and how many of them each item owns."""
        return cls(Packed.of(kvs, counts), path=path)

    def promote(self, keys: Sequence[str], typ: pa.DataType) -> pa.Array:
        """One column of ``typ`` with, per item, the value of the first of ``keys`` it has.

        Strings are taken as is (other scalars as their text); int columns take ints and
        strings of digits; values that do not fit the type are null.
        """
        return self.promote_many([(keys, typ)])[0]

    def promote_many(self, specs: Sequence[tuple[Sequence[str], pa.DataType]]) -> list[pa.Array]:
        """:meth:`promote` for several columns at once (one pass over the KeyValues)."""
        wanted: list[str] = []
        where: dict[str, list[tuple[int, int]]] = {}
        for spec, (keys, _) in enumerate(specs):
            for prio, key in enumerate(keys):
                if key not in where:
                    where[key] = []
                    wanted.append(key)
                where[key].append((spec, prio))
        kv_want = self._impl.key_ids(wanted) if self.n_groups else np.zeros(0, dtype=np.int64)
        chosen = _choose(kv_want, [where[k] for k in wanted], self._groups(), len(specs), self.n_groups)
        # one values() call for all text columns and one for all int columns
        taken: dict[int, pa.Array] = {}
        n = self.n_groups
        for as_int in (False, True):
            rows = [i for i, (_, typ) in enumerate(specs) if pa.types.is_integer(typ) == as_int]
            if rows:
                values = self._impl.values(chosen[rows].ravel(), as_int)
                taken.update((row, values.slice(j * n, n)) for j, row in enumerate(rows))
        out: list[pa.Array] = []
        for row, (_, typ) in enumerate(specs):
            col = taken[row]
            if pa.types.is_integer(typ) and typ != pa.int64():
                bits = typ.bit_width - 1
                fits = pc.and_(
                    pc.greater_equal(col, pa.scalar(-(2**bits), pa.int64())),
                    pc.less_equal(col, pa.scalar(2**bits - 1, pa.int64())),
                )
                col = pc.if_else(fits, col, pa.scalar(None, pa.int64())).cast(typ)
            out.append(col)
        return out

    def _groups(self) -> np.ndarray:
        if self._group_of is None:
            self._group_of = np.repeat(np.arange(self.n_groups, dtype=np.int64), self.counts)
        return self._group_of


def _choose(
    kv_want: np.ndarray,
    want_specs: Sequence[Sequence[tuple[int, int]]],
    group_of: np.ndarray,
    n_specs: int,
    n_groups: int,
) -> np.ndarray:
    """Per spec and item, the index of the chosen KeyValue (-1 where none).

    ``kv_want[j]`` is the wanted key of KeyValue ``j`` (-1: none); ``want_specs[w]`` lists
    the (spec, priority) pairs key ``w`` serves. Lower priority wins; among equal keys the
    last one wins, as when building a dict.
    """
    chosen = np.full((n_specs, n_groups), -1, dtype=np.int64)
    pos = np.flatnonzero(kv_want >= 0)
    if not len(pos):
        return chosen
    pair_count = np.array([len(p) for p in want_specs], dtype=np.int64)
    pair_start = np.cumsum(pair_count) - pair_count
    pairs = np.array([pair for p in want_specs for pair in p], dtype=np.int64).reshape(-1, 2)
    w = kv_want[pos]
    hits = pair_count[w]
    kv = np.repeat(pos, hits)
    row = np.repeat(pair_start[w], hits) + (np.arange(len(kv)) - np.repeat(np.cumsum(hits) - hits, hits))
    spec, prio, group = pairs[row, 0], pairs[row, 1], group_of[kv]
    # one int64 sort key: by (spec, item), then priority, then the last KeyValue first
    slot = spec * n_groups + group
    n_prio, n_kv = int(prio.max()) + 1, len(kv_want)
    order = np.argsort((slot * n_prio + prio) * n_kv + (n_kv - 1 - kv))
    slot, kv = slot[order], kv[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = slot[1:] != slot[:-1]
    chosen.ravel()[slot[first]] = kv[first]
    return chosen


class _Tiny:
    """A few KeyValues (a resource, some events): plain Python beats numpy's fixed costs."""

    def __init__(self, kvs: Sequence[bytes], counts: np.ndarray) -> None:
        parsed = [_shadow.parse(KeyValue, raw, "attribute") for raw in kvs]
        self._keys = [kv.key for kv in parsed]
        self._values = [any_to_python(kv.value) for kv in parsed]
        self._scalar = [kv.value.WhichOneof("value") in SCALAR_ONEOFS for kv in parsed]
        texts = []
        start = 0
        for count in counts.tolist():
            end = start + count
            texts.append(json_text(dict(zip(self._keys[start:end], self._values[start:end], strict=True))))
            start = end
        self.json = pa.array(texts, pa.string())

    def key_ids(self, wanted: Sequence[str]) -> np.ndarray:
        index = {k: i for i, k in enumerate(wanted)}
        return np.array([index.get(k, -1) for k in self._keys], dtype=np.int64)

    def values(self, chosen: np.ndarray, as_int: bool) -> pa.Array:
        picked = [self._values[i] if i >= 0 and self._scalar[i] else None for i in chosen.tolist()]
        if as_int:
            return pa.array([to_int(v) for v in picked], pa.int64())
        return pa.array([scalar_text(v) for v in picked], pa.string())


class _General:
    """Any KeyValues (empty keys, repeated fields...): parsed with upb, JSON built by Arrow."""

    def __init__(self, kvs: Sequence[bytes], counts: np.ndarray) -> None:
        self.counts = counts
        self.n_groups = len(counts)
        self._as_str: pa.Array | None = None
        self._as_int: pa.Array | None = None
        if not kvs:
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
        key_texts = pa.array([json_text(k) + ":" for k in self._unique_keys], pa.string())
        key_json = key_texts.take(key_arr.indices)
        text, quote = self._value_json()
        kv_json = pc.binary_join_element_wise(key_json, quote, text, quote, S[""])
        offsets = np.zeros(self.n_groups + 1, dtype=np.int32)
        np.cumsum(self.counts, out=offsets[1:])
        grouped = pa.ListArray.from_arrays(pa.array(offsets), kv_json)
        self.json = pc.binary_join_element_wise(S["{"], pc.binary_join(grouped, S[","]), S["}"], S[""])

    # -- splitting KeyValues into keys and values ---------------------------------------

    def _split(self, kvs: Sequence[bytes]) -> tuple[list[str], _Values]:
        n = len(kvs)
        lens = np.fromiter(map(len, kvs), dtype=np.int64, count=n)
        ends = np.cumsum(lens)
        starts = ends - lens
        buf = b"".join(kvs)
        arr = np.frombuffer(buf, dtype=np.uint8)
        layout = kv_layout(arr, starts, ends)
        if layout is None:
            return self._split_slow(kvs)
        _, _, vstart, vlen = layout
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
        bools = pc.if_else(pa.array(v.bools, pa.bool_()), S["true"], S["false"])
        ints = pc.cast(pa.array(v.ints, pa.int64()), pa.string())
        if for_json:
            doubles = double_texts(pa.array(v.doubles, pa.float64()))
        else:  # promoted text: the same spelling as the other paths (Python's repr)
            doubles = pa.array([double_str(d) for d in v.doubles], pa.string())
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

    # -- promoted columns -----------------------------------------------------------------

    def key_ids(self, wanted: Sequence[str]) -> np.ndarray:
        """Per KeyValue, the index in ``wanted`` of its key, or -1."""
        index = {k: i for i, k in enumerate(wanted)}
        lut = np.array([index.get(k, -1) for k in self._unique_keys] + [-1], dtype=np.int64)
        return lut[self._key_ids.astype(np.int64)] if len(self._key_ids) else np.zeros(0, dtype=np.int64)

    def values(self, chosen: np.ndarray, as_int: bool) -> pa.Array:
        """Values of the KeyValues at ``chosen`` (-1: null), as text or as int64."""
        source = self._ints() if as_int else self._strs()
        return source.take(pa.array(chosen, mask=chosen < 0, type=pa.int64()))

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
