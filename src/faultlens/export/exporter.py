"""The resilient OTLP exporter for one destination.

::

  consume(batch) ─┐   (never blocks: bounded intake; full -> drop or Overloaded, per policy)
  submit(...)  ───┴─> intake ──spool thread──> [degrade above high-water] ──> queue (disk/memory)
                                                                               │ lease
                                             ┌──────── senders (config.senders threads) <┘
                                             v
                       breaker permit? ── no ──> wait (data stays queued)
                             │ yes
                             v
                       transport.send ──> Delivered ──────────> ack (partial success counted)
                             │            Failed, permanent ───> ack, counted as failed/dropped
                             │            Failed, retryable ───> backoff (or server hint) and again;
                             │                                   breaker open -> release to queue;
                             │                                   max_elapsed spent -> ack, dropped
                             └── shutdown: backoff interrupted, release to queue

An SDK ``export()`` (``submit`` with ``wait_s``) waits for the commit anyway, so when nothing
is ahead of it in the intake it commits the batch on its own thread (the same degradation and
overflow rules; one spooler at a time) instead of handing it to the spool thread and being
woken again. No thread polls: idle senders sleep in ``lease()`` until a batch is queued and the
spool thread until there is intake, so an idle exporter uses no CPU.

Lifecycle: :meth:`Exporter.start` opens the queue (a disk queue resends what a previous
process left) and starts the threads; :meth:`Exporter.shutdown` stops intake, commits the
intake to the queue, lets senders drain until the queue is empty or ``timeout_s`` passes
(never sleeping in backoff), and returns within ``timeout_s``. What is left stays in the disk
queue; a memory queue counts it dropped (``shutdown``). Safe to call twice.

Every item is accounted for: sent, failed (refused for good by the destination), or dropped
with a reason (``no_raw``, ``queue_full``, ``degraded_sampled``, ``retry_exhausted``,
``rejected``, ``partial_success``, ``shutdown``).
"""

from __future__ import annotations

import collections
import functools
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import Counter as PromCounter

from faultlens.decode.base import DecodedBatch
from faultlens.errors import Overloaded
from faultlens.export.breaker import CircuitBreaker, Permit
from faultlens.export.config import ExporterConfig, OverflowPolicy, QueueKind
from faultlens.export.degrade import Degrader
from faultlens.export.health import DestinationHealth, ExportMetrics
from faultlens.export.outcome import Delivered, Failed
from faultlens.export.queue import Batch, ExportQueue, Leased, make_queue
from faultlens.export.queue.base import IndexedQueue
from faultlens.export.retry import Backoff
from faultlens.export.transport import Transport, make_transport
from faultlens.pipeline.base import IntakeHolds
from faultlens.selfmetrics import SelfMetrics
from faultlens.types import Signal

log = logging.getLogger(__name__)

# Drop reasons (the ``reason`` label of faultlens_dropped_items_total for exporters).
NO_RAW = "no_raw"
QUEUE_FULL = "queue_full"
DEGRADED = "degraded_sampled"
RETRY_EXHAUSTED = "retry_exhausted"
REJECTED = "rejected"
PARTIAL = "partial_success"
SHUTDOWN = "shutdown"

_LOG_EVERY_S = 10.0


@dataclass(slots=True)
class _Pending:
    batch: Batch
    done: threading.Event | None = None
    queued: bool = False
    settled: Callable[[], None] | None = None  # called once it is committed to the queue or dropped

    def settle(self) -> None:
        if self.settled is not None:
            settled, self.settled = self.settled, None
            settled()


@dataclass(slots=True)
class _Counts:
    sent_items: int = 0
    sent_requests: int = 0
    failed_items: int = 0
    retried: int = 0
    dropped: collections.Counter[str] = field(default_factory=collections.Counter)
    last_error: str | None = None
    last_error_unix_s: float | None = None


