"""``receivers.decode_threads``: big protobuf trace requests decode in threads beside the loop.

Real receivers on loopback with two decode threads, real gRPC and HTTP clients. What the
threads decode must be exactly what the loop decodes, small requests and every other kind
of request stay on the loop, and the threads stop with the receivers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import grpc
import httpx
import pytest

from conftest import RunningReceivers
from faultlens.decode import decode_request
from faultlens.decode.spans import NATIVE
from faultlens.receive.ingest import THREAD_MIN_BYTES
from faultlens.testing.payloads import build_logs_request, build_trace_request
from faultlens.types import Signal

T0 = 1_700_000_000_000_000_000
TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

pytestmark = pytest.mark.skipif(not NATIVE, reason="the native span decoder is not built or is turned off")


def _decode_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("faultlens-decode")]


def test_big_trace_requests_decode_in_threads_and_stay_identical(
    start_receivers: Callable[..., RunningReceivers],
) -> None:
    before = set(_decode_threads())
    served = start_receivers(decode_threads=2)
    small = build_trace_request(n_spans=3, seed=1, base_time_ns=T0).SerializeToString()
    logs = build_logs_request(n_records=400, seed=2, base_time_ns=T0).SerializeToString()
    assert len(small) < THREAD_MIN_BYTES <= len(logs)

    # Small traces and (big) logs are decoded on the loop: no decode thread starts.
    with grpc.insecure_channel(served.grpc_target) as channel:
        channel.unary_unary(TRACE_METHOD)(small, timeout=10)
    r = httpx.post(
        f"{served.http_url}/v1/logs", content=logs, headers={"Content-Type": "application/x-protobuf"}
    )
    assert r.status_code == 200
    assert set(_decode_threads()) == before

    bigs = [build_trace_request(n_spans=400, seed=s, base_time_ns=T0).SerializeToString() for s in (3, 4)]
    assert all(len(b) >= THREAD_MIN_BYTES for b in bigs)
    with grpc.insecure_channel(served.grpc_target) as channel:
        call = channel.unary_unary(TRACE_METHOD)
        futures = [call.future(b, timeout=30) for b in bigs * 3]
        for f in futures:
            f.result()
    r = httpx.post(
        f"{served.http_url}/v1/traces", content=bigs[0], headers={"Content-Type": "application/x-protobuf"}
    )
    assert r.status_code == 200
    started = set(_decode_threads()) - before
    assert 1 <= len(started) <= 2

    batches = served.sink.batches
    traces_in = [b for b in batches if b.signal is Signal.TRACES and b.accepted >= 400]
    assert len(traces_in) == 7
    for batch in traces_in:
        expected = decode_request(Signal.TRACES, batch.raw or b"", json=False)
        assert batch.table.equals(expected.table)
    assert sorted(b.raw for b in traces_in) == sorted(bigs * 3 + [bigs[0]])

    served.close()
    for t in started:
        t.join(timeout=10)
        assert not t.is_alive()
