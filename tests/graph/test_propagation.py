"""Error origins per trace and MicroHECL-style chains per window."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from faultlens.decode.schema import SPAN_SCHEMA
from faultlens.graph import (
    build_service_graph,
    origin_counts,
    propagation_chains,
    span_frame,
    strongest_descendant,
    trace_error_paths,
)
from faultlens.store.testing import span_row

MS = 1_000_000


def _chain_trace(trace: int, *, fail_at: str | None, slow_c: int = 0) -> list[dict]:
    """front -> a -> b -> c; the span of ``fail_at`` fails, and so does everything above it."""
    order = ["front", "a", "b", "c"]
    failing = set(order[: order.index(fail_at) + 1]) if fail_at else set()
    return [
        span_row(
            trace,
            i + 1,
            i if i else None,
            service_name=s,
            name=f"op-{s}",
            status_code=2 if s in failing else 0,
            duration=(40 - 10 * i) * MS + (slow_c if s in ("front", "a", "b", "c") and i <= 3 else 0),
        )
        for i, s in enumerate(order)
    ]


def test_origin_is_the_deepest_failing_span_and_the_path_runs_up() -> None:
    frame = span_frame(pa.Table.from_pylist(_chain_trace(1, fail_at="b"), schema=SPAN_SCHEMA))
    paths = trace_error_paths(frame)
    assert len(paths) == 1
    assert paths[0].origin.service == "b"
    assert [p.service for p in paths[0].path] == ["b", "a", "front"]
    counts = {c.service: (c.originated, c.passed_on) for c in origin_counts(frame)}
    assert counts == {"b": (1, 0), "a": (0, 1), "front": (0, 1)}


def test_origin_skips_healthy_spans_in_between() -> None:
    rows = [
        span_row(1, 1, None, service_name="a", status_code=2),
        span_row(1, 2, 1, service_name="a", status_code=0),  # a client span that records nothing
        span_row(1, 3, 2, service_name="b", status_code=2),
    ]
    frame = span_frame(pa.Table.from_pylist(rows, schema=SPAN_SCHEMA))
    assert [p.origin.service for p in trace_error_paths(frame)] == ["b"]


def test_strongest_descendant_carries_the_maximum_up_the_tree() -> None:
    frame = span_frame(pa.Table.from_pylist(_chain_trace(1, fail_at=None), schema=SPAN_SCHEMA))
    best = strongest_descendant(frame, np.array([0.1, 0.0, 0.7, 0.3]))
    assert best.tolist() == [0.7, 0.7, 0.3, 0.0]


def test_chain_follows_anomalous_edges_down_to_where_errors_start() -> None:
    base = [r for t in range(1, 51) for r in _chain_trace(t, fail_at=None)]
    cur = [r for t in range(1, 51) for r in _chain_trace(t, fail_at="c" if t % 2 else None)]
    g_base = build_service_graph(pa.Table.from_pylist(base, schema=SPAN_SCHEMA))
    g_cur = build_service_graph(pa.Table.from_pylist(cur, schema=SPAN_SCHEMA))
    chains = propagation_chains(g_cur, g_base)
    assert chains and chains[0].services == ("front", "a", "b", "c")
    assert chains[0].end == "c"
    assert "errors 25/50" in chains[0].edges[-1].evidence[0]


def test_no_change_gives_no_chain() -> None:
    base = [r for t in range(1, 21) for r in _chain_trace(t, fail_at=None)]
    g = build_service_graph(pa.Table.from_pylist(base, schema=SPAN_SCHEMA))
    assert propagation_chains(g, g) == ()
