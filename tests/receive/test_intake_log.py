"""The intake log on its own: records, segments, torn tails, trimming, and a state machine of
appends, applies, cancels, kills and replays (hypothesis) in which nothing acknowledged is
lost and nothing reaches the store twice."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from faultlens.decode.base import DecodedBatch
from faultlens.errors import Overloaded
from faultlens.receive.intake import Durability, IntakeLog, replay_intake
from faultlens.testing.payloads import build_trace_request
from faultlens.types import Signal


class _Store:
    """The store's side of the contract: which sequence numbers it holds, each once."""

    def __init__(self) -> None:
        self.applied: dict[int, int] = {}

    def applied_intake(self, seqs: Sequence[int]) -> set[int]:
        return {s for s in seqs if s in self.applied}

    def apply(self, seqs: Sequence[int]) -> None:
        for s in seqs:
            self.applied[s] = self.applied.get(s, 0) + 1


class _Consumer:
    """Takes batches and holds their requests in the log, as the store writer does."""

    name = "test"

    def __init__(self, log: IntakeLog | None = None) -> None:
        self.batches: list[DecodedBatch] = []
        self.log = log

    def consume(self, batch: DecodedBatch) -> None:
        if self.log is not None and batch.intake_seq is not None:
            self.log.hold(batch.intake_seq)
        self.batches.append(batch)

    def start(self) -> None:
        pass

    def shutdown(self, timeout_s: float = 30.0) -> None:
        pass


def _open(directory: Path, **kw: int) -> IntakeLog:
    log = IntakeLog(directory, **kw)  # type: ignore[arg-type]
    log.open()
    return log


def test_records_come_back_after_a_restart_with_their_signal_and_format(tmp_path: Path) -> None:
    body = build_trace_request(n_spans=5, services=1).SerializeToString()
    log = _open(tmp_path)
    a = log.append(Signal.TRACES, body, json=False)
    b = log.append(Signal.LOGS, b"{}", json=True)
    log.close()
    again = IntakeLog(tmp_path)
    stats = again.open()
    records = list(again.pending_records())
    assert (stats.records, stats.cancelled, stats.torn_bytes) == (2, 0, 0)
    assert [(r.seq, r.signal, r.json, r.body) for r in records] == [
        (a, Signal.TRACES, False, body),
        (b, Signal.LOGS, True, b"{}"),
    ]
    assert again.append(Signal.TRACES, b"", json=False) > b


def test_cancelled_and_applied_requests_are_not_replayed(tmp_path: Path) -> None:
    log = _open(tmp_path)
    seqs = [log.append(Signal.TRACES, b"", json=False) for _ in range(4)]
    log.cancel(seqs[1])
    log.release([seqs[2]])
    log.close()
    again = IntakeLog(tmp_path)
    again.open()
    # Applied is the store's to say (it is asked at replay); cancelled is the log's own.
    assert [r.seq for r in again.pending_records()] == [seqs[0], seqs[2], seqs[3]]


def test_a_corrupt_record_ends_the_segment_and_is_cut_off(tmp_path: Path) -> None:
    log = _open(tmp_path)
    first = log.append(Signal.TRACES, b"a" * 100, json=False)
    log.append(Signal.TRACES, b"b" * 100, json=False)
    log.close()
    (segment,) = [p for p in tmp_path.glob("*.log") if p.stat().st_size]
    data = bytearray(segment.read_bytes())
    data[-10] ^= 0xFF  # a flipped bit in the second record's body
    segment.write_bytes(bytes(data))
    again = IntakeLog(tmp_path)
    stats = again.open()
    assert stats.torn_bytes == 124  # the second record: a 24-byte header and its body
    assert [r.seq for r in again.pending_records()] == [first]
    assert segment.stat().st_size == 124


def test_segments_roll_and_applied_ones_are_deleted(tmp_path: Path) -> None:
    log = _open(tmp_path, segment_bytes=2**16)
    seqs = [log.append(Signal.TRACES, b"x" * 10_000, json=False) for _ in range(20)]
    assert len(list(tmp_path.glob("*.log"))) >= 3
    log.release(seqs[:10])
    below = log.trim()
    assert seqs[0] < below <= seqs[10]
    assert all(r.seq >= below for r in log.pending_records())
    log.release(seqs[10:])
    log.trim()
    assert len(list(tmp_path.glob("*.log"))) == 1  # the active segment stays
    assert log.size_bytes < 2**16


