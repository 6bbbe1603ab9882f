"""``SinkConsumer``: a :class:`~faultlens.pipeline.base.BatchConsumer` that keeps what it gets.

For testing receivers (or anything that feeds the pipeline) without a store: it records
every batch, and can be told to refuse with :class:`~faultlens.errors.Overloaded` so the
caller's back-pressure path can be exercised. It is thread-safe, because servers under test
usually run on another thread than the test that inspects the sink.
"""

from __future__ import annotations

import threading
import time

from faultlens.decode.base import DecodedBatch
from faultlens.errors import Overloaded
from faultlens.types import Signal

__all__ = ["SinkConsumer"]


class SinkConsumer:
    """Records batches; refuses the next ``n`` (or all) when told to."""

    def __init__(self, name: str = "sink") -> None:
        self.name = name
        self._cond = threading.Condition()
        self._batches: list[DecodedBatch] = []
        self._refuse_left: int | None = 0  # None: refuse until allow()
        self._retry_after_s = 1.0
        self.refused = 0
        self.started = False
        self.stopped = False

    # BatchConsumer

    def consume(self, batch: DecodedBatch) -> None:
        with self._cond:
            if self._refuse_left is None or self._refuse_left > 0:
                if self._refuse_left is not None:
                    self._refuse_left -= 1
                self.refused += 1
                raise Overloaded("sink told to refuse", retry_after_s=self._retry_after_s)
            if batch.accepted == 0:
                return
            self._batches.append(batch)
            self._cond.notify_all()

    def start(self) -> None:
        self.started = True

    def shutdown(self, timeout_s: float = 30.0) -> None:
        self.stopped = True

    # Scripting

    def refuse(self, times: int | None = None, retry_after_s: float = 1.0) -> None:
        """Refuse the next ``times`` batches (every batch when ``None``) with Overloaded."""
        with self._cond:
            self._refuse_left = times
            self._retry_after_s = retry_after_s

    def allow(self) -> None:
        """Stop refusing."""
        with self._cond:
            self._refuse_left = 0

    # Inspection

    @property
    def batches(self) -> list[DecodedBatch]:
        with self._cond:
            return list(self._batches)

    def items(self, signal: Signal | None = None) -> int:
        """Accepted items recorded so far, of one signal or all."""
        with self._cond:
            return sum(b.accepted for b in self._batches if signal is None or b.signal == signal)

    def wait_for_items(self, count: int, signal: Signal | None = None, timeout_s: float = 5.0) -> bool:
        """Block until at least ``count`` items are recorded; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                have = sum(b.accepted for b in self._batches if signal is None or b.signal == signal)
                if have >= count:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)

    def clear(self) -> None:
        with self._cond:
            self._batches.clear()
            self.refused = 0
