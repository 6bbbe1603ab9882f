"""Builds small SPAN_SCHEMA tables for the RED tests."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from faultlens.decode.schema import SPAN_SCHEMA

S = 1_000_000_000
MS = 1_000_000


@dataclass(frozen=True)
class Sp:
    span: int
    parent: int | None
    service: str
    name: str
    end_s: float
    dur_ms: float = 10.0
    status: int = 0
    http: int | None = None
    grpc: int | None = None
    kind: int | None = None


def sid(n: int) -> bytes:
    return n.to_bytes(8, "big")


def table(spans: list[Sp]) -> pa.Table:
    end = [int(s.end_s * S) for s in spans]
    dur = [int(s.dur_ms * MS) for s in spans]
    cols = {
        "trace_id": [b"\x01" * 16] * len(spans),
        "span_id": [sid(s.span) for s in spans],
        "parent_span_id": [None if s.parent is None else sid(s.parent) for s in spans],
        "name": [s.name for s in spans],
        "kind": [s.kind for s in spans],
        "start_time_unix_nano": [e - d for e, d in zip(end, dur, strict=True)],
        "end_time_unix_nano": end,
        "duration_ns": dur,
        "status_code": [s.status for s in spans],
        "service_name": [s.service for s in spans],
        "http_status_code": [s.http for s in spans],
        "rpc_grpc_status_code": [s.grpc for s in spans],
    }
    arrays = []
    for f in SPAN_SCHEMA:
        if f.name in cols:
            arrays.append(pa.array(cols[f.name], type=f.type))
        else:
            arrays.append(pa.nulls(len(spans), type=f.type))
    return pa.Table.from_arrays(arrays, schema=SPAN_SCHEMA)
