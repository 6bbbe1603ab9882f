"""Serialized ``ExportTraceServiceRequest`` to one Arrow table of :data:`SPAN_SCHEMA`.

Two implementations give the same table, the same rejected count and the same first
reason (the tests compare them on valid, edge-case and mutated requests):

- :func:`decode_spans_native` (:mod:`faultlens.decode._native_spans`, a C extension built
  at install time) reads the wire bytes once and writes the Arrow buffers directly, 10-15x
  faster. :func:`decode_spans` uses it when it is built, unless the environment sets
  ``FAULTLENS_NATIVE_DECODE=0``.
- :func:`decode_spans_python`: the fields of all spans are read with one parse
  (:mod:`faultlens.decode._columns`), the attributes of all spans go through
  :class:`AttrGroups` together, and validation runs on numpy arrays. Rejected spans are
  dropped with one ``Table.filter`` at the end.

Where the two may differ is listed in docs/architecture.md (Decode).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pyarrow as pa

from faultlens.decode import _shadow
from faultlens.decode._columns import Field, Layout, Packed, read_columns, read_one_by_one
from faultlens.decode._common import I64_MAX, Owners, Rejections, flatten
from faultlens.decode._native_spans import NATIVE_ERROR, decode_spans_native, native_available
from faultlens.decode.attributes import AttrGroups
from faultlens.decode.schema import EVENT_TYPE, EXCEPTION_COLUMNS, LINK_TYPE, SPAN_SCHEMA, SPAN_SEMCONV

__all__ = ["NATIVE", "SPAN_LAYOUT", "decode_spans", "decode_spans_native", "decode_spans_python"]

_log = logging.getLogger(__name__)

NATIVE_ENV = "FAULTLENS_NATIVE_DECODE"
_NATIVE_WANTED = os.environ.get(NATIVE_ENV, "1") != "0"
# Whether decode_spans uses the native decoder: built, and not turned off by the environment.
NATIVE = _NATIVE_WANTED and native_available()
if _NATIVE_WANTED and not native_available():
    _log.warning("native span decoder unavailable (%s); decoding spans in Python", NATIVE_ERROR)

SPAN_LAYOUT = Layout(
    cols=_shadow.SpanCols,
    record=_shadow.Span,
    what="span",
    fields=(
        Field("trace_id", "value"),
        Field("span_id", "value"),
        Field("trace_state", "value", "string", ""),
        Field("parent_span_id", "value"),
        Field("name", "value", "string", ""),
        Field("kind", "number", "uint64", 0),
        Field("start_time_unix_nano", "number", "fixed64", 0),
        Field("end_time_unix_nano", "number", "fixed64", 0),
        Field("attributes", "repeated"),
        Field("dropped_attributes_count", "number", "uint64", 0),
        Field("events", "repeated"),
        Field("dropped_events_count", "number", "uint64", 0),
        Field("links", "repeated"),
        Field("dropped_links_count", "number", "uint64", 0),
        Field("status", "message"),
        Field("flags", "number", "fixed32", 0),
    ),
)
_ZERO16 = bytes(16)
_ZERO8 = bytes(8)
_MAX_KIND = 5
_I32_MAX = 2**31 - 1
_EXC_SPECS = [((attr,), pa.string()) for _, attr in EXCEPTION_COLUMNS]


def decode_spans(data: bytes) -> tuple[pa.Table, int, str]:
    """Decode a serialized trace request: (table of accepted spans, rejected count, first reason).

    Raises :class:`~faultlens.errors.InvalidRequest` when the bytes are not a valid request.
    """
    if NATIVE:
        return decode_spans_native(data)
    return decode_spans_python(data)


def decode_spans_python(data: bytes) -> tuple[pa.Table, int, str]:
    """:func:`decode_spans` in Python (numpy, pyarrow and upb)."""
    req = _shadow.parse(_shadow.TraceRequest, data, "trace request")
    owners = Owners()
    records: list[bytes] = []
    for rs in req.resource_spans:
        owners.resources.append(rs.resource)
        for ss in rs.scope_spans:
            batch = ss.spans[:]
            owners.add_scope(ss.scope, len(batch))
            records.extend(batch)
    n = len(records)
    if n == 0:
        return SPAN_SCHEMA.empty_table(), 0, ""
    f = read_columns(SPAN_LAYOUT, records) or read_one_by_one(SPAN_LAYOUT, records)
    trace_id, span_id, parent = f["trace_id"], f["span_id"], f["parent_span_id"]
    starts, ends, kinds = f["start_time_unix_nano"], f["end_time_unix_nano"], f["kind"]
    rej = _validate(n, trace_id, span_id, parent, starts, ends, kinds)
    starts_i = np.where(starts <= I64_MAX, starts, 0).astype(np.int64)
    ends_i = np.where(ends <= I64_MAX, ends, 0).astype(np.int64)
    known_kind = kinds <= _MAX_KIND

    cols: dict[str, pa.Array] = {
        "trace_id": pa.array(trace_id, pa.binary()),
        "span_id": pa.array(span_id, pa.binary()),
        "parent_span_id": _nullable_ids(parent),
        "trace_state": pa.array(f["trace_state"], pa.string()),
        "flags": pa.array(f["flags"].astype(np.int64)),
        "name": pa.array(f["name"], pa.string()),
        "kind": pa.array(np.where(known_kind, kinds, 0).astype(np.int8)),
        "start_time_unix_nano": pa.array(starts_i),
        "end_time_unix_nano": pa.array(ends_i),
        "duration_ns": pa.array(np.where(ends_i >= starts_i, ends_i - starts_i, 0)),
    }
    cols.update(_status(f["status"]))
    attr_groups = AttrGroups(f["attributes"])
    promoted = attr_groups.promote_many([(keys, typ) for _, typ, keys in SPAN_SEMCONV])
    for (col, _, _), arr in zip(SPAN_SEMCONV, promoted, strict=True):
        cols[col] = arr
    ev_col, exc_cols = _events(f["events"])
    cols.update(exc_cols)
    cols["attributes"] = attr_groups.json
    cols["events"] = ev_col
    cols["links"] = _links(f["links"])
    cols["dropped_attributes_count"] = _count32(f["dropped_attributes_count"])
    cols["dropped_events_count"] = _count32(f["dropped_events_count"])
    cols["dropped_links_count"] = _count32(f["dropped_links_count"])

    keep = rej.keep
    if keep is not None:
        mask = pa.array(keep)
        cols = {k: v.filter(mask) for k, v in cols.items()}
    cols.update(owners.columns(keep))
    table = pa.Table.from_arrays([cols[f.name] for f in SPAN_SCHEMA], schema=SPAN_SCHEMA)
    return table, rej.count, rej.first


def _validate(
    n: int,
    trace_id: list[bytes],
    span_id: list[bytes],
    parent: list[bytes],
    starts: np.ndarray,
    ends: np.ndarray,
    kinds: np.ndarray,
) -> Rejections:
    rej = Rejections("span", n)
    tid_len = np.fromiter(map(len, trace_id), dtype=np.int64, count=n)
    sid_len = np.fromiter(map(len, span_id), dtype=np.int64, count=n)
    pid_len = np.fromiter(map(len, parent), dtype=np.int64, count=n)
    rej.check(tid_len != 16, lambda i: f"trace_id must be 16 bytes, got {tid_len[i]}")
    rej.check(np.fromiter(map(_ZERO16.__eq__, trace_id), bool, n), lambda i: "trace_id is all zeros")
    rej.check(sid_len != 8, lambda i: f"span_id must be 8 bytes, got {sid_len[i]}")
    rej.check(np.fromiter(map(_ZERO8.__eq__, span_id), bool, n), lambda i: "span_id is all zeros")
    rej.check(
        (pid_len != 0) & (pid_len != 8),
        lambda i: f"parent_span_id must be empty or 8 bytes, got {pid_len[i]}",
    )
    rej.check(starts > I64_MAX, lambda i: f"start_time_unix_nano {starts[i]} is out of range")
    rej.check(ends > I64_MAX, lambda i: f"end_time_unix_nano {ends[i]} is out of range")
    rej.check(
        ends < starts,
        lambda i: f"end_time_unix_nano {ends[i]} is before start_time_unix_nano {starts[i]}",
    )
    rej.check(kinds > _MAX_KIND, lambda i: f"kind {_as_int32(int(kinds[i]))} is not a SpanKind (0..5)")
    return rej


def _as_int32(v: int) -> int:
    """A varint read as uint64 back to the int32 the sender meant."""
    v &= 2**32 - 1
    return v - 2**32 if v >= 2**31 else v


def _nullable_ids(ids: list[bytes]) -> pa.Array:
    arr = pa.array(ids, pa.binary())
    empty = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids)) == 0
    if not empty.any():
        return arr
    return pa.array([i or None for i in ids], pa.binary())


def _count32(values: np.ndarray) -> pa.Array:
    return pa.array(np.minimum(values, _I32_MAX).astype(np.int32))


def _status(status: list[bytes]) -> dict[str, pa.Array]:
    n = len(status)
    codes = np.zeros(n, dtype=np.int64)
    messages = [""] * n
    for i in np.flatnonzero(np.fromiter(map(len, status), dtype=np.int64, count=n)):
        st = _shadow.parse(_shadow.Status, status[i], "span status")
        codes[i] = st.code
        messages[i] = st.message
    known = (codes >= 0) & (codes <= 2)
    return {
        "status_code": pa.array(codes.astype(np.int8), mask=~known),
        "status_message": pa.array(messages, pa.string()),
    }


def _events(events: Packed) -> tuple[pa.Array, dict[str, pa.Array]]:
    """The events list column and the exception columns from each span's first exception event."""
    raws, counts = events.items(), events.counts
    n = len(counts)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    parsed = [_shadow.parse(_shadow.Event, raw, "span event") for raw in raws]
    ev_attrs = AttrGroups.of(*flatten([e.attributes for e in parsed]))
    names = [e.name for e in parsed]
    struct = pa.StructArray.from_arrays(
        [
            pa.array([min(e.time_unix_nano, I64_MAX) for e in parsed], pa.int64()),
            pa.array(names, pa.string()),
            ev_attrs.json,
        ],
        fields=list(EVENT_TYPE),
    )
    column = pa.ListArray.from_arrays(pa.array(offsets), struct, type=pa.list_(EVENT_TYPE))
    exc_idx = np.full(n, -1, dtype=np.int64)
    is_exc = np.array([nm == "exception" for nm in names], dtype=bool)
    if is_exc.any():
        span_of_event = np.repeat(np.arange(n), counts)
        ev = np.flatnonzero(is_exc)
        owners, first = np.unique(span_of_event[ev], return_index=True)
        exc_idx[owners] = ev[first]
    take = pa.array(exc_idx, mask=exc_idx < 0, type=pa.int64())
    exc_values = ev_attrs.promote_many(_EXC_SPECS)
    exc_cols = {
        col: values.take(take) for (col, _), values in zip(EXCEPTION_COLUMNS, exc_values, strict=True)
    }
    return column, exc_cols


def _links(links: Packed) -> pa.Array:
    raws, counts = links.items(), links.counts
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    parsed = [_shadow.parse(_shadow.Link, raw, "span link") for raw in raws]
    link_attrs = AttrGroups.of(*flatten([lk.attributes for lk in parsed]))
    struct = pa.StructArray.from_arrays(
        [
            pa.array([lk.trace_id for lk in parsed], pa.binary()),
            pa.array([lk.span_id for lk in parsed], pa.binary()),
            pa.array([lk.trace_state for lk in parsed], pa.string()),
            link_attrs.json,
        ],
        fields=list(LINK_TYPE),
    )
    return pa.ListArray.from_arrays(pa.array(offsets), struct, type=pa.list_(LINK_TYPE))
