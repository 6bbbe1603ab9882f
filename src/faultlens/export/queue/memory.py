"""The in-memory export queue: same contract as the disk queue, nothing survives the process."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from faultlens.export.config import OverflowPolicy
from faultlens.export.queue.base import Batch, IndexedQueue, _Meta


class MemoryQueue(IndexedQueue):
    durable = False

    def __init__(self, max_items: int, max_bytes: int, overflow: OverflowPolicy) -> None:
        super().__init__(max_items, max_bytes, overflow)
        self._batches: dict[int, Batch] = {}
        self._ids = itertools.count(1)

    def _store(self, batches: Sequence[Batch], evicted: Sequence[int]) -> list[int]:
        for batch_id in evicted:
            self._batches.pop(batch_id, None)
        ids = []
        for b in batches:
            batch_id = next(self._ids)
            self._batches[batch_id] = b
            ids.append(batch_id)
        return ids

    def _load(self, meta: _Meta) -> bytes:
        return self._batches[meta.id].body

    def _load_batch(self, meta: _Meta) -> Batch:
        return self._batches[meta.id]  # the batch as put: immutable, nothing to rebuild

    def _delete(self, batch_id: int) -> None:
        self._batches.pop(batch_id, None)
