"""Replay into the real faultlens OTLP receivers: ids and times survive decoding."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from nezha_builder import Synthetic

from faultlens.config.model import AdmissionConfig, GrpcReceiverConfig, HttpReceiverConfig, ReceiversConfig
from faultlens.datasets import NezhaDataset, ReplayOptions, make_sender
from faultlens.datasets.nezha.replay import replay_nezha
from faultlens.selfmetrics import SelfMetrics
from faultlens.testing.sink import SinkConsumer
from faultlens.types import Signal, Transport

try:  # the receivers are built in parallel; a broken import elsewhere must not fail these tests
    from faultlens.receive import Receivers
except ImportError as e:  # pragma: no cover
    pytest.skip(f"faultlens receivers not importable: {e}", allow_module_level=True)


class Running:
    def __init__(self) -> None:
        self.sink = SinkConsumer()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        config = ReceiversConfig(grpc=GrpcReceiverConfig(port=0), http=HttpReceiverConfig(port=0))
        self.receivers = Receivers(config, AdmissionConfig(), self.sink, SelfMetrics())
        self.ports = asyncio.run_coroutine_threadsafe(self.receivers.start(), self.loop).result(30)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.receivers.shutdown(5.0), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture(scope="module")
def faultlens() -> Iterator[Running]:
    running = Running()
    yield running
    running.close()


@pytest.mark.parametrize("transport", [Transport.GRPC, Transport.HTTP])
def test_replay_into_faultlens_receivers(
    synthetic: Synthetic, faultlens: Running, transport: Transport
) -> None:
    faultlens.sink.clear()
    port = faultlens.ports.grpc if transport == Transport.GRPC else faultlens.ports.http
    sender = make_sender(f"http://127.0.0.1:{port}", transport)
    summary = replay_nezha(synthetic.root, sender, options=ReplayOptions(batch_size=4))
    sender.close()
    assert sum(c.failed + c.rejected for c in summary.counts.values()) == 0, summary.errors
    assert faultlens.sink.wait_for_items(synthetic.spans, Signal.TRACES)
    assert faultlens.sink.wait_for_items(synthetic.logs, Signal.LOGS)
    spans = [b.table for b in faultlens.sink.batches if b.signal == Signal.TRACES]
    rows = [row for table in spans for row in table.to_pylist()]
    expected = {(s.trace_id, s.span_id): s for s in NezhaDataset(synthetic.root).spans()}
    assert {(r["trace_id"], r["span_id"]) for r in rows} == set(expected)
    for r in rows:
        s = expected[(r["trace_id"], r["span_id"])]
        assert (r["start_time_unix_nano"], r["end_time_unix_nano"]) == (s.start_ns, s.end_ns)
        assert (r["service_name"], r["k8s_pod_name"]) == (s.service, s.pod)
        assert (r["parent_span_id"] or b"") == s.parent_span_id
    logs = [row for b in faultlens.sink.batches if b.signal == Signal.LOGS for row in b.table.to_pylist()]
    error = next(r for r in logs if r["severity_text"] == "ERROR")
    assert error["severity_number"] == 17 and error["trace_id"] and error["span_id"]
    assert faultlens.sink.items(Signal.METRICS) == summary.counts[Signal.METRICS].accepted
