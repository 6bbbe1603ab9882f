"""RetentionTask: runs at start and then periodically, counts what it deletes, survives errors."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from faultlens.config.model import StoreConfig
from faultlens.errors import StoreError
from faultlens.selfmetrics import SelfMetrics
from faultlens.store import DuckDBStore, RetentionResult, RetentionTask, StoreStats
from faultlens.store.analysis_duckdb import SERIES_TABLES, DuckDBAnalysisStore
from faultlens.store.testing import log_row, logs_batch, metric_row, metrics_batch, span_row, spans_batch

NOW = 10_000_000_000_000
HOUR_NS = 3600 * 10**9


class RecordingStore:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[int, int]] = []
        self.fail = fail
        self.called = threading.Event()

    def enforce_retention(self, now_unix_nano: int, retention_ns: int) -> RetentionResult:
        self.calls.append((now_unix_nano, retention_ns))
        self.called.set()
        if self.fail:
            raise StoreError("locked")
        return RetentionResult(now_unix_nano - retention_ns, 3, 2, 1)


def deleted(metrics: SelfMetrics, signal: str) -> float:
    return (
        metrics.registry.get_sample_value("faultlens_retention_deleted_items_total", {"signal": signal})
        or 0.0
    )


def test_run_once_uses_the_configured_retention_and_counts_deletions() -> None:
    metrics, store = SelfMetrics(), RecordingStore()
    task = RetentionTask(store, StoreConfig(retention="1h"), metrics, clock_ns=lambda: NOW)
    assert task.run_once() == RetentionResult(NOW - HOUR_NS, 3, 2, 1)
    assert store.calls == [(NOW, HOUR_NS)]
    assert (deleted(metrics, "traces"), deleted(metrics, "logs"), deleted(metrics, "metrics")) == (3, 2, 1)


def test_the_task_runs_at_start_and_shuts_down_twice_safely() -> None:
    store = RecordingStore()
    task = RetentionTask(store, StoreConfig(retention_check_interval="1h"), SelfMetrics())
    task.start()
    task.start()
    assert store.called.wait(5.0)
    task.shutdown(5.0)
    task.shutdown(5.0)
    assert len(store.calls) == 1


def test_a_failing_run_is_logged_and_does_not_kill_the_task(caplog: pytest.LogCaptureFixture) -> None:
    store = RecordingStore(fail=True)
    task = RetentionTask(store, StoreConfig(retention_check_interval="1h"), SelfMetrics())
    task.start()
    assert store.called.wait(5.0)
    task.shutdown(5.0)
    assert "retention run failed" in caplog.text


def test_retention_on_a_real_store_removes_old_items_and_keeps_new_ones(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "faultlens.duckdb")
    old, new = NOW - 2 * HOUR_NS, NOW - 1
    store.write(
        [
            spans_batch([span_row(1, 1, start=old), span_row(2, 1, start=new)]),
            logs_batch([log_row(time=old), log_row(time=new, trace=2)]),
            metrics_batch([metric_row(time=old), metric_row(time=new)]),
        ]
    )
    metrics = SelfMetrics()
    task = RetentionTask(store, StoreConfig(retention="1h"), metrics, clock_ns=lambda: NOW)
    try:
        assert task.run_once() == RetentionResult(NOW - HOUR_NS, 1, 1, 1)
        assert store.stats() == StoreStats(1, 1, 1)
        assert store.get_trace((2).to_bytes(16, "big")) is not None
        assert deleted(metrics, "traces") == 1
    finally:
        store.close()


def test_retention_also_trims_the_analysis_series(tmp_path: Path) -> None:
    path = tmp_path / "faultlens.duckdb"
    store = DuckDBStore(path)
    analysis = DuckDBAnalysisStore(path)
    old, new = NOW - 2 * HOUR_NS, NOW - 1
    with store.cursor() as cur:
        for t in (old, new):
            cur.execute("INSERT INTO error_group_counts VALUES ('g', ?, 3)", [t])
            cur.execute("INSERT INTO log_template_counts VALUES ('svc', ?, 60, 1, 5)", [t])
            cur.execute(
                "INSERT INTO red_windows VALUES ('svc', 'op', 2, ?, 60, 10, 1, 1.0, ''::BLOB, 1.0, ''::BLOB)",
                [t],
            )
            cur.execute("INSERT INTO edge_windows VALUES ('a', 'b', ?, 60, 4, 0, 1.0, ''::BLOB)", [t])
    task = RetentionTask(
        store, StoreConfig(retention="1h"), SelfMetrics(), clock_ns=lambda: NOW, analysis=analysis
    )
    try:
        task.run_once()
        with store.cursor() as cur:
            for table, column in SERIES_TABLES:
                rows = cur.execute(f"SELECT {column} FROM {table}").fetchall()
                expected = [] if table == "log_template_changes" else [(new,)]
                assert rows == expected, table
    finally:
        analysis.close()
        store.close()
