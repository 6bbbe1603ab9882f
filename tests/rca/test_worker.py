"""RootCauseWorker: ranks off the caller's thread, stores the answer, tells the notifier in order.

A real ranker over a real DuckDB store (the synthetic system of :mod:`.synth`: c slows
down in minutes 20..23); the notifier is a recorder of what it is told. A ``before_read``
that waits on an event holds the worker inside a ranking, so that queueing, coalescing and
dropping can be watched deterministically.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from faultlens.analysis.incidents.types import Incident, IncidentEvent, IncidentState
from faultlens.rca.incident import RootCauseRanker
from faultlens.rca.model import RcaAnswer, RcaStatus
from faultlens.rca.worker import RootCauseWorker
from faultlens.selfmetrics import SelfMetrics
from faultlens.store.analysis_base import AnalysisResults
from faultlens.store.analysis_duckdb import DuckDBAnalysisStore
from faultlens.store.duckdb_store import DuckDBStore
from faultlens.store.window import WindowReader

from .synth import MIN, Knobs, baseline, observations
from .test_incident import T, _incident, _shift, _write

INC = _incident("inc-c", T + 20 * MIN, T + 23 * MIN, IncidentState.OPEN)


@dataclass
class Recorder:
    """An IncidentNotifier that keeps what it is told."""

    told: list[tuple[IncidentEvent, str, RcaAnswer | None]] = field(default_factory=list)
    shut: int = 0

    def notify(self, event: IncidentEvent, incident: Incident, answer: RcaAnswer | None = None) -> None:
        self.told.append((event, incident.id, answer))

    def shutdown(self, timeout_s: float = 5.0) -> None:
        self.shut += 1


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DuckDBStore, DuckDBAnalysisStore]]:
    path: Path = tmp_path_factory.mktemp("worker") / "faultlens.duckdb"
    store = DuckDBStore(path)
    _write(store, _shift(baseline(), T))
    _write(store, _shift(observations(300, 10 * MIN, Knobs(), first_trace=50_000, minutes=10), T))
    _write(store, _shift(observations(120, 20 * MIN, Knobs(c_extra_ns=60_000_000), first_trace=200_000), T))
    analysis = DuckDBAnalysisStore(path)
    analysis.write_results(
        AnalysisResults(incidents=(INC, replace(INC, id="inc-2"), replace(INC, id="inc-3")))
    )
    yield store, analysis
    analysis.close()
    store.close()


class Gate:
    """A before_read that holds the worker until opened; counts the rankings it saw."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.entered = threading.Semaphore(0)
        self.calls = 0

    def __call__(self, timeout_s: float) -> bool:
        self.calls += 1
        self.entered.release()
        return self.open.wait(10)


def _worker(
    stores: tuple[DuckDBStore, DuckDBAnalysisStore], gate: Gate | None = None, **kw: object
) -> tuple[RootCauseWorker, Recorder, SelfMetrics]:
    store, analysis = stores
    metrics, recorder = SelfMetrics(), Recorder()
    worker = RootCauseWorker(
        RootCauseRanker(WindowReader.for_store(store), analysis),
        analysis,
        metrics,
        notifier=recorder,
        before_read=gate,
        **kw,  # type: ignore[arg-type]
    )
    worker.start()
    return worker, recorder, metrics


def _count(metrics: SelfMetrics, outcome: str) -> float:
    return metrics.rca_rankings.labels(outcome=outcome)._value.get()


def test_an_opened_incident_is_ranked_stored_then_announced_with_its_root_causes(
    stores: tuple[DuckDBStore, DuckDBAnalysisStore],
) -> None:
    worker, recorder, metrics = _worker(stores)
    worker.notify(IncidentEvent.OPENED, INC)
    assert worker.drain(30)
    stored = stores[1].root_causes(["inc-c"])["inc-c"]
    assert stored.status is RcaStatus.RANKED and stored.root_causes[0].service == "c"
    ((event, inc_id, answer),) = recorder.told
    assert (event, inc_id) == (IncidentEvent.OPENED, "inc-c") and answer == stored
    assert _count(metrics, "ranked") == 1
    attach = metrics.rca_attach_seconds.collect()[0].samples
    assert any(s.name.endswith("_count") and s.value == 1 for s in attach)
    worker.shutdown()
    worker.shutdown()  # safe twice
    assert recorder.shut == 1


