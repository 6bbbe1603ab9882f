"""The recording relay: what it answers, what it records, what it forwards."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import httpx

from faultlens.datasets.sender import GrpcSender
from faultlens.lab.recording import count_items, parse_request, read_recording
from faultlens.lab.relay import RecordingRelay
from faultlens.testing.inprocess import InProcessServer
from faultlens.testing.payloads import build_trace_request
from faultlens.types import Signal

from .conftest import settle


def test_the_relay_records_and_forwards_good_requests_and_refuses_bad_ones(
    tmp_path: Path, server: InProcessServer
) -> None:
    relay = RecordingRelay(tmp_path, GrpcSender(f"127.0.0.1:{server.ports['otlp-grpc']}"))
    relay.start()
    body = build_trace_request(n_spans=40, seed=3).SerializeToString()
    try:
        with httpx.Client(base_url=relay.url, headers={"content-type": "application/x-protobuf"}) as client:
            assert client.post("/v1/traces", content=body).status_code == 200
            bad = client.post("/v1/traces", content=b"\xff\xff not protobuf")
            assert bad.status_code == 400 and "not an OTLP traces export request" in bad.text
            assert client.post("/v1/profiles", content=body).status_code == 404
            zipped = client.post(
                "/v1/traces", content=gzip.compress(body), headers={"content-encoding": "gzip"}
            )
            assert zipped.status_code == 200  # the relay kept serving after the bad ones
    finally:
        relay.shutdown()
    recorded = list(read_recording(tmp_path))
    assert [r.signal for r in recorded] == [Signal.TRACES, Signal.TRACES]
    assert all(r.body == body for r in recorded)  # inflated before it is written
    assert count_items(Signal.TRACES, parse_request(Signal.TRACES, body)) == 40
    assert relay.stats.refused == 1 and relay.stats.forwarded == 80 and relay.stats.not_forwarded == 0
    assert settle(server)["spans"] == 80


def test_shift_to_now_moves_every_timestamp_of_a_request_by_one_offset() -> None:
    from faultlens.lab.replay import shift_times
    from faultlens.testing.payloads import build_logs_request, build_metrics_request

    offset = 3_600 * 1_000_000_000
    traces = build_trace_request(n_spans=30, seed=1)
    before = [
        (s.start_time_unix_nano, s.end_time_unix_nano)
        for rs in traces.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]
    events = [
        e.time_unix_nano
        for rs in traces.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
        for e in s.events
    ]
    shift_times(Signal.TRACES, traces, offset)
    spans = [s for rs in traces.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert [(s.start_time_unix_nano, s.end_time_unix_nano) for s in spans] == [
        (a + offset, b + offset) for a, b in before
    ]
    assert [e.time_unix_nano for s in spans for e in s.events] == [t + offset for t in events]

    logs = build_logs_request(n_records=20, seed=1)
    times = [r.time_unix_nano for rl in logs.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    shift_times(Signal.LOGS, logs, offset)
    assert [
        r.time_unix_nano for rl in logs.resource_logs for sl in rl.scope_logs for r in sl.log_records
    ] == [t + offset if t else 0 for t in times]

    metrics = build_metrics_request(seed=1)

    def points(msg: Any) -> list[int]:
        out: list[int] = []
        for rm in msg.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    out += [p.time_unix_nano for p in getattr(m, kind).data_points]
        return out

    was = points(metrics)
    shift_times(Signal.METRICS, metrics, offset)
    assert was and points(metrics) == [t + offset for t in was]
