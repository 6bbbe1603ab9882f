"""The decode worker pool: same result as decoding in process, a dead worker is a retryable
refusal and is replaced, shutdown leaves no child process, and a server with
``decode_workers=1`` takes data from the OpenTelemetry SDK end to end.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator

import grpc
import httpx
import psutil
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from receive_payloads import traces
from test_sdk_clients import make_spans

from conftest import RunningReceivers
from faultlens.decode import decode_request
from faultlens.errors import InvalidRequest, Overloaded
from faultlens.receive.decode_pool import DecodePool, WorkerLost
from faultlens.testing.payloads import (
    build_logs_request,
    build_metrics_request,
    build_trace_request,
    to_otlp_json,
)
from faultlens.types import Signal

T0 = 1_700_000_000_000_000_000
TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture(scope="module")
def pool_server(start_receivers: Callable[..., RunningReceivers]) -> RunningReceivers:
    """Receivers with two decode workers; the pool tests borrow its pool (one start-up)."""
    return start_receivers(decode_workers=2)


@pytest.fixture
def served(pool_server: RunningReceivers) -> Iterator[RunningReceivers]:
    pool_server.sink.allow()
    pool_server.sink.clear()
    yield pool_server


def with_pool(server: RunningReceivers, scenario: Callable[[DecodePool], Awaitable[None]]) -> None:
    """Run ``scenario`` on the server's loop against its pool."""
    pool = server.receivers.pool
    assert pool is not None
    server.run(scenario(pool), timeout=60)


def _alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def _payloads() -> list[tuple[Signal, bytes, bool]]:
    spans = build_trace_request(n_spans=300, seed=3, base_time_ns=T0)
    logs = build_logs_request(n_records=200, seed=4, base_time_ns=T0)
    metrics = build_metrics_request(seed=5, base_time_ns=T0)
    return [
        (Signal.TRACES, spans.SerializeToString(), False),
        (Signal.TRACES, traces(4, bad=2).SerializeToString(), False),  # partial success
        (Signal.TRACES, b"", False),  # empty request: empty table
        (Signal.LOGS, logs.SerializeToString(), False),
        (Signal.METRICS, metrics.SerializeToString(), False),
        (Signal.TRACES, to_otlp_json(spans), True),
        (Signal.LOGS, to_otlp_json(logs), True),
    ]


def test_pool_decodes_exactly_as_in_process(served: RunningReceivers) -> None:
    with_pool(served, _decodes_exactly_as_in_process)


async def _decodes_exactly_as_in_process(pool: DecodePool) -> None:
    for signal_, body, json in _payloads():
        expected = decode_request(signal_, body, json=json)
        got = await pool.decode(signal_, body, json=json)
        assert got.signal is signal_
        assert got.table.schema.equals(expected.table.schema, check_metadata=True)
        assert got.table.equals(expected.table), (signal_, json)
        assert (got.rejected, got.error_message) == (expected.rejected, expected.error_message)
        assert got.raw == expected.raw


def test_malformed_body_is_invalid_request_with_the_decoders_message(served: RunningReceivers) -> None:
    with_pool(served, _malformed_body)


async def _malformed_body(pool: DecodePool) -> None:
    for body, json in ((b"\xff\xff\xff", False), (b"{not json", True)):
        with pytest.raises(InvalidRequest) as raised:
            decode_request(Signal.TRACES, body, json=json)
        with pytest.raises(InvalidRequest) as got:
            await pool.decode(Signal.TRACES, body, json=json)
        assert str(got.value) == str(raised.value)
    # ... and the worker is still the same one, serving.
    assert (await pool.decode(Signal.TRACES, traces(2).SerializeToString(), json=False)).accepted == 2


def test_concurrent_requests_queue_for_the_workers(served: RunningReceivers) -> None:
    async def scenario(pool: DecodePool) -> None:
        bodies = [traces(i + 1).SerializeToString() for i in range(12)]
        got = await asyncio.gather(*(pool.decode(Signal.TRACES, b, json=False) for b in bodies))
        assert [b.accepted for b in got] == list(range(1, 13))

    with_pool(served, scenario)


def test_killed_worker_is_a_retryable_refusal_and_is_replaced(served: RunningReceivers) -> None:
    with_pool(served, _killed_worker)


