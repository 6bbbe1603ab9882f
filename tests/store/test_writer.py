"""StoreConsumer: coalescing, back-pressure, shutdown and failure accounting."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from faultlens.config.model import StoreConfig
from faultlens.decode.base import DecodedBatch
from faultlens.errors import Overloaded, StoreError
from faultlens.pipeline.base import BatchConsumer
from faultlens.selfmetrics import SelfMetrics
from faultlens.store import DuckDBStore, StoreConsumer, StoreStats, TraceQuery
from faultlens.store._connection import ROW_GROUP_SIZE
from faultlens.store.testing import log_row, logs_batch, span_row, spans_batch
from faultlens.store.writer import REJECT_AFTER
from faultlens.types import Signal

WAIT_S = 5.0

Make = Callable[..., StoreConsumer]


class FakeStore:
    """Records writes; can fail a number of times, fail on a marker, or block until released."""

    def __init__(self) -> None:
        self.writes: list[list[DecodedBatch]] = []
        self.applied: set[int] = set()
        self.attempts = 0
        self.failures_left = 0
        self.poison_name: str | None = None
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def write(self, batches: list[DecodedBatch], intake_seqs: Sequence[int] = ()) -> None:
        self.attempts += 1
        self.entered.set()
        self.gate.wait()
        if self.failures_left:
            self.failures_left -= 1
            raise StoreError("disk full")
        if self.poison_name is not None and any(
            self.poison_name in b.table.column("name").to_pylist() for b in batches
        ):
            raise StoreError("poison")
        self.writes.append(batches)
        self.applied.update(intake_seqs)

    def applied_intake(self, seqs: Sequence[int]) -> set[int]:
        return self.applied & set(seqs)

    def forget_intake(self, below: int) -> None:
        self.applied = {s for s in self.applied if s >= below}

    def rows(self) -> int:
        return sum(b.accepted for w in self.writes for b in w)


def spans(n: int, name: str = "op") -> DecodedBatch:
    return spans_batch([span_row(1, i, name=name) for i in range(n)])


def logs(n: int) -> DecodedBatch:
    return logs_batch([log_row(time=i) for i in range(n)])


def config(**kw: object) -> StoreConfig:
    values: dict[str, object] = {"flush_rows": 1000, "flush_interval": 60.0, "queue_max_rows": 10_000, **kw}
    return StoreConfig.model_validate(values)


def sample(metrics: SelfMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def metrics() -> SelfMetrics:
    return SelfMetrics()


@pytest.fixture
def fake() -> FakeStore:
    return FakeStore()


@pytest.fixture
def make(fake: FakeStore, metrics: SelfMetrics) -> Iterator[Make]:
    """Build consumers over the fake store and shut them all down after the test."""
    made: list[StoreConsumer] = []

    def build(cfg: StoreConfig | None = None, **kw: object) -> StoreConsumer:
        c = StoreConsumer(fake, cfg or config(), metrics, retry_backoff_s=0.0, **kw)  # type: ignore[arg-type]
        made.append(c)
        return c

    yield build
    fake.gate.set()
    for c in made:
        c.shutdown(WAIT_S)


def test_it_is_a_batch_consumer_named_store(make: Make) -> None:
    consumer = make()
    assert isinstance(consumer, BatchConsumer)
    assert consumer.name == "store"


def test_small_batches_are_coalesced_into_one_write_per_signal(make: Make, fake: FakeStore) -> None:
    consumer = make(config(flush_rows=10))
    consumer.start()
    for _ in range(4):
        consumer.consume(spans(2))
    consumer.consume(logs(1))
    time.sleep(0.05)
    assert fake.writes == []  # 8 span rows + 1 log row: below flush_rows, interval far away
    consumer.consume(spans(2))
    assert consumer.wait_idle(WAIT_S)
    by_signal = {w[0].signal: w for w in fake.writes}
    assert len(fake.writes) == 2
    assert [b.accepted for b in by_signal[Signal.TRACES]] == [10]
    assert [b.accepted for b in by_signal[Signal.LOGS]] == [1]


def test_waiting_rows_are_written_after_the_flush_interval(make: Make, fake: FakeStore) -> None:
    consumer = make(config(flush_interval=0.05))
    consumer.start()
    consumer.consume(spans(3))
    assert consumer.wait_idle(WAIT_S)
    assert fake.rows() == 3


def test_flush_writes_now_and_waits(make: Make, fake: FakeStore) -> None:
    consumer = make()
    consumer.start()
    consumer.consume(spans(3))
    assert consumer.flush(WAIT_S)
    assert fake.rows() == 3
    assert consumer.queued_rows == 0


def test_empty_batches_are_ignored(make: Make, fake: FakeStore) -> None:
    consumer = make()
    consumer.consume(DecodedBatch.empty(Signal.TRACES))
    assert consumer.queued_rows == 0


def test_a_full_queue_refuses_with_a_retryable_error(make: Make, metrics: SelfMetrics) -> None:
    consumer = make(config(queue_max_rows=5), retry_after_s=2.5)  # not started: nothing drains
    consumer.consume(spans(3))
    with pytest.raises(Overloaded) as refused:
        consumer.consume(spans(3))
    assert refused.value.retryable
    assert refused.value.retry_after_s == 2.5
    consumer.consume(spans(2))  # exactly at the bound is fine
    assert consumer.queued_rows == 5
    assert sample(metrics, "faultlens_queue_items", consumer="store") == 5
    assert sample(metrics, "faultlens_queue_capacity_items", consumer="store") == 5


def test_rows_being_written_still_count_against_the_bound(make: Make, fake: FakeStore) -> None:
    fake.gate.clear()
    consumer = make(config(queue_max_rows=5, flush_rows=1))
    consumer.start()
    consumer.consume(spans(4))
    assert fake.entered.wait(WAIT_S)  # taken by the writer, which is now stuck
    with pytest.raises(Overloaded):
        consumer.consume(spans(2))
    fake.gate.set()
    assert consumer.wait_idle(WAIT_S)
    consumer.consume(spans(2))


def test_a_batch_larger_than_the_queue_is_taken_when_the_queue_is_empty(make: Make) -> None:
    consumer = make(config(queue_max_rows=5))
    consumer.consume(spans(8))
    with pytest.raises(Overloaded):
        consumer.consume(spans(1))


def test_shutdown_writes_everything_accepted(make: Make, fake: FakeStore, metrics: SelfMetrics) -> None:
    consumer = make()
    consumer.start()
    for _ in range(3):
        consumer.consume(spans(2))
    consumer.consume(logs(4))
    consumer.shutdown(WAIT_S)
    assert fake.rows() == 10
    assert sample(metrics, "faultlens_store_written_items_total", signal="traces") == 6
    assert sample(metrics, "faultlens_store_written_items_total", signal="logs") == 4
    assert sample(metrics, "faultlens_store_flush_seconds_count") == 2
    assert sample(metrics, "faultlens_queue_items", consumer="store") == 0


def test_shutdown_without_start_still_writes(make: Make, fake: FakeStore) -> None:
    consumer = make()
    consumer.consume(spans(2))
    consumer.shutdown(WAIT_S)
    assert fake.rows() == 2


def test_shutdown_twice_is_safe_and_later_batches_are_refused(make: Make, fake: FakeStore) -> None:
    consumer = make()
    consumer.start()
    consumer.consume(spans(2))
    consumer.shutdown(WAIT_S)
    consumer.shutdown(WAIT_S)
    assert fake.rows() == 2
    with pytest.raises(Overloaded):
        consumer.consume(spans(1))


def test_shutdown_is_bounded_and_counts_what_it_could_not_write(
    make: Make, fake: FakeStore, metrics: SelfMetrics
) -> None:
    fake.gate.clear()
    consumer = make(config(flush_rows=1))
    consumer.start()
    consumer.consume(spans(2))
    assert fake.entered.wait(WAIT_S)  # the writer is stuck on these 2 rows
    consumer.consume(spans(3))
    started = time.monotonic()
    consumer.shutdown(0.1)
    assert time.monotonic() - started < 1.0
    assert sample(metrics, "faultlens_dropped_items_total", signal="traces", consumer="store",
                  reason="shutdown_timeout") == 3  # fmt: skip
    fake.gate.set()  # the stuck write finishes on its own and is counted as written
    deadline = time.monotonic() + WAIT_S
    while fake.rows() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.rows() == 2


def test_a_transient_write_failure_is_retried(make: Make, fake: FakeStore, metrics: SelfMetrics) -> None:
    fake.failures_left = 2
    consumer = make()
    consumer.start()
    consumer.consume(spans(3))
    assert consumer.flush(WAIT_S)
    assert fake.rows() == 3
    assert fake.attempts == 3
    assert sample(metrics, "faultlens_dropped_items_total", signal="traces", consumer="store",
                  reason="store_error") == 0  # fmt: skip


def test_a_write_that_keeps_failing_is_counted_as_dropped(
    make: Make, fake: FakeStore, metrics: SelfMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    fake.failures_left = 1_000
    consumer = make(write_attempts=3)
    consumer.start()
    consumer.consume(spans(3))
    assert consumer.flush(WAIT_S)
    assert fake.rows() == 0
    assert fake.attempts == 3
    assert sample(metrics, "faultlens_dropped_items_total", signal="traces", consumer="store",
                  reason="store_error") == 3  # fmt: skip
    assert "dropped 3 spans" in caplog.text
    assert consumer.queued_rows == 0


def test_one_bad_batch_does_not_take_the_others_with_it(
    make: Make, fake: FakeStore, metrics: SelfMetrics
) -> None:
    fake.poison_name = "bad"
    consumer = make()
    consumer.consume(spans(2))
    consumer.consume(spans(3, name="bad"))
    consumer.consume(spans(4))
    consumer.start()
    assert consumer.flush(WAIT_S)
    assert sorted(b.accepted for w in fake.writes for b in w) == [2, 4]
    # The store wrote the others, so this batch is one it cannot take, not a store failure.
    assert sample(metrics, "faultlens_dropped_items_total", signal="traces", consumer="store",
                  reason="store_rejected") == 3  # fmt: skip


def test_each_flush_tells_how_it_ended(make: Make, fake: FakeStore) -> None:
    outcomes: list[str | None] = []
    consumer = make(
        write_attempts=2,
        retry_after_s=0.0,  # every batch may probe: nothing is refused here
        on_outcome=lambda e: outcomes.append(None if e is None else str(e)),
    )
    consumer.start()
    consumer.consume(spans(1))
    assert consumer.flush(WAIT_S)
    fake.failures_left = 2  # both attempts of the next flush fail
    consumer.consume(spans(1))
    assert consumer.flush(WAIT_S)
    fake.poison_name = "bad"  # a bad batch beside a good one: the store still writes
    consumer.consume(spans(1, name="bad"))
    consumer.consume(spans(2))
    assert consumer.flush(WAIT_S)
    consumer.consume(spans(1, name="bad"))  # only the bad one: nothing written
    assert consumer.flush(WAIT_S)
    assert outcomes == [None, "disk full", None, "poison"]


def test_while_the_store_fails_batches_are_refused_but_one_probe_per_interval(
    make: Make, fake: FakeStore, metrics: SelfMetrics
) -> None:
    now = [0.0]
    consumer = make(write_attempts=1, retry_after_s=5.0, clock=lambda: now[0])
    consumer.start()
    fake.failures_left = 1
    consumer.consume(spans(2))
    assert consumer.flush(WAIT_S)  # failed: counted as dropped
    with pytest.raises(Overloaded, match="cannot write: disk full") as refused:
        consumer.consume(spans(3))
    assert refused.value.retry_after_s == 5.0
    now[0] = 5.0
    consumer.consume(spans(4))  # the probe
    with pytest.raises(Overloaded):
        consumer.consume(spans(5))  # one probe per interval
    assert consumer.flush(WAIT_S)  # the probe lands: the store writes again
    consumer.consume(spans(6))
    assert consumer.flush(WAIT_S)
    assert sorted(b.accepted for w in fake.writes for b in w) == [4, 6]
    assert sample(metrics, "faultlens_dropped_items_total", signal="traces", consumer="store",
                  reason="store_error") == 2  # fmt: skip


def test_a_failing_outcome_listener_does_not_stop_the_writer(make: Make, fake: FakeStore) -> None:
    def listener(error: Exception | None) -> None:
        raise RuntimeError("listener bug")

    consumer = make(on_outcome=listener)
    consumer.start()
    consumer.consume(spans(2))
    assert consumer.flush(WAIT_S)
    consumer.consume(spans(3))
    assert consumer.flush(WAIT_S)
    assert fake.rows() == 5


def test_with_a_real_store_data_lands_and_is_queryable(tmp_path: Path, metrics: SelfMetrics) -> None:
    store = DuckDBStore(tmp_path / "faultlens.duckdb")
    consumer = StoreConsumer(store, config(flush_rows=5), metrics)
    consumer.start()
    try:
        for i in range(4):
            consumer.consume(
                spans_batch([span_row(i, j, start=i * 100 + j, service_name="svc") for j in range(3)])
            )
        consumer.consume(logs(2))
        assert consumer.flush(WAIT_S)
        assert store.stats() == StoreStats(spans=12, logs=2, metric_points=0)
        assert len(store.find_traces(TraceQuery(service="svc"))) == 4
    finally:
        consumer.shutdown(WAIT_S)
        store.close()


def test_a_queue_full_in_bytes_refuses_even_below_the_row_bound(make: Make) -> None:
    one = spans(3)
    consumer = make(config(queue_max_rows=10_000, queue_max_bytes=one.table.nbytes * 2))
    consumer.consume(one)
    consumer.consume(spans(3))  # exactly at the byte bound is fine
    assert consumer.queued_bytes == one.table.nbytes * 2
    with pytest.raises(Overloaded, match="bytes"):
        consumer.consume(spans(3))


def test_written_batches_give_their_bytes_back(make: Make, fake: FakeStore) -> None:
    consumer = make(config(flush_rows=1))
    consumer.start()
    consumer.consume(spans(4))
    consumer.consume(logs(2))
    assert consumer.flush(WAIT_S)
    assert consumer.queued_bytes == 0
    assert fake.rows() == 6


def test_bytes_of_batches_dropped_at_shutdown_are_given_back(make: Make) -> None:
    consumer = make(config())  # never started: shutdown drains in the caller's thread
    consumer.consume(spans(3))
    consumer.shutdown(timeout_s=0.0)
    assert consumer.queued_bytes == 0


def test_the_default_queue_bounds_bytes_and_flushes_whole_row_groups() -> None:
    defaults = StoreConfig()
    # At least two of the store's row groups: such a flush is written compressed, directly.
    assert defaults.flush_rows >= 2 * ROW_GROUP_SIZE
    assert defaults.queue_max_bytes <= 256 * 2**20


def test_the_queue_does_not_keep_the_request_bytes(make: Make, fake: FakeStore) -> None:
    consumer = make(config(flush_rows=1))
    fake.gate.clear()  # the first write blocks, so the second batch stays queued
    consumer.start()
    consumer.consume(spans(1))
    assert fake.entered.wait(WAIT_S)
    batch = spans(3)
    raw = bytes(range(256)) * 8  # stands in for the serialized request
    before = sys.getrefcount(raw)
    consumer.consume(DecodedBatch(batch.signal, batch.table, raw=raw))
    assert consumer.queued_rows == 4
    assert sys.getrefcount(raw) == before
    fake.gate.set()
    assert consumer.flush(WAIT_S)
    assert fake.rows() == 4


class _Holds:
    """The intake log's side, recorded."""

    def __init__(self) -> None:
        self.held: dict[int, int] = {}
        self.cancelled: list[int] = []

    def hold(self, seq: int) -> None:
        self.held[seq] = self.held.get(seq, 0) + 1

    def release(self, seqs: list[int]) -> None:
        for s in seqs:
            self.held[s] -= 1

    def cancel(self, seq: int) -> None:
        self.cancelled.append(seq)