def test_an_update_is_ranked_again_only_when_the_incident_grew_and_told_only_when_the_top_changed(
    stores: tuple[DuckDBStore, DuckDBAnalysisStore],
) -> None:
    worker, recorder, metrics = _worker(stores)
    worker.notify(IncidentEvent.OPENED, INC)
    worker.notify(IncidentEvent.UPDATED, INC)  # queued behind the opening: coalesced into it
    assert worker.drain(30)
    worker.notify(IncidentEvent.UPDATED, INC)  # nothing new joined
    assert worker.drain(30)
    assert _count(metrics, "ranked") == 1
    worker.notify(IncidentEvent.UPDATED, replace(INC, services=("b", "c")))  # it grew
    assert worker.drain(30)
    assert _count(metrics, "ranked") == 2
    # the same root causes: no incident.updated to tell
    assert [e for e, *_ in recorder.told] == [IncidentEvent.OPENED]
    worker.notify(IncidentEvent.RESOLVED, replace(INC, state=IncidentState.RESOLVED))
    assert worker.drain(30)
    assert [e for e, *_ in recorder.told] == [IncidentEvent.OPENED, IncidentEvent.RESOLVED]
    assert recorder.told[-1][2] is not None  # the resolution carries the last answer
    assert _count(metrics, "ranked") == 3  # ranked once more over its whole extent
    worker.shutdown()


def test_a_resolved_incident_is_ranked_over_its_whole_extent_and_the_change_is_told(
    stores: tuple[DuckDBStore, DuckDBAnalysisStore],
) -> None:
    worker, recorder, _ = _worker(stores)
    early = replace(INC, id="inc-3", start_ns=T + 12 * MIN, end_ns=T + 13 * MIN)  # before c slowed
    worker.notify(IncidentEvent.OPENED, early)
    assert worker.drain(30)
    assert stores[1].root_causes(["inc-3"])["inc-3"].status is RcaStatus.NOTHING_CHANGED
    whole = replace(early, end_ns=INC.end_ns, state=IncidentState.RESOLVED, resolved_ns=INC.end_ns)
    worker.notify(IncidentEvent.RESOLVED, whole)
    assert worker.drain(30)
    stored = stores[1].root_causes(["inc-3"])["inc-3"]
    assert stored.status is RcaStatus.RANKED and stored.root_causes[0].service == "c"
    told = [(e, a.status if a else None) for e, i, a in recorder.told if i == "inc-3"]
    assert told == [
        (IncidentEvent.OPENED, RcaStatus.NOTHING_CHANGED),
        (IncidentEvent.UPDATED, RcaStatus.RANKED),
        (IncidentEvent.RESOLVED, RcaStatus.RANKED),
    ]
    worker.shutdown()


def test_requests_for_a_queued_incident_coalesce_and_a_full_queue_drops_counted(
    stores: tuple[DuckDBStore, DuckDBAnalysisStore],
) -> None:
    gate = Gate()
    worker, recorder, metrics = _worker(stores, gate, queue_max=1)
    worker.notify(IncidentEvent.OPENED, INC)
    assert gate.entered.acquire(timeout=10)  # the worker holds inc-c
    worker.notify(IncidentEvent.OPENED, replace(INC, id="inc-2"))  # queued (one place)
    worker.notify(IncidentEvent.UPDATED, replace(INC, id="inc-2", services=("b", "c")))  # coalesced
    worker.notify(IncidentEvent.OPENED, replace(INC, id="inc-3"))  # no room: dropped...
    assert (IncidentEvent.OPENED, "inc-3", None) in recorder.told  # ...but still announced, unranked
    assert _count(metrics, "coalesced") == 1 and _count(metrics, "dropped") == 1
    gate.open.set()
    assert worker.drain(30)
    assert gate.calls == 2  # inc-c and inc-2 once each
    assert set(stores[1].root_causes(["inc-c", "inc-2", "inc-3"])) >= {"inc-c", "inc-2"}
    opened = [i for e, i, a in recorder.told if e is IncidentEvent.OPENED and a is not None]
    assert opened == ["inc-c", "inc-2"]
    worker.shutdown()


