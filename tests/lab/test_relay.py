"""The recording relay: what it answers, what it records, what it forwards."""

from __future__ import annotations

import gzip
from pathlib import Path

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
