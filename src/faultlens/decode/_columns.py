"""The fields of many serialized records (spans, log records) read with one upb parse.

Why: reading 16 fields of 1,000 span messages from Python costs 16,000 attribute
lookups. Protobuf parsing appends every occurrence of a repeated field to one list, so
parsing the concatenation of all the records with a message whose fields are all
``repeated`` (``SpanCols``, ``LogCols`` in :mod:`~faultlens.decode._shadow`) yields each
field of every record as one list, built in C.

Records omit fields that hold their default value, so the lists alone do not say which
record a value belongs to. We therefore append a *terminator* after each record: a value
of every field that real records practically never hold (a one-byte message for message
fields, which is always malformed; ``2**64-1`` for numbers; odd bytes for strings). The
values of record ``i`` are those between the ``i-1``-th and ``i``-th terminator; the last
one wins, as in protobuf. If a field does not have exactly one terminator per record (a
real value happened to equal the terminator) or a message field occurs twice in a record
(protobuf would merge them), :func:`read_columns` returns None and the caller parses the
records one by one: same result, slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from operator import attrgetter
from typing import Any, Literal

import numpy as np

from faultlens.decode import _shadow

__all__ = ["Field", "Layout", "Packed", "read_columns", "read_one_by_one"]

_MESSAGE_TERMINATOR = b"\x00"
_VALUE_TERMINATORS: dict[str, Any] = {"bytes": b"\xfe\xff\xfe", "string": "\x00\ufffe\x00"}
_NUMBER_TERMINATORS = {"uint64": 2**64 - 1, "fixed64": 2**64 - 1, "fixed32": 2**32 - 1}


@dataclass(frozen=True)
class Packed:
    """The elements of a repeated bytes field of many records, back to back in one buffer.

    Element ``i`` is ``buf[starts[i]:ends[i]]``; record ``r`` owns the next ``counts[r]``
    elements. Kept packed because the attribute decoder works on the buffer directly.
    """

    buf: bytes
    starts: np.ndarray
    ends: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, items: Sequence[bytes], counts: Sequence[int] | np.ndarray) -> Packed:
        lens = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
        ends = np.cumsum(lens)
        return cls(b"".join(items), ends - lens, ends, np.asarray(counts, dtype=np.int64))

    def items(self) -> list[bytes]:
        buf = self.buf
        return [buf[a:b] for a, b in zip(self.starts.tolist(), self.ends.tolist(), strict=True)]

    def __len__(self) -> int:
        return len(self.starts)


@dataclass(frozen=True)
class Field:
    """One field to read.

    ``kind``: ``"value"`` (bytes or string, as a list), ``"number"`` (a uint64 numpy array),
    ``"message"`` (a singular message field, kept serialized, ``b""`` when absent) or
    ``"repeated"`` (every element of every record, as a :class:`Packed`).
    """

    name: str
    kind: Literal["value", "number", "message", "repeated"]
    wire: str = "bytes"  # the field's type in the *Cols message, for its terminator
    default: Any = b""


@dataclass(frozen=True)
class Layout:
    """How to read one kind of record: its *Cols class, its one-record class, its fields."""

    cols: Any
    record: Any
    fields: tuple[Field, ...]
    what: str

    @cached_property
    def terminator(self) -> bytes:
        """One serialized terminator for every field, appended after each record."""
        values: dict[str, Any] = {}
        for f in self.fields:
            if f.kind in ("message", "repeated"):
                values[f.name] = [_MESSAGE_TERMINATOR]
            elif f.kind == "number":
                values[f.name] = [_NUMBER_TERMINATORS[f.wire]]
            else:
                values[f.name] = [_VALUE_TERMINATORS[f.wire]]
        serialized: bytes = self.cols(**values).SerializeToString()
        return serialized


def read_columns(layout: Layout, records: Sequence[bytes]) -> dict[str, Any] | None:
    """Every field of every record, or None when the terminators cannot be trusted."""
    n = len(records)
    term = layout.terminator
    cols = _shadow.parse(layout.cols, term.join(records) + term, layout.what)
    out: dict[str, Any] = {}
    for f in layout.fields:
        entries = getattr(cols, f.name)
        col: np.ndarray | Packed | list[Any] | None
        if f.kind == "number":
            col = _numbers(np.array(entries, dtype=np.uint64), n, _NUMBER_TERMINATORS[f.wire], f.default)
        elif f.kind == "repeated":
            col = _repeated(entries[:], n)
        else:
            marker = _MESSAGE_TERMINATOR if f.kind == "message" else _VALUE_TERMINATORS[f.wire]
            col = _values(entries[:], n, marker, f.default, merge=f.kind == "message")
        if col is None:
            return None
        out[f.name] = col
    return out


def _numbers(arr: np.ndarray, n: int, term: int, default: int) -> np.ndarray | None:
    if len(arr) == 2 * n and bool((arr[1::2] == term).all()) and not bool((arr[0::2] == term).any()):
        return arr[0::2].copy()
    is_term = arr == term
    ends = _segment_ends(is_term, n)
    if ends is None:
        return None
    out = np.full(n, default, dtype=np.uint64)
    present = _present(ends)
    out[present] = arr[ends[present] - 1]
    return out


def _values(entries: list[Any], n: int, term: Any, default: Any, merge: bool) -> list[Any] | None:
    m = len(entries)
    if m == n and entries.count(term) == n:
        return [default] * n
    if m == 2 * n and entries[1::2].count(term) == n and term not in entries[0::2]:
        return entries[0::2]
    is_term = np.fromiter(map(term.__eq__, entries), dtype=bool, count=m)
    ends = _segment_ends(is_term, n)
    if ends is None:
        return None
    present = _present(ends)
    if merge and bool((np.diff(ends, prepend=-1) > 2).any()):
        return None  # a message field twice in one record: protobuf merges them
    out = np.full(n, default, dtype=object)
    out[present] = np.array(entries, dtype=object)[ends[present] - 1]
    values: list[Any] = out.tolist()
    return values


def _repeated(entries: list[bytes], n: int) -> Packed | None:
    m = len(entries)
    if m == n and entries.count(_MESSAGE_TERMINATOR) == n:
        empty = np.zeros(0, dtype=np.int64)
        return Packed(b"", empty, empty, np.zeros(n, dtype=np.int64))
    lens = np.fromiter(map(len, entries), dtype=np.int64, count=m)
    is_term = lens == 1
    term_at = _segment_ends(is_term, n)
    if term_at is None:
        return None
    counts = np.diff(term_at, prepend=-1) - 1
    ends = np.cumsum(lens)
    keep = ~is_term
    return Packed(b"".join(entries), (ends - lens)[keep], ends[keep], counts)


def _segment_ends(is_term: np.ndarray, n: int) -> np.ndarray | None:
    """Positions of the terminators, if there is exactly one per record and one last."""
    ends = np.flatnonzero(is_term)
    if len(ends) != n or (n and ends[-1] != len(is_term) - 1):
        return None
    return ends


def _present(ends: np.ndarray) -> np.ndarray:
    return np.diff(ends, prepend=-1) > 1


def read_one_by_one(layout: Layout, records: Sequence[bytes]) -> dict[str, Any]:
    """The same columns as :func:`read_columns`, parsing each record on its own (exact, slow)."""
    parsed = [_shadow.parse(layout.record, r, layout.what) for r in records]
    getter = attrgetter(*(f.name for f in layout.fields))
    rows = list(zip(*map(getter, parsed), strict=True)) if parsed else [() for _ in layout.fields]
    out: dict[str, Any] = {}
    for f, values in zip(layout.fields, rows, strict=True):
        if f.kind == "number":
            out[f.name] = np.array([v & (2**64 - 1) for v in values], dtype=np.uint64)
        elif f.kind == "repeated":
            flat: list[bytes] = []
            for v in values:
                flat.extend(v)
            out[f.name] = Packed.of(flat, [len(v) for v in values])
        elif f.kind == "message":
            out[f.name] = [_reserialize(v) for v in values]
        else:
            out[f.name] = list(values)
    return out


def _reserialize(value: Any) -> bytes:
    return value if isinstance(value, bytes) else bytes(value.SerializeToString())
