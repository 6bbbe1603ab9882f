"""Degradation keeps error spans, error logs and their whole traces, samples the rest, counts drops."""

from __future__ import annotations

import random
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from faultlens.export.config import DegradationConfig
from faultlens.export.degrade import Degrader
from faultlens.export.queue import Batch
from faultlens.types import Signal

from .helpers import logs_request, metrics_request, trace_request


def _spans(body: bytes) -> list[Any]:
    req = ExportTraceServiceRequest.FromString(body)
    return [s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_inactive_below_the_high_water_mark() -> None:
    d = Degrader(DegradationConfig(high_water_mark=0.8))
    assert not d.active(0.79) and d.active(0.8)
    assert not Degrader(DegradationConfig(enabled=False)).active(1.0)


def test_error_traces_are_kept_whole_and_others_sampled() -> None:
    d = Degrader(DegradationConfig(sample_ratio=0.2), random.Random(0))
    req = trace_request(1000, seed=3, spans_per_trace=5, error_traces=range(0, 200, 10))
    batch = Batch(Signal.TRACES, req.SerializeToString(), 1000)
    out, dropped = d.filter(batch)
    assert out is not None
    kept = _spans(out.body)
    assert len(kept) + dropped == 1000 and out.items == len(kept)
    error_traces = {s.trace_id for s in _spans(batch.body) if s.status.code == 2}
    assert len(error_traces) == 20
    for trace in error_traces:  # every span of every error trace survives
        assert sum(s.trace_id == trace for s in kept) == 5
    # Sampled traces are kept whole too: no trace is cut.
    by_trace: dict[bytes, int] = {}
    for s in kept:
        by_trace[s.trace_id] = by_trace.get(s.trace_id, 0) + 1
    assert set(by_trace.values()) == {5}
    sampled = len(by_trace) - len(error_traces)
    assert 20 <= sampled <= 60  # about 0.2 of the other 180 traces


def test_later_spans_of_an_error_trace_are_kept() -> None:
    d = Degrader(DegradationConfig(sample_ratio=0.0))
    first = trace_request(5, seed=9, spans_per_trace=5, error_traces=[0])
    d.filter(Batch(Signal.TRACES, first.SerializeToString(), 5))
    later = trace_request(5, seed=9, spans_per_trace=5)  # same trace id, no error span this time
    out, dropped = d.filter(Batch(Signal.TRACES, later.SerializeToString(), 5))
    assert out is not None and dropped == 0


def test_nothing_kept_means_no_batch() -> None:
    d = Degrader(DegradationConfig(sample_ratio=0.0))
    out, dropped = d.filter(Batch(Signal.TRACES, trace_request(10).SerializeToString(), 10))
    assert out is None and dropped == 10


def test_error_logs_kept_and_metrics_untouched() -> None:
    d = Degrader(DegradationConfig(sample_ratio=0.0))
    out, dropped = d.filter(Batch(Signal.LOGS, logs_request(12, error_every=4).SerializeToString(), 12))
    assert out is not None and dropped == 9
    kept = ExportLogsServiceRequest.FromString(out.body).resource_logs[0].scope_logs[0].log_records
    assert all(r.severity_number >= 17 for r in kept) and len(kept) == 3
    metrics = Batch(Signal.METRICS, metrics_request(5).SerializeToString(), 5)
    assert d.filter(metrics) == (metrics, 0)
