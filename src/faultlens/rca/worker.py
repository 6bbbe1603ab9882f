"""Ranks root causes when incidents open or grow, off the analysis thread, and stores them.

::

    analysis worker ──notify(event, incident)──> RootCauseWorker        (never blocks)
      OPENED, UPDATED that grew ──> pending: one entry per incident, bounded (queue_max):
                                    a newer request for a queued incident replaces it
                                    (counted "coalesced"); full: "dropped", and an OPENED
                                    notice goes on at once, unranked
      RESOLVED ───────────────────> pending too, so it never overtakes the OPENED notice, and
                                    ranked once more over the incident's whole extent
      the rca thread takes openings first (their notice waits), then the rest in order
                                           │
      rca thread: before_read(read_wait_s) │ (the store writer lands what was accepted, so
                                           │  the window's telemetry is there to read)
                  ranker.rank_incident ──> store.write_root_causes ──> notifier.notify(
                      OPENED with the answer | UPDATED when the top 3 changed | RESOLVED)

The worker is an :class:`~faultlens.analysis.runtime.consumer.IncidentNotifier` wrapped
around another (the webhook): the analysis tells it about incidents as it would tell the
webhook, and the webhook hears about an incident once its root causes are known. An
incident *grew* when a service or series it did not hold before joined it; other updates
(more anomalies of the same series) are not ranked again.

Lifecycle: :meth:`start`; :meth:`shutdown` ranks what is pending until its deadline, sends
the rest of the notices unranked, shuts the wrapped notifier down, and is safe to call twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from faultlens.analysis.incidents.types import Incident, IncidentEvent, IncidentState
from faultlens.rca.incident import RankerSettings, RcaRun, RootCauseRanker
from faultlens.rca.model import RcaAnswer, RcaStatus
from faultlens.selfmetrics import SelfMetrics
from faultlens.store.analysis_base import AnalysisStore, RootCauseWriter
from faultlens.store.window import WindowReader

if TYPE_CHECKING:
    from faultlens.analysis.runtime.consumer import IncidentNotifier

__all__ = ["RCA_MAX_ROWS", "IncidentRanking", "RootCauseWorker", "root_cause_worker"]

RCA_MAX_ROWS = 50_000
"""Rows of one signal a ranking reads per side: ~1 s of ranking on this kind of machine
(docs/analysis.md); a busier window is read as slices of every minute."""

log = logging.getLogger(__name__)


class IncidentRanking(Protocol):
    """What the worker runs (a :class:`~faultlens.rca.incident.RootCauseRanker` is one)."""

    def rank_incident(self, incident: Incident) -> RcaRun: ...


@dataclass(slots=True)
class _Task:
    incident: Incident
    since: float  # when the oldest request of this entry came (monotonic)
    rank: bool = False
    announce: bool = False  # an OPENED notice waits for this ranking
    resolved: bool = False  # a RESOLVED notice goes out after it


def _shape(incident: Incident) -> tuple[frozenset[str], frozenset[object]]:
    return frozenset(incident.services), frozenset(a.key for a in incident.anomalies)


class RootCauseWorker:
    """Ranks and stores incidents' root causes on a thread of its own (see module docstring)."""

    def __init__(
        self,
        ranker: IncidentRanking,
        store: RootCauseWriter,
        metrics: SelfMetrics,
        *,
        notifier: IncidentNotifier | None = None,
        before_read: Callable[[float], object] | None = None,
        queue_max: int = 64,
        read_wait_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if queue_max < 1:
            raise ValueError("queue_max must be at least 1")
        self._ranker = ranker
        self._store = store
        self._metrics = metrics
        self._notifier = notifier
        self._before_read = before_read
        self._queue_max = queue_max
        self._read_wait_s = read_wait_s
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: OrderedDict[str, _Task] = OrderedDict()
        self._shapes: dict[str, tuple[frozenset[str], frozenset[object]]] = {}  # as last queued
        self._sent: dict[str, tuple[tuple[str, str, str, str], ...]] = {}  # top 3 last notified
        self._answers: dict[str, RcaAnswer] = {}  # of open incidents, for their RESOLVED notice
        self._busy = False
        self._stopping = False
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None

    # --- the IncidentNotifier edge ---------------------------------------------------------

    def notify(self, event: IncidentEvent, incident: Incident, answer: RcaAnswer | None = None) -> None:
        """Queue a ranking (OPENED, UPDATED that grew) or a notice (RESOLVED); never blocks."""
        forward: tuple[IncidentEvent, Incident] | None = None
        with self._cond:
            task = self._pending.get(incident.id)
            if event is IncidentEvent.UPDATED:
                known = self._shapes.get(incident.id)
                shape = _shape(incident)
                if known is not None and shape[0] <= known[0] and shape[1] <= known[1]:
                    return  # nothing new joined: the ranking stands
            if task is None:
                if self._stopping or len(self._pending) >= self._queue_max:
                    self._metrics.rca_rankings.labels(outcome="dropped").inc()
                    if event is not IncidentEvent.UPDATED:
                        forward = (event, incident)  # the notice still goes out, unranked
                else:
                    task = self._pending[incident.id] = _Task(incident, self._clock())
            elif event is not IncidentEvent.RESOLVED and task.rank:
                self._metrics.rca_rankings.labels(outcome="coalesced").inc()
            if task is not None:
                task.incident = incident
                if event is IncidentEvent.RESOLVED:
                    # Ranked once more over the whole incident: the ranking when it opened saw
                    # only its first minutes, and this one is what it is remembered by.
                    task.resolved = task.rank = True
                else:
                    task.rank = True
                    task.announce = task.announce or event is IncidentEvent.OPENED
                    self._shapes[incident.id] = _shape(incident)
                self._cond.notify_all()
        if forward is not None and self._notifier is not None:
            self._notifier.notify(*forward)

    def start(self) -> None:
        """Start the worker thread; a second call does nothing."""
        with self._cond:
            if self._thread is not None or self._stopping:
                return
            self._thread = threading.Thread(target=self._run, name="faultlens-rca", daemon=True)
            self._thread.start()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Rank what is pending until ``timeout_s`` passes, send what is left unranked, then
        shut the wrapped notifier down. Safe to call twice."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._deadline = self._clock() + timeout_s
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        with self._cond:
            left = list(self._pending.values())
            self._pending.clear()
            self._cond.notify_all()
        for task in left:
            if task.rank:
                self._metrics.rca_rankings.labels(outcome="dropped").inc()
            self._announce(task, None)
        if self._notifier is not None:
            self._notifier.shutdown(max(0.5, (self._deadline or 0.0) - self._clock()))

    def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until nothing is pending or being ranked; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout_s)

    # --- the worker ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if not self._pending or (self._deadline is not None and self._clock() >= self._deadline):
                    return
                # An opening waits for its ranking to be announced: it goes before re-rankings.
                first = next((k for k, t in self._pending.items() if t.announce), None)
                task = self._pending.pop(first) if first is not None else self._pending.popitem(last=False)[1]
                self._busy = True
            try:
                answer = self._rank(task) if task.rank else None
                self._announce(task, answer)
            except Exception:  # a bug here must not stop the worker; the incident stays pending
                log.exception("root causes of incident %s could not be handled", task.incident.id)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _rank(self, task: _Task) -> RcaAnswer:
        incident = task.incident
        waited = time.perf_counter()
        if self._before_read is not None:
            try:
                self._before_read(self._read_wait_s)
            except Exception:
                log.exception("waiting for the store before ranking failed; ranking what it holds")
        waited = time.perf_counter() - waited
        try:
            answer = self._ranker.rank_incident(incident).answer
            outcome = answer.status.value
        except Exception as e:
            log.exception("ranking the root causes of incident %s failed", incident.id)
            answer = RcaAnswer(RcaStatus.PENDING, f"the ranking failed: {e}", time.time_ns())
            outcome = "failed"
        try:
            self._store.write_root_causes(incident.id, answer)
        except Exception:
            log.exception("storing the root causes of incident %s failed", incident.id)
            outcome = "failed"
        self._metrics.rca_rankings.labels(outcome=outcome).inc()
        attach = max(0.0, self._clock() - task.since)
        self._metrics.rca_attach_seconds.observe(attach)
        top = answer.root_causes[0].service if answer.root_causes else "-"
        log.info(
            "incident %s root causes %s (top %s) attached %.2f s after the request "
            "(store wait %.2f s, ranking %.2f s)",
            incident.id, outcome, top, attach, waited, answer.duration_s,
        )  # fmt: skip
        return answer

    def _announce(self, task: _Task, answer: RcaAnswer | None) -> None:
        """The notices a handled task owes: OPENED (with the answer), UPDATED when the top 3
        changed, RESOLVED."""
        incident = task.incident
        notifier = self._notifier
        if answer is not None:
            self._answers[incident.id] = answer
        if notifier is not None:
            if task.announce:
                opened = incident
                if task.resolved:  # it resolved while queued: it was open when it opened
                    opened = _reopened(incident)
                notifier.notify(IncidentEvent.OPENED, opened, answer)
                if answer is not None:
                    self._sent[incident.id] = answer.top()
            elif answer is not None and answer.top() != self._sent.get(incident.id):
                self._sent[incident.id] = answer.top()
                notifier.notify(IncidentEvent.UPDATED, incident, answer)
            if task.resolved:
                notifier.notify(IncidentEvent.RESOLVED, incident, self._answers.get(incident.id))
        if task.resolved:
            with self._cond:
                self._shapes.pop(incident.id, None)
            self._sent.pop(incident.id, None)
            self._answers.pop(incident.id, None)


def _reopened(incident: Incident) -> Incident:
    return replace(incident, state=IncidentState.OPEN, resolved_ns=None)


def root_cause_worker(
    windows: WindowReader,
    analysis: AnalysisStore,
    metrics: SelfMetrics,
    *,
    notifier: IncidentNotifier | None,
    before_read: Callable[[float], object] | None,
    settings: RankerSettings | None = None,
) -> RootCauseWorker:
    """The server's worker, started: ranks with ``windows`` (whose ``max_rows`` bounds each
    read) and the incidents and error groups of ``analysis``, stores there, then tells
    ``notifier``; ``before_read`` is the store writer's flush."""
    worker = RootCauseWorker(
        RootCauseRanker(windows, analysis, settings),
        analysis,
        metrics,
        notifier=notifier,
        before_read=before_read,
    )
    worker.start()
    return worker
