"""Attribute JSON assembled from the wire bytes with one Arrow ``take`` (the common case).

A canonical ``KeyValue`` is ``0a <len> key 12 <len> value``; a string value is
``0a <len> text``. The JSON of one attribute is the key and the text copied from those
bytes with punctuation around them: ``"key":"text"``. So instead of creating Python
strings, we cut the request's concatenated KeyValue bytes into *pieces* (framing, key,
framing, text for each KeyValue: the cuts are an offsets array, so the pieces are a
zero-copy Arrow binary array), add pieces for punctuation and for the texts of ints and
doubles (formatted by Arrow), and describe each attribute's JSON as 8 piece indices:
separator, quote, key, ``":``, quote, value, quote, closing brace. One ``take`` copies
them all in order; its data buffer *is* the JSON of every item back to back, so the
JSON column is that buffer with one offset per item. One UTF-8 check over it also checks
every key and string value, as the protobuf parser would have.

Only values that need more than copying go through Python one by one: strings that need
JSON escaping, bytes, arrays and kvlists, and keys that need escaping.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from faultlens.decode import _shadow
from faultlens.decode._anyvalue import (
    SCALAR_ONEOFS,
    any_to_python,
    double_str,
    double_texts,
    json_text,
    parse_any,
    scalar_text,
    to_int,
)
from faultlens.decode._columns import Packed

__all__ = ["FastKV", "kv_layout", "varint"]

# kinds of value
_NULL, _STR, _BOOL, _INT, _DOUBLE, _PY = 0, 1, 2, 3, 4, 5

_CONSTANTS = [b"{", b",", b"}", b'"', b'":', b":", b"true", b"false", b"null", b""]
_OPEN, _COMMA, _CLOSE, _QUOTE, _QCOLON, _COLON, _TRUE, _FALSE, _NULLTXT, _EMPTY = range(len(_CONSTANTS))
_CONST_ARRAY = pa.array(_CONSTANTS, pa.binary())
_KEY, _TEXT = 1, 3  # pieces of KeyValue j: 5j framing, 5j+1 key, 5j+2 framing, 5j+3 text, 5j+4 gap


def varint(arr: np.ndarray, pos: np.ndarray, limit: np.ndarray, max_bytes: int) -> tuple[np.ndarray, ...]:
    """Decode the varint at each ``pos`` (at most ``max_bytes`` long, ending before ``limit``).

    Returns (value as uint64, size, ok); where ``ok`` is False the others are meaningless.
    """
    n = len(pos)
    value = np.zeros(n, dtype=np.uint64)
    size = np.zeros(n, dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    if not n:
        return value, size, done
    last = len(arr) - 1
    for i in range(max_bytes):
        p = pos + i
        b = arr[np.minimum(p, last)]
        active = ~done & (p < limit)
        if not active.any():
            break
        bits = (b & 0x7F).astype(np.uint64) << np.uint64(7 * i)
        value = np.where(active, value | bits, value)
        ends = active & (b < 0x80)
        size[ends] = i + 1
        done |= ends
    return value, size, done


def kv_layout(arr: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """(key start, key length, value start, value length) if every KeyValue is ``key, value``."""
    last = len(arr) - 1
    if not len(arr) or bool(np.any(starts >= ends)):
        return None
    if not bool(np.all(arr[starts] == 0x0A)):
        return None
    klen, ksize, ok = varint(arr, starts + 1, ends, 3)
    if not bool(np.all(ok)):
        return None
    kstart = starts + 1 + ksize
    klen_i = klen.astype(np.int64)
    vtag = kstart + klen_i
    if bool(np.any(vtag >= ends)) or not bool(np.all(arr[np.minimum(vtag, last)] == 0x12)):
        return None
    vlen, vsize, ok = varint(arr, vtag + 1, ends, 4)
    vstart = vtag + 1 + vsize
    vlen_i = vlen.astype(np.int64)
    if not bool(np.all(ok)) or not bool(np.all(vstart + vlen_i == ends)):
        return None
    return kstart, klen_i, vstart, vlen_i


class FastKV:
    """The JSON objects and promoted values of canonical KeyValues (see the module docstring).

    Build with :meth:`build`, which returns None when some KeyValue is not canonical.
    """

    json: pa.Array

    @classmethod
    def build(cls, kvs: Packed) -> FastKV | None:
        buf = kvs.buf
        if len(buf) >= 2**31 or not len(kvs):
            return None
        arr = np.frombuffer(buf, dtype=np.uint8)
        layout = kv_layout(arr, kvs.starts, kvs.ends)
        if layout is None:
            return None
        self = cls()
        self._build(buf, arr, kvs.starts, kvs.ends, layout, kvs.counts)
        return self

    def _build(
        self,
        buf: bytes,
        arr: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
        layout: tuple[np.ndarray, ...],
        counts: np.ndarray,
    ) -> None:
        kstart, klen, vstart, vlen = layout
        n = len(starts)
        last = len(arr) - 1
        kend = kstart + klen
        tag = np.where(vlen > 0, arr[np.minimum(vstart, last)], 0)

        # -- what kind of value each one is, and where a plain string's text lies --------
        kind = np.full(n, _PY, dtype=np.int8)
        kind[vlen == 0] = _NULL
        pstart = ends.copy()  # empty text unless a plain string
        is_str = np.flatnonzero(tag == 0x0A)
        plen, psize, ok = varint(arr, vstart[is_str] + 1, ends[is_str], 5)
        s_start = vstart[is_str] + 1 + psize
        single = ok & (s_start + plen.astype(np.int64) == ends[is_str])
        kind[is_str[single]] = _STR
        pstart[is_str[single]] = s_start[single]
        is_int = np.flatnonzero(tag == 0x18)
        ival, isize, ok = varint(arr, vstart[is_int] + 1, ends[is_int], 10)
        int_ok = ok & (vstart[is_int] + 1 + isize == ends[is_int])
        kind[is_int[int_ok]] = _INT
        is_bool = np.flatnonzero((tag == 0x10) & (vlen == 2))
        kind[is_bool[arr[np.minimum(vstart[is_bool] + 1, last)] <= 1]] = _BOOL
        kind[(tag == 0x21) & (vlen == 9)] = _DOUBLE

        # -- texts and keys that need JSON escaping go through Python -------------------
        needs = (arr < 0x20) | (arr == 0x22) | (arr == 0x5C)  # control, '"', '\\'
        esc = np.zeros(len(arr) + 1, dtype=np.int32)
        np.cumsum(needs, dtype=np.int32, out=esc[1:])
        key_escape = esc[kend] > esc[kstart]
        text_escape = (kind == _STR) & (esc[ends] > esc[pstart])
        kind[text_escape] = _PY
        pstart[text_escape] = ends[text_escape]

        # -- pieces: framing, key, framing, text, gap to the next KeyValue ------------------
        cuts = np.empty(5 * n, dtype=np.int32)
        cuts[0::5], cuts[1::5], cuts[2::5], cuts[3::5], cuts[4::5] = starts, kstart, kend, pstart, ends
        wire = pa.BinaryArray.from_buffers(
            pa.binary(), 5 * n - 1, [None, pa.py_buffer(cuts), pa.py_buffer(buf)]
        )
        int_pos = is_int[int_ok]
        ints = ival[int_ok].view(np.int64)
        int_texts = pc.cast(pa.array(ints, pa.int64()), pa.string())
        dbl_pos = np.flatnonzero(kind == _DOUBLE)
        doubles = arr[(vstart[dbl_pos] + 1)[:, None] + np.arange(8)].copy().view("<f8").ravel()
        dbl_texts = _json_doubles(doubles)
        py_pos = np.flatnonzero(kind == _PY)
        py_anys = [parse_any(buf[int(vstart[i]) : int(ends[i])]) for i in py_pos]
        py_values = [any_to_python(v) for v in py_anys]
        # only scalars fill promoted columns (bytes look like strings once converted)
        py_scalar = [v.WhichOneof("value") in SCALAR_ONEOFS for v in py_anys]
        py_texts = pa.array([json_text(v) for v in py_values], pa.string())
        esc_pos = np.flatnonzero(key_escape)
        esc_keys = pa.array(
            [json_text(_key_text(buf, int(kstart[i]), int(kend[i]))) for i in esc_pos], pa.string()
        )
        parts = [wire, _CONST_ARRAY, int_texts, dbl_texts, py_texts, esc_keys]
        base = np.cumsum([0] + [len(p) for p in parts])
        b_const, b_int, b_dbl, b_py, b_key = (int(x) for x in base[1:6])
        pieces = pa.concat_arrays([p.view(pa.binary()) if p.type != pa.binary() else p for p in parts])

        # -- 8 pieces per attribute ----------------------------------------------------------
        group_end = np.cumsum(counts)
        group_of = np.repeat(np.arange(len(counts)), counts)
        j = np.arange(n)
        first = j == (group_end - counts)[group_of]
        is_last = j == group_end[group_of] - 1
        rows = np.full((n, 8), b_const + _EMPTY, dtype=np.int32)
        rows[:, 0] = b_const + np.where(first, _OPEN, _COMMA)
        rows[:, 1] = b_const + _QUOTE
        rows[:, 2] = _KEY + 5 * j
        rows[:, 3] = b_const + _QCOLON
        rows[esc_pos, 1] = b_key + np.arange(len(esc_pos))  # the quoted, escaped key
        rows[esc_pos, 2] = b_const + _EMPTY
        rows[esc_pos, 3] = b_const + _COLON
        s = np.flatnonzero(kind == _STR)
        rows[s, 4] = rows[s, 6] = b_const + _QUOTE
        rows[s, 5] = _TEXT + 5 * s
        rows[int_pos, 5] = b_int + np.arange(len(int_pos))
        rows[dbl_pos, 5] = b_dbl + np.arange(len(dbl_pos))
        rows[py_pos, 5] = b_py + np.arange(len(py_pos))
        b = np.flatnonzero(kind == _BOOL)
        rows[b, 5] = b_const + np.where(arr[vstart[b] + 1] == 1, _TRUE, _FALSE)
        rows[kind == _NULL, 5] = b_const + _NULLTXT
        rows[is_last, 7] = b_const + _CLOSE

        # items without attributes are "{}": a row of their own, where their rows would be
        rows_per_group = np.maximum(counts, 1)
        row_start = np.cumsum(rows_per_group) - rows_per_group
        empty = np.flatnonzero(counts == 0)
        if len(empty):
            all_rows = np.full((int(rows_per_group.sum()), 8), b_const + _EMPTY, dtype=np.int32)
            all_rows[row_start[group_of] + (j - (group_end - counts)[group_of])] = rows
            all_rows[row_start[empty], 0] = b_const + _OPEN
            all_rows[row_start[empty], 7] = b_const + _CLOSE
            rows = all_rows

        # -- one take ------------------------------------------------------------------------
        taken = pieces.take(pa.array(rows.ravel()))
        _, off_buf, data = taken.buffers()
        piece_off = np.frombuffer(off_buf, dtype=np.int32)[: len(taken) + 1]
        group_off = np.empty(len(counts) + 1, dtype=np.int32)
        group_off[:-1] = piece_off[8 * row_start]
        group_off[-1] = piece_off[-1]
        json_arr = pa.StringArray.from_buffers(len(counts), pa.py_buffer(group_off), data)
        try:
            json_arr.validate(full=True)
        except pa.ArrowInvalid:
            raise _shadow.malformed("attribute: a key or value is not valid UTF-8") from None
        self.json = json_arr

        self._pieces, self._kind, self._arr, self._vstart = pieces, kind, arr, vstart
        self._int_pos, self._ints, self._b_int = int_pos, ints, b_int
        self._dbl_pos, self._doubles = dbl_pos, doubles
        self._py_pos, self._py_values, self._py_scalar = py_pos, py_values, py_scalar
        self._b_const = b_const

    # -- promoted columns -----------------------------------------------------------------

    def key_ids(self, wanted: Sequence[str]) -> np.ndarray:
        """Per attribute, the index in ``wanted`` of its key, or -1."""
        n = len(self._kind)
        keys = self._pieces.take(pa.array(_KEY + 5 * np.arange(n, dtype=np.int32)))
        found = pc.index_in(keys, value_set=pa.array([k.encode() for k in wanted], pa.binary()))
        ids: np.ndarray = found.fill_null(-1).to_numpy().astype(np.int64)
        return ids

    def values(self, chosen: np.ndarray, as_int: bool) -> pa.Array:
        """The values of the attributes at ``chosen`` (-1: null), as text or as int64."""
        valid = np.flatnonzero(chosen >= 0)
        picks = chosen[valid]
        kinds = self._kind[picks]
        if as_int:
            return self._int_values(len(chosen), valid, picks, kinds)
        index = np.full(len(chosen), -1, dtype=np.int64)
        s = kinds == _STR
        index[valid[s]] = _TEXT + 5 * picks[s]
        i = kinds == _INT
        index[valid[i]] = self._b_int + np.searchsorted(self._int_pos, picks[i])
        b = np.flatnonzero(kinds == _BOOL)
        truth = self._arr[self._vstart[picks[b]] + 1] == 1
        index[valid[b]] = self._b_const + np.where(truth, _TRUE, _FALSE)
        extra: list[str | None] = []
        for j in np.flatnonzero((kinds == _DOUBLE) | (kinds == _PY)):
            pick, target = int(picks[j]), int(valid[j])
            if kinds[j] == _DOUBLE:
                extra.append(double_str(float(self._doubles[np.searchsorted(self._dbl_pos, pick)])))
            else:
                at = int(np.searchsorted(self._py_pos, pick))
                extra.append(scalar_text(self._py_values[at]) if self._py_scalar[at] else None)
            index[target] = len(self._pieces) + len(extra) - 1
        in_pieces = (index >= 0) & (index < len(self._pieces))
        taken = self._pieces.take(pa.array(np.where(in_pieces, index, 0), mask=~in_pieces)).view(pa.string())
        if extra:
            from_extra = pa.array(index >= len(self._pieces))
            taken = pc.replace_with_mask(taken, from_extra, pa.array(extra, pa.string()))
        return taken

    def _int_values(self, n: int, valid: np.ndarray, picks: np.ndarray, kinds: np.ndarray) -> pa.Array:
        out = np.zeros(n, dtype=np.int64)
        ok = np.zeros(n, dtype=bool)
        i = kinds == _INT
        out[valid[i]] = self._ints[np.searchsorted(self._int_pos, picks[i])]
        ok[valid[i]] = True
        for j in np.flatnonzero((kinds == _STR) | (kinds == _PY)):
            pick, target = int(picks[j]), int(valid[j])
            if kinds[j] == _STR:
                value: Any = bytes(self._pieces[_TEXT + 5 * pick].as_py()).decode()
            else:
                at = int(np.searchsorted(self._py_pos, pick))
                value = self._py_values[at] if self._py_scalar[at] else None
            parsed = to_int(value)
            if parsed is not None:
                out[target], ok[target] = parsed, True
        return pa.array(out, mask=~ok)


def _json_doubles(doubles: np.ndarray) -> pa.Array:
    """JSON texts of doubles: NaN and infinities as quoted strings."""
    texts = double_texts(pa.array(doubles, pa.float64()))
    finite = np.isfinite(doubles)
    if finite.all():
        return texts
    quoted = [None if f else f'"{double_str(float(d))}"' for d, f in zip(doubles, finite, strict=True)]
    return pc.if_else(pa.array(finite), texts, pa.array(quoted, pa.string()))


def _key_text(buf: bytes, start: int, end: int) -> str:
    try:
        return buf[start:end].decode()
    except UnicodeDecodeError:
        raise _shadow.malformed("attribute: a key is not valid UTF-8") from None
