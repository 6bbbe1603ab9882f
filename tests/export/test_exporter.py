"""The exporter end to end, over real sockets to a scriptable backend.

Timings are short (tens of milliseconds of backoff, sub-second breaker windows) so the whole
file runs in seconds; assertions on time leave room for a loaded two-core machine.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from faultlens.decode.base import DecodedBatch
from faultlens.decode.schema import SPAN_SCHEMA
from faultlens.errors import Overloaded
from faultlens.export import BreakerState, Exporter, ExporterConfig
from faultlens.export.queue import MemoryQueue
from faultlens.export.queue.base import Leased, QueueStats
from faultlens.selfmetrics import SelfMetrics
from faultlens.testing.otlp_backend import Accept, Hang, OtlpBackend, PartialSuccess, Reject, Throttle
from faultlens.types import Signal

from .helpers import trace_body, trace_request

FAST_RETRY = {
    "initial_interval": 0.02,
    "max_interval": 0.1,
    "randomization_factor": 0.2,
    "max_elapsed_time": 30,
}


def _config(backend: OtlpBackend, tmp_path: Path, protocol: str = "grpc", **kw: Any) -> ExporterConfig:
    endpoint = backend.grpc_endpoint if protocol == "grpc" else backend.http_endpoint
    doc: dict[str, Any] = {
        "name": "dest",
        "protocol": protocol,
        "endpoint": endpoint,
        "timeout": 2.0,
        "retry": FAST_RETRY,
        "breaker": {"failure_threshold": 3, "open_duration": 0.3},
        "queue": {"kind": "disk", "directory": str(tmp_path)},
    }
    for key, value in kw.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return ExporterConfig.model_validate(doc)


@pytest.fixture
def exporters() -> Iterator[list[Exporter]]:
    made: list[Exporter] = []
    yield made
    for e in made:
        e.shutdown(2.0)


def _start(made: list[Exporter], config: ExporterConfig, metrics: SelfMetrics | None = None) -> Exporter:
    e = Exporter(config, metrics=metrics)
    e.start()
    made.append(e)
    return e


def _wait(cond: Any, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_backend_down_for_a_while_then_back_gets_every_item(
    tmp_path: Path, exporters: list[Exporter], protocol: str
) -> None:
    backend = OtlpBackend().start()
    try:
        e = _start(exporters, _config(backend, tmp_path, protocol))
        backend.stop()
        for i in range(20):
            assert e.submit(Signal.TRACES, trace_body(10, seed=i), 10)
        assert _wait(lambda: e.health().breaker is BreakerState.OPEN, 5)
        time.sleep(0.5)  # through a half-open probe or two while still down
        h = e.health()
        assert h.queue_items == 200 and h.sent_items == 0 and h.last_error
        assert h.oldest_item_age_s is not None and h.oldest_item_age_s > 0.3
        backend.start()
        assert e.flush(15)
        assert len(backend.unique_span_ids()) == 200
        h = e.health()
        assert h.sent_items == 200 and h.dropped_items == 0 and h.breaker is BreakerState.CLOSED
        assert h.retried_requests >= 1
    finally:
        backend.stop()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_throttling_delay_is_honoured(
    backend: OtlpBackend, tmp_path: Path, exporters: list[Exporter], protocol: str
) -> None:
    backend.script(Throttle(0.6), Throttle(0.4))
    e = _start(exporters, _config(backend, tmp_path, protocol))
    e.submit(Signal.TRACES, trace_body(5), 5)
    assert e.flush(10)
    t = [r.at_s for r in backend.requests]
    assert len(t) == 3
    assert t[1] - t[0] >= 0.55 and t[2] - t[1] >= 0.35  # backoff alone would be ~20 ms
    assert e.health().retried_requests == 2


@pytest.mark.parametrize("protocol", ["grpc", "http/json"])
def test_400_is_not_retried_and_is_counted(
    backend: OtlpBackend, tmp_path: Path, exporters: list[Exporter], protocol: str
) -> None:
    backend.script(Reject())
    metrics = SelfMetrics()
    e = _start(exporters, _config(backend, tmp_path, protocol), metrics)
    e.submit(Signal.TRACES, trace_body(5, seed=1), 5)
    e.submit(Signal.TRACES, trace_body(5, seed=2), 5)
    assert e.flush(10)
    assert len(backend.requests) == 2  # one refused, one accepted, nothing retried
    h = e.health()
    assert (h.failed_items, h.sent_items, h.retried_requests) == (5, 5, 0)
    assert h.dropped_by_reason == {"rejected": 5}
    assert h.breaker is BreakerState.CLOSED
    text = metrics.render().decode()
    assert (
        'faultlens_dropped_items_total{consumer="export/dest",reason="rejected",signal="traces"} 5.0' in text
    )


def test_partial_success_is_counted_and_never_retried(
    backend: OtlpBackend, tmp_path: Path, exporters: list[Exporter]
) -> None:
    backend.script(PartialSuccess(3, "3 spans had no name"))
    e = _start(exporters, _config(backend, tmp_path))
    e.submit(Signal.TRACES, trace_body(10), 10)
    assert e.flush(10)
    h = e.health()
    assert len(backend.requests) == 1
    assert (h.sent_items, h.failed_items, h.dropped_by_reason) == (7, 3, {"partial_success": 3})


def test_breaker_opens_and_closes_as_configured(
    backend: OtlpBackend, tmp_path: Path, exporters: list[Exporter]
) -> None:
    backend.default = Throttle(None, http_status=503)  # retryable, no hint
    cfg = _config(
        backend,
        tmp_path,
        senders=1,
        breaker={"failure_threshold": 3, "open_duration": 1.0, "half_open_probes": 1, "success_threshold": 2},
    )
    e = _start(exporters, cfg)
    for i in range(5):
        e.submit(Signal.TRACES, trace_body(4, seed=i), 4)
    assert _wait(lambda: e.health().breaker is BreakerState.OPEN, 5)
    assert len(backend.requests) == 3  # exactly the threshold, then nothing while open
    assert _wait(lambda: len(backend.requests) == 4, 3)  # one half-open probe...
    assert backend.requests[3].at_s - backend.requests[2].at_s >= 0.95  # ...after open_duration
    # the backend records the probe before answering it: wait for the exporter to read the failure
    assert _wait(lambda: e.health().breaker is BreakerState.OPEN, 3)  # it failed, so open again
    backend.default = Accept()
    assert _wait(lambda: e.health().breaker is BreakerState.CLOSED, 4)
    assert e.flush(10)
    assert len(backend.unique_span_ids()) == 20
    probes_after_reopen = [r for r in backend.requests[4:] if r.behaviour == "Accept"]
    assert probes_after_reopen  # closed again after success_threshold successful probes


def test_shutdown_interrupts_backoff_and_leaves_items_on_disk(tmp_path: Path) -> None:
    backend = OtlpBackend().start()
    backend.stop()
    cfg = _config(
        backend,
        tmp_path,
        retry={"initial_interval": 30, "max_interval": 30, "max_elapsed_time": 300},
        breaker={"enabled": False},
    )
    e = Exporter(cfg)
    e.start()
    for i in range(5):
        e.submit(Signal.TRACES, trace_body(4, seed=i), 4)
    assert _wait(lambda: e.health().last_error is not None, 5)  # now sleeping in a 30 s backoff
    t0 = time.monotonic()
    e.shutdown(5.0)
    assert time.monotonic() - t0 < 1.0
    e.shutdown(5.0)  # twice is fine
    assert e.health().dropped_items == 0
    backend.start()
    try:
        again = Exporter(_config(backend, tmp_path))
        again.start()
        assert again.health().queue_items == 20  # what was left is still there
        assert again.flush(10)
        again.shutdown(2)
        assert len(backend.unique_span_ids()) == 20
    finally:
        backend.stop()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_shutdown_returns_within_its_bound_when_the_backend_hangs(
    backend: OtlpBackend, tmp_path: Path, protocol: str
) -> None:
    backend.default = Hang(20)
    e = Exporter(_config(backend, tmp_path, protocol, timeout=10.0))
    e.start()
    for i in range(4):
        e.submit(Signal.TRACES, trace_body(3, seed=i), 3)
    assert backend.wait_for_requests(1, 5)
    t0 = time.monotonic()
    e.shutdown(1.0)
    assert time.monotonic() - t0 < 1.6


def test_memory_queue_counts_what_shutdown_leaves_behind(tmp_path: Path) -> None:
    backend = OtlpBackend().start()
    backend.stop()
    e = Exporter(_config(backend, tmp_path, queue={"kind": "memory"}))
    e.start()
    e.submit(Signal.TRACES, trace_body(6), 6)
    e.shutdown(0.3)
    assert e.health().dropped_by_reason == {"shutdown": 6}


def test_retry_budget_spent_drops_and_counts(tmp_path: Path, exporters: list[Exporter]) -> None:
    backend = OtlpBackend().start()
    backend.stop()
    e = _start(
        exporters,
        _config(backend, tmp_path, retry={"max_elapsed_time": 0.2}, breaker={"enabled": False}),
    )
    e.submit(Signal.TRACES, trace_body(6), 6)
    assert e.flush(5)
    assert e.health().dropped_by_reason == {"retry_exhausted": 6}


def _decoded(n: int, raw: bytes | None) -> DecodedBatch:
    rows = [
        {"trace_id": b"t" * 16, "span_id": b"s" * 8, "start_time_unix_nano": 0, "end_time_unix_nano": 0}
    ] * n
    for r in rows:
        r["duration_ns"] = 0
    return DecodedBatch(Signal.TRACES, pa.Table.from_pylist(rows, schema=SPAN_SCHEMA), raw=raw)


def test_consume_forwards_raw_and_counts_batches_without_it(
    backend: OtlpBackend, tmp_path: Path, exporters: list[Exporter]
) -> None:
    backend.script(Hang(1.0))
    metrics = SelfMetrics()
    e = _start(exporters, _config(backend, tmp_path, signals=["traces"]), metrics)
    t0 = time.perf_counter()
    e.consume(_decoded(8, trace_body(8, seed=5)))
    assert time.perf_counter() - t0 < 0.5  # never waits for the (hanging) network
    e.consume(_decoded(3, None))
    e.consume(DecodedBatch.empty(Signal.LOGS))
    assert e.flush(10)
    assert len(backend.unique_span_ids()) == 8
    h = e.health()
    assert h.dropped_by_reason == {"no_raw": 3} and h.sent_items == 8
    text = metrics.render().decode()
    assert 'faultlens_export_sent_items_total{destination="dest",signal="traces"} 8.0' in text
    assert 'faultlens_export_breaker_state{destination="dest"} 0.0' in text
    assert 'faultlens_export_queue_bytes{destination="dest"} 0.0' in text
    assert 'reason="no_raw"' in text


def test_block_policy_pushes_back_with_overloaded(tmp_path: Path, exporters: list[Exporter]) -> None:
    backend = OtlpBackend().start()
    backend.stop()
    e = _start(
        exporters,
        _config(
            backend,
            tmp_path,
            queue={"overflow": "block", "max_items": 20, "intake_max_batches": 2},
            degradation={"enabled": False},
        ),
    )
    with pytest.raises(Overloaded):
        for i in range(10):
            e.consume(_decoded(10, trace_body(10, seed=i)))
    assert e.health().dropped_items == 0  # refused, not dropped: the client sends again


def test_block_policy_sdk_submit_waits_its_bound_then_counts_queue_full(
    tmp_path: Path, exporters: list[Exporter]
) -> None:
    backend = OtlpBackend().start()
    backend.stop()  # nothing drains the queue
    e = _start(
        exporters,
        _config(
            backend, tmp_path, queue={"overflow": "block", "max_items": 20}, degradation={"enabled": False}
        ),
    )
    assert e.submit(Signal.TRACES, trace_body(10, seed=0), 10, wait_s=1.0)
    assert e.submit(Signal.TRACES, trace_body(10, seed=1), 10, wait_s=1.0)
    t0 = time.perf_counter()
    assert not e.submit(Signal.TRACES, trace_body(10, seed=2), 10, wait_s=0.3)  # full: waits, then gives up
    assert 0.25 <= time.perf_counter() - t0 < 2.0
    h = e.health()
    assert h.queue_items == 20 and h.dropped_by_reason == {"queue_full": 10}  # counted, not lost silently


def test_drop_newest_counts_queue_full(tmp_path: Path, exporters: list[Exporter]) -> None:
    backend = OtlpBackend().start()
    backend.stop()
    e = _start(
        exporters,
        _config(
            backend,
            tmp_path,
            queue={"overflow": "drop_newest", "max_items": 30},
            degradation={"enabled": False},
        ),
    )
    for i in range(5):
        e.submit(Signal.TRACES, trace_body(10, seed=i), 10, wait_s=2.0)
    h = e.health()
    assert h.queue_items == 30 and h.dropped_by_reason == {"queue_full": 20}


def test_above_high_water_error_traces_survive_and_drops_are_counted(
    tmp_path: Path, exporters: list[Exporter]
) -> None:
    backend = OtlpBackend().start()
    backend.stop()
    cfg = _config(
        backend,
        tmp_path,
        queue={"max_items": 10_000},
        degradation={"high_water_mark": 0.01, "sample_ratio": 0.0},
    )
    e = _start(exporters, cfg)
    e.submit(Signal.TRACES, trace_body(100, seed=0), 100, wait_s=2)  # fills past 1 %
    errors = trace_request(100, seed=1, spans_per_trace=5, error_traces=[0, 7])
    e.submit(Signal.TRACES, errors.SerializeToString(), 100, wait_s=2)
    h = e.health()
    assert h.degraded and h.dropped_by_reason == {"degraded_sampled": 90} and h.queue_items == 110
    backend.start()
    try:
        assert e.flush(10)
        assert len(backend.unique_span_ids()) == 110
    finally:
        backend.stop()


def test_an_idle_exporter_does_not_poll_and_still_shuts_down_at_once(
    backend: OtlpBackend, tmp_path: Path
) -> None:
    calls: collections.Counter[str] = collections.Counter()

    class CountingQueue(MemoryQueue):
        def lease(self, timeout_s: float | None) -> Leased | None:
            calls["lease"] += 1
            return super().lease(timeout_s)

        def stats(self) -> QueueStats:
            calls["stats"] += 1
            return super().stats()

    cfg = _config(backend, tmp_path, queue={"kind": "memory"}, senders=2)
    metrics = SelfMetrics()
    e = Exporter(cfg, metrics=metrics, queue_factory=lambda: CountingQueue(1000, 1 << 20, cfg.queue.overflow))
    e.start()
    try:
        assert e.submit(Signal.TRACES, trace_body(10), 10, wait_s=2)
        assert e.flush(10)
        time.sleep(0.1)  # the sender that delivered goes back to sleep in lease()
        before = dict(calls)
        time.sleep(1.5)  # the old loops woke every 0.5 s (senders) and 1 s (spool)
        assert dict(calls) == before
        # Depth is read when scraped, not pushed per batch.
        assert 'faultlens_queue_items{consumer="export/dest"} 0.0' in metrics.render().decode()
        assert calls["stats"] > before.get("stats", 0)
        # A batch wakes a sleeping sender at once.
        t0 = time.perf_counter()
        assert e.submit(Signal.TRACES, trace_body(10, seed=1), 10, wait_s=2)
        assert e.flush(10) and time.perf_counter() - t0 < 1.0
        assert len(backend.unique_span_ids()) == 20
    finally:
        t0 = time.perf_counter()
        e.shutdown(5.0)
    assert time.perf_counter() - t0 < 1.0  # sleeping senders are woken, not waited out


def test_sdk_submits_and_consume_from_many_threads_all_arrive(
    backend: OtlpBackend, tmp_path: Path, exporters: list[Exporter]
) -> None:
    # SDK callers commit their own batch when nothing is ahead of them, else go through the
    # intake and the spool thread: one spooler at a time either way, nothing lost or doubled.
    e = _start(exporters, _config(backend, tmp_path, queue={"kind": "memory"}))
    ok: list[bool] = []

    def sdk(worker: int) -> None:
        for i in range(25):
            ok.append(e.submit(Signal.TRACES, trace_body(4, seed=1000 * worker + i), 4, wait_s=5))

    def server() -> None:
        for i in range(25):
            e.consume(_decoded(4, trace_body(4, seed=9000 + i)))

    threads = [threading.Thread(target=sdk, args=(w,)) for w in range(4)] + [threading.Thread(target=server)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert e.flush(20) and all(ok) and len(ok) == 100
    assert len(backend.unique_span_ids()) == 4 * 125
    h = e.health()
    assert h.sent_items == 500 and h.dropped_items == 0
