"""A start without saved state seeds its baselines from the RED windows the store holds."""

from __future__ import annotations

from pathlib import Path

from faultlens.analysis.anomaly import SERVICE_WIDE, SeriesKind, red_observations
from faultlens.analysis.anomaly.seed import red_history
from faultlens.analysis.red import RedWindow
from faultlens.analysis.runtime import AnalysisEngine, EngineConfig
from faultlens.analysis.sketch import QuantileSketch
from faultlens.store.analysis_base import AnalysisResults
from faultlens.store.analysis_duckdb import DuckDBAnalysisStore

W = 60_000_000_000
T0 = 1_700_000_000 * 1_000_000_000 // W * W


def window(service: str, i: int, latency_ms: float, requests: int = 100) -> RedWindow:
    lat = QuantileSketch()
    for k in range(requests):
        lat.add(latency_ms * 1e6 * (1 + (k % 10) / 100))
    return RedWindow(
        service,
        "GET /cart",
        2,
        T0 + i * W,
        W,
        requests,
        0,
        latency_ms * 1e6 * requests,
        lat,
        0.0,
        QuantileSketch(),
    )


def test_stored_windows_become_baselines_and_the_first_live_window_is_judged(tmp_path: Path) -> None:
    store = DuckDBAnalysisStore(tmp_path / "analysis.duckdb")
    try:
        store.write_results(AnalysisResults(red_windows=tuple(window("cart", i, 20.0) for i in range(10))))
        history = red_history(store, ["cart", "nobody"], T0 + 10 * W, W, 30)
    finally:
        store.close()
    starts = [o.window_start_ns for o in history]
    assert starts == sorted(starts) and starts[0] == T0 and starts[-1] == T0 + 9 * W
    assert {o.key.name for o in history} == {"GET /cart", SERVICE_WIDE}
    assert red_history(store, [], T0 + 10 * W, W, 30) == []

    slow = red_observations([window("cart", 10, 200.0)])
    fresh = AnalysisEngine(EngineConfig())
    assert fresh.detector.observe(slow) == []  # warming up: a fresh detector is blind
    seeded = AnalysisEngine(EngineConfig())
    assert seeded.seed(history) == len(history)
    found = seeded.detector.observe(slow)
    assert {(a.key.kind, a.key.name) for a in found} >= {(SeriesKind.LATENCY_P90, SERVICE_WIDE)}


def test_only_windows_before_the_end_and_of_the_engine_length_are_read(tmp_path: Path) -> None:
    store = DuckDBAnalysisStore(tmp_path / "analysis.duckdb")
    try:
        ten_s = RedWindow("cart", "op", 2, T0, W // 6, 5, 0, 1.0, QuantileSketch(), 0.0, QuantileSketch())
        store.write_results(
            AnalysisResults(red_windows=(window("cart", 0, 5.0), window("cart", 5, 5.0), ten_s))
        )
        history = red_history(store, ["cart"], T0 + 3 * W, W, 2)  # windows 1 and 2 only
        assert history == []
        history = red_history(store, ["cart"], T0 + 3 * W, W, 3)
        assert {o.window_start_ns for o in history} == {T0}
    finally:
        store.close()
