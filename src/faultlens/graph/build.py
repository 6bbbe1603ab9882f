"""Build the service dependency graph from spans, with RED figures on every edge.

Where edges come from, in order of how little they assume:

1. **Parent/child across services**: a span whose parent lies in another service is a
   call from the parent's service. Needs no span kinds (the Nezha data has none); when
   the kinds say CLIENT -> SERVER or PRODUCER -> CONSUMER the edge says so.
2. **Span links**: a CONSUMER span linked to a span of another service (batch consumers
   start new traces and link to the producers) is a messaging edge.
3. **Virtual callees**: a span that calls something that emits no spans (no child in
   another service) but names it (``db.system``, ``peer.service``, ``server.address``,
   ``messaging.destination``) gets an edge to a virtual node of that name.

Everything is vectorised over a :class:`~faultlens.graph.frame.SpanFrame`; only the
per-edge sketch filling loops, once per edge.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from faultlens.analysis.sketch import QuantileSketch
from faultlens.graph.frame import (
    F64,
    I64,
    KIND_CLIENT,
    KIND_CONSUMER,
    KIND_PRODUCER,
    KIND_SERVER,
    B,
    SpanFrame,
    span_frame,
)
from faultlens.graph.model import Edge, EdgeKind, EdgeStats, Node, NodeKind, ServiceGraph
from faultlens.types import TimeRange

__all__ = ["build_service_graph", "edge_stats"]


def edge_stats(latency_ns: F64 | I64, errors: B, network_ns: F64 | None = None) -> EdgeStats:
    """RED figures of one edge from the latencies and error flags of its calls."""
    sk = QuantileSketch()
    sk.add_many(np.asarray(latency_ns, dtype=np.float64))
    p50, p90, p95, p99 = sk.quantiles((0.5, 0.9, 0.95, 0.99)) if sk.count else (0.0, 0.0, 0.0, 0.0)
    n50 = n90 = None
    if network_ns is not None and network_ns.size:
        nk = QuantileSketch(min_value=1.0)
        nk.add_many(np.maximum(network_ns, 0.0))
        n50, n90 = nk.quantiles((0.5, 0.9))
    return EdgeStats(
        calls=int(latency_ns.size),
        errors=int(np.count_nonzero(errors)),
        latency_p50_ns=float(p50),
        latency_p90_ns=float(p90),
        latency_p99_ns=float(p99),
        latency_mean_ns=float(np.mean(latency_ns)) if latency_ns.size else 0.0,
        network_p50_ns=None if n50 is None else float(n50),
        network_p90_ns=None if n90 is None else float(n90),
        latency_p95_ns=float(p95),
    )


def _str_col(spans: pa.Table, name: str) -> list[str | None]:
    col: list[str | None] = spans.column(name).to_pylist()
    return col


def _virtual_targets(spans: pa.Table, frame: SpanFrame, calls_out: B) -> Iterable[tuple[int, str, NodeKind]]:
    """(row, node name, kind) of spans that name a callee that emits no spans of its own."""
    cand = ~calls_out
    named = np.zeros(frame.n, dtype=bool)
    for col in ("db_system", "peer_service", "messaging_destination", "server_address"):
        named |= pc.is_valid(spans.column(col)).to_numpy(zero_copy_only=False)
    rows = np.nonzero(cand & named)[0]
    if rows.size == 0:
        return
    sub = spans.take(pa.array(rows))
    db, peer = _str_col(sub, "db_system"), _str_col(sub, "peer_service")
    addr, ns = _str_col(sub, "server_address"), _str_col(sub, "db_namespace")
    dest, msys = _str_col(sub, "messaging_destination"), _str_col(sub, "messaging_system")
    for j, row in enumerate(rows.tolist()):
        kind = int(frame.kind[row])
        if db[j]:
            where = addr[j] or ns[j]
            yield row, f"{db[j]}:{where}" if where else str(db[j]), NodeKind.DATABASE
        elif peer[j]:
            yield row, str(peer[j]), NodeKind.EXTERNAL
        elif dest[j] and kind == KIND_PRODUCER:
            yield row, f"{msys[j]}:{dest[j]}" if msys[j] else str(dest[j]), NodeKind.MESSAGING
        elif addr[j] and kind == KIND_CLIENT:
            yield row, str(addr[j]), NodeKind.EXTERNAL


def _link_pairs(spans: pa.Table, frame: SpanFrame) -> tuple[I64, I64]:
    """(producer row, consumer row) for CONSUMER spans linked to a span of the table."""
    consumers = np.nonzero(frame.kind == KIND_CONSUMER)[0]
    empty = np.zeros(0, dtype=np.int64)
    if consumers.size == 0:
        return empty, empty
    links = spans.column("links").take(pa.array(consumers)).combine_chunks()
    if links.null_count == len(links):
        return empty, empty
    flat = pc.list_flatten(links)
    if len(flat) == 0:
        return empty, empty
    owner = consumers[pc.list_parent_indices(links).to_numpy()]
    refs = pa.table({"trace_id": flat.field("trace_id"), "span_id": flat.field("span_id"), "consumer": owner})
    keys = pa.table(
        {
            "trace_id": spans.column("trace_id"),
            "span_id": spans.column("span_id"),
            "row": pa.array(np.arange(frame.n, dtype=np.int64)),
        }
    )
    j = refs.join(keys, ["trace_id", "span_id"], join_type="inner", use_threads=False)
    return j.column("row").to_numpy().astype(np.int64), j.column("consumer").to_numpy().astype(np.int64)


def build_service_graph(
    spans: pa.Table,
    time_range: TimeRange | None = None,
    *,
    frame: SpanFrame | None = None,
    extra_errors: B | None = None,
) -> ServiceGraph:
    """The service graph of the calls whose callee-side span starts in ``time_range``.

    ``spans`` may reach beyond ``time_range`` so that parents outside it are resolved.
    ``frame`` may be passed when the caller already built it; ``extra_errors`` marks more
    spans as failed (e.g. spans with ERROR logs, where spans carry no status).
    """
    frame = frame if frame is not None else span_frame(spans)
    if extra_errors is not None:
        frame = frame.with_error(extra_errors)
    in_range = np.ones(frame.n, dtype=bool)
    if time_range is not None:
        in_range = (frame.start >= time_range.start_ns) & (frame.start < time_range.end_ns)

    cross = frame.cross_service()
    calls_out = np.zeros(frame.n, dtype=bool)
    calls_out[frame.parent[cross]] = True
    child_count = frame.child_count

    callers: list[I64] = []
    callees: list[I64] = []
    kinds: list[I64] = []
    lat: list[I64] = []
    err: list[B] = []
    net: list[F64] = []
    names: list[str] = list(frame.services)
    index = {n: i for i, n in enumerate(names)}
    node_kind: dict[str, NodeKind] = {s: NodeKind.SERVICE for s in frame.services}

    # 1. parent/child across services
    child = np.nonzero(cross & in_range)[0]
    par = frame.parent[child]
    pk, ck = frame.kind[par], frame.kind[child]
    kind = np.full(child.size, 0, dtype=np.int64)  # 0 CALL, 1 CLIENT_SERVER, 2 MESSAGING
    kind[(pk == KIND_CLIENT) & (ck == KIND_SERVER)] = 1
    kind[(pk == KIND_PRODUCER) & (ck == KIND_CONSUMER)] = 2
    single = child_count[par] == 1
    gap = np.where(single, (frame.duration[par] - frame.duration[child]).astype(np.float64), np.nan)
    callers.append(frame.service[par].astype(np.int64))
    callees.append(frame.service[child].astype(np.int64))
    kinds.append(kind)
    lat.append(frame.duration[child])
    err.append(frame.error[child])
    net.append(gap)

    # 2. span links into consumers
    prod, cons = _link_pairs(spans, frame)
    keep = (frame.service[prod] != frame.service[cons]) & in_range[cons]
    prod, cons = prod[keep], cons[keep]
    callers.append(frame.service[prod].astype(np.int64))
    callees.append(frame.service[cons].astype(np.int64))
    kinds.append(np.full(prod.size, 2, dtype=np.int64))
    lat.append(frame.duration[cons])
    err.append(frame.error[cons])
    net.append(np.full(prod.size, np.nan))

    # 3. virtual callees
    v_rows: list[int] = []
    v_nodes: list[int] = []
    v_kinds: list[int] = []
    code = {NodeKind.DATABASE: 3, NodeKind.EXTERNAL: 4, NodeKind.MESSAGING: 2}
    for row, name, nk in _virtual_targets(spans, frame, calls_out):
        if not in_range[row]:
            continue
        if name not in index:
            node_kind[name] = nk
            index[name] = len(names)
            names.append(name)
        v_rows.append(row)
        v_nodes.append(index[name])
        v_kinds.append(code[nk])
    vr = np.asarray(v_rows, dtype=np.int64)
    callers.append(frame.service[vr].astype(np.int64))
    callees.append(np.asarray(v_nodes, dtype=np.int64))
    kinds.append(np.asarray(v_kinds, dtype=np.int64))
    lat.append(frame.duration[vr])
    err.append(frame.error[vr])
    net.append(np.full(vr.size, np.nan))

    a, b, k = np.concatenate(callers), np.concatenate(callees), np.concatenate(kinds)
    lat_all, err_all, net_all = np.concatenate(lat), np.concatenate(err), np.concatenate(net)
    edge_kinds = (
        EdgeKind.CALL,
        EdgeKind.CLIENT_SERVER,
        EdgeKind.MESSAGING,
        EdgeKind.DATABASE,
        EdgeKind.EXTERNAL,
    )
    edges: list[Edge] = []
    if a.size:
        key = (a * len(names) + b) * len(edge_kinds) + k
        order = np.argsort(key, kind="stable")
        uniq, first = np.unique(key[order], return_index=True)
        bounds = [*first.tolist(), key.size]
        for i, u in enumerate(uniq.tolist()):
            sel = order[bounds[i] : bounds[i + 1]]
            ab, kk = divmod(u, len(edge_kinds))
            ca, ce = divmod(ab, len(names))
            g = net_all[sel]
            g = g[~np.isnan(g)]
            edges.append(
                Edge(names[ca], names[ce], edge_kinds[kk], edge_stats(lat_all[sel], err_all[sel], g))
            )
    seen = {e.caller for e in edges} | {e.callee for e in edges}
    active = set(frame.services[s] for s in np.unique(frame.service[in_range]).tolist()) | seen
    nodes = tuple(sorted((Node(n, node_kind[n]) for n in names if n in active), key=lambda n: n.name))
    edges.sort(key=lambda e: (e.caller, e.callee, e.kind.value))
    return ServiceGraph(time_range, nodes, tuple(edges))
