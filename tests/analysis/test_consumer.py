"""The analysis consumer writes merged steps: fewer store transactions, the same stored results.

What is checked: steps merged with ``merge_results`` leave a real DuckDB analysis store in
exactly the state the steps written one by one leave it in (every table, row for row); the
consumer holds results for ``write_interval_s`` and writes them as one transaction, but
``drain()`` and an incident that opens do not wait for the interval. Requests queued within
``linger_s`` of each other are analysed in one engine call; a full call or a ``drain()``
does not wait for the linger.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from faultlens.analysis.runtime import AnalysisConsumer, AnalysisEngine
from faultlens.analysis.runtime.consumer import merge_results
from faultlens.analysis.runtime.engine import Step
from faultlens.decode import decode_request
from faultlens.decode.base import DecodedBatch
from faultlens.selfmetrics import SelfMetrics
from faultlens.store.analysis_base import AnalysisResults
from faultlens.store.analysis_duckdb import DuckDBAnalysisStore
from faultlens.testing.payloads import build_logs_request, build_trace_request
from faultlens.types import Signal

S = 1_000_000_000
W = 60 * S
T0 = (time.time_ns() // W - 120) * W

TABLES = (
    "error_groups",
    "error_group_counts",
    "error_group_samples",
    "log_templates",
    "log_template_counts",
    "log_template_changes",
    "red_windows",
    "edge_windows",
    "anomalies",
    "incidents",
    "incident_members",
)


def _batches(windows: range, error_ratio: float) -> list[DecodedBatch]:
    out = []
    for i in windows:
        end = T0 + (i + 1) * W
        traces = build_trace_request(200, services=3, seed=i, error_ratio=error_ratio, base_time_ns=end)
        logs = build_logs_request(100, services=3, seed=i, base_time_ns=end)
        out.append(decode_request(Signal.TRACES, traces.SerializeToString(), json=False))
        out.append(decode_request(Signal.LOGS, logs.SerializeToString(), json=False))
    return out


@pytest.fixture(scope="module")
def steps() -> list[AnalysisResults]:
    """Results of a baseline, then a fault (groups, templates, windows, anomalies, incidents)."""
    engine = AnalysisEngine()
    out = [engine.process(b).results for b in _batches(range(0, 6), 0.02) + _batches(range(6, 9), 0.9)]
    out.append(engine.close_all().results)
    return out


def _dump(store: DuckDBAnalysisStore) -> dict[str, list[str]]:
    out = {}
    with store._cursor() as cur:
        for table in TABLES:
            exclude = " EXCLUDE (updated_unix_nano)" if table == "incidents" else ""
            rows = cur.execute(f"SELECT *{exclude} FROM {table}").fetchall()
            out[table] = sorted(repr(r) for r in rows)
    return out


def test_merged_steps_store_the_same_as_steps_written_one_by_one(
    steps: list[AnalysisResults], tmp_path: Path
) -> None:
    assert any(s.incidents for s in steps) and any(s.anomalies for s in steps)
    assert sum(len(s.error_groups) for s in steps) > len({g.group_id for s in steps for g in s.error_groups})
    one_by_one = DuckDBAnalysisStore(tmp_path / "a.duckdb")
    merged = DuckDBAnalysisStore(tmp_path / "b.duckdb")
    all_merged = DuckDBAnalysisStore(tmp_path / "c.duckdb")
    try:
        for s in steps:
            one_by_one.write_results(s)
        for i in range(0, len(steps), 3):  # uneven chunks: some groups span two merged writes
            merged.write_results(merge_results(steps[i : i + 3]))
        all_merged.write_results(merge_results(steps))
        expected = _dump(one_by_one)
        assert all(expected[t] for t in TABLES if t != "log_template_changes")
        assert _dump(merged) == expected
        assert _dump(all_merged) == expected
    finally:
        for store in (one_by_one, merged, all_merged):
            store.close()


def test_merging_one_step_returns_it(steps: list[AnalysisResults]) -> None:
    assert merge_results([steps[0]]) is steps[0]


class RecordingStore:
    def __init__(self) -> None:
        self.writes: list[AnalysisResults] = []
        self.lock = threading.Lock()

    def write_results(self, results: AnalysisResults) -> None:
        with self.lock:
            self.writes.append(results)

    def save_state(self, name: str, state: dict[str, Any]) -> None:
        pass

    def load_state(self, name: str) -> dict[str, Any] | None:
        return None


def _wait_for(predicate: Any, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_results_wait_for_the_write_interval_then_go_out_in_one_transaction() -> None:
    store = RecordingStore()
    metrics = SelfMetrics()
    consumer = AnalysisConsumer(AnalysisEngine(), store, metrics, write_interval_s=0.5, state_interval_s=3600)
    consumer.start()
    try:
        work = _batches(range(0, 2), 0.1)
        started = time.monotonic()
        for b in work:
            consumer.consume(b)
        assert _wait_for(
            lambda: (
                sum(
                    metrics.analysis_processed_items.labels(signal=s)._value.get() for s in ("traces", "logs")
                )
                == sum(b.accepted for b in work)
            )
        )
        assert not store.writes or time.monotonic() - started >= 0.5
        assert _wait_for(lambda: len(store.writes) == 1)
        assert time.monotonic() - started >= 0.5
        assert store.writes[0].error_groups and store.writes[0].templates
    finally:
        consumer.shutdown(5)


def test_drain_writes_at_once_and_an_opened_incident_is_not_held() -> None:
    store = RecordingStore()
    consumer = AnalysisConsumer(AnalysisEngine(), store, SelfMetrics(), write_interval_s=3600)
    consumer.start()
    try:
        for b in _batches(range(0, 6), 0.02):
            consumer.consume(b)
        started = time.monotonic()
        assert consumer.drain(10)
        assert time.monotonic() - started < 5
        assert len(store.writes) == 1  # everything so far, in one transaction
        for b in _batches(range(6, 9), 0.9):
            consumer.consume(b)
        # The fault opens an incident: that step is written without drain() or the interval.
        assert _wait_for(lambda: any(w.incidents for w in store.writes))
        assert consumer.drain(10, close_windows=True)
    finally:
        consumer.shutdown(5)
    assert sum(len(w.red_windows) for w in store.writes) > 0


class CountingEngine(AnalysisEngine):
    """The real engine, recording how many items each call analysed and when."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, float]] = []

    def process(self, batch: DecodedBatch) -> Step:
        self.calls.append((batch.accepted, time.monotonic()))
        return super().process(batch)


