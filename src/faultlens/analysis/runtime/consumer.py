"""The analysis as a pipeline consumer: a bounded queue, one worker thread, the store.

::

    Fanout ──consume(batch)──> queue (bounded in items) ──> worker thread
       (best effort)       full: Overloaded, the        │ waits up to linger_s for more, unless a call is full
                           fan-out counts the drop     │ engine.process(queued batches of one signal, merged)
                           for "analysis" only         │ results kept, merged, for up to write_interval
                                                       │ store.write_results(merged steps): one transaction
                                                       │ notifier.notify(opened/updated/resolved)
                                                       └ every state_interval: save core state

Results are written at most every ``write_interval_s`` (and at once when an incident opens
or resolves, when :meth:`drain` waits, before the state is saved and at shutdown): one
store transaction costs tens of milliseconds whatever its size, so writing after every
request would cost more than analysing it. Merging steps keeps what the store ends up
holding the same (:func:`merge_results`).

The queue is bounded in items (spans + log records + points), so a slow analysis costs a
bounded amount of memory and never slows ingest: when it is full, :meth:`consume` raises
:class:`~faultlens.errors.Overloaded`, which the :class:`~faultlens.pipeline.fanout.Fanout`
turns into ``faultlens_dropped_items_total{consumer="analysis", reason="queue_full"}``.

:meth:`start` restores the cores' state saved in the store (error groups, templates,
baselines, incidents survive a restart); :meth:`shutdown` analyses what is queued within
its bound, saves the state and is safe to call twice. Time inside the analysis is data
time; the only wall-clock reads here are for the lag gauge and the state-save interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Protocol

import pyarrow as pa

from faultlens.analysis.anomaly import Observation
from faultlens.analysis.errors import ErrorGroup
from faultlens.analysis.incidents import Incident, IncidentEvent, IncidentState
from faultlens.analysis.runtime.engine import AnalysisEngine, Step
from faultlens.decode.base import DecodedBatch
from faultlens.errors import Overloaded
from faultlens.rca.model import RcaAnswer
from faultlens.selfmetrics import SelfMetrics
from faultlens.store.analysis_base import AnalysisResults, AnalysisWriter

__all__ = ["CONSUMER", "AnalysisConsumer", "IncidentNotifier", "merge_results"]

log = logging.getLogger(__name__)

CONSUMER = "analysis"
STATE_PARTS = ("engine", "errors", "templates", "anomalies", "incidents")


class IncidentNotifier(Protocol):
    """Told about incidents that opened, took new members (UPDATED) or resolved, in that
    order per incident; ``answer`` is the incident's ranked root causes when the caller has
    them. Must not block (queue and return); the incident values are not changed after."""

    def notify(self, event: IncidentEvent, incident: Incident, answer: RcaAnswer | None = None) -> None: ...

    def shutdown(self, timeout_s: float = 5.0) -> None: ...


class AnalysisConsumer:
    """:class:`~faultlens.pipeline.base.BatchConsumer` running the streaming analysis."""

    name = CONSUMER

    def __init__(
        self,
        engine: AnalysisEngine,
        store: AnalysisWriter,
        metrics: SelfMetrics,
        *,
        queue_max_items: int = 500_000,
        state_interval_s: float = 30.0,
        write_interval_s: float = 5.0,
        coalesce_items: int = 20_000,
        linger_s: float = 0.0,
        notifier: IncidentNotifier | None = None,
        clock: Callable[[], float] = time.monotonic,
        history: Callable[[], Iterable[Observation]] | None = None,
    ) -> None:
        if queue_max_items <= 0:
            raise ValueError("queue_max_items must be positive")
        self.engine = engine
        self._store = store
        self._metrics = metrics
        self._queue_max = queue_max_items
        self._state_interval_s = state_interval_s
        self._write_interval_s = write_interval_s
        self._coalesce = coalesce_items
        self._linger_s = linger_s
        self._notifier = notifier
        self._clock = clock
        self._history = history  # past observations that seed the baselines when no state was saved
        self._cond = threading.Condition()
        self._queue: deque[tuple[DecodedBatch, float]] = deque()
        self._queued_items = 0
        self._engine_lock = threading.Lock()  # the engine is used by one thread at a time
        self._accepted = 0  # batches, so drain() knows what it waits for
        self._done = 0  # batches analysed (or dropped) whose results are written
        self._analysed = 0  # batches analysed (or dropped), results written or not
        self._flush_wanted = 0  # drain() calls waiting for the results to be written
        self._unwritten: list[Step] = []  # under _engine_lock
        self._unwritten_since: float | None = None
        self._stopping = False
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None
        self._last_save = clock()
        self._started = False
        metrics.queue_capacity.labels(consumer=CONSUMER).set(queue_max_items)
        metrics.queue_items.labels(consumer=CONSUMER).set(0)

    # --- the BatchConsumer edge ------------------------------------------------------------

    def consume(self, batch: DecodedBatch) -> None:
        """Queue the batch; :class:`Overloaded` when the queue cannot take it (never blocks)."""
        items = batch.accepted
        if items == 0:
            return
        with self._cond:
            if self._stopping:
                raise Overloaded("the analysis is shutting down")
            if self._queued_items and self._queued_items + items > self._queue_max:
                raise Overloaded(f"analysis queue full ({self._queued_items} of {self._queue_max} items)")
            # Only the table is analysed: without ``raw`` (the request as it came, ~0.5 KB a
            # span) a queued batch holds a third less memory.
            first = not self._queue
            self._queue.append((DecodedBatch(batch.signal, batch.table), self._clock()))
            self._queued_items += items
            self._accepted += 1
            self._metrics.queue_items.labels(consumer=CONSUMER).set(self._queued_items)
            # The worker only needs waking when the queue starts its linger or fills one call.
            if first or self._queued_items >= self._coalesce:
                self._cond.notify_all()

    def start(self) -> None:
        """Restore saved state, then start the worker; a second call does nothing."""
        with self._cond:
            if self._started or self._stopping:
                return
            self._started = True
        self._restore()
        thread = threading.Thread(target=self._run, name="faultlens-analysis", daemon=True)
        with self._cond:
            self._thread = thread
        thread.start()

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Analyse what is queued within ``timeout_s`` (the rest is counted dropped), save state.

        Safe to call twice; afterwards :meth:`consume` refuses.
        """
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._deadline = self._clock() + timeout_s
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        self._drop_leftovers()
        if thread is not None and not thread.is_alive():  # never overwrite state it did not restore
            with self._engine_lock:
                self._save_state()
        if self._notifier is not None:
            self._notifier.shutdown(min(5.0, max(0.5, (self._deadline or 0) - self._clock())))

    # --- waiting for the analysis ----------------------------------------------------------

    def drain(self, timeout_s: float | None = None, *, close_windows: bool = False) -> bool:
        """Wait until every batch accepted so far is analysed and stored; False on timeout.

        With ``close_windows`` every open window is then closed and judged too (the end of a
        replay: no more data will come for them).
        """
        with self._cond:
            target = self._accepted
            self._flush_wanted += 1
            self._cond.notify_all()
            try:
                if not self._cond.wait_for(lambda: self._done >= target, timeout_s):
                    return False
            finally:
                self._flush_wanted -= 1
        if close_windows:
            with self._engine_lock:
                self._write_unwritten()
                self._persist(self.engine.close_all())
        return True

    @property
    def queued_items(self) -> int:
        with self._cond:
            return self._queued_items

    # --- the worker ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while (
                        not self._queue_ready()
                        and not self._stopping
                        and not self._save_due()
                        and not self._write_due()
                    ):
                        self._cond.wait(self._until_due())
                    if self._stopping and (not self._queue or self._past_deadline()):
                        return
                    taken = self._take_locked()
                if not taken:
                    with self._engine_lock:
                        self._write_unwritten()
                        if self._save_due():
                            self._save_state()
                    continue
                batch = _coalesce([b for b, _ in taken])
                try:
                    with self._engine_lock:
                        self._analyse(batch, taken[0][1])
                finally:
                    with self._cond:
                        self._queued_items -= batch.accepted
                        self._analysed += len(taken)
                        self._metrics.queue_items.labels(consumer=CONSUMER).set(self._queued_items)
                        write = self._write_due()
                    if write:
                        with self._engine_lock:
                            self._write_unwritten()
        finally:
            with self._engine_lock:
                self._write_unwritten()

    def _queue_ready(self) -> bool:
        """Whether the queue should be analysed now (caller holds ``_cond``): it holds a
        full call's worth of items, its oldest batch has lingered long enough, or someone
        waits for it. Lingering lets requests that arrive close together share one call,
        whose fixed cost is most of a small request's (see :meth:`_take_locked`)."""
        if not self._queue:
            return False
        return (
            self._queued_items >= self._coalesce
            or self._flush_wanted > 0
            or self._clock() - self._queue[0][1] >= self._linger_s
        )

    def _take_locked(self) -> list[tuple[DecodedBatch, float]]:
        """The next batch and the queued batches of the same signal right behind it, up to
        ``coalesce_items`` items: the cores cost a fixed amount per call, so one call over
        many small requests is much cheaper than one call each. Order is kept."""
        taken: list[tuple[DecodedBatch, float]] = []
        items = 0
        while self._queue:
            batch = self._queue[0][0]
            if taken and (batch.signal is not taken[0][0].signal or items + batch.accepted > self._coalesce):
                break
            taken.append(self._queue.popleft())
            items += batch.accepted
        return taken

    def _write_due(self) -> bool:
        """Whether the kept results should be written now (caller holds ``_cond``)."""
        if self._done >= self._analysed:
            return False
        if self._flush_wanted and not self._queue:
            return True
        since = self._unwritten_since
        return since is None or self._stopping or self._clock() - since >= self._write_interval_s

    def _until_due(self) -> float:
        wait = self._until_save()
        if self._queue:
            wait = min(wait, max(0.001, self._queue[0][1] + self._linger_s - self._clock()))
        if self._unwritten_since is not None:
            wait = min(wait, max(0.01, self._unwritten_since + self._write_interval_s - self._clock()))
        return wait

    def _past_deadline(self) -> bool:
        return self._deadline is not None and self._clock() >= self._deadline

    def _analyse(self, batch: DecodedBatch, queued_at: float) -> None:
        m = self._metrics
        m.analysis_lag_seconds.set(max(0.0, self._clock() - queued_at))
        started = time.perf_counter()
        try:
            step = self.engine.process(batch)
        except Exception:
            log.exception("analysis failed on a %s batch of %d items", batch.signal, batch.accepted)
            m.dropped_items.labels(batch.signal.value, CONSUMER, "analysis_error").inc(batch.accepted)
            return
        m.analysis_batch_seconds.observe(time.perf_counter() - started)
        m.analysis_processed_items.labels(signal=batch.signal.value).inc(batch.accepted)
        if self.engine.watermark_ns > 0:
            m.analysis_watermark_seconds.set(self.engine.watermark_ns / 1e9)
        if not (step.results or step.opened or step.resolved):
            return
        self._unwritten.append(step)
        if self._unwritten_since is None:
            self._unwritten_since = self._clock()
        if step.opened or step.resolved:  # incident news goes out without waiting
            self._write_unwritten()

    def _write_unwritten(self) -> None:
        """Write the kept steps as one (caller holds ``_engine_lock``); marks them done."""
        with self._cond:
            analysed = self._analysed
        steps, self._unwritten = self._unwritten, []
        self._unwritten_since = None
        if steps:
            self._persist(
                Step(
                    merge_results([s.results for s in steps]),
                    tuple(i for s in steps for i in s.opened),
                    tuple(i for s in steps for i in s.resolved),
                )
            )
        with self._cond:
            self._done = max(self._done, analysed)
            self._cond.notify_all()

    def _persist(self, step: Step) -> None:
        m = self._metrics
        try:
            self._store.write_results(step.results)
        except Exception:
            log.exception("storing analysis results failed; they are lost, the analysis goes on")
            m.analysis_store_failures.inc()
        # Merged steps hold several snapshots of an incident; the latest comes last.
        latest = {i.id: i for i in step.results.incidents}
        opened = {i.id for i in step.opened}
        for inc in step.opened:
            m.analysis_incidents.labels(event="opened").inc()
            log.info("incident %s opened: %s", inc.id, inc.title)
            if self._notifier is not None:
                now = latest.get(inc.id, inc)
                self._notifier.notify(IncidentEvent.OPENED, now if now.state is IncidentState.OPEN else inc)
        if self._notifier is not None:
            for inc in latest.values():
                if inc.id not in opened and inc.state is IncidentState.OPEN:
                    self._notifier.notify(IncidentEvent.UPDATED, inc)
        for inc in step.resolved:
            m.analysis_incidents.labels(event="resolved").inc()
            log.info("incident %s resolved", inc.id)
            if self._notifier is not None:
                self._notifier.notify(IncidentEvent.RESOLVED, inc)
        if step.results.anomalies:
            m.analysis_anomalies.inc(len(step.results.anomalies))

    # --- state -----------------------------------------------------------------------------

    def _until_save(self) -> float:
        return max(0.05, self._last_save + self._state_interval_s - self._clock())

    def _save_due(self) -> bool:
        return self._clock() - self._last_save >= self._state_interval_s

    def _save_state(self) -> None:
        self._write_unwritten()  # the saved state never runs ahead of the stored results
        self._last_save = self._clock()
        try:
            for name, part in self.engine.export_state().items():
                self._store.save_state(name, part)
        except Exception:
            log.exception("saving the analysis state failed; a restart would resume from an older one")
            self._metrics.analysis_store_failures.inc()

    def _restore(self) -> None:
        try:
            parts = {name: self._store.load_state(name) for name in STATE_PARTS}
            restored = self.engine.restore(parts)
        except Exception:
            log.exception("the saved analysis state cannot be used; starting afresh")
            return
        if restored:
            log.info("analysis state restored: %s", ", ".join(restored))
        if "anomalies" not in restored and self._history is not None:
            try:
                n = self.engine.seed(self._history())
            except Exception:
                log.exception("seeding the baselines from the store failed; they warm up live")
                return
            log.info("anomaly baselines seeded from the store: %d observations", n)

    def _drop_leftovers(self) -> None:
        with self._cond:
            left, self._queue = self._queue, deque()
            self._queued_items = 0
            self._done += len(left)
            self._metrics.queue_items.labels(consumer=CONSUMER).set(0)
            self._cond.notify_all()
            self._analysed += len(left)
        for batch, _ in left:
            self._metrics.dropped_items.labels(batch.signal.value, CONSUMER, "shutdown_timeout").inc(
                batch.accepted
            )
        if left:
            log.warning("analysis: %d batches not analysed before the shutdown deadline", len(left))