def test_past_max_bytes_appends_are_refused_as_retryable(tmp_path: Path) -> None:
    log = _open(tmp_path, max_bytes=50_000, segment_bytes=2**16)
    seqs = [log.append(Signal.TRACES, b"x" * 10_000, json=False) for _ in range(5)]
    with pytest.raises(Overloaded) as refused:
        log.append(Signal.TRACES, b"x", json=False)
    assert refused.value.retry_after_s > 0
    log.release(seqs)
    log.trim()
    for _ in range(4):  # the active segment counts until it rolls; applied ones do not hold
        log.append(Signal.TRACES, b"x" * 10_000, json=False)


def test_fsync_mode_waits_for_the_disk(tmp_path: Path) -> None:
    log = IntakeLog(tmp_path, durability=Durability.FSYNC)
    log.open()
    log.append(Signal.TRACES, b"abc", json=False)
    log.wait_durable_blocking()
    log.wait_durable_blocking()  # nothing new: returns at once
    log.close()


def test_replay_hands_on_what_the_store_does_not_hold_and_marks_the_rest(tmp_path: Path) -> None:
    body = build_trace_request(n_spans=3, services=1).SerializeToString()
    log = _open(tmp_path)
    seqs = [log.append(Signal.TRACES, body, json=False) for _ in range(3)]
    log.close()
    store = _Store()
    store.apply([seqs[1]])
    again = IntakeLog(tmp_path)
    again.open()
    consumer = _Consumer(again)
    assert replay_intake(again, store, consumer, wait_for_room=lambda: None) == 2
    assert [b.intake_seq for b in consumer.batches] == [seqs[0], seqs[2]]
    assert all(b.accepted == 3 for b in consumer.batches)
    assert again.outstanding == 2  # handed on and held by the consumer, not yet applied


_BODIES = [b"", *(build_trace_request(n_spans=n, services=1).SerializeToString() for n in (1, 40))]


class IntakeMachine(RuleBasedStateMachine):
    """Appends (acknowledged once ``append`` returns), a store that applies some of them,
    cancels, trims, kills (the object is dropped without close, and sometimes a half-written
    record is left at the end), and restarts with a replay."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="intake-sm-"))
        self.log = _open(self.dir, segment_bytes=2**16)
        self.store = _Store()
        self.acked: set[int] = set()
        self.cancelled: set[int] = set()
        self.in_queue: list[int] = []  # handed to the writer, not yet applied

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(body=st.sampled_from(_BODIES))
    def append(self, body: bytes) -> None:
        seq = self.log.append(Signal.TRACES, body, json=False)
        self.log.hold(seq)  # the store writer took it
        self.log.release([seq])  # ingest handed it on and answered
        assert seq not in self.acked
        self.acked.add(seq)
        self.in_queue.append(seq)

    @precondition(lambda self: self.in_queue)
    @rule(data=st.data())
    def refuse_one(self, data: st.DataObject) -> None:
        """The consumer refused a request after it was logged: the client was told to retry."""
        seq = data.draw(st.sampled_from(self.in_queue))
        self.log.cancel(seq)
        self.in_queue.remove(seq)
        self.acked.discard(seq)
        self.cancelled.add(seq)

    @precondition(lambda self: self.in_queue)
    @rule(data=st.data())
    def store_writes(self, data: st.DataObject) -> None:
        n = data.draw(st.integers(1, len(self.in_queue)))
        taken, self.in_queue = self.in_queue[:n], self.in_queue[n:]
        self.store.apply(taken)
        self.log.release(taken)

    @rule()
    def trim(self) -> None:
        self.log.trim()

    @rule(torn=st.booleans())
    def kill_and_restart(self, torn: bool) -> None:
        self.log._fd = None  # the process is gone: no close, no sync
        if torn:
            newest = max(self.dir.glob("*.log"))
            with open(newest, "ab") as f:
                f.write(b"FLI1\x00\x00\x00\x00\x07")
        self.log = IntakeLog(self.dir, segment_bytes=2**16)
        self.log.open()
        consumer = _Consumer(self.log)
        replay_intake(self.log, self.store, consumer, wait_for_room=lambda: None)
        replayed = [b.intake_seq for b in consumer.batches if b.intake_seq is not None]
        self.store.apply(replayed)  # the writer lands them
        self.log.release(replayed)
        self.in_queue = []

    @invariant()
    def nothing_applied_twice(self) -> None:
        assert all(n == 1 for n in self.store.applied.values())
        assert not self.cancelled & set(self.store.applied)

    @invariant()
    def everything_acknowledged_is_stored_or_waiting(self) -> None:
        assert self.acked <= set(self.store.applied) | set(self.in_queue)


TestIntakeMachine = IntakeMachine.TestCase
TestIntakeMachine.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