def _seq(batch: DecodedBatch, seq: int) -> DecodedBatch:
    return DecodedBatch(batch.signal, batch.table, intake_seq=seq)


def test_with_an_intake_log_a_failing_store_keeps_the_batches_until_they_land(
    make: Make, fake: FakeStore, metrics: SelfMetrics
) -> None:
    holds = _Holds()
    consumer = make(intake=holds, retry_after_s=0.05)
    fake.failures_left = 5  # more than one flush's attempts
    consumer.consume(_seq(spans(2), 1))
    consumer.consume(_seq(spans(3), 2))
    consumer.start()
    assert consumer.flush(WAIT_S)  # done only once kept batches landed
    assert fake.rows() == 5
    assert fake.attempts == 6  # three of the two together, one of each alone, then it landed
    assert fake.applied == {1, 2}
    assert holds.held == {1: 0, 2: 0}  # held at consume, released at commit
    assert sample(metrics, "faultlens_dropped_items_total", signal="traces", consumer="store",
                  reason="store_error") == 0  # fmt: skip


def test_a_commit_that_raised_but_landed_is_not_written_again(make: Make, fake: FakeStore) -> None:
    class CommitRaises(FakeStore):
        def write(self, batches: list[DecodedBatch], intake_seqs: Sequence[int] = ()) -> None:
            super().write(batches, intake_seqs)
            if len(self.writes) == 1:
                raise StoreError("COMMIT succeeded and is durable, but the checkpoint failed")

    store = CommitRaises()
    consumer = StoreConsumer(store, config(), SelfMetrics(), retry_backoff_s=0.0, intake=_Holds())
    consumer.consume(_seq(spans(4), 7))
    consumer.start()
    try:
        assert consumer.flush(WAIT_S)
    finally:
        consumer.shutdown(WAIT_S)
    assert store.rows() == 4  # once, though the first write raised