async def _killed_worker(pool: DecodePool) -> None:
    victims, replaced = pool.pids, pool.replaced
    for pid in victims:  # hold them, so the request is surely in the hands of one
        os.kill(pid, signal.SIGSTOP)
    body = traces(3).SerializeToString()
    pending = asyncio.ensure_future(pool.decode(Signal.TRACES, body, json=False))
    # Kill only once a worker holds the request: a worker killed before the request is in its
    # socket never saw it, and the pool then (rightly) sends it to a replacement instead.
    deadline = time.monotonic() + 10
    while len(pool._idle) == len(victims) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # the small request frame fits the socket buffer at once
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerLost) as lost:
        await asyncio.wait_for(pending, 10)
    assert isinstance(lost.value, Overloaded)  # 503 + Retry-After / UNAVAILABLE + RetryInfo
    assert lost.value.retry_after_s > 0
    # A client retries a retryable refusal: the other killed worker may still look idle
    # until its death is noticed, so a first retry can be refused the same way. Within a
    # few retries a replacement decodes it, and the pool is whole again.
    for _ in range(5):
        try:
            batch = await asyncio.wait_for(pool.decode(Signal.TRACES, body, json=False), 60)
            break
        except WorkerLost:
            await asyncio.sleep(0.2)
    else:
        pytest.fail("no replacement worker decoded the retried request")
    assert batch.accepted == 3
    await _replaced(pool, replaced + len(victims))
    assert not set(victims) & set(pool.pids)
    assert _alive(victims) == []


async def _replaced(pool: DecodePool, count: int) -> None:
    deadline = time.monotonic() + 60
    while (pool.replaced < count or len(pool.pids) < pool.size) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert pool.replaced == count and len(pool.pids) == pool.size


def test_shutdown_is_bounded_and_leaves_no_child_process() -> None:
    asyncio.run(_shutdown_is_bounded())


async def _shutdown_is_bounded() -> None:
    p = DecodePool(2)
    await p.start()
    pids = p.pids
    assert len(_alive(pids)) == 2
    os.kill(pids[0], signal.SIGSTOP)  # a worker that would never read end of file
    started = time.monotonic()
    await p.shutdown(0.5)
    assert time.monotonic() - started < 5
    assert _alive(pids) == []
    assert p.pids == []
    mine = {c.pid for c in psutil.Process().children(recursive=True)}
    assert not mine & set(pids)
    await p.shutdown(0.5)  # twice is fine
    with pytest.raises(Overloaded):
        await p.decode(Signal.TRACES, b"", json=False)


# --- through the receivers -----------------------------------------------------------------


def test_sdk_exporters_reach_the_sink_through_the_pool(served: RunningReceivers) -> None:
    assert served.receivers.pool is not None
    grpc_exporter = GrpcSpanExporter(endpoint=served.grpc_target, insecure=True, timeout=10)
    http_exporter = HttpSpanExporter(endpoint=f"{served.http_url}/v1/traces", timeout=10)
    try:
        assert grpc_exporter.export(make_spans(5)) is SpanExportResult.SUCCESS
        assert http_exporter.export(make_spans(4)) is SpanExportResult.SUCCESS
    finally:
        grpc_exporter.shutdown()
        http_exporter.shutdown()
    assert served.sink.items(Signal.TRACES) == 9
    names = {name for b in served.sink.batches for name in b.table.column("name").to_pylist()}
    assert {"op-0", "op-4", "op-3"} <= names


def test_bad_input_through_the_pool_is_400_and_partial_success_counts(served: RunningReceivers) -> None:
    url = f"{served.http_url}/v1/traces"
    bad = httpx.post(url, content=b"\xff\xff", headers={"content-type": "application/x-protobuf"})
    assert bad.status_code == 400
    partial = httpx.post(
        url, content=traces(2, bad=1).SerializeToString(), headers={"content-type": "application/x-protobuf"}
    )
    assert partial.status_code == 200
    assert served.sink.items(Signal.TRACES) == 2


def test_dead_worker_is_unavailable_over_grpc_then_the_retry_succeeds(served: RunningReceivers) -> None:
    pool = served.receivers.pool
    assert pool is not None
    victims, replaced = pool.pids, pool.replaced
    for pid in victims:
        os.kill(pid, signal.SIGSTOP)
    body = traces(3).SerializeToString()
    with grpc.insecure_channel(served.grpc_target) as channel:
        call = channel.unary_unary(TRACE_METHOD, request_serializer=None, response_deserializer=None)
        future = call.future(body, timeout=20)
        time.sleep(0.2)
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(grpc.RpcError) as refused:
            future.result()
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        call(body, timeout=60)  # the retry waits for a replacement
    assert served.sink.items(Signal.TRACES) == 3
    served.run(_replaced(pool, replaced + len(victims)), timeout=70)
