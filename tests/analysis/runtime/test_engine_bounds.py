"""The engine's per-service state stays bounded when services come and go, or explode."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from faultlens.analysis.runtime import AnalysisEngine, EngineConfig
from faultlens.analysis.runtime import engine as engine_module
from faultlens.decode import decode_request
from faultlens.decode.base import DecodedBatch
from faultlens.testing.payloads import build_logs_request, build_trace_request, service_names
from faultlens.types import Signal

S = 1_000_000_000
W = 60 * S
T0 = 1_700_000_040 * S - (1_700_000_040 * S) % W


def _renamed(batch: DecodedBatch, suffix: str) -> DecodedBatch:
    """The batch with every service name given ``suffix`` (the same spans, other services)."""
    table = batch.table
    i = table.schema.get_field_index("service_name")
    col = pc.binary_join_element_wise(table.column(i), pa.scalar(suffix), "")
    return dataclasses.replace(batch, table=table.set_column(i, "service_name", col))


def _generation(i: int, suffix: str) -> list[DecodedBatch]:
    end = T0 + (i + 1) * W
    traces = build_trace_request(300, services=4, seed=i, base_time_ns=end).SerializeToString()
    logs = build_logs_request(100, services=4, seed=i, base_time_ns=end).SerializeToString()
    return [
        _renamed(decode_request(Signal.TRACES, traces, json=False), suffix),
        _renamed(decode_request(Signal.LOGS, logs, json=False), suffix),
    ]


def test_services_idle_past_the_limit_are_forgotten_with_their_graph_and_log_state() -> None:
    idle_windows = 3
    engine = AnalysisEngine(EngineConfig(service_idle_ns=idle_windows * W), wall_ns=lambda: T0 + 10_000 * W)
    per_generation = None
    # A new set of services every 2 windows (a rename, a redeploy under new names): 20 sets.
    for i in range(40):
        for batch in _generation(i, f"-gen{i // 2}"):
            engine.process(batch)
        sizes = engine.state_sizes()
        if i == 1:
            per_generation = sizes["services"]
    assert per_generation is not None and per_generation >= 4
    sizes = engine.state_sizes()
    # What is kept: the sets seen within the idle time, and the window being judged.
    most = per_generation * (idle_windows // 2 + 2)
    assert 0 < sizes["services"] <= most
    assert sizes["services_first_seen"] <= most
    assert 0 < sizes["log_services"] <= most
    assert 0 < sizes["graph_nodes"] <= most + per_generation
    # The latest set is still known; the first ones are long gone.
    assert {f"{s}-gen19" for s in service_names(4)} <= engine.known_log_services
    assert not any(s.endswith("-gen0") for s in engine.known_log_services | engine.graph.keys())


def test_a_service_explosion_keeps_at_most_max_services(monkeypatch: pytest.MonkeyPatch) -> None:
    # The bound made small so that the test is quick; the code reads it at each call.
    bound = 400
    monkeypatch.setattr(engine_module, "MAX_SERVICES", bound)
    engine = AnalysisEngine(wall_ns=lambda: T0 + 10_000 * W)
    n = bound + 600
    end = T0 + W
    traces = build_trace_request(n, services=4, seed=1, base_time_ns=end).SerializeToString()
    batch = decode_request(Signal.TRACES, traces, json=False)
    i = batch.table.schema.get_field_index("service_name")
    unique = pa.array([f"svc-{k}" for k in range(batch.table.num_rows)])
    engine.process(dataclasses.replace(batch, table=batch.table.set_column(i, "service_name", unique)))
    # Data time moves on: the window is judged, its edges go to the graph, then the bound holds.
    later = build_trace_request(100, services=4, seed=2, base_time_ns=end + 3 * W).SerializeToString()
    engine.process(decode_request(Signal.TRACES, later, json=False))
    sizes = engine.state_sizes()
    assert sizes["services"] == bound
    assert sizes["services_first_seen"] <= bound
    assert 0 < sizes["graph_nodes"] <= bound