def test_with_an_intake_log_a_bad_batch_is_rejected_only_after_failing_alone_repeatedly(
    make: Make, fake: FakeStore, metrics: SelfMetrics
) -> None:
    holds = _Holds()
    fake.poison_name = "bad"
    consumer = make(intake=holds, retry_after_s=0.05)
    consumer.start()
    consumer.consume(_seq(spans(3, name="bad"), 1))
    good = 0
    deadline = time.monotonic() + WAIT_S
    while not holds.cancelled and time.monotonic() < deadline:
        try:  # while the bad batch fails, one batch per retry_after passes: the probe
            consumer.consume(_seq(spans(2), 100 + good))
            good += 1
        except Overloaded:
            pass
        consumer.flush(0.1)
        time.sleep(0.06)
    assert holds.cancelled == [1]
    assert sample(metrics, "faultlens_dropped_items_total", signal="traces", consumer="store",
                  reason="store_rejected") == 3  # fmt: skip
    assert good >= REJECT_AFTER  # it failed alone beside batches that landed, that many times
    assert consumer.flush(WAIT_S)
    assert fake.rows() == 2 * good


def test_a_storage_failure_never_isolates_a_batch(make: Make, fake: FakeStore, metrics: SelfMetrics) -> None:
    class DiskFull(FakeStore):
        def write(self, batches: list[DecodedBatch], intake_seqs: Sequence[int] = ()) -> None:
            if sum(b.accepted for b in batches) > 2:
                raise StoreError("Could not write file: No space left on device")
            super().write(batches, intake_seqs)

    store = DiskFull()
    holds = _Holds()
    consumer = StoreConsumer(store, config(), metrics, retry_backoff_s=0.0, retry_after_s=60.0, intake=holds)
    consumer.consume(_seq(spans(2), 1))
    consumer.consume(_seq(spans(3), 2))
    consumer.start()
    try:
        consumer.flush(0.5)  # does not complete: the batches are kept for the next try
        assert store.rows() == 0  # the small one was not written apart: nothing was isolated
        assert consumer.queued_rows == 5
        assert holds.cancelled == []
    finally:
        consumer.shutdown(0.2)
