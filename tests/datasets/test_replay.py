"""Replay end to end over real sockets, and the replayer's pacing, shifting and batching."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf.message import Message
from nezha_builder import T0, S, Synthetic
from replay_recorder import Recorder

from faultlens.datasets import (
    GrpcSender,
    HttpSender,
    NezhaDataset,
    OtlpConverter,
    Replayer,
    ReplayOptions,
    RetryPolicy,
    SendResult,
    SpanRecord,
    make_sender,
)
from faultlens.datasets.nezha.replay import replay_nezha
from faultlens.types import Signal, Transport

FAST_RETRY = RetryPolicy(max_attempts=4, initial_backoff_s=0.01, max_backoff_s=0.05)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as rec:
        yield rec


def received_spans(recorder: Recorder) -> list[Any]:
    return [
        span
        for req in recorder.requests[Signal.TRACES]
        for rs in req.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


def received_counts(recorder: Recorder) -> dict[Signal, int]:
    logs = sum(
        len(sl.log_records)
        for req in recorder.requests[Signal.LOGS]
        for rl in req.resource_logs
        for sl in rl.scope_logs
    )
    points = sum(
        len(m.gauge.data_points)
        for req in recorder.requests[Signal.METRICS]
        for rm in req.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    )
    return {Signal.TRACES: len(received_spans(recorder)), Signal.LOGS: logs, Signal.METRICS: points}


def expected_points(ds: NezhaDataset) -> int:
    return sum(len(r.values) for r in ds.metrics())


@pytest.mark.parametrize("transport", [Transport.GRPC, Transport.HTTP])
def test_replay_delivers_every_item_with_ids_and_times(
    synthetic: Synthetic, recorder: Recorder, transport: Transport
) -> None:
    endpoint = recorder.grpc_endpoint if transport == Transport.GRPC else recorder.http_endpoint
    sender = make_sender(endpoint, transport, policy=FAST_RETRY)
    try:
        summary = replay_nezha(synthetic.root, sender, options=ReplayOptions(batch_size=5))
    finally:
        sender.close()
    points = expected_points(NezhaDataset(synthetic.root))
    assert summary.counts[Signal.TRACES].accepted == synthetic.spans
    assert summary.counts[Signal.LOGS].accepted == synthetic.logs
    assert summary.counts[Signal.METRICS].accepted == points
    assert received_counts(recorder) == {
        Signal.TRACES: synthetic.spans,
        Signal.LOGS: synthetic.logs,
        Signal.METRICS: points,
    }
    assert not summary.aborted and summary.errors == []
    sent = {(s.trace_id, s.span_id): s for s in NezhaDataset(synthetic.root).spans()}
    got = {(s.trace_id, s.span_id): s for s in received_spans(recorder)}
    assert set(got) == set(sent)
    for key, span in got.items():
        assert (span.start_time_unix_nano, span.end_time_unix_nano) == (sent[key].start_ns, sent[key].end_ns)
        assert span.parent_span_id == sent[key].parent_span_id


@pytest.mark.parametrize("transport", [Transport.GRPC, Transport.HTTP])
def test_retryable_refusals_are_retried_honouring_the_hint(
    synthetic: Synthetic, recorder: Recorder, transport: Transport
) -> None:
    recorder.refuse(2, retry_after_s=0.05)
    waits: list[float] = []
    cls = GrpcSender if transport == Transport.GRPC else HttpSender
    endpoint = recorder.grpc_endpoint if transport == Transport.GRPC else recorder.http_endpoint
    sender = cls(endpoint, policy=FAST_RETRY, sleep=waits.append)
    summary = replay_nezha(synthetic.root, sender)
    sender.close()
    assert recorder.refusals == 2
    assert sum(c.retries for c in summary.counts.values()) == 2
    assert waits == [pytest.approx(0.05), pytest.approx(0.05)]
    assert summary.counts[Signal.TRACES].accepted == synthetic.spans
    assert sum(c.failed for c in summary.counts.values()) == 0


def test_partial_success_is_counted_as_rejected(synthetic: Synthetic, recorder: Recorder) -> None:
    recorder.reject_partially(1)
    sender = make_sender(recorder.grpc_endpoint, Transport.GRPC)
    summary = replay_nezha(synthetic.root, sender, options=ReplayOptions(batch_size=1000))
    sender.close()
    traces = summary.counts[Signal.TRACES]
    assert traces.requests == 1
    assert (traces.rejected, traces.accepted) == (1, synthetic.spans - 1)
    assert "recorder rejected some" in summary.errors


def test_unreachable_endpoint_gives_up_after_bounded_tries(synthetic: Synthetic) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    sender = HttpSender(f"http://127.0.0.1:{port}", policy=FAST_RETRY, timeout_s=1.0)
    summary = replay_nezha(
        synthetic.root, sender, options=ReplayOptions(batch_size=2, max_consecutive_failures=2)
    )
    sender.close()
    assert summary.aborted
    assert sum(c.requests for c in summary.counts.values()) == 2
    assert sum(c.failed for c in summary.counts.values()) >= 2
    assert all(c.retries == 3 * c.requests for c in summary.counts.values())


class MemorySender:
    """Accepts everything and keeps the requests, with the fake time at which each was sent."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent: list[tuple[float, Signal, Message, int]] = []

    def send(self, signal: Signal, request: Message, items: int) -> SendResult:
        self.sent.append((self.clock.now, signal, request, items))
        return SendResult(items, True)

    def close(self) -> None:
        pass


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def spans_every(seconds: int, n: int) -> list[SpanRecord]:
    starts = [T0 + i * seconds * S for i in range(n)]
    return [
        SpanRecord(b"\x01" * 16, (i + 1).to_bytes(8, "big"), b"", "op", t, t + 5, "s", "p")
        for i, t in enumerate(starts)
    ]


