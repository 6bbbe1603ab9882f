"""Groups anomalies into incidents: a pure state machine over windows of data time.

::

    anomaly ──related to a live group?──yes──> join it
                    │ no
                    └──> new forming group
    end of window: forming (or just opened) groups related to each other ──> merge
    forming group ──anomalies of enough series over enough windows (or one strong one,
                    or anomalies that agree: ``agreed``)──> OPEN
    forming group ──no new member for join_gap windows──> dropped (noise, never reported)
    OPEN ──no new member for resolve_after windows──> RESOLVED

"Related" means: the anomaly's window is at most ``join_gap_windows`` after the group's
latest member, and one of its services equals or neighbours (within ``graph_hops`` in the
service graph, either direction) a service of the group. Once an incident is open it stops
taking new symptoms after a while (``grow_windows``; errors of a new service at once): a
second fault while the first incident is still open gets an incident of its own. After
each window, groups that are related to each other but formed apart (the order anomalies
came in decides which group one joins) merge, unless one opened in an earlier window.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from faultlens.analysis.anomaly.types import Anomaly, Direction, SeriesKey, SeriesKind
from faultlens.analysis.incidents.types import Incident, IncidentConfig, IncidentState, Severity

Graph = Mapping[str, Iterable[str]]


@dataclass(slots=True)
class _Group:
    id: str
    members: list[Anomaly]
    services: set[str]
    first_ns: int
    last_ns: int  # start of the latest member window
    opened_ns: int | None = None
    resolved_ns: int | None = None
    series: set[SeriesKey] = field(default_factory=set)
    agreed: bool = False  # holds anomalies that agree (see ``update``'s ``agreed``)


@dataclass(frozen=True, slots=True)
class IncidentUpdate:
    """What one step changed. Each incident appears at most once, in its latest form."""

    opened: tuple[Incident, ...] = ()
    updated: tuple[Incident, ...] = ()
    resolved: tuple[Incident, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.opened or self.updated or self.resolved)


class IncidentTracker:
    """Feed it the anomalies of each closed window (in window order) and the service graph."""

    def __init__(self, config: IncidentConfig | None = None) -> None:
        self.config = config or IncidentConfig()
        self._groups: list[_Group] = []
        self._now_ns = -(1 << 62)

    @property
    def open_incidents(self) -> list[Incident]:
        return [self._snapshot(g) for g in self._groups if g.opened_ns is not None]

    def update(
        self,
        window_start_ns: int,
        anomalies: Iterable[Anomaly],
        graph: Graph | None = None,
        agreed: Iterable[Anomaly] = (),
    ) -> IncidentUpdate:
        """Add the anomalies of the window starting at ``window_start_ns``, then open/resolve.

        ``agreed``: anomalies of supporting kinds that agree with others of their service
        (:class:`~faultlens.analysis.anomaly.agreement.Agreement`; they may be of the windows
        just before). They lead: they start groups and, with ``agreement_opens``, a group that
        holds one opens at once (the agreement is the corroboration persistence otherwise gives).
        """
        c = self.config
        promoted = {(a.window_start_ns, a.key): a for a in agreed}
        anomalies = list(anomalies)
        given = {(b.window_start_ns, b.key) for b in anomalies}
        anomalies += [a for t, a in promoted.items() if t not in given]
        self._now_ns = max(self._now_ns, window_start_ns)
        graph = graph or {}
        undirected = _undirected(graph)
        touched: set[str] = set()
        opened: list[_Group] = []

        # Leading anomalies first (they form groups), strongest first; supporting ones after.
        def weak(x: Anomaly) -> bool:
            return x.key.kind in c.supporting_kinds and (x.window_start_ns, x.key) not in promoted

        ranked = sorted(anomalies, key=lambda x: (weak(x), -x.score, x.key))
        for a in ranked:
            near = _neighbourhood(set(a.key.services), undirected, c.graph_hops)
            supporting = weak(a)
            target = None
            # A group that holds the series first (a lasting fault stays one incident), then open ones.
            order = sorted(
                self._live(a.window_start_ns),
                key=lambda g: (a.key not in g.series, g.opened_ns is None, -g.last_ns),
            )
            for g in order:
                if g.services & near and self._accepts(g, a, supporting):
                    target = g
                    break
            if target is None and supporting:
                continue  # evidence for an incident, never the start of one
            if target is None:
                target = _Group(_group_id(a), [], set(), a.window_start_ns, a.window_start_ns)
                self._groups.append(target)
            again = (
                not supporting
                and a.key.kind in c.supporting_kinds
                and any(m.key == a.key and m.window_start_ns == a.window_start_ns for m in target.members)
            )  # an agreed anomaly that joined as evidence before
            if len(target.members) < c.max_members and not again:
                target.members.append(a)
            touched.add(target.id)
            if supporting:
                continue  # evidence only: it neither widens, extends nor keeps a group alive
            if a.key.kind in c.supporting_kinds:
                target.agreed = True
            target.services.update(a.key.services)
            target.series.add(a.key)
            target.last_ns = max(target.last_ns, a.window_start_ns)
            target.first_ns = min(target.first_ns, a.window_start_ns)
            if target.opened_ns is None and self._qualifies(target):
                target.opened_ns = window_start_ns
                opened.append(target)
        if c.merge_related:
            opened = self._merge_related(window_start_ns, undirected, opened, touched)
        resolved = self._expire()
        opened_ids = {g.id for g in opened}
        return IncidentUpdate(
            opened=tuple(self._snapshot(g) for g in opened),
            updated=tuple(
                self._snapshot(g)
                for g in self._groups
                if g.id in touched and g.id not in opened_ids and g.opened_ns is not None
            ),
            resolved=tuple(resolved),
        )

    def advance(self, window_start_ns: int) -> IncidentUpdate:
        """A window closed with no anomalies: only time passes (resolutions)."""
        return self.update(window_start_ns, ())

    def _live(self, t_ns: int) -> list[_Group]:
        gap = self.config.join_gap_windows * self.config.window_ns
        return [g for g in self._groups if g.last_ns >= t_ns - gap and g.resolved_ns is None]

    def _merge_related(
        self, window_start_ns: int, graph: dict[str, set[str]], opened: list[_Group], touched: set[str]
    ) -> list[_Group]:
        """Join groups that are related to each other after the window's anomalies went in.

        Anomalies join the first related group in the order they come, so two groups of one
        window can stay apart although their services neighbour each other (the symptom that
        would have bridged them came before the second group existed). Here a group that has
        not opened, or opened in this window, goes into an older related group of the same
        kind; the merged group opens if either had opened or together they qualify. Incidents
        opened in earlier windows take part in no merge: their ids are out, and what they no
        longer take (:meth:`_accepts`) must stay free to open an incident of its own.
        """
        c = self.config
        fresh = {g.id for g in opened}
        merged = True
        while merged:
            merged = False
            live = [g for g in self._groups if g.resolved_ns is None and g.services]
            live.sort(key=lambda g: (g.opened_ns is None or g.id in fresh, g.first_ns, g.id))
            for i, g in enumerate(live):
                if g.opened_ns is not None and g.id not in fresh:
                    continue
                near = _neighbourhood(g.services, graph, c.graph_hops)
                for h in live[i + 1 :]:
                    if h.opened_ns is not None and h.id not in fresh:
                        continue
                    if (
                        g.last_ns < window_start_ns - c.join_gap_windows * c.window_ns
                        or not h.services & near
                    ):
                        continue
                    self._absorb(g, h)
                    touched.add(g.id)
                    fresh.discard(h.id)
                    if g.opened_ns is None and (h.opened_ns is not None or self._qualifies(g)):
                        g.opened_ns = window_start_ns
                        fresh.add(g.id)
                    merged = True
                    break
                if merged:
                    break
        return [g for g in self._groups if g.id in fresh]

    def _absorb(self, g: _Group, h: _Group) -> None:
        room = self.config.max_members - len(g.members)
        g.members.extend(h.members[: max(room, 0)])
        g.services |= h.services
        g.series |= h.series
        g.agreed = g.agreed or h.agreed
        g.first_ns = min(g.first_ns, h.first_ns)
        g.last_ns = max(g.last_ns, h.last_ns)
        self._groups.remove(h)

    def _accepts(self, g: _Group, a: Anomaly, supporting: bool) -> bool:
        """Whether a related group takes ``a``.

        A forming group takes every related anomaly. An open incident takes every related
        anomaly of the window it opened in and, later, anomalies of series it holds; a new
        series only up to ``grow_windows`` after it opened, and never errors of a service it
        does not hold (a service that starts failing while an incident is open is news of
        its own: it forms a group, which opens a second incident if it qualifies). Nor, with
        ``new_onset_after_quiet``, errors of a series it holds once a whole window passed in
        which it took no leading anomaly: failures that stopped and start again are a new
        onset (the next fault, felt at the same entry point), not the old one going on.
        """
        c = self.config
        if g.opened_ns is None or c.grow_windows is None or supporting:
            return True
        if a.window_start_ns <= g.opened_ns:
            return True
        if a.key in g.series:
            quiet = a.window_start_ns - g.last_ns > c.window_ns
            return not (c.new_onset_after_quiet and quiet and a.key.kind in c.persistent_kinds)
        if a.key.kind in c.persistent_kinds and a.key.focus_service not in g.services:
            return False
        return a.window_start_ns <= g.opened_ns + c.grow_windows * c.window_ns

    def _qualifies(self, g: _Group) -> bool:
        c = self.config
        if g.agreed and c.agreement_opens:
            return True
        leading = [a for a in g.members if a.key.kind not in c.supporting_kinds]
        if not leading:
            return False
        windows = len({a.window_start_ns for a in leading})
        enough = len(g.series) >= c.open_min_anomalies and windows >= c.open_min_windows
        if not enough and c.persistent_kinds:
            # One series of these kinds anomalous in enough windows is corroboration enough.
            per_series: dict[SeriesKey, set[int]] = {}
            for a in leading:
                if a.key.kind in c.persistent_kinds:
                    per_series.setdefault(a.key, set()).add(a.window_start_ns)
            enough = any(len(w) >= c.open_min_windows for w in per_series.values())
        return enough or (c.open_score is not None and max(a.score for a in leading) >= c.open_score)

    def _expire(self) -> list[Incident]:
        c = self.config
        resolved: list[Incident] = []
        keep: list[_Group] = []
        for g in self._groups:
            if g.opened_ns is None:
                if g.last_ns + c.join_gap_windows * c.window_ns >= self._now_ns:
                    keep.append(g)
                continue
            if g.last_ns + c.resolve_after_windows * c.window_ns <= self._now_ns:
                g.resolved_ns = g.last_ns + c.window_ns
                resolved.append(self._snapshot(g))
            else:
                keep.append(g)
        self._groups = keep
        return resolved

    def _snapshot(self, g: _Group) -> Incident:
        members = tuple(sorted(g.members, key=lambda a: (a.window_start_ns, -a.score, a.key)))
        leading = [a for a in members if a.key.kind not in self.config.supporting_kinds] or list(members)
        top = max(leading, key=lambda a: (a.score, a.key))
        more = f" (+{len(members) - 1} more)" if len(members) > 1 else ""
        return Incident(
            id=g.id,
            state=IncidentState.RESOLVED if g.resolved_ns is not None else IncidentState.OPEN,
            severity=_severity(members, g.services),
            start_ns=g.first_ns,
            end_ns=g.last_ns + self.config.window_ns,
            opened_ns=g.opened_ns if g.opened_ns is not None else g.first_ns,
            resolved_ns=g.resolved_ns,
            services=tuple(sorted(g.services)),
            anomalies=members,
            title=top.explanation + more,
        )

    # -- state -----------------------------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        return {
            "version": 1,
            "now_ns": self._now_ns,
            "groups": [
                {
                    "id": g.id,
                    "members": [_anomaly_to_data(a) for a in g.members],
                    "services": sorted(g.services),
                    "first_ns": g.first_ns,
                    "last_ns": g.last_ns,
                    "opened_ns": g.opened_ns,
                    "series": [k.as_list() for k in sorted(g.series)],
                    "agreed": g.agreed,
                }
                for g in self._groups
            ],
        }

    def import_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != 1:
            raise ValueError("unknown incident tracker state version")
        self._now_ns = int(state["now_ns"])
        self._groups = []
        for d in state["groups"]:
            members = [_anomaly_from_data(a) for a in d["members"]]
            self._groups.append(
                _Group(
                    id=d["id"],
                    members=members,
                    services=set(d["services"]),
                    first_ns=int(d["first_ns"]),
                    last_ns=int(d["last_ns"]),
                    opened_ns=d["opened_ns"],
                    series={SeriesKey.from_list(k) for k in d["series"]}
                    if "series" in d
                    else {a.key for a in members if a.key.kind not in self.config.supporting_kinds},
                    agreed=bool(d.get("agreed", False)),
                )
            )


def _severity(members: tuple[Anomaly, ...], services: set[str]) -> Severity:
    top = max(a.score for a in members)
    errors = any(
        a.key.kind in (SeriesKind.ERROR_RATE, SeriesKind.EDGE_ERROR_RATE, SeriesKind.GAUGE_ERROR_RATE)
        and a.observed >= 0.5
        for a in members
    )
    if errors or len(services) >= 5:
        return Severity.CRITICAL
    if top >= 20 or len(services) >= 3:
        return Severity.HIGH
    if len(members) >= 3:
        return Severity.MEDIUM
    return Severity.LOW


def _group_id(first: Anomaly) -> str:
    raw = f"{first.id}|{first.window_start_ns}"
    return "inc-" + hashlib.sha1(raw.encode()).hexdigest()[:12]


def _undirected(graph: Graph) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a, bs in graph.items():
        for b in bs:
            out.setdefault(a, set()).add(b)
            out.setdefault(b, set()).add(a)
    return out


def _neighbourhood(services: set[str], graph: dict[str, set[str]], hops: int) -> set[str]:
    seen = set(services)
    frontier = set(services)
    for _ in range(hops):
        nxt = set()
        for s in frontier:
            nxt |= graph.get(s, set())
        frontier = nxt - seen
        seen |= frontier
    return seen


def _anomaly_to_data(a: Anomaly) -> dict[str, Any]:
    return {
        "key": a.key.as_list(),
        "window_start_ns": a.window_start_ns,
        "window_ns": a.window_ns,
        "observed": a.observed,
        "expected": a.expected,
        "score": a.score,
        "direction": a.direction.value,
        "explanation": a.explanation,
        "volume": a.volume,
    }


def _anomaly_from_data(d: dict[str, Any]) -> Anomaly:
    return Anomaly(
        key=SeriesKey.from_list(d["key"]),
        window_start_ns=int(d["window_start_ns"]),
        window_ns=int(d["window_ns"]),
        observed=float(d["observed"]),
        expected=float(d["expected"]),
        score=float(d["score"]),
        direction=Direction(d["direction"]),
        explanation=str(d["explanation"]),
        volume=float(d["volume"]),
    )