def _trace_batches(n: int) -> list[DecodedBatch]:
    return [
        decode_request(
            Signal.TRACES,
            build_trace_request(1000, services=3, seed=i, base_time_ns=T0 + i * S).SerializeToString(),
            json=False,
        )
        for i in range(n)
    ]


def test_batches_arriving_within_the_linger_share_one_call() -> None:
    engine = CountingEngine()
    consumer = AnalysisConsumer(engine, RecordingStore(), SelfMetrics(), linger_s=0.3, state_interval_s=3600)
    consumer.start()
    try:
        work = _trace_batches(5)
        started = time.monotonic()
        for b in work:
            consumer.consume(b)
        total = sum(b.accepted for b in work)
        assert _wait_for(lambda: sum(n for n, _ in engine.calls) == total)
        assert [n for n, _ in engine.calls] == [total]
        assert engine.calls[0][1] - started >= 0.3
    finally:
        consumer.shutdown(5)


def test_a_full_call_or_a_drain_does_not_wait_for_the_linger() -> None:
    engine = CountingEngine()
    work = _trace_batches(3)
    first_two = work[0].accepted + work[1].accepted
    consumer = AnalysisConsumer(
        engine, RecordingStore(), SelfMetrics(), linger_s=3600, coalesce_items=first_two, state_interval_s=60
    )
    consumer.start()
    try:
        consumer.consume(work[0])
        consumer.consume(work[1])  # a full call's worth
        assert _wait_for(lambda: [n for n, _ in engine.calls] == [first_two])
        consumer.consume(work[2])
        started = time.monotonic()
        assert consumer.drain(10)
        assert time.monotonic() - started < 5
        assert [n for n, _ in engine.calls] == [first_two, work[2].accepted]
    finally:
        consumer.shutdown(5)


def test_the_notifier_hears_each_incident_open_then_its_updates_then_its_end_in_order() -> None:
    from faultlens.analysis.incidents import Incident, IncidentEvent, IncidentState

    told: list[tuple[IncidentEvent, str, IncidentState]] = []

    class Recorder:
        def notify(self, event: IncidentEvent, incident: Incident, answer: object = None) -> None:
            told.append((event, incident.id, incident.state))

        def shutdown(self, timeout_s: float = 5.0) -> None:
            pass

    consumer = AnalysisConsumer(AnalysisEngine(), RecordingStore(), SelfMetrics(), notifier=Recorder())
    consumer.start()
    try:
        for b in _batches(range(0, 6), 0.02) + _batches(range(6, 10), 0.9) + _batches(range(10, 16), 0.02):
            consumer.consume(b)
        assert consumer.drain(30, close_windows=True)
    finally:
        consumer.shutdown(5)
    assert told, "the fault opened no incident"
    for inc_id in {i for _, i, _ in told}:
        events = [e for e, i, _ in told if i == inc_id]
        assert events[0] is IncidentEvent.OPENED
        assert set(events[1:-1]) <= {IncidentEvent.UPDATED}
        if IncidentEvent.RESOLVED in events:
            assert events[-1] is IncidentEvent.RESOLVED and events.count(IncidentEvent.RESOLVED) == 1
    # updates are told of open incidents only
    assert all(state is IncidentState.OPEN for e, _, state in told if e is IncidentEvent.UPDATED)