def test_speed_paces_by_data_timestamps() -> None:
    clock = FakeClock()
    sender = MemorySender(clock)
    replayer = Replayer(sender, OtlpConverter(), ReplayOptions(speed=10), clock=clock, sleep=clock.sleep)
    summary = replayer.run(spans_every(10, 5))  # 40 s of data
    assert sum(clock.slept) == pytest.approx(4.0)  # 10x faster
    assert [t - 100.0 for t, *_ in sender.sent] == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])
    assert summary.counts[Signal.TRACES].accepted == 5


def test_max_speed_never_waits_and_batches_are_bounded() -> None:
    clock = FakeClock()
    sender = MemorySender(clock)
    replayer = Replayer(
        sender, OtlpConverter(), ReplayOptions(speed=None, batch_size=3), clock=clock, sleep=clock.sleep
    )
    replayer.run(spans_every(10, 7))
    assert clock.slept == []
    assert [items for *_, items in sender.sent] == [3, 3, 1]


def test_records_closer_than_a_tick_travel_together() -> None:
    clock = FakeClock()
    sender = MemorySender(clock)
    options = ReplayOptions(speed=1, tick_s=0.25)
    replayer = Replayer(sender, OtlpConverter(), options, clock=clock, sleep=clock.sleep)
    close_together = [
        SpanRecord(
            b"\x01" * 16,
            (i + 1).to_bytes(8, "big"),
            b"",
            "op",
            T0 + i * 1_000_000,
            T0 + i * 1_000_000,
            "s",
            "p",
        )
        for i in range(3)
    ]  # 1 ms apart
    replayer.run(close_together)
    assert [items for *_, items in sender.sent] == [3]


def test_shift_to_now_moves_the_first_item_to_now_and_keeps_intervals() -> None:
    clock = FakeClock()
    sender = MemorySender(clock)
    now_ns = 1_900_000_000 * S
    replayer = Replayer(
        sender,
        OtlpConverter(),
        ReplayOptions(shift_to_now=True),
        clock=clock,
        sleep=clock.sleep,
        wall_ns=lambda: now_ns,
    )
    summary = replayer.run(spans_every(10, 3))
    starts = [
        s.start_time_unix_nano
        for _, _, req, _ in sender.sent
        for s in req.resource_spans[0].scope_spans[0].spans
    ]
    assert starts == [now_ns, now_ns + 10 * S, now_ns + 20 * S]
    assert summary.time_offset_ns == now_ns - T0
