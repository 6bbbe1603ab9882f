"""The store door: ``store.backend`` picks the implementation, callers get protocol types."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from faultlens.config import load_config
from faultlens.config.model import Config, StoreConfig
from faultlens.errors import ConfigError, StoreError, UnsupportedQuery
from faultlens.store.backend import open_backend
from faultlens.store.testing import span_row, spans_batch, trace_id
from faultlens.store.window import WindowReader
from faultlens.testing.inprocess import InProcessServer
from faultlens.testing.memory_store import MemoryStore
from faultlens.testing.payloads import build_trace_request
from faultlens.types import TimeRange


def test_an_unknown_backend_is_refused_naming_store_backend(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("store:\n  backend: clickhouse\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.key == "store.backend"


def test_the_duckdb_backend_gives_a_store_its_analysis_store_and_window_reads(tmp_path: Path) -> None:
    backend = open_backend(StoreConfig(data_dir=tmp_path / "data"))
    assert backend.name == "duckdb"
    backend.store.write([spans_batch([span_row(trace=1, start=1_000)])])
    window = backend.windows(max_rows=10).read(TimeRange(0, 10_000))
    assert window.spans.column("trace_id").to_pylist() == [trace_id(1)]
    analysis = backend.open_analysis()
    assert analysis.enforce_retention(10_000, 5_000) == 0
    analysis.close()
    backend.store.close()
    assert (tmp_path / "data" / "faultlens.duckdb").exists()


def test_window_reads_of_a_store_of_another_backend_are_refused() -> None:
    class Elsewhere:  # any Store that is not the DuckDB one
        pass

    with pytest.raises(UnsupportedQuery, match="Elsewhere"):
        WindowReader.for_store(Elsewhere())  # type: ignore[arg-type]


def test_the_memory_backend_is_refused_with_the_analysis_on(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("store:\n  backend: memory\n")
    with pytest.raises(ConfigError, match=r"store\.backend memory"):
        load_config(path, environ={})


def test_a_server_on_the_memory_backend_stores_and_serves_what_it_receives(tmp_path: Path) -> None:
    config = Config.model_validate(
        {
            "store": {"backend": "memory", "data_dir": str(tmp_path / "data"), "flush_interval": 0.1},
            "receivers": {"grpc": {"port": 0}, "http": {"port": 0}},
            "api": {"port": 0},
            "analysis": {"enabled": False},
        }
    )
    request = build_trace_request(40, services=2, seed=3)
    first = request.resource_spans[0].scope_spans[0].spans[0]
    srv = InProcessServer(config)
    try:
        assert isinstance(srv.server.store, MemoryStore)
        body = request.SerializeToString()
        headers = {"content-type": "application/x-protobuf"}
        assert srv.otlp.post("/v1/traces", content=body, headers=headers).status_code == 200
        deadline = time.monotonic() + 20
        while srv.get("/api/v1/stats")["spans"] < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.get("/api/v1/stats")["spans"] == 40
        trace = srv.get(f"/api/v1/traces/{first.trace_id.hex()}")
        assert first.span_id.hex() in {s["span_id"] for s in trace["spans"]}
    finally:
        srv.stop()
    reopened = MemoryStore(tmp_path / "data")  # the snapshot written at shutdown
    assert reopened.stats().spans == 40
    reopened.close()


def test_memory_window_reads_are_those_of_the_duckdb_store(tmp_path: Path) -> None:
    rows = [span_row(trace=t, span=t, start=1_000 * t, service_name="s") for t in (3, 1, 2)]
    duck = open_backend(StoreConfig(data_dir=tmp_path / "duck"))
    memory = open_backend(StoreConfig(backend="memory", data_dir=tmp_path / "memory"))
    try:
        for backend in (duck, memory):
            backend.store.write([spans_batch(rows)])
        windows = [b.windows(max_rows=10).read(TimeRange(1_500, 10_000)) for b in (duck, memory)]
        assert windows[0].spans.equals(windows[1].spans)
        assert windows[1].spans.column("trace_id").to_pylist() == [trace_id(2), trace_id(3)]
        with pytest.raises(UnsupportedQuery):
            memory.windows(max_rows=1).read(TimeRange(0, 10_000))
        with pytest.raises(StoreError):
            memory.open_analysis()
    finally:
        duck.store.close()
        memory.store.close()