def test_a_resolution_never_overtakes_the_opening_it_follows(
    stores: tuple[DuckDBStore, DuckDBAnalysisStore],
) -> None:
    gate = Gate()
    worker, recorder, _ = _worker(stores, gate)
    worker.notify(IncidentEvent.OPENED, replace(INC, id="inc-2"))
    assert gate.entered.acquire(timeout=10)
    worker.notify(IncidentEvent.OPENED, INC)
    worker.notify(IncidentEvent.RESOLVED, replace(INC, state=IncidentState.RESOLVED, resolved_ns=INC.end_ns))
    gate.open.set()
    assert worker.drain(30)
    mine = [(e, a is not None) for e, i, a in recorder.told if i == "inc-c"]
    assert mine == [(IncidentEvent.OPENED, True), (IncidentEvent.RESOLVED, True)]
    worker.shutdown()


def test_shutdown_announces_what_it_could_not_rank(stores: tuple[DuckDBStore, DuckDBAnalysisStore]) -> None:
    gate = Gate()
    worker, recorder, metrics = _worker(stores, gate)
    worker.notify(IncidentEvent.OPENED, INC)
    assert gate.entered.acquire(timeout=10)
    worker.notify(IncidentEvent.OPENED, replace(INC, id="inc-2"))
    threading.Timer(0.5, gate.open.set).start()
    worker.shutdown(timeout_s=0.2)  # past the deadline: inc-2 is not ranked
    assert (IncidentEvent.OPENED, "inc-2", None) in recorder.told
    assert _count(metrics, "dropped") == 1
    worker.notify(IncidentEvent.OPENED, replace(INC, id="inc-3"))  # after shutdown: told at once
    assert (IncidentEvent.OPENED, "inc-3", None) in recorder.told
    assert worker.drain(10)  # the ranking under way when the deadline passed still ends


def test_a_failing_store_leaves_a_pending_answer_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "faultlens.duckdb"
    store = DuckDBStore(path)
    analysis = DuckDBAnalysisStore(path)
    analysis.write_results(AnalysisResults(incidents=(INC,)))
    reader = WindowReader.for_store(store)
    store.close()  # reads now fail
    metrics, recorder = SelfMetrics(), Recorder()
    worker = RootCauseWorker(RootCauseRanker(reader, analysis), analysis, metrics, notifier=recorder)
    worker.start()
    worker.notify(IncidentEvent.OPENED, INC)
    assert worker.drain(30)
    stored = analysis.root_causes(["inc-c"])["inc-c"]
    assert stored.status is RcaStatus.PENDING and stored.reason.startswith("the ranking failed")
    assert recorder.told[0][2] == stored
    assert _count(metrics, "failed") == 1
    worker.shutdown()
    analysis.close()


def test_an_opening_is_ranked_before_queued_re_rankings(
    stores: tuple[DuckDBStore, DuckDBAnalysisStore],
) -> None:
    gate = Gate()
    worker, recorder, _ = _worker(stores, gate)
    worker.notify(IncidentEvent.OPENED, replace(INC, id="inc-3"))
    assert gate.entered.acquire(timeout=10)  # the worker holds inc-3
    worker.notify(
        IncidentEvent.RESOLVED, replace(INC, id="inc-2", state=IncidentState.RESOLVED)
    )  # a re-ranking
    worker.notify(IncidentEvent.OPENED, INC)  # queued after it, ranked before it
    gate.open.set()
    assert worker.drain(30)
    order = [(e, i) for e, i, _ in recorder.told]
    assert order.index((IncidentEvent.OPENED, "inc-c")) < order.index((IncidentEvent.RESOLVED, "inc-2"))
    worker.shutdown()
