"""The detection harness turns dataset records into windows, anomalies and incidents."""

from __future__ import annotations

import numpy as np

from faultlens.analysis.anomaly import AnomalyDetector, DetectorConfig
from faultlens.analysis.evaluate_detection import DetectionRun, spans_to_table
from faultlens.datasets import MetricRecord, SpanRecord
from faultlens.decode.schema import SPAN_SCHEMA

S = 1_000_000_000
T0 = 1_700_000_040 * S


def _trace(i: int, t: int, slow: bool) -> list[SpanRecord]:
    tid = i.to_bytes(16, "big")
    root, child = (2 * i + 1).to_bytes(8, "big"), (2 * i + 2).to_bytes(8, "big")
    d = 400_000_000 if slow else 20_000_000
    return [
        SpanRecord(tid, root, b"", "GET /", t, t + d + 5_000_000, "front", "front-1-a"),
        SpanRecord(tid, child, root, "GET /order", t + 1_000_000, t + 1_000_000 + d, "orders", "orders-1-a"),
    ]


def test_spans_to_table_matches_schema() -> None:
    t = spans_to_table(_trace(1, T0, False))
    assert t.schema == SPAN_SCHEMA
    assert t.column("parent_span_id").null_count == 1


def test_a_lasting_slowdown_opens_one_incident_naming_both_services() -> None:
    run = DetectionRun(60 * S, AnomalyDetector(DetectorConfig(warmup=3)))
    rng = np.random.default_rng(0)
    records: list[SpanRecord | MetricRecord] = []
    i = 0
    for minute in range(12):
        for k in range(60):
            t = T0 + minute * 60 * S + k * S + int(rng.integers(0, 10**8))
            records += _trace(i, t, slow=minute >= 9)
            i += 1
        records.append(MetricRecord(T0 + minute * 60 * S + 9 * S, "orders", "orders-1-a", (("cpu", 1.0),)))
    records.sort(key=lambda r: r.end_ns if isinstance(r, SpanRecord) else r.time_ns)
    run.feed(records)
    run.finish()
    assert len(run.opened) == 1
    inc = run.opened[0]
    assert set(inc.services) == {"front", "orders"}
    # The first slow window: a 20-fold slowdown on a steady series is far past open_score.
    assert inc.opened_window_ns == T0 + 9 * 60 * S
    assert run.graph == {"front": {"orders"}}
