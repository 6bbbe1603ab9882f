"""The analysis results interface: what the streaming analysis writes and the API reads.

Kept apart from :mod:`faultlens.store.base` (telemetry) because the two have different
writers: the telemetry writer thread writes spans, logs and points; the analysis worker
writes error groups, log templates, RED and edge windows, anomalies, incidents and the
serialized state of the analysis cores. Both live in the same DuckDB file.

As in :mod:`faultlens.store.base`, queries are named frozen dataclasses, results are typed
values, and times are int64 Unix nanoseconds. The writer takes whole batches (one call per
processed telemetry batch, never one per item) and each call is one transaction.

Windows may be written more than once for the same key (after a restart a window that was
open at shutdown closes again with the data that came after): readers merge such rows
(counts add, sketches merge), so nothing is double counted or lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from faultlens.analysis.anomaly.types import Anomaly
from faultlens.analysis.errors.grouping import ErrorGroup
from faultlens.analysis.incidents.types import Incident
from faultlens.analysis.red.types import EdgeWindow, RedWindow
from faultlens.analysis.sketch import QuantileSketch
from faultlens.analysis.templates.counter import TemplateChange, WindowCounts
from faultlens.rca.model import RcaAnswer
from faultlens.types import TimeRange

# --- what the analysis writes ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TemplateSeen:
    """A template as it stands after a batch: its text, and lines counted in that batch."""

    service: str
    template_id: int
    template: str
    first_seen_ns: int
    last_seen_ns: int
    lines: int


@dataclass(frozen=True, slots=True)
class AnalysisResults:
    """Everything one step of the analysis produced, persisted in one transaction.

    ``error_groups`` are full snapshots of the groups the step touched (they replace the
    stored rows); ``templates`` add their ``lines`` to the stored counts; windows,
    anomalies and template counts are appended; incidents replace the stored row.
    """

    error_groups: tuple[ErrorGroup, ...] = ()
    templates: tuple[TemplateSeen, ...] = ()
    template_windows: tuple[WindowCounts, ...] = ()
    template_changes: tuple[TemplateChange, ...] = ()
    red_windows: tuple[RedWindow, ...] = ()
    edge_windows: tuple[EdgeWindow, ...] = ()
    anomalies: tuple[Anomaly, ...] = ()
    incidents: tuple[Incident, ...] = ()

    def __bool__(self) -> bool:
        return any(
            (
                self.error_groups,
                self.templates,
                self.template_windows,
                self.template_changes,
                self.red_windows,
                self.edge_windows,
                self.anomalies,
                self.incidents,
            )
        )


# --- queries --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorGroupQuery:
    """Groups of ``service`` (as owner or among affected services) and ``category`` seen
    inside ``time_range`` (first seen before its end, last seen at or after its start);
    most recently seen first."""

    service: str | None = None
    category: str | None = None
    time_range: TimeRange | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class TemplateQuery:
    service: str | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class RedQuery:
    """RED windows of one service whose start is inside ``time_range``."""

    service: str
    time_range: TimeRange | None = None


@dataclass(frozen=True, slots=True)
class AnomalyQuery:
    """Anomalies whose window starts inside ``time_range`` and that speak about
    ``service`` (either end of an edge); newest first."""

    service: str | None = None
    time_range: TimeRange | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class IncidentQuery:
    """Incidents in ``state``, latest opened first. With ``time_range``: only those whose
    span (start .. end, or resolution) overlaps it."""

    state: str | None = None  # "open" | "resolved" | None for both
    limit: int = 100
    time_range: TimeRange | None = None


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredErrorGroup:
    """An error group as stored. ``count_in_range`` is the count inside the query's time
    range (equal to ``count`` when the query had none). ``merged``: the groups a person
    merged into this one (:class:`ErrorGroupEditor`), whose counts, buckets, samples,
    services and operations ``group`` includes."""

    group: ErrorGroup
    count_in_range: int
    merged: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ErrorGroupLinks:
    """How one group stands with the others.

    ``group_id`` is the group it is shown as (itself, or the group it was merged into);
    ``merged`` the groups merged into that one; ``linked`` the groups of the same service,
    not merged with it, that were seen in the same traces (a failure logged as a line and
    recorded on its span makes two fingerprints; the stored sample trace ids tie them)."""

    group_id: str
    merged: tuple[str, ...]
    linked: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StoredTemplate:
    service: str
    template_id: int
    template: str
    first_seen_ns: int
    last_seen_ns: int
    count: int
    last_change: str | None  # "new" | "missing" | None
    last_change_window_ns: int | None


@dataclass(frozen=True, slots=True)
class RedRow:
    """One stored RED window (rows of the same key are merged by the reader)."""

    operation: str
    span_kind: int
    window_start_ns: int
    window_ns: int
    requests: int
    errors: int
    duration_sum_ns: float
    latency: QuantileSketch


# --- interfaces -----------------------------------------------------------------------------


class AnalysisWriter(Protocol):
    def write_results(self, results: AnalysisResults) -> None:
        """Persist one step's results in one transaction. Empty results are a no-op.

        Called from the analysis worker thread; may block. Raises
        :class:`faultlens.errors.StoreError` when nothing could be written.
        """
        ...

    def save_state(self, name: str, state: dict[str, Any]) -> None:
        """Keep the JSON-ready state of one analysis core under ``name`` (replacing it)."""
        ...

    def load_state(self, name: str) -> dict[str, Any] | None:
        """The state saved under ``name``, or None."""
        ...


class RootCauseWriter(Protocol):
    def write_root_causes(self, incident_id: str, answer: RcaAnswer) -> bool:
        """Store ``answer`` with the incident (replacing any earlier one); False when the
        incident is not stored. Called from the RCA worker thread; may block."""
        ...


class AnalysisReader(Protocol):
    def error_groups(self, query: ErrorGroupQuery) -> list[StoredErrorGroup]:
        """Groups as people see them: merged groups are one entry (the group they were merged
        into, with everything of its members), and a filter holds when any member matches."""
        ...

    def error_group(self, group_id: str) -> ErrorGroup | None:
        """The group as shown (merged with its members; a member id answers its merged group)."""
        ...

    def error_group_links(self, group_id: str) -> ErrorGroupLinks | None:
        """What the group was merged into or with, and the groups seen in the same traces."""
        ...

    def templates(self, query: TemplateQuery) -> list[StoredTemplate]: ...

    def red_rows(self, query: RedQuery) -> list[RedRow]:
        """Stored windows ordered by operation, kind and window start (duplicates merged)."""
        ...

    def anomalies(self, query: AnomalyQuery) -> list[Anomaly]: ...

    def incidents(self, query: IncidentQuery) -> list[Incident]: ...

    def incident(self, incident_id: str) -> Incident | None: ...

    def root_causes(self, incident_ids: list[str]) -> dict[str, RcaAnswer]:
        """The stored root-cause answers of these incidents (those never ranked are absent)."""
        ...


@runtime_checkable
class ErrorGroupEditor(Protocol):
    """What people change about error groups, kept across restarts beside the groups.

    A merge says "these fingerprints are one error": readers then show them as one group.
    The grouper keeps counting each fingerprint apart, so a split undoes a merge exactly.
    Merges are flat: merging into a group that is itself merged goes to the group it was
    merged into, and merging a group that has members moves its members too.
    """

    def merge_error_groups(self, into: str, group_ids: Sequence[str]) -> tuple[str, ...]:
        """Merge ``group_ids`` into ``into``; returns the groups now merged into it. Raises
        ``KeyError`` naming an unknown group, ``ValueError`` when nothing would change."""
        ...

    def split_error_group(self, group_id: str) -> tuple[str, ...]:
        """Undo merges: a member leaves its group; a group with members gets them all back
        as groups of their own. Returns the groups split off (empty: nothing was merged)."""
        ...


class AnalysisStore(AnalysisWriter, RootCauseWriter, AnalysisReader, ErrorGroupEditor, Protocol):
    def enforce_retention(self, now_unix_nano: int, retention_ns: int) -> int:
        """Delete the analysis series dated before ``now - retention``; how many rows went."""
        ...

    def close(self) -> None:
        """Release the backend; safe to call twice."""
        ...
