"""Spans as numpy columns with each span's parent resolved to a row index.

Why: every trace-level analysis (service graph, error origins, exclusive time, edge
latency) needs "who is my parent, and in which service is it". Doing that once, with one
Arrow hash join over ``(trace_id, span_id)``, turns the rest into array arithmetic
(``np.bincount`` over parent indices) instead of per-span Python work.

Strings (service, operation, pod) are dictionary-encoded: ``service[i]`` is an index into
``services``. An operation is keyed by ``(service, name)``; ``operations[k]`` is that pair.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["SpanFrame", "span_frame"]

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

# SpanKind enum values (OTLP)
KIND_SERVER, KIND_CLIENT, KIND_PRODUCER, KIND_CONSUMER = 2, 3, 4, 5
STATUS_ERROR = 2


@dataclass(frozen=True, slots=True, eq=False)
class SpanFrame:
    """Column arrays of ``n`` spans; ``parent[i]`` is the row of i's parent or -1."""

    n: int
    trace: I64  # dense code per distinct trace id
    trace_ids: tuple[bytes, ...]
    span_ids: tuple[bytes, ...]
    service: I32
    services: tuple[str, ...]
    operation: I32
    operations: tuple[tuple[str, str], ...]  # (service, span name)
    pod: I32
    pods: tuple[str, ...]  # "" when the span has no pod
    parent: I64
    start: I64
    duration: I64
    kind: npt.NDArray[np.int8]  # 0 when unknown
    error: B  # the span says it failed (status, HTTP 5xx, gRPC code)
    peer: I32  # the service the span's ``peer.service`` names: code into ``peers``
    peers: tuple[str, ...]  # "" when the span names none

    @property
    def child_count(self) -> I64:
        has = self.parent >= 0
        return np.bincount(self.parent[has], minlength=self.n).astype(np.int64)

    def children_duration(self) -> I64:
        """Sum of the durations of each span's children."""
        has = self.parent >= 0
        return np.bincount(self.parent[has], weights=self.duration[has], minlength=self.n).astype(np.int64)

    def exclusive_time(self) -> I64:
        """Duration not covered by children (sum of child durations, clipped at zero).

        Children that run in parallel are over-counted, so this is a lower bound of the
        exclusive time; it is exact for the sequential calls most services make.
        """
        out: I64 = np.maximum(self.duration - self.children_duration(), 0)
        return out

    def cross_service(self) -> B:
        """Spans whose parent is in another service (the callee side of a call)."""
        has = self.parent >= 0
        out = np.zeros(self.n, dtype=bool)
        out[has] = self.service[self.parent[has]] != self.service[has]
        return out

    def with_error(self, extra: B) -> SpanFrame:
        """A copy whose ``error`` also holds ``extra`` (e.g. spans with ERROR logs)."""
        return dataclasses.replace(self, error=self.error | extra)


def _codes(col: pa.ChunkedArray | pa.Array, fill: str = "") -> tuple[I32, tuple[str, ...]]:
    col = pc.fill_null(col, fill)
    enc = pc.dictionary_encode(col).combine_chunks() if isinstance(col, pa.ChunkedArray) else None
    if enc is None:
        enc = pc.dictionary_encode(col)
    idx = enc.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    return idx, tuple(enc.dictionary.to_pylist())


def _int_col(table: pa.Table, name: str, fill: int = 0) -> I64:
    out: I64 = pc.fill_null(table.column(name), fill).to_numpy().astype(np.int64)
    return out


def _error_mask(spans: pa.Table) -> B:
    """Errors the span itself states: status ERROR, HTTP >= 500, or a non-OK gRPC status."""
    status = _int_col(spans, "status_code")
    http = _int_col(spans, "http_status_code")
    grpc = _int_col(spans, "rpc_grpc_status_code")
    out: B = (status == STATUS_ERROR) | (http >= 500) | (grpc > 0)
    return out


def span_frame(spans: pa.Table) -> SpanFrame:
    """Resolve parents and encode strings of a SPAN_SCHEMA table (any row order).

    A parent that is not in the table (outside the window, or never received) leaves the
    span as a local root (``parent == -1``). Duplicate span ids keep their first row.
    """
    n = spans.num_rows
    if n == 0:
        e64 = np.zeros(0, dtype=np.int64)
        e32 = np.zeros(0, dtype=np.int32)
        return SpanFrame(
            n=0,
            trace=e64,
            trace_ids=(),
            span_ids=(),
            service=e32,
            services=(),
            operation=e32,
            operations=(),
            pod=e32,
            pods=(),
            parent=e64,
            start=e64,
            duration=e64,
            kind=np.zeros(0, np.int8),
            error=np.zeros(0, bool),
            peer=e32,
            peers=(),
        )
    rows = pa.array(np.arange(n, dtype=np.int64))
    keys = pa.table({"trace_id": spans.column("trace_id"), "span_id": spans.column("span_id"), "row": rows})
    refs = pa.table(
        {
            "trace_id": spans.column("trace_id"),
            "span_id": spans.column("parent_span_id"),
            "child": rows,
        }
    )
    keys = keys.group_by(["trace_id", "span_id"], use_threads=False).aggregate([("row", "min")])
    joined = refs.join(keys, ["trace_id", "span_id"], join_type="inner", use_threads=False)
    parent = np.full(n, -1, dtype=np.int64)
    parent[joined.column("child").to_numpy()] = joined.column("row_min").to_numpy()
    parent[parent == np.arange(n)] = -1  # a span that names itself as parent

    trace, trace_ids = _codes(spans.column("trace_id").cast(pa.binary()))
    services_col = pc.coalesce(spans.column("service_name"), pa.scalar("unknown_service"))
    service, services = _codes(services_col)
    names = pc.fill_null(spans.column("name"), "")
    op_key = pc.binary_join_element_wise(pc.cast(service.astype(np.int64), pa.string()), names, "\x1f")
    operation, op_keys = _codes(op_key)
    operations = tuple((services[int(k.split("\x1f", 1)[0])], k.split("\x1f", 1)[1]) for k in op_keys)
    pod_col = pc.coalesce(spans.column("k8s_pod_name"), spans.column("service_instance_id"), pa.scalar(""))
    pod, pods = _codes(pod_col)
    if "peer_service" in spans.column_names:
        peer, peers = _codes(spans.column("peer_service"))
    else:
        peer, peers = np.zeros(n, dtype=np.int32), ("",)
    return SpanFrame(
        n=n,
        trace=trace.astype(np.int64),
        trace_ids=tuple(trace_ids),  # type: ignore[arg-type]
        span_ids=tuple(spans.column("span_id").to_pylist()),
        service=service,
        services=services,
        operation=operation,
        operations=operations,
        pod=pod,
        pods=pods,
        parent=parent,
        start=_int_col(spans, "start_time_unix_nano"),
        duration=np.maximum(_int_col(spans, "duration_ns"), 0),
        kind=_int_col(spans, "kind").astype(np.int8),
        error=_error_mask(spans),
        peer=peer,
        peers=peers,
    )
