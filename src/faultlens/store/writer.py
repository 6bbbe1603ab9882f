"""The store's place in the pipeline: a bounded queue and one coalescing writer thread.

::

    consume(batch) ──> pending[signal] ──(flush_rows reached, or flush_interval elapsed,
      (never blocks;    bounded by        or flush()/shutdown())──> writer thread
       Overloaded       queue_max_rows                              concat per signal
       when full, or    and queue_max_bytes
       while failing)   (pending + in-flight)                       store.write(), retried
                                                                     │
                                                  store_written_items ┴ dropped_items{store_error}

DuckDB inserts Arrow several times faster in large inserts than in small ones (DESIGN.md:
~140k rows/s at 1k rows, ~600k rows/s at 100k rows), so small requests are coalesced into
one insert per signal. Rows and their Arrow bytes count against the bounds until they are
written, so the bound is on memory actually held: a decoded span is ~1.2 KB of Arrow, so a
row bound alone would let a million spans hold over a gigabyte.

With an intake log (``faultlens.receive.intake``), each batch carries its request's sequence
number; a write records them in the store with the rows, and the writer reports them to the
log once committed, so the log can be trimmed. A write that raised is retried only when the
store does not hold its sequence numbers (DuckDB may fail a COMMIT that is already durable,
when the checkpoint after it fails): nothing is stored twice. When every attempt of a flush
fails, the batches stay queued and are tried again every ``retry_after_s``; nothing
acknowledged is dropped for a store failure, and what is still queued at the shutdown
deadline stays in the intake log and is replayed at the next start. A batch that fails alone
while others of the same flush land is not a store failure but a batch the store cannot take:
it is counted in ``faultlens_dropped_items_total{consumer="store", reason="store_rejected"}``,
logged, and cancelled in the log.

Without an intake log (``intake.durability: none``), a flush whose every attempt failed is
counted as dropped (reason ``store_error``), and what is left at the shutdown deadline as
``shutdown_timeout``. In both cases, once a flush has failed every attempt, new batches are
refused (the client keeps them and retries) but for one probe per ``retry_after_s``, until a
flush lands.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pyarrow as pa

from faultlens.config.model import StoreConfig
from faultlens.decode.base import DecodedBatch
from faultlens.errors import Overloaded
from faultlens.pipeline.base import IntakeHolds
from faultlens.selfmetrics import SelfMetrics
from faultlens.store.base import StoreWriter
from faultlens.types import Signal

__all__ = ["StoreConsumer"]

log = logging.getLogger(__name__)

CONSUMER = "store"
# Flushes in which a batch must fail alone, while others land, before it is given up as one
# the store cannot take (with an intake log; without one, the first such flush gives it up).
REJECT_AFTER = 3
# Words of errors that say the storage failed (disk full, read-only, I/O, an invalidated file):
# such a failure is the store's, never a batch's, so it never isolates a batch.
_STORAGE_FAILURE_WORDS = (
    "no space left",
    "could not write",
    "read-only file system",
    "input/output error",
    "i/o error",
    "permission denied",
    "has been invalidated",
    "disk quota",
)


def storage_failure(error: Exception) -> bool:
    """Whether ``error`` says the storage itself failed rather than the data written."""
    text = str(error).lower()
    return any(word in text for word in _STORAGE_FAILURE_WORDS)


class StoreConsumer:
    """:class:`~faultlens.pipeline.base.BatchConsumer` that writes batches to a store.

    ``consume`` only queues; the writer thread runs between :meth:`start` and
    :meth:`shutdown` and writes when ``flush_rows`` rows (all signals together) are waiting
    or the oldest waiting batch is ``flush_interval`` old. A batch larger than the whole
    queue is still accepted when the queue is empty, since refusing it would have the
    client retry it forever.
    """

    name = CONSUMER

    def __init__(
        self,
        store: StoreWriter,
        config: StoreConfig,
        metrics: SelfMetrics,
        *,
        retry_after_s: float = 1.0,
        write_attempts: int = 3,
        retry_backoff_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        on_outcome: Callable[[Exception | None], None] | None = None,
        intake: IntakeHolds | None = None,
    ) -> None:
        """``config`` gives ``flush_rows``, ``flush_interval`` and ``queue_max_rows``;
        ``retry_after_s`` is the back-off hint in :class:`Overloaded` refusals; a failed write
        is tried ``write_attempts`` times in all, ``retry_backoff_s`` apart (doubling).

        ``on_outcome`` hears, from the writer thread, how each flush of a signal ended: ``None``
        when the store took data (all of it, or the batches left after isolating a bad one),
        else the error of the last attempt, once every attempt failed. The server turns it
        into readiness, so a store that cannot write (disk full, database invalidated) takes
        the server out of a load balancer.

        While the last flush failed, :meth:`consume` refuses with :class:`Overloaded` (the
        client retries after ``retry_after_s``) instead of accepting data only to drop it,
        except for one batch per ``retry_after_s``: that one is the probe whose flush tells
        whether the store writes again.

        ``intake``: the intake log whose requests the batches are; with it, failed flushes
        are kept and retried instead of dropped (module docstring)."""
        if write_attempts <= 0:
            raise ValueError("write_attempts must be positive")
        self._store = store
        self._metrics = metrics
        self._flush_rows = config.flush_rows
        self._flush_interval_s = config.flush_interval
        self._queue_max_rows = config.queue_max_rows
        self._queue_max_bytes = config.queue_max_bytes
        self._retry_after_s = retry_after_s
        self._write_attempts = write_attempts
        self._retry_backoff_s = retry_backoff_s
        self._clock = clock
        self._on_outcome = on_outcome
        self._intake = intake
        self._strikes: dict[int, int] = {}  # intake seq -> flushes in which it failed alone
        self._retry_at = 0.0  # clock() before which kept batches are not tried again
        self._failing: Exception | None = None  # the last flush's error while none has landed since
        self._next_probe = 0.0  # clock() after which a batch may pass while failing

        self._cond = threading.Condition()
        self._pending: dict[Signal, list[DecodedBatch]] = {}
        self._pending_rows = 0
        self._inflight_rows = 0
        self._queued_bytes = 0  # Arrow bytes of the pending and in-flight batches
        self._oldest_pending: float | None = None  # clock() when the oldest pending batch came
        self._accepted_batches = 0  # sequence numbers, so flush() knows what it waits for
        self._done_batches = 0
        self._flush_target = 0
        self._stopping = False
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None

        metrics.queue_capacity.labels(consumer=CONSUMER).set(self._queue_max_rows)
        metrics.queue_items.labels(consumer=CONSUMER).set(0)

    @property
    def queued_rows(self) -> int:
        """Rows accepted and not yet written (waiting or being written)."""
        with self._cond:
            return self._pending_rows + self._inflight_rows

    @property
    def queued_bytes(self) -> int:
        """Arrow bytes of the rows accepted and not yet written."""
        with self._cond:
            return self._queued_bytes

    # --- the BatchConsumer edge ------------------------------------------------------------

    def consume(self, batch: DecodedBatch) -> None:
        """Queue the batch; raise :class:`Overloaded` if it would overfill the queue."""
        rows = batch.accepted
        if rows == 0:
            return
        size = batch.table.nbytes
        with self._cond:
            if self._stopping:
                raise Overloaded("the store writer is shutting down", self._retry_after_s)
            if self._failing is not None:
                now = self._clock()
                if now < self._next_probe:
                    raise Overloaded(f"the store cannot write: {self._failing}", self._retry_after_s)
                self._next_probe = now + self._retry_after_s
            queued = self._pending_rows + self._inflight_rows
            if queued and queued + rows > self._queue_max_rows:
                raise Overloaded(
                    f"store queue full ({queued} of {self._queue_max_rows} rows waiting)", self._retry_after_s
                )
            if queued and self._queued_bytes + size > self._queue_max_bytes:
                raise Overloaded(
                    f"store queue full ({self._queued_bytes} of {self._queue_max_bytes} bytes waiting)",
                    self._retry_after_s,
                )
            # Only the table is written: dropping ``raw`` (the request as it came, ~0.5 KB a
            # span) here keeps it from living in the queue until the flush.
            if self._intake is not None and batch.intake_seq is not None:
                self._intake.hold(batch.intake_seq)  # released once committed
            self._pending.setdefault(batch.signal, []).append(
                DecodedBatch(batch.signal, batch.table, intake_seq=batch.intake_seq)
            )
            self._pending_rows += rows
            self._queued_bytes += size
            self._accepted_batches += 1
            first = self._oldest_pending is None
            if first:
                self._oldest_pending = self._clock()
            self._set_gauge()
            if first or self._pending_rows >= self._flush_rows:
                self._cond.notify_all()  # start the flush_interval timer, or flush now

    def start(self) -> None:
        """Start the writer thread; a second call does nothing."""
        with self._cond:
            if self._thread is not None or self._stopping:
                return
            self._thread = threading.Thread(target=self._run, name="faultlens-store-writer", daemon=True)
            self._thread.start()

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Write everything accepted, within ``timeout_s``; what is left is counted as dropped.

        Safe to call twice. After it, ``consume`` refuses with :class:`Overloaded`. A write
        still running at the deadline is left to finish (or fail and be counted) on its own.
        """
        with self._cond:
            if self._stopping:
                thread = self._thread
                already = True
            else:
                self._stopping = True
                self._deadline = self._clock() + timeout_s
                self._cond.notify_all()
                thread = self._thread
                already = False
        if thread is None:
            if not already:
                self._run()  # never started: drain in the caller's thread
        else:
            thread.join(timeout_s)
        self._drop_leftovers()

    # --- waiting for data to land ----------------------------------------------------------

    def flush(self, timeout_s: float | None = None) -> bool:
        """Write everything accepted so far now; True once it is written (or counted dropped).

        Needs the writer thread (after :meth:`start`); returns False on timeout.
        """
        with self._cond:
            target = self._accepted_batches
            self._flush_target = max(self._flush_target, target)
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._done_batches >= target, timeout_s)

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Wait, without hurrying the writer, until nothing is queued; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending_rows + self._inflight_rows == 0, timeout_s)

    # --- the writer thread -----------------------------------------------------------------

    def _set_gauge(self) -> None:
        self._metrics.queue_items.labels(consumer=CONSUMER).set(self._pending_rows + self._inflight_rows)

    def _past_deadline(self) -> bool:
        return self._deadline is not None and self._clock() >= self._deadline

    def _due_in_locked(self) -> float | None:
        """0 when a flush is due now, else seconds until it is (None: nothing pending)."""
        if not self._pending_rows:
            return None
        if self._failing is not None and self._intake is not None:
            # Kept batches wait for the next try; a shutdown keeps trying until its deadline.
            return max(0.0, self._retry_at - self._clock())
        if (
            self._stopping
            or self._pending_rows >= self._flush_rows
            or self._flush_target > self._done_batches
            or self._oldest_pending is None
        ):
            return 0.0
        return max(0.0, self._oldest_pending + self._flush_interval_s - self._clock())

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping and (not self._pending_rows or self._past_deadline()):
                        return
                    due = self._due_in_locked()
                    if due == 0.0:
                        break
                    self._cond.wait(due)
                taken, rows = self._pending, self._pending_rows
                self._pending, self._pending_rows, self._oldest_pending = {}, 0, None
                self._inflight_rows += rows
            kept: dict[Signal, list[DecodedBatch]] = {}
            try:
                for signal, parts in taken.items():
                    try:
                        left = self._write_signal(signal, parts)
                    except Exception:  # a bug, not a store failure: keep the thread alive, count it
                        log.exception("store writer failed unexpectedly")
                        self._count_dropped(signal, sum(b.accepted for b in parts), "internal_error")
                        left = []
                    if left:
                        kept[signal] = left
            finally:
                self._settle(taken, rows, kept)

    def _settle(
        self, taken: dict[Signal, list[DecodedBatch]], rows: int, kept: dict[Signal, list[DecodedBatch]]
    ) -> None:
        """After a flush: release what was written or dropped; queue what is kept in front."""
        kept_rows = sum(b.accepted for v in kept.values() for b in v)
        kept_count = sum(len(v) for v in kept.values())
        done_bytes = sum(b.table.nbytes for v in taken.values() for b in v) - sum(
            b.table.nbytes for v in kept.values() for b in v
        )
        with self._cond:
            self._inflight_rows -= rows
            self._queued_bytes -= done_bytes
            if kept:
                for signal, parts in kept.items():
                    self._pending[signal] = parts + self._pending.get(signal, [])
                self._pending_rows += kept_rows
                if self._oldest_pending is None:
                    self._oldest_pending = self._clock()
                self._retry_at = self._clock() + self._retry_after_s
            self._done_batches += sum(len(v) for v in taken.values()) - kept_count
            self._set_gauge()
            self._cond.notify_all()

    def _write_signal(self, signal: Signal, parts: list[DecodedBatch]) -> list[DecodedBatch]:
        """Write one signal's waiting batches as one insert; isolate a poisonous batch if not.

        Returns the batches to keep and try again (with an intake log, when the store failed
        them all); the others were written or counted as dropped."""
        rows = sum(b.accepted for b in parts)
        try:
            coalesced = [DecodedBatch(signal, pa.concat_tables([b.table for b in parts]))]
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            coalesced = parts  # schemas differ; let the store take them one by one
        error = self._write_with_retries(signal, coalesced, _seqs(parts), rows, self._write_attempts)
        if error is None:
            self._report(None)
            return []
        if len(parts) == 1 or storage_failure(error):
            return self._failed(signal, parts, error)
        # One bad batch must not take the others with it: try each alone, once.
        failed: list[DecodedBatch] = []
        for b in parts:
            if self._write_with_retries(signal, [b], _seqs([b]), b.accepted, 1) is not None:
                failed.append(b)
        if len(failed) == len(parts):
            return self._failed(signal, failed, error)
        self._report(None)
        kept: list[DecodedBatch] = []
        for b in failed:  # the store writes, but not these
            seq = b.intake_seq
            if self._intake is None or seq is None:
                self._reject(signal, b)
                continue
            # With a log, a batch is given up only after failing alone in REJECT_AFTER flushes
            # in which others landed: a store that fails now and then is not a bad batch.
            self._strikes[seq] = self._strikes.get(seq, 0) + 1
            if self._strikes[seq] >= REJECT_AFTER:
                del self._strikes[seq]
                self._reject(signal, b)
            else:
                kept.append(b)
        return kept

    def _failed(self, signal: Signal, parts: list[DecodedBatch], error: Exception) -> list[DecodedBatch]:
        """Every attempt failed: keep the batches (intake log) or drop and count them."""
        self._report(error)
        if self._intake is not None:
            return parts
        self._count_dropped(signal, sum(b.accepted for b in parts), "store_error")
        return []

    def _reject(self, signal: Signal, batch: DecodedBatch) -> None:
        self._count_dropped(signal, batch.accepted, "store_rejected")
        if self._intake is not None and batch.intake_seq is not None:
            self._intake.cancel(batch.intake_seq)

    def _report(self, error: Exception | None) -> None:
        with self._cond:
            if error is not None and self._failing is None:
                self._next_probe = self._clock() + self._retry_after_s
            self._failing = error
        if self._on_outcome is None:
            return
        try:
            self._on_outcome(error)
        except Exception:  # the listener's bug must not stop the writer
            log.exception("store write outcome listener failed")

    def _write_with_retries(
        self, signal: Signal, batches: list[DecodedBatch], seqs: list[int], rows: int, attempts: int
    ) -> Exception | None:
        """None once the store took the batches, else the error of the last attempt.

        With sequence numbers, a write that raised counts as taken when the store holds them
        (its COMMIT was durable); they are reported to the intake log once taken."""
        error: Exception | None = None
        for attempt in range(attempts):
            started = time.perf_counter()
            try:
                self._store.write(batches, seqs)
            except Exception as e:
                if seqs and self._landed(seqs, e):
                    self._written(signal, seqs, rows, started)
                    return None
                error = e
                log.warning(
                    "store write of %d %s failed (attempt %d of %d): %s",
                    rows,
                    signal.item_name,
                    attempt + 1,
                    attempts,
                    e,
                )
                if attempt + 1 < attempts and not self._past_deadline():
                    time.sleep(self._retry_backoff_s * 2**attempt)
                    continue
                break
            self._written(signal, seqs, rows, started)
            return None
        return error

    def _landed(self, seqs: list[int], error: Exception) -> bool:
        """Whether a write that raised ``error`` committed all the same."""
        try:
            held = self._store.applied_intake(seqs)
        except Exception as e:  # the store cannot even answer: treat the write as failed
            log.debug("cannot ask the store which intake requests it holds: %s", e)
            return False
        if held:
            log.warning("store write raised but committed (%s); not retried", error)
        return len(held) == len(set(seqs))

    def _written(self, signal: Signal, seqs: list[int], rows: int, started: float) -> None:
        self._metrics.store_flush_seconds.observe(time.perf_counter() - started)
        self._metrics.store_written_items.labels(signal=signal.value).inc(rows)
        if self._intake is not None and seqs:
            self._intake.release(seqs)
            if self._strikes:
                for seq in seqs:
                    self._strikes.pop(seq, None)

    def _count_dropped(self, signal: Signal, rows: int, reason: str) -> None:
        self._metrics.dropped_items.labels(signal=signal.value, consumer=CONSUMER, reason=reason).inc(rows)
        log.error("store dropped %d %s (%s)", rows, signal.item_name, reason)

    def _drop_leftovers(self) -> None:
        with self._cond:
            leftover, self._pending = self._pending, {}
            self._pending_rows, self._oldest_pending = 0, None
            self._queued_bytes -= sum(b.table.nbytes for v in leftover.values() for b in v)
            self._done_batches += sum(len(v) for v in leftover.values())
            self._set_gauge()
            self._cond.notify_all()
        for signal, parts in leftover.items():
            rows = sum(b.accepted for b in parts)
            if self._intake is not None and all(b.intake_seq is not None for b in parts):
                log.warning(
                    "store writer stopped with %d %s not written; they stay in the intake log "
                    "and are written at the next start",
                    rows,
                    signal.item_name,
                )
            else:
                self._count_dropped(signal, rows, "shutdown_timeout")


def _seqs(batches: list[DecodedBatch]) -> list[int]:
    return [b.intake_seq for b in batches if b.intake_seq is not None]
