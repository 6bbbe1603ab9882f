"""The reader and replay on the shared Nezha Train-Ticket data (skipped when it is absent).

Only a few minutes are read, to keep the tests fast; the figures checked are the ones the
dataset's README documents (fault counts and types, 8 CSV fields, 32/16-hex ids).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

from replay_recorder import Recorder

from faultlens.datasets import NezhaDataset, ReplayOptions, make_sender
from faultlens.datasets.nezha.replay import replay_nezha
from faultlens.types import Signal, TimeRange, Transport

S = 1_000_000_000


def utc(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()) * S


# Around the first fault of 2023-01-29 (injected 08:43:04).
WINDOW = TimeRange(utc("2023-01-29 08:42:30"), utc("2023-01-29 08:44:30"))


def test_fault_labels_match_the_readme(nezha_tt: Path) -> None:
    ds = NezhaDataset(nezha_tt)
    assert ds.days() == [dt.date(2023, 1, 29), dt.date(2023, 1, 30)]
    jan29 = ds.faults(dt.date(2023, 1, 29))
    assert Counter(f.fault_type for f in jan29) == {"exception": 13, "return": 11, "cpu_contention": 4}
    jan30 = ds.faults(dt.date(2023, 1, 30))
    assert Counter(f.fault_type for f in jan30) == {"network_delay": 5, "cpu_contention": 1}
    first = jan29[0]
    assert first.inject_time == dt.datetime(2023, 1, 29, 8, 43, 4, tzinfo=dt.UTC)
    assert first.service == first.pod.rsplit("-", 2)[0]
    assert all(f.service.startswith("ts-") and f.service.endswith(("service", "dashboard")) for f in jan29)
    assert ds.report.rows_skipped("fault_list") == 0


def test_normal_periods_come_from_construct_data(nezha_tt: Path) -> None:
    periods = NezhaDataset(nezha_tt).normal_periods()
    assert [p.day for p in periods] == [dt.date(2023, 1, 29), dt.date(2023, 1, 30)]
    for p in periods:
        assert 30 * S < p.time_range.duration_ns < 10 * 60 * S


def test_a_few_minutes_of_every_signal(nezha_tt: Path) -> None:
    ds = NezhaDataset(nezha_tt)
    spans = list(ds.spans(WINDOW))
    logs = list(ds.logs(WINDOW))
    metrics = list(ds.metrics(WINDOW))
    assert len(spans) > 5_000 and len(logs) > 2_000
    assert all(len(s.trace_id) == 16 and len(s.span_id) == 8 for s in spans)
    assert all(WINDOW.contains(s.start_ns) for s in spans)
    roots = [s for s in spans if not s.parent_span_id]
    assert 0 < len(roots) < len(spans)
    assert all(s.service == s.pod.rsplit("-", 2)[0] for s in spans)
    levels = Counter(r.severity_text for r in logs)
    assert levels["INFO"] > 0 and set(levels) <= {"INFO", "WARN", "ERROR"}
    assert all(r.logger and "#" in r.logger for r in logs)
    assert sum(1 for r in logs if r.trace_id) == len(logs)
    # Two per-minute rows of every pod (and the front-end service row) in the window.
    assert len({r.pod for r in metrics if r.pod}) > 40
    assert all(len(r.values) >= 10 for r in metrics if r.pod)
    assert ds.report.rows_skipped("trace", "wrong number of CSV fields") == 0


def test_replay_of_a_few_minutes_over_grpc(nezha_tt: Path) -> None:
    ds = NezhaDataset(nezha_tt)
    n_spans = sum(1 for _ in ds.spans(WINDOW))
    n_logs = sum(1 for _ in ds.logs(WINDOW))
    n_points = sum(len(r.values) for r in ds.metrics(WINDOW))
    with Recorder() as recorder:
        sender = make_sender(recorder.grpc_endpoint, Transport.GRPC)
        summary = replay_nezha(nezha_tt, sender, time_range=WINDOW, options=ReplayOptions())
        sender.close()
    counts = summary.counts
    assert (counts[Signal.TRACES].accepted, counts[Signal.LOGS].accepted) == (n_spans, n_logs)
    assert counts[Signal.METRICS].accepted == n_points
    assert sum(c.failed + c.rejected for c in counts.values()) == 0
    assert all(len(r.resource_spans) > 1 for r in recorder.requests[Signal.TRACES])
    assert max(c.items / c.requests for c in counts.values()) <= 1000 + 30
