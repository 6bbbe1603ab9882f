"""One conformance suite for both export queues, plus what only the disk queue promises."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from faultlens.export.config import OverflowPolicy, SyncMode
from faultlens.export.queue import Batch, ExportQueue, MemoryQueue, QueueLocked, SqliteQueue
from faultlens.types import Signal

MakeQueue = Callable[..., ExportQueue]


def _b(n: int, items: int = 10, size: int = 100) -> Batch:
    return Batch(Signal.TRACES, n.to_bytes(4, "big") * (size // 4), items, enqueued_ns=1_000 + n)


@pytest.fixture(params=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> MakeQueue:
    opened: list[ExportQueue] = []

    def factory(
        max_items: int = 1000, max_bytes: int = 1 << 20, overflow: OverflowPolicy = OverflowPolicy.DROP_NEWEST
    ) -> ExportQueue:
        q: ExportQueue
        if request.param == "memory":
            q = MemoryQueue(max_items, max_bytes, overflow)
        else:
            q = SqliteQueue(tmp_path / "q.sqlite", max_items, max_bytes, overflow)
        opened.append(q)
        return q

    yield factory  # type: ignore[misc]
    for q in opened:
        q.close()


def _tag(batch: Batch) -> int:
    return int.from_bytes(batch.body[:4], "big")


def test_lease_without_timeout_sleeps_until_a_put_or_a_wake(make: MakeQueue) -> None:
    q = make()
    got: list[Batch | None] = []

    def sender() -> None:
        leased = q.lease(None)
        got.append(leased.batch if leased is not None else None)

    t = threading.Thread(target=sender)
    t.start()
    time.sleep(0.2)
    assert t.is_alive()  # nothing queued: still asleep, no timeout
    q.put([_b(7)])
    t.join(2.0)
    assert not t.is_alive() and got[0] is not None and _tag(got[0]) == 7

    t = threading.Thread(target=sender)
    t.start()
    time.sleep(0.1)
    q.wake()  # shutdown began
    t.join(2.0)
    assert not t.is_alive() and got[1] is None
    t0 = time.monotonic()
    assert q.lease(None) is None  # after wake() no lease waits longer than a short poll
    assert time.monotonic() - t0 < 1.0


def test_fifo_lease_ack_and_release_goes_first(make: MakeQueue) -> None:
    q = make()
    assert q.put([_b(1), _b(2), _b(3)]).accepted
    first = q.lease(0.1)
    second = q.lease(0.1)
    assert first is not None and second is not None
    assert (_tag(first.batch), _tag(second.batch)) == (1, 2)
    q.release(first)
    again = q.lease(0.1)
    assert again is not None and _tag(again.batch) == 1  # released batches before newer ones
    q.ack(again)
    q.ack(second)
    third = q.lease(0.1)
    assert third is not None and _tag(third.batch) == 3
    assert q.lease(0.05) is None  # the leased one is not handed out twice
    q.ack(third)
    assert q.stats().batches == 0 and q.wait_empty(0.1)


def test_stats_count_leased_batches_until_acked(make: MakeQueue) -> None:
    q = make()
    q.put([_b(1, items=5, size=40), _b(2, items=7, size=80)])
    leased = q.lease(0.1)
    assert leased is not None
    s = q.stats()
    assert (s.batches, s.items, s.bytes, s.leased, s.oldest_enqueued_ns) == (2, 12, 120, 1, 1001)
    q.ack(leased)
    s = q.stats()
    assert (s.batches, s.items, s.bytes, s.oldest_enqueued_ns) == (1, 7, 80, 1002)


def test_drop_newest_refuses_what_does_not_fit(make: MakeQueue) -> None:
    q = make(max_items=25, overflow=OverflowPolicy.DROP_NEWEST)
    r = q.put([_b(1), _b(2), _b(3)])
    assert [_tag(b) for b in r.accepted] == [1, 2]
    assert len(r.dropped) == 1 and r.dropped[0].items == 10


def test_drop_oldest_evicts_waiting_but_never_leased(make: MakeQueue) -> None:
    q = make(max_items=30, overflow=OverflowPolicy.DROP_OLDEST)
    q.put([_b(1), _b(2), _b(3)])
    leased = q.lease(0.1)  # batch 1 is in flight
    assert leased is not None
    r = q.put([_b(4), _b(5)])
    assert sorted(b.enqueued_ns for b in r.dropped) == [1002, 1003]
    assert q.stats().items == 30
    q.ack(leased)
    order = []
    while (x := q.lease(0.05)) is not None:
        order.append(_tag(x.batch))
        q.ack(x)
    assert order == [4, 5]


def test_bytes_capacity_applies_too(make: MakeQueue) -> None:
    q = make(max_bytes=250, overflow=OverflowPolicy.DROP_NEWEST)
    r = q.put([_b(1), _b(2), _b(3)])
    assert len(r.accepted) == 2 and len(r.dropped) == 1
    assert q.fill_ratio() == pytest.approx(0.8)


def test_block_waits_for_room_then_times_out(make: MakeQueue) -> None:
    q = make(max_items=20, overflow=OverflowPolicy.BLOCK)
    q.put([_b(1), _b(2)])
    t0 = time.monotonic()
    r = q.put([_b(3)], timeout_s=0.2)
    assert r.pending and not r.dropped and time.monotonic() - t0 >= 0.19
    leased = q.lease(0.1)
    assert leased is not None
    threading.Timer(0.1, q.ack, args=(leased,)).start()
    r = q.put([_b(3)], timeout_s=2.0)
    assert [_tag(b) for b in r.accepted] == [3]


def test_batch_larger_than_capacity_is_dropped_whatever_the_policy(make: MakeQueue) -> None:
    q = make(max_items=5, overflow=OverflowPolicy.BLOCK)
    r = q.put([_b(1, items=6)], timeout_s=5)
    assert len(r.dropped) == 1 and not r.pending


def test_disk_queue_resends_everything_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    q = SqliteQueue(path, 1000, 1 << 20, OverflowPolicy.DROP_NEWEST, SyncMode.FULL)
    q.put([_b(1), _b(2), _b(3)])
    in_flight = q.lease(0.1)
    assert in_flight is not None
    done = q.lease(0.1)
    assert done is not None
    q.ack(done)
    q.close()  # the process "dies" with batch 1 in flight
    q = SqliteQueue(path, 1000, 1 << 20, OverflowPolicy.DROP_NEWEST)
    try:
        tags = []
        while (x := q.lease(0.05)) is not None:
            tags.append(_tag(x.batch))
        assert tags == [1, 3]
        assert q.stats().items == 20
    finally:
        q.close()


def test_disk_queue_is_locked_against_a_second_user(tmp_path: Path) -> None:
    q = SqliteQueue(tmp_path / "q.sqlite", 10, 1000, OverflowPolicy.DROP_NEWEST)
    try:
        with pytest.raises(QueueLocked):
            SqliteQueue(tmp_path / "q.sqlite", 10, 1000, OverflowPolicy.DROP_NEWEST)
    finally:
        q.close()


def test_corrupt_queue_file_is_moved_aside_with_a_clear_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "q.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.ERROR, logger="faultlens.export.queue.sqlite"):
        q = SqliteQueue(path, 1000, 1 << 20, OverflowPolicy.DROP_NEWEST)
    try:
        assert q.moved_aside is not None and q.moved_aside.read_bytes().startswith(b"this is not")
        assert any("corrupt" in r.message and str(q.moved_aside) in r.message for r in caplog.records)
        assert q.put([_b(1)]).accepted  # a fresh queue works
    finally:
        q.close()


def test_damaged_pages_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    q = SqliteQueue(path, 100_000, 1 << 26, OverflowPolicy.DROP_NEWEST)
    q.put([_b(i, size=4000) for i in range(200)])
    q.close()
    import sqlite3

    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    data = bytearray(path.read_bytes())
    data[4096 * 3 : 4096 * 3 + 64] = b"\xff" * 64  # scribble over an interior page
    path.write_bytes(bytes(data))
    q = SqliteQueue(path, 100_000, 1 << 26, OverflowPolicy.DROP_NEWEST)
    try:
        assert q.moved_aside is not None
        assert q.stats().batches == 0
    finally:
        q.close()
