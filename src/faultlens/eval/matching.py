"""Which incident answers which labelled fault: the one matching rule of every detection score.

``eval detect`` (:mod:`faultlens.eval.detect`), ``eval live`` (:mod:`faultlens.eval.live`) and
the offline detection run (:mod:`faultlens.analysis.evaluate_detection`) read incidents from
different places (the analysis tables, the HTTP API, the pure cores), so each turns what it
read into an :class:`IncidentRecord` and matches it here::

    faults (labels) ──┐
                      ├─ match_faults(window) ─> FaultMatch per fault: incidents opened inside
    IncidentRecords ──┘                          its window (first = its detection), earlier
                                                 incidents that took anomalies from it, delay

A fault's window is a :class:`MatchWindow` around its injection: ``eval detect`` keeps its
historical one (the injection minute and the three after it, :data:`DETECT_WINDOW`); ``eval
live`` uses issue 15's (``[injection - 1 min, injection + 5 min)``, :data:`LIVE_WINDOW`). An
incident counts for a fault when it **opens** inside the window (``opened_ns``, data time: the
start of the analysis window that made it qualify). Of several, the first to open is the
fault's detection, then the one whose symptoms started first, then by id, so a replay of the
same data always picks the same one. Nothing here knows a service, pod or time of a data set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from faultlens.types import TimeRange

if TYPE_CHECKING:
    from faultlens.analysis.incidents import Incident
    from faultlens.datasets import Fault

__all__ = [
    "DETECT_WINDOW",
    "LIVE_WINDOW",
    "MINUTE_NS",
    "NS_PER_S",
    "FaultMatch",
    "IncidentRecord",
    "MatchWindow",
    "match_faults",
    "unmatched",
]

NS_PER_S = 1_000_000_000
MINUTE_NS = 60 * NS_PER_S


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """What scoring needs of an incident, wherever it was read from.

    ``opened_ns`` is data time: the start of the analysis window that made it open.
    ``start_ns`` is the start of its first member window. ``member_windows`` are the window
    starts of its anomalies (to tell a fault absorbed by an earlier incident from a miss).
    """

    id: str
    opened_ns: int
    start_ns: int
    services: tuple[str, ...] = ()
    title: str = ""
    member_windows: tuple[int, ...] = ()

    @classmethod
    def of(cls, incident: Incident) -> IncidentRecord:
        """The record of an incident read from the analysis tables."""
        return cls(
            id=incident.id,
            opened_ns=incident.opened_ns,
            start_ns=incident.start_ns,
            services=tuple(incident.services),
            title=incident.title,
            member_windows=tuple(a.window_start_ns for a in incident.anomalies),
        )


@dataclass(frozen=True, slots=True)
class MatchWindow:
    """Where an incident must open to answer a fault: ``[anchor - before_ns, anchor + after_ns)``.

    The anchor is the injection time, or the start of its minute with ``from_minute``.
    """

    before_ns: int
    after_ns: int
    from_minute: bool = False

    def __post_init__(self) -> None:
        if self.before_ns < 0 or self.after_ns <= 0:
            raise ValueError("a match window needs before_ns >= 0 and after_ns > 0")

    def bounds(self, fault: Fault) -> TimeRange:
        anchor = fault.minute_ns if self.from_minute else fault.inject_time_ns
        return TimeRange(anchor - self.before_ns, anchor + self.after_ns)

    def describe(self) -> str:
        anchor = "injection minute" if self.from_minute else "injection"
        return f"[{anchor} - {self.before_ns / NS_PER_S:g} s, {anchor} + {self.after_ns / NS_PER_S:g} s)"


# eval detect: the injection minute and the three after it.
DETECT_WINDOW = MatchWindow(0, 4 * MINUTE_NS, from_minute=True)
# eval live (issue 15): from a minute before the injection to five minutes after it.
LIVE_WINDOW = MatchWindow(MINUTE_NS, 5 * MINUTE_NS)


@dataclass(frozen=True, slots=True)
class FaultMatch:
    """One fault and the incidents that answer it."""

    fault: Fault
    window: TimeRange
    opened: tuple[IncidentRecord, ...]  # opened inside the window, the detection first
    joined: tuple[str, ...]  # ids of incidents opened before it that took anomalies of its window

    @property
    def first(self) -> IncidentRecord | None:
        return self.opened[0] if self.opened else None

    def delay_s(self, window_ns: int, lateness_ns: int) -> float | None:
        """From the injection to the data time the detection was known: the end of the window
        that opened it plus the lateness the analysis waits; never below 0. None if missed."""
        first = self.first
        if first is None:
            return None
        return max(0.0, (first.opened_ns + window_ns + lateness_ns - self.fault.inject_time_ns) / NS_PER_S)


def match_faults(
    faults: Iterable[Fault], incidents: Iterable[IncidentRecord], window: MatchWindow
) -> list[FaultMatch]:
    """Per fault (in the order given), the incidents opened inside its window and those it fed."""
    records = list(incidents)
    out: list[FaultMatch] = []
    for f in faults:
        bounds = window.bounds(f)
        lo, hi = bounds.start_ns, bounds.end_ns
        opened = sorted(
            (i for i in records if lo <= i.opened_ns < hi), key=lambda i: (i.opened_ns, i.start_ns, i.id)
        )
        joined = tuple(
            i.id for i in records if i.opened_ns < lo and any(lo <= w < hi for w in i.member_windows)
        )
        out.append(FaultMatch(f, bounds, tuple(opened), joined))
    return out


def unmatched(incidents: Iterable[IncidentRecord], matches: Sequence[FaultMatch]) -> list[IncidentRecord]:
    """Incidents that opened inside no fault's window (false alarms, as far as the labels go)."""
    return [
        i for i in incidents if not any(m.window.start_ns <= i.opened_ns < m.window.end_ns for m in matches)
    ]