def _coalesce(batches: list[DecodedBatch]) -> DecodedBatch:
    """One batch of the same signal holding every row of ``batches``, in order."""
    if len(batches) == 1:
        return batches[0]
    try:
        table = pa.concat_tables([b.table for b in batches])
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        table = pa.concat_tables([b.table for b in batches], promote_options="default")
    return DecodedBatch(batches[0].signal, table)


def merge_results(parts: list[AnalysisResults]) -> AnalysisResults:
    """One :class:`AnalysisResults` that leaves the store as ``parts`` written in order would.

    Windows, template counts and changes, anomalies and templates seen are appended (the
    store adds the lines of repeated templates, and keeps the first row of an anomaly id).
    Incidents are appended in order too: the store keeps the last snapshot of an id, whose
    members hold the earlier ones'. An error group is its last snapshot with the time
    buckets of every snapshot (a later count of a bucket replaces an earlier one), because
    each snapshot only carries the buckets its own batch touched.
    """
    if len(parts) == 1:
        return parts[0]
    groups: dict[str, ErrorGroup] = {}
    buckets: dict[str, dict[int, int]] = {}
    for part in parts:
        for g in part.error_groups:
            groups[g.group_id] = g
            buckets.setdefault(g.group_id, {}).update(g.buckets)
    return AnalysisResults(
        error_groups=tuple(
            g
            if len(buckets[gid]) == len(g.buckets)
            else replace(g, buckets=tuple(sorted(buckets[gid].items())))
            for gid, g in groups.items()
        ),
        templates=tuple(t for p in parts for t in p.templates),
        template_windows=tuple(w for p in parts for w in p.template_windows),
        template_changes=tuple(c for p in parts for c in p.template_changes),
        red_windows=tuple(w for p in parts for w in p.red_windows),
        edge_windows=tuple(e for p in parts for e in p.edge_windows),
        anomalies=tuple(a for p in parts for a in p.anomalies),
        incidents=tuple(i for p in parts for i in p.incidents),
    )