class Exporter:
    """Forwards batches of one or more signals to one OTLP destination. A :class:`BatchConsumer`."""

    def __init__(
        self,
        config: ExporterConfig,
        *,
        metrics: SelfMetrics | None = None,
        transport: Transport | None = None,
        queue_factory: Callable[[], ExportQueue] | None = None,
        rng: random.Random | None = None,
        intake: IntakeHolds | None = None,
    ) -> None:
        self.config = config
        self.name = f"export/{config.name}"
        self._signals = frozenset(config.signals)
        self._metrics = ExportMetrics.of(metrics or SelfMetrics())
        self._metrics.track(self)
        self._transport_arg = transport
        self._queue_factory = queue_factory or (lambda: make_queue(config.queue, config.name))
        self._rng = rng or random.Random()
        self._holds = intake
        self._breaker = CircuitBreaker(config.breaker)
        self._degrader = Degrader(config.degradation, self._rng)
        self._degraded = False
        self._counts = _Counts()
        self._counts_lock = threading.Lock()
        self._sent_children: dict[Signal, tuple[PromCounter, PromCounter]] = {}
        self._intake: collections.deque[_Pending] = collections.deque()
        self._intake_lock = threading.Lock()  # taken directly where no wait/notify is needed
        self._intake_cond = threading.Condition(self._intake_lock)
        self._queue: ExportQueue | None = None
        self._transport: Transport | None = None
        self._threads: list[threading.Thread] = []
        self._spool_thread: threading.Thread | None = None
        self._accepting = False
        self._stop_spool = False
        self._draining = threading.Event()  # shutdown began: no more backoff sleeps
        self._stop = threading.Event()  # senders must exit now
        self._deadline = float("inf")
        self._not_before = 0.0  # destination-wide throttle (server retry hints)
        self._state_lock = threading.Lock()
        self._started = False
        self._shut_down = False
        self._log_times: dict[str, float] = {}
        # Someone (the spool thread, or an SDK caller in submit) is committing batches to the
        # queue; one at a time, so the degrader and ordering need no lock of their own.
        self._spooling = False
        self._flush_waiters = 0

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        with self._state_lock:
            if self._started:
                return
            self._started = True
            self._queue = self._queue_factory()
            self._transport = self._transport_arg or make_transport(self.config)
            self._accepting = True
        stats = self._queue.stats()
        if stats.batches:
            log.info(
                "export %s: %d batches (%d items) waiting from before the restart; resending",
                self.config.name,
                stats.batches,
                stats.items,
            )
        self._register_gauges()
        self._spool_thread = threading.Thread(target=self._spool_loop, name=f"{self.name}-spool", daemon=True)
        self._spool_thread.start()
        for i in range(self.config.senders):
            t = threading.Thread(target=self._send_loop, name=f"{self.name}-send-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Flush what can be sent within ``timeout_s``; leave the rest queued (disk) or count it (memory)."""
        with self._state_lock:
            if self._shut_down or not self._started:
                self._shut_down = True
                return
            self._shut_down = True
            self._accepting = False
        start = time.monotonic()
        self._deadline = start + timeout_s
        queue = self._queue
        assert queue is not None and self._transport is not None
        with self._intake_cond:
            self._stop_spool = True
            self._intake_cond.notify_all()
        if self._spool_thread is not None:
            self._spool_thread.join(max(0.0, self._deadline - time.monotonic()))
        self._draining.set()
        queue.wake()
        for t in self._threads:
            t.join(max(0.0, self._deadline - time.monotonic()))
        self._stop.set()
        queue.wake()
        self._transport.close()  # cancels gRPC calls still in flight
        for t in self._threads:
            t.join(0.05)
        stats = queue.stats()
        if stats.batches and not queue.durable and isinstance(queue, IndexedQueue):
            for signal, items in queue.remaining_by_signal().items():
                self._drop(signal, items, SHUTDOWN)
        elif stats.batches:
            log.info(
                "export %s: shut down with %d batches (%d items) left in the disk queue; "
                "they are sent after the next start",
                self.config.name,
                stats.batches,
                stats.items,
            )
        with self._intake_cond:
            leftovers = list(self._intake)
            self._intake.clear()
        for p in leftovers:
            self._drop(p.batch.signal, p.batch.items, SHUTDOWN)
            if p.done is not None:
                p.done.set()
        queue.close()
        log.debug("export %s: shutdown took %.3fs", self.config.name, time.monotonic() - start)

    # --- intake --------------------------------------------------------------------------
    def consume(self, batch: DecodedBatch) -> None:
        """Queue ``batch`` for sending; never blocks. See :class:`~faultlens.pipeline.base.BatchConsumer`."""
        if batch.signal not in self._signals or batch.accepted == 0:
            return
        if batch.raw is None:
            # Batches that did not come from the wire would need encoding from Arrow; not yet.
            self._drop(batch.signal, batch.accepted, NO_RAW)
            return
        holds, seq = self._holds, batch.intake_seq
        if holds is None or seq is None:
            self.submit(batch.signal, batch.raw, batch.accepted)
            return
        # The intake log keeps the request until the disk queue has committed it (or it was
        # dropped): a kill before then replays it to this exporter at the next start.
        holds.hold(seq)
        settled = functools.partial(holds.release, [seq])
        try:
            taken = self.submit(batch.signal, batch.raw, batch.accepted, settled=settled)
        except BaseException:
            settled()
            raise
        if not taken:
            settled()

    def submit(
        self,
        signal: Signal,
        body: bytes,
        items: int,
        *,
        wait_s: float | None = None,
        settled: Callable[[], None] | None = None,
    ) -> bool:
        """Queue one serialized export request of ``items`` items.

        With ``wait_s=None`` it returns at once (the :meth:`consume` path): under the ``block``
        policy a full intake raises :class:`Overloaded`. With ``wait_s`` it waits up to that
        long for room (``block``) and for the batch to be committed to the queue, and returns
        whether it was; the SDK exporters use this. Returns False when the batch was dropped.
        ``settled`` is called once a batch that was taken (True) is committed to the queue or
        dropped from the intake.
        """
        if not self._accepting:
            self._drop(signal, items, SHUTDOWN)
            return False
        deadline = time.monotonic() + (wait_s or 0.0)
        if wait_s is not None:
            # The caller waits for the commit anyway: when nothing is ahead of it, it commits
            # the batch itself (same degradation and overflow rules, one spooler at a time)
            # rather than handing it to the spool thread and waiting to be woken again.
            with self._intake_lock:
                mine = not self._intake and not self._spooling
                if mine:
                    self._spooling = True
            if mine:
                return self._spool_now(Batch(signal, body, items), deadline)
        pending = _Pending(
            Batch(signal, body, items), threading.Event() if wait_s is not None else None, settled=settled
        )
        limit = self.config.queue.intake_max_batches
        with self._intake_cond:
            while len(self._intake) >= limit:
                policy = self.config.queue.overflow
                if policy is OverflowPolicy.BLOCK:
                    left = deadline - time.monotonic()
                    if wait_s is None:
                        raise Overloaded(f"export queue of {self.config.name} is full", retry_after_s=1.0)
                    if left <= 0:
                        self._drop(signal, items, QUEUE_FULL)
                        return False
                    self._intake_cond.wait(left)
                elif policy is OverflowPolicy.DROP_NEWEST:
                    self._drop(signal, items, QUEUE_FULL)
                    return False
                else:
                    old = self._intake.popleft()
                    self._drop(old.batch.signal, old.batch.items, QUEUE_FULL)
                    old.settle()
                    if old.done is not None:
                        old.done.set()
            self._intake.append(pending)
            self._intake_cond.notify_all()
        if pending.done is None:
            return True
        pending.done.wait(max(0.0, deadline - time.monotonic()))
        return pending.queued

    def flush(self, timeout_s: float) -> bool:
        """Wait until everything accepted so far was sent (or refused); False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._intake_cond:
            self._flush_waiters += 1
            try:
                while self._intake or self._spooling:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._intake_cond.wait(left)  # whoever spools notifies when done
            finally:
                self._flush_waiters -= 1
        if self._queue is None:
            return True
        return self._queue.wait_empty(max(0.0, deadline - time.monotonic()))

    def _spool_loop(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            with self._intake_cond:
                # Work when there is intake and no one else (an SDK caller committing its own
                # batch) is spooling; stop once asked and no one is. Notified, never polling.
                while self._spooling or not (self._intake or self._stop_spool):
                    self._intake_cond.wait()
                if not self._intake:
                    return  # stop asked, intake committed
                pending = list(self._intake)
                self._intake.clear()
                self._spooling = True
                self._intake_cond.notify_all()
            try:
                self._spool(queue, pending)
            except Exception:
                log.exception("export %s: could not queue %d batches", self.config.name, len(pending))
                for p in pending:
                    if not p.queued:
                        self._drop(p.batch.signal, p.batch.items, "queue_error")
            finally:
                for p in pending:
                    p.settle()
                    if p.done is not None:
                        p.done.set()
                with self._intake_cond:
                    self._spooling = False
                    self._intake_cond.notify_all()

    def _spool_now(self, batch: Batch, deadline: float) -> bool:
        """Commit ``batch`` on the caller's thread, which holds the spooling role (see submit)."""
        queue = self._queue
        assert queue is not None
        pending = _Pending(batch)
        try:
            self._spool(queue, [pending], give_up_at=deadline)
        except Exception:
            log.exception("export %s: could not queue a batch", self.config.name)
            if not pending.queued:
                self._drop(batch.signal, batch.items, "queue_error")
        finally:
            with self._intake_lock:
                self._spooling = False
                # Wake only who may wait for this: the spool thread (intake arrived meanwhile,
                # or shutdown) and flush(); an idle spool thread is left asleep.
                if self._intake or self._stop_spool or self._flush_waiters:
                    self._intake_cond.notify_all()
        return pending.queued

    def _spool(self, queue: ExportQueue, pending: list[_Pending], give_up_at: float | None = None) -> None:
        """Degrade if needed, then put ``pending`` in the queue; under ``block``, retry until
        there is room, ``give_up_at`` (then dropped as ``queue_full``) or the shutdown deadline."""
        self._degraded = self._degrader.active(queue.fill_ratio())
        batches: list[Batch] = []
        owners: dict[int, _Pending] = {}
        for p in pending:
            batch: Batch | None = p.batch
            if self._degraded and batch is not None:
                batch, left_out = self._degrader.filter(batch)
                if left_out:
                    self._drop(p.batch.signal, left_out, DEGRADED)
            if batch is not None:
                batches.append(batch)
                owners[id(batch)] = p
            else:
                p.queued = True  # fully accounted for (sampled out), nothing to wait for
        blocking = self.config.queue.overflow is OverflowPolicy.BLOCK
        while batches:
            timeout = 0.25 if blocking else 0.0
            if give_up_at is not None:
                timeout = min(timeout, max(0.0, give_up_at - time.monotonic()))
            result = queue.put(batches, timeout_s=timeout)
            for b in result.accepted:
                owners[id(b)].queued = True
            for b in result.dropped:
                self._drop(b.signal, b.items, QUEUE_FULL)
            batches = result.pending
            if batches and give_up_at is not None and time.monotonic() >= give_up_at:
                for b in batches:
                    self._drop(b.signal, b.items, QUEUE_FULL)
                break
            if batches and self._stop_spool and time.monotonic() >= self._deadline:
                for b in batches:
                    self._drop(b.signal, b.items, SHUTDOWN)
                break

    # --- sending ---------------------------------------------------------------------------
    def _send_loop(self) -> None:
        queue = self._queue
        assert queue is not None
        while not self._stop.is_set():
            if self._draining.is_set() and time.monotonic() >= self._deadline:
                return
            try:
                hint = self._breaker.wait_hint()
                if hint > 0:  # open: data waits in the queue, nothing is read from it
                    if self._draining.is_set():
                        return  # destination down: what is left stays queued
                    self._stop.wait(min(hint, 0.5))
                    continue
                # Sleeps until a batch is queued (no polling while idle); once shutdown began
                # (queue.wake()) the queue never lets it wait longer than DRAIN_POLL_S.
                leased = queue.lease(None)
                if leased is None:
                    if self._draining.is_set() and not self._intake and queue.stats().batches == 0:
                        return
                    continue
                # The permit is taken after the lease, so a permit is never held while idle
                # (the breaker may open meanwhile); while open the batch goes back, first in line.
                permit = self._breaker.try_acquire()
                if permit is None:
                    queue.release(leased)
                    if self._draining.is_set():
                        return  # destination down: what is left stays queued
                    self._stop.wait(min(max(self._breaker.wait_hint(), 0.05), 0.5))
                    continue
                if not self._deliver(queue, leased, permit) and self._draining.is_set():
                    return
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("export %s: sender failed; continuing", self.config.name)
                self._stop.wait(0.5)

    def _deliver(self, queue: ExportQueue, leased: Leased, permit: Permit) -> bool:
        """Send one leased batch until it is done with; False if it went back to the queue."""
        batch = leased.batch
        backoff: Backoff | None = None  # made on the first retryable failure
        started = time.monotonic()
        while True:
            wait = self._not_before - time.monotonic()
            if wait > 0 and (self._draining.is_set() or self._draining.wait(wait)):
                self._breaker.release(permit)  # throttled, then shutdown began: keep it queued
                queue.release(leased)
                return False
            timeout = self.config.timeout
            if self._draining.is_set():
                timeout = min(timeout, self._deadline - time.monotonic())
                if timeout <= 0:
                    self._breaker.release(permit)
                    queue.release(leased)
                    return False
            result = self._transport_send(batch, timeout)
            if isinstance(result, Delivered):
                self._breaker.record_success(permit)
                queue.ack(leased)
                self._on_delivered(batch, result)
                return True
            self._note_error(batch.signal, result)
            if not result.retryable:
                self._breaker.record_success(permit)  # it answered: it is up
                queue.ack(leased)
                self._fail(batch.signal, batch.items, REJECTED)
                self._log_limited("rejected", "export %s: %s refused %d %s for good: %s", batch, result)
                return True
            self._breaker.record_failure(permit)
            if backoff is None:
                backoff = Backoff(self.config.retry, self._rng)
            delay = backoff.next_delay(result.retry_after_s)
            if result.retry_after_s is not None:
                self._not_before = max(self._not_before, time.monotonic() + delay)
            if not self.config.retry.enabled or backoff.exhausted(time.monotonic() - started, delay):
                queue.ack(leased)
                self._fail(batch.signal, batch.items, RETRY_EXHAUSTED)
                self._log_limited(
                    "exhausted", "export %s: gave up on %d %s after retrying: %s", batch, result
                )
                return True
            if self._draining.is_set() or self._draining.wait(delay):
                queue.release(leased)
                return False
            self._count_retry(batch.signal)
            next_permit = self._breaker.try_acquire()
            if next_permit is None:  # breaker opened: the batch waits in the queue
                queue.release(leased)
                return False
            permit = next_permit

    def _transport_send(self, batch: Batch, timeout: float) -> Delivered | Failed:
        assert self._transport is not None
        try:
            return self._transport.send(batch.signal, batch.body, timeout)
        except Exception as err:  # a transport bug must not kill the sender
            log.exception("export %s: transport raised", self.config.name)
            return Failed(True, "transport error", str(err))

    # --- accounting -------------------------------------------------------------------------
    def _on_delivered(self, batch: Batch, result: Delivered) -> None:
        sent = batch.items - min(result.rejected, batch.items)
        with self._counts_lock:
            self._counts.sent_items += sent
            self._counts.sent_requests += 1
        items_counter, requests_counter = self._sent_counters(batch.signal)
        items_counter.inc(sent)
        requests_counter.inc()
        if result.rejected or result.message:
            if result.rejected:
                self._fail(batch.signal, result.rejected, PARTIAL)
            key = "partial"
            now = time.monotonic()
            if now - self._log_times.get(key, -1e9) >= _LOG_EVERY_S:
                self._log_times[key] = now
                log.warning(
                    "export %s: partial success, destination rejected %d of %d %s: %s",
                    self.config.name,
                    result.rejected,
                    batch.items,
                    batch.signal.item_name,
                    result.message,
                )

    def _fail(self, signal: Signal, items: int, reason: str) -> None:
        """Items refused for good: counted as failed and as dropped (they will not arrive)."""
        with self._counts_lock:
            self._counts.failed_items += items
        self._metrics.failed_items.labels(self.config.name, signal.value, reason).inc(items)
        self._drop(signal, items, reason)

    def _drop(self, signal: Signal, items: int, reason: str) -> None:
        if items <= 0:
            return
        with self._counts_lock:
            self._counts.dropped[reason] += items
        self._metrics.self_metrics.dropped_items.labels(signal.value, self.name, reason).inc(items)

    def _count_retry(self, signal: Signal) -> None:
        with self._counts_lock:
            self._counts.retried += 1
        self._metrics.retries.labels(self.config.name, signal.value).inc()

    def _note_error(self, signal: Signal, result: Failed) -> None:
        with self._counts_lock:
            self._counts.last_error = f"{signal.value}: {result}"
            self._counts.last_error_unix_s = time.time()

    def _log_limited(self, key: str, fmt: str, batch: Batch, result: Failed) -> None:
        now = time.monotonic()
        if now - self._log_times.get(key, -1e9) >= _LOG_EVERY_S:
            self._log_times[key] = now
            log.warning(fmt, self.config.name, batch.items, batch.signal.item_name, result)

    def _sent_counters(self, signal: Signal) -> tuple[PromCounter, PromCounter]:
        """The sent items/requests counters of ``signal``, looked up once (``labels()`` locks)."""
        found = self._sent_children.get(signal)
        if found is None:
            found = self._sent_children[signal] = (
                self._metrics.sent_items.labels(self.config.name, signal.value),
                self._metrics.sent_requests.labels(self.config.name, signal.value),
            )
        return found

    def _register_gauges(self) -> None:
        """Queue depth for ``faultlens_queue_items``, read when scraped (nothing per batch)."""
        ref = weakref.ref(self)

        def items() -> float:
            exporter = ref()
            queue = exporter._queue if exporter is not None else None
            return float(queue.stats().items) if queue is not None else 0.0

        sm = self._metrics.self_metrics
        sm.queue_items.labels(self.name).set_function(items)
        sm.queue_capacity.labels(self.name).set(self.config.queue.max_items)

    # --- health -----------------------------------------------------------------------------
    def health(self) -> DestinationHealth:
        queue = self._queue
        stats = queue.stats() if queue is not None else None
        oldest = None
        if stats is not None and stats.oldest_enqueued_ns is not None:
            oldest = max(0.0, (time.time_ns() - stats.oldest_enqueued_ns) / 1e9)
        with self._counts_lock:
            c = self._counts
            dropped = dict(c.dropped)
            return DestinationHealth(
                destination=self.config.name,
                endpoint=self.config.endpoint,
                protocol=self.config.protocol.value,
                running=self._accepting,
                breaker=self._breaker.state,
                durable=self.config.queue.kind is QueueKind.DISK,
                queue_batches=stats.batches if stats else 0,
                queue_items=stats.items if stats else 0,
                queue_bytes=stats.bytes if stats else 0,
                oldest_item_age_s=oldest,
                degraded=self._degraded,
                sent_items=c.sent_items,
                sent_requests=c.sent_requests,
                failed_items=c.failed_items,
                retried_requests=c.retried,
                dropped_items=sum(dropped.values()),
                dropped_by_reason=dropped,
                last_error=c.last_error,
                last_error_unix_s=c.last_error_unix_s,
            )
