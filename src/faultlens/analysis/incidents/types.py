"""Values of incident tracking: config, state, severity and the incident itself."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from faultlens.analysis.anomaly.types import FAULT_SCORE, NOVELTY_KINDS, Anomaly, SeriesKind


class IncidentState(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class IncidentEvent(enum.StrEnum):
    """What happened to an incident, as notifications name it."""

    OPENED = "incident.opened"
    UPDATED = "incident.updated"  # it took new members (consumers decide what is news)
    RESOLVED = "incident.resolved"


class Severity(enum.IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


@dataclass(frozen=True, slots=True)
class IncidentConfig:
    """How anomalies are grouped and when incidents open and resolve.

    ``join_gap_windows``: an anomaly joins an incident (or a forming group) whose latest
    anomaly is at most this many windows earlier, if their services are the same or
    within ``graph_hops`` of each other in the service graph.
    ``open_min_anomalies`` / ``open_min_windows`` / ``open_score``: a forming group opens an
    incident once it holds anomalies of that many distinct series spread over that many
    distinct windows (persistence), or as soon as one leading anomaly scores ``open_score`` or
    more (None: never). The default, ``FAULT_SCORE`` (100 robust spreads), is the level at
    which the agreement rules (:class:`~faultlens.analysis.anomaly.agreement.AgreementConfig`)
    call a gauge's rise a fault's: a series that far out of line is its own corroboration, and waiting for a
    second window only delays the incident by one. Groups that never qualify fade after
    ``join_gap_windows`` and are not reported.
    ``supporting_kinds``: anomalies of these kinds (by default resource metrics, which are
    noisy on their own, and novelty: new or missing log templates, new error fingerprints)
    join related live groups as evidence but never start a group nor count towards opening
    one, unless they agree (``IncidentTracker.update``'s ``agreed``: several series of one
    service, or novelty with a second signal); ``agreement_opens``: a group holding agreed
    anomalies opens at once.
    ``persistent_kinds``: a single series of these kinds (errors) anomalous in
    ``open_min_windows`` windows opens an incident without a second series: errors that
    persist are what callers feel, and their baselines (mostly zero) flap far less than
    latency percentiles do.
    ``grow_windows``: an open incident takes anomalies of series it does not hold yet only up
    to this many windows after the window it opened in (the fault spreading), and errors
    (``persistent_kinds``) of a service it does not hold only in that window itself; later,
    such anomalies form a group of their own, which opens a new incident if it qualifies (a
    second fault while the first incident is still open). Series it holds keep joining it, so
    a lasting fault stays one incident. None: it takes everything related while it is open.
    ``new_onset_after_quiet``: an open incident does not take an error series it holds
    (``persistent_kinds``) after a whole window in which it took no leading anomaly:
    errors that stopped and came back are a new onset (a second fault is often felt at the
    same entry point, whose error series the first incident already holds), so they form a
    group of their own. Other series it holds still rejoin after a quiet window.
    ``resolve_after_windows``: an open incident resolves after this many windows without a
    new member.
    ``merge_related``: after each window, a group that has not opened (or opened in that
    window) merges into an older related group (services within ``graph_hops``, latest member
    within ``join_gap_windows``) that is itself forming or opening in that window and takes
    each of its anomalies. Anomalies join the first related group in the order they come, so
    without this two groups of one window can stay apart although their services neighbour
    each other. Incidents opened in earlier windows never merge (their ids are out, and a
    second fault must still get its own incident).
    """

    window_ns: int = 60_000_000_000
    join_gap_windows: int = 2
    graph_hops: int = 1
    open_min_anomalies: int = 2
    open_min_windows: int = 2
    open_score: float | None = FAULT_SCORE
    resolve_after_windows: int = 3
    grow_windows: int | None = 1
    new_onset_after_quiet: bool = True
    max_members: int = 500
    merge_related: bool = True
    supporting_kinds: frozenset[SeriesKind] = frozenset({SeriesKind.RESOURCE, *NOVELTY_KINDS})
    agreement_opens: bool = True
    persistent_kinds: frozenset[SeriesKind] = frozenset(
        {
            SeriesKind.ERROR_LOGS,
            SeriesKind.ERROR_RATE,
            SeriesKind.EDGE_ERROR_RATE,
            SeriesKind.GAUGE_ERROR_RATE,
        }
    )

    def __post_init__(self) -> None:
        if self.window_ns <= 0 or self.join_gap_windows < 0 or self.resolve_after_windows < 1:
            raise ValueError("incidents: window_ns > 0, join_gap_windows >= 0, resolve_after_windows >= 1")
        if self.open_min_anomalies < 1 or self.open_min_windows < 1 or self.graph_hops < 0:
            raise ValueError("incidents: open_min_anomalies >= 1 and graph_hops >= 0")


@dataclass(frozen=True, slots=True)
class Incident:
    """Related anomalies close in time and in the service graph.

    ``id`` is stable: derived from the first member, so replaying the same data gives the
    same ids. ``start_ns`` is the start of the first member window, ``end_ns`` the end of
    the last; ``resolved_ns`` is set once resolved.
    """

    id: str
    state: IncidentState
    severity: Severity
    start_ns: int
    end_ns: int
    opened_ns: int  # data time at which it opened (start of the window that made it qualify)
    resolved_ns: int | None
    services: tuple[str, ...]
    anomalies: tuple[Anomaly, ...]
    title: str

    @property
    def score(self) -> float:
        return max((a.score for a in self.anomalies), default=0.0)
