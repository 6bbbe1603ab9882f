"""build_service_graph: edges from parent/child across services, kinds, links, virtual nodes."""

from __future__ import annotations

import pyarrow as pa

from faultlens.decode.schema import SPAN_SCHEMA
from faultlens.graph import EdgeKind, NodeKind, build_service_graph, span_frame
from faultlens.store.testing import span_row
from faultlens.types import TimeRange

MS = 1_000_000


def _table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SPAN_SCHEMA)


def test_cross_service_parent_child_makes_an_edge_without_span_kinds() -> None:
    rows = []
    for t in range(1, 11):
        rows += [
            span_row(t, 1, None, name="GET /", kind=0, service_name="front", duration=30 * MS),
            span_row(t, 2, 1, name="HTTP GET", kind=0, service_name="front", duration=20 * MS),
            span_row(
                t,
                3,
                2,
                name="/api",
                kind=0,
                service_name="back",
                duration=15 * MS,
                status_code=2 if t <= 2 else 0,
            ),
        ]
    g = build_service_graph(_table(rows))
    assert [(e.caller, e.callee, e.kind) for e in g.edges] == [("front", "back", EdgeKind.CALL)]
    s = g.edges[0].stats
    assert (s.calls, s.errors) == (10, 2)
    assert abs(s.latency_p50_ns - 15 * MS) / (15 * MS) < 0.02
    assert s.network_p50_ns is not None and abs(s.network_p50_ns - 5 * MS) / (5 * MS) < 0.02
    assert g.entry_services() == ("front",)


def test_same_service_parent_child_is_not_an_edge() -> None:
    rows = [span_row(1, 1, None, service_name="a"), span_row(1, 2, 1, service_name="a")]
    assert build_service_graph(_table(rows)).edges == ()


def test_client_server_kinds_and_messaging_are_named() -> None:
    rows = [
        span_row(1, 1, None, kind=3, service_name="a"),
        span_row(1, 2, 1, kind=2, service_name="b"),
        span_row(2, 1, None, kind=4, service_name="a"),
        span_row(2, 2, 1, kind=5, service_name="c"),
    ]
    kinds = {(e.caller, e.callee): e.kind for e in build_service_graph(_table(rows)).edges}
    assert kinds == {("a", "b"): EdgeKind.CLIENT_SERVER, ("a", "c"): EdgeKind.MESSAGING}


def test_consumer_linked_to_a_producer_makes_a_messaging_edge() -> None:
    rows = [
        span_row(
            1, 1, None, kind=4, service_name="shop", messaging_destination="orders", messaging_system="kafka"
        ),
        span_row(
            2,
            9,
            None,
            kind=5,
            service_name="billing",
            links=[{"trace_id": (1).to_bytes(16, "big"), "span_id": (1).to_bytes(8, "big")}],
        ),
    ]
    edges = {(e.caller, e.callee, e.kind) for e in build_service_graph(_table(rows)).edges}
    assert ("shop", "billing", EdgeKind.MESSAGING) in edges


def test_database_and_external_calls_become_virtual_nodes() -> None:
    rows = [
        span_row(1, 1, None, service_name="a"),
        span_row(1, 2, 1, kind=3, service_name="a", db_system="postgresql", server_address="db1"),
        span_row(1, 3, 1, kind=3, service_name="a", peer_service="payments-api"),
        span_row(1, 4, 1, kind=3, service_name="a", server_address="api.example.com"),
    ]
    g = build_service_graph(_table(rows))
    nodes = {n.name: n.kind for n in g.nodes}
    assert nodes["postgresql:db1"] is NodeKind.DATABASE
    assert nodes["payments-api"] is NodeKind.EXTERNAL
    assert nodes["api.example.com"] is NodeKind.EXTERNAL
    assert {(e.callee, e.kind) for e in g.edges} == {
        ("postgresql:db1", EdgeKind.DATABASE),
        ("payments-api", EdgeKind.EXTERNAL),
        ("api.example.com", EdgeKind.EXTERNAL),
    }


def test_time_range_keeps_calls_whose_callee_span_starts_inside() -> None:
    rows = [
        span_row(1, 1, None, service_name="a", start=0),
        span_row(1, 2, 1, service_name="b", start=10),
        span_row(2, 1, None, service_name="a", start=1_000),
        span_row(2, 2, 1, service_name="b", start=1_010),
    ]
    g = build_service_graph(_table(rows), TimeRange(500, 2_000))
    assert g.edges[0].stats.calls == 1


def test_parents_resolve_in_any_row_order_and_missing_parents_make_local_roots() -> None:
    rows = [
        span_row(1, 3, 2, service_name="c"),
        span_row(1, 2, 1, service_name="b"),
        span_row(1, 1, None, service_name="a"),
        span_row(1, 5, 4, service_name="d"),
    ]
    f = span_frame(_table(rows))
    assert f.parent.tolist() == [1, 2, -1, -1]
