"""The SQLite export queue as a state machine (hypothesis): puts, leases, acks, releases and
kills (the queue is closed with leases outstanding and opened again) in any order. Nothing
committed is lost until it is acknowledged, nothing acknowledged comes back, and what was
leased when the process died is leased again (at least once)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from faultlens.export.config import OverflowPolicy, SyncMode
from faultlens.export.queue.base import Batch, Leased
from faultlens.export.queue.sqlite import SqliteQueue
from faultlens.types import Signal


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="queue-sm-"))
        self.queue = self._open()
        self.n = 0
        self.committed: set[bytes] = set()  # put and accepted, not yet acknowledged
        self.acked: set[bytes] = set()
        self.leased: dict[bytes, Leased] = {}

    def _open(self) -> SqliteQueue:
        return SqliteQueue(self.dir / "q.sqlite", 10_000, 2**30, OverflowPolicy.BLOCK, SyncMode.NORMAL)

    def teardown(self) -> None:
        self.queue.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(count=st.integers(1, 4))
    def put(self, count: int) -> None:
        batches = []
        for _ in range(count):
            self.n += 1
            batches.append(Batch(Signal.TRACES, f"body-{self.n}".encode(), 1))
        result = self.queue.put(batches)
        assert not result.dropped and not result.pending
        self.committed |= {b.body for b in result.accepted}

    @rule()
    def lease(self) -> None:
        leased = self.queue.lease(0.0)
        if leased is None:
            assert len(self.committed) == len(self.leased), "a committed batch could not be leased"
            return
        body = leased.batch.body
        assert body not in self.acked, "an acknowledged batch came back"
        assert body in self.committed
        assert body not in self.leased, "a batch was leased twice at once"
        self.leased[body] = leased

    @precondition(lambda self: self.leased)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        body = data.draw(st.sampled_from(sorted(self.leased)))
        self.queue.ack(self.leased.pop(body))
        self.committed.discard(body)
        self.acked.add(body)

    @precondition(lambda self: self.leased)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        body = data.draw(st.sampled_from(sorted(self.leased)))
        self.queue.release(self.leased.pop(body))

    @rule()
    def kill_and_reopen(self) -> None:
        self.queue.close()  # leases live in memory only: they are gone with the process
        self.leased.clear()
        self.queue = self._open()

    @invariant()
    def nothing_committed_is_lost(self) -> None:
        stats = self.queue.stats()
        assert stats.batches == len(self.committed)
        assert stats.leased == len(self.leased)


TestQueueMachine = QueueMachine.TestCase
TestQueueMachine.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)
