"""The export queue: where batches wait between ``consume()`` and a successful send.

Contract (both implementations keep it, and one test suite checks both):

- :meth:`ExportQueue.put` takes batches in order and applies the capacity (``max_items``
  telemetry items and ``max_bytes`` request bytes) with the overflow policy. It returns what
  it accepted, what it dropped (evicted oldest or refused newest; the caller counts them),
  and, under ``block``, what it could not take before the timeout.
- :meth:`ExportQueue.lease` hands the oldest waiting batch to one sender. A leased batch
  stays in the queue (and counts against capacity) until :meth:`ExportQueue.ack` removes it,
  after success or a permanent failure. :meth:`ExportQueue.release` gives it back, to be
  leased again before anything newer. Leases live in memory only, so after a crash every
  batch still in a durable queue is sent again: at-least-once.
- Leased batches are never evicted by ``drop_oldest``.
- Nothing polls: :meth:`ExportQueue.lease` with ``timeout_s=None`` sleeps until a batch can be
  handed out (or :meth:`ExportQueue.wake` / :meth:`ExportQueue.close`), so an idle exporter
  costs no CPU. After :meth:`ExportQueue.wake` (shutdown began) no ``lease`` waits longer than
  :data:`DRAIN_POLL_S`, so a sender that missed the wake-up still sees the shutdown at once.

:class:`IndexedQueue` keeps the bookkeeping in memory (about 100 bytes per waiting batch,
never the bodies for the disk queue) and leaves storage to a subclass.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from faultlens.export.config import OverflowPolicy
from faultlens.types import Signal

DRAIN_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class Batch:
    """One serialized export request and how many items (spans, records, points) it holds."""

    signal: Signal
    body: bytes
    items: int
    enqueued_ns: int = field(default_factory=time.time_ns)

    @property
    def nbytes(self) -> int:
        return len(self.body)


@dataclass(frozen=True, slots=True)
class Leased:
    id: int
    batch: Batch


@dataclass(frozen=True, slots=True)
class QueueStats:
    batches: int
    items: int
    bytes: int
    leased: int
    oldest_enqueued_ns: int | None


@dataclass(slots=True)
class PutResult:
    accepted: list[Batch] = field(default_factory=list)
    dropped: list[Batch] = field(default_factory=list)
    pending: list[Batch] = field(default_factory=list)


class ExportQueue(Protocol):
    durable: bool

    def put(self, batches: Sequence[Batch], timeout_s: float = 0.0) -> PutResult: ...

    def lease(self, timeout_s: float | None) -> Leased | None: ...

    def ack(self, leased: Leased) -> None: ...

    def release(self, leased: Leased) -> None: ...

    def stats(self) -> QueueStats: ...

    def fill_ratio(self) -> float: ...

    def wait_empty(self, timeout_s: float) -> bool: ...

    def wake(self) -> None: ...

    def close(self) -> None: ...


class _Meta(NamedTuple):
    """Index entry of one queued batch (a tuple: made for every batch, so it must be cheap)."""

    id: int
    signal: Signal
    items: int
    nbytes: int
    enqueued_ns: int


class IndexedQueue:
    """Capacity, ordering and leases in memory; bodies in :meth:`_store` / :meth:`_load`."""

    durable = False

    def __init__(self, max_items: int, max_bytes: int, overflow: OverflowPolicy) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.overflow = overflow
        # One lock, two conditions: senders wait in lease() for a batch (``_ready``: one
        # sender woken per batch put or released); put() under ``block`` and wait_empty()
        # wait for acks (``_changed``). Idle senders are not woken by every ack.
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._changed = threading.Condition(self._lock)
        self._woken = False
        # Threads waiting on each condition: a notify with nobody waiting is skipped (it costs
        # about as much as the rest of a put or an ack).
        self._ready_waiters = 0
        self._changed_waiters = 0
        self._waiting: OrderedDict[int, _Meta] = OrderedDict()
        self._redeliver: list[tuple[int, _Meta]] = []  # released batches, oldest first
        self._leased: dict[int, _Meta] = {}
        self._items = 0
        self._bytes = 0
        self._closed = False

    # --- storage hooks ---------------------------------------------------------------
    def _store(self, batches: Sequence[Batch], evicted: Sequence[int]) -> list[int]:
        """Persist ``batches`` (returning their ids, increasing) and delete ``evicted``, at once."""
        raise NotImplementedError

    def _load(self, meta: _Meta) -> bytes:
        raise NotImplementedError

    def _load_batch(self, meta: _Meta) -> Batch:
        """The batch of ``meta`` (a storage that keeps the original object may return it)."""
        return Batch(meta.signal, self._load(meta), meta.items, meta.enqueued_ns)

    def _delete(self, batch_id: int) -> None:
        raise NotImplementedError

    def _index(self, metas: Sequence[_Meta]) -> None:
        """Load existing batches (a durable queue reopened) into the index."""
        with self._lock:
            for m in metas:
                self._waiting[m.id] = m
                self._items += m.items
                self._bytes += m.nbytes

    # --- the contract ----------------------------------------------------------------
    def _fits(self, items: int, nbytes: int) -> bool:
        return self._items + items <= self.max_items and self._bytes + nbytes <= self.max_bytes

    def _evict_oldest(self) -> _Meta | None:
        if self._redeliver:
            return heapq.heappop(self._redeliver)[1]
        if self._waiting:
            return self._waiting.popitem(last=False)[1]
        return None

    def put(self, batches: Sequence[Batch], timeout_s: float = 0.0) -> PutResult:
        result = PutResult()
        evicted: list[_Meta] = []
        deadline = time.monotonic() + timeout_s
        with self._lock:
            for i, batch in enumerate(batches):
                if batch.items > self.max_items or batch.nbytes > self.max_bytes:
                    result.dropped.append(batch)  # can never fit, whatever the policy
                    continue
                if self.overflow is OverflowPolicy.DROP_OLDEST:
                    while not self._fits(batch.items, batch.nbytes):
                        victim = self._evict_oldest()
                        if victim is None:
                            break
                        evicted.append(victim)
                        self._items -= victim.items
                        self._bytes -= victim.nbytes
                elif self.overflow is OverflowPolicy.BLOCK:
                    while not self._fits(batch.items, batch.nbytes) and not self._closed:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._wait(self._changed, left)
                    if not self._fits(batch.items, batch.nbytes):
                        result.pending.extend(batches[i:])
                        break
                if not self._fits(batch.items, batch.nbytes):
                    result.dropped.append(batch)
                    continue
                self._items += batch.items
                self._bytes += batch.nbytes
                result.accepted.append(batch)
        # Evicted bodies are only read back for their counts, which the index already has.
        result.dropped.extend(Batch(m.signal, b"", m.items, m.enqueued_ns) for m in evicted)
        try:
            ids = self._store(result.accepted, [m.id for m in evicted])
        except BaseException:
            with self._lock:
                for b in result.accepted:
                    self._items -= b.items
                    self._bytes -= b.nbytes
            raise
        if ids:
            with self._lock:
                for batch_id, b in zip(ids, result.accepted, strict=True):
                    self._waiting[batch_id] = _Meta(batch_id, b.signal, b.items, b.nbytes, b.enqueued_ns)
                if self._ready_waiters:
                    self._ready.notify(len(ids))
        return result

    def lease(self, timeout_s: float | None) -> Leased | None:
        """The oldest waiting batch, waiting up to ``timeout_s`` (``None``: until there is one)."""
        with self._lock:
            idle = not self._redeliver and not self._waiting and not self._closed
            if idle and (timeout_s is None or timeout_s > 0):
                if self._woken:
                    timeout_s = DRAIN_POLL_S if timeout_s is None else min(timeout_s, DRAIN_POLL_S)
                # One wait: a batch, a wake() (shutdown) or close() returns control to the caller.
                self._wait(self._ready, timeout_s)
            if not self._redeliver and not self._waiting:
                return None
            if self._redeliver:
                meta = heapq.heappop(self._redeliver)[1]
            else:
                meta = self._waiting.popitem(last=False)[1]
            self._leased[meta.id] = meta
        try:
            batch = self._load_batch(meta)
        except BaseException:
            self.release(Leased(meta.id, Batch(meta.signal, b"", meta.items, meta.enqueued_ns)))
            raise
        return Leased(meta.id, batch)

    def ack(self, leased: Leased) -> None:
        self._delete(leased.id)
        with self._lock:
            meta = self._leased.pop(leased.id, None)
            if meta is not None:
                self._items -= meta.items
                self._bytes -= meta.nbytes
            if self._changed_waiters:
                self._changed.notify_all()

    def release(self, leased: Leased) -> None:
        with self._lock:
            meta = self._leased.pop(leased.id, None)
            if meta is not None:
                heapq.heappush(self._redeliver, (meta.id, meta))
                if self._ready_waiters:
                    self._ready.notify()

    def stats(self) -> QueueStats:
        with self._lock:
            oldest = [m.enqueued_ns for m in self._leased.values()]
            if self._redeliver:
                oldest.append(self._redeliver[0][1].enqueued_ns)
            if self._waiting:
                oldest.append(next(iter(self._waiting.values())).enqueued_ns)
            return QueueStats(
                batches=len(self._waiting) + len(self._redeliver) + len(self._leased),
                items=self._items,
                bytes=self._bytes,
                leased=len(self._leased),
                oldest_enqueued_ns=min(oldest) if oldest else None,
            )

    def remaining_by_signal(self) -> dict[Signal, int]:
        """Items still in the queue per signal (what a memory queue loses at shutdown)."""
        out: dict[Signal, int] = {}
        with self._lock:
            metas = [*self._waiting.values(), *(m for _, m in self._redeliver), *self._leased.values()]
        for m in metas:
            out[m.signal] = out.get(m.signal, 0) + m.items
        return out

    def fill_ratio(self) -> float:
        with self._lock:
            return max(self._items / self.max_items, self._bytes / self.max_bytes)

    def wait_empty(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._waiting or self._redeliver or self._leased:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wait(self._changed, left)
            return True

    def _wait(self, cond: threading.Condition, timeout_s: float | None) -> None:
        """``cond.wait`` with the waiter counted (called with the lock held)."""
        ready = cond is self._ready
        if ready:
            self._ready_waiters += 1
        else:
            self._changed_waiters += 1
        try:
            cond.wait(timeout_s)
        finally:
            if ready:
                self._ready_waiters -= 1
            else:
                self._changed_waiters -= 1

    def wake(self) -> None:
        """Shutdown began: wake every thread blocked in :meth:`lease` or :meth:`put` (they
        re-check and return), and from now on let no :meth:`lease` wait longer than
        :data:`DRAIN_POLL_S`."""
        with self._lock:
            self._woken = True
            self._ready.notify_all()
            self._changed.notify_all()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._ready.notify_all()
            self._changed.notify_all()
