"""Anomalies that lead only when they agree: several signals of one service out of line together.

Why: one resource gauge out of line is noise (a busy minute, a garbage collection, a
neighbour on the node), and a new log template or error fingerprint is often a harmless
first sighting. Such anomalies join incidents as evidence (``IncidentConfig.supporting_kinds``)
but, alone, never open one. Yet on a system whose traces and logs are partly missing, metrics
may be all there is, and a fault in a service shows in many of its gauges at once (CPU and
latency and network; or one gauge on several pods of it). So:

- **metric agreement**: when, within ``windows`` consecutive windows (this one and the ones
  before), at least ``min_series`` distinct series of these kinds of one service are
  anomalous by ``min_score`` or more, and they span at least ``min_signals`` signals, they
  agree. Series are distinct by metric name and by pod, so several gauges of one pod and one
  gauge of several pods both count. A signal is a metric's namespace, its first two dotted
  parts with digits ignored (``container.cpu``, ``pod.server``): p90, p95 and p99 of one
  latency rise together and are one signal, CPU and latency are two. A fault moves the gauges
  of its service by tens of spreads; a busy minute moves a few by a few.
- **saturation with its symptom**: a utilisation gauge of one service (CPU or memory share
  of a container, pod or process) that rose by ``saturation_share`` of its capacity or more
  above its baseline, together, within ``windows``, with a flagged rise of a latency that the
  same service serves (a gauge in a time unit that is not the client side of its calls, or its
  spans' latency). A resource taken and the requests slowed by it: cause and symptom say the
  same thing, and neither a busy minute with no traffic (a batch job) nor a latency blip
  with idle CPU does. Which gauges are which: :mod:`.signals` (names and units only).
- **time on the wire**: a call edge's latency as its caller reports it (a gauge with a
  ``peer.service``, on the client side) risen by ``wire_min_score`` spreads or more, while
  the same edge as its callee reports it (server side) did not rise: the time was added
  between the two ends (network, a proxy, queueing before the callee's handler), and the
  callee's calls are what slowed (its series' focus). The two ends of one edge measure the
  same calls, so one clear rise against a flat other side is agreement of two series; it
  must last ``wire_windows`` windows (one slow minute of one edge is a blip, not a fault).
- **novelty with a second signal**: a new or missing log template or a new error fingerprint
  agrees when the same service has, within ``windows``, an anomaly of another kind that is not
  novelty (error logs, latency, errors, a gauge): two signals that say the same thing.
- **shared causes do not count**: a metric name anomalous in ``shared_fraction`` or more of the
  services that report it in one window (a node or the whole cluster busy) speaks for no one
  service and counts for none; nor does a gauge whose value in the window equals that of the
  same metric of another service (a node's gauge reported by each of its pods).
- **a level, not a presence**: a gauge whose baseline is zero (it was not there, or idle) and
  a template that went missing (often a log pipeline's gap, not the service's) do not agree;
  they still join incidents as evidence.

:class:`Agreement` is pure (anomalies of each judged window in, in window order; the agreeing
ones out, each once). What the tracker does with them: ``IncidentTracker.update(..., agreed=)``.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from faultlens.analysis.anomaly.signals import TIME_UNITS, outgoing, serving_latency, utilisation
from faultlens.analysis.anomaly.types import (
    FAULT_SCORE,
    NOVELTY_KINDS,
    Anomaly,
    Direction,
    SeriesKey,
    SeriesKind,
)


def _default_kinds() -> frozenset[SeriesKind]:
    return frozenset({SeriesKind.RESOURCE, *NOVELTY_KINDS})


@dataclass(frozen=True, slots=True)
class AgreementConfig:
    """When anomalies of ``kinds`` agree (see the module docstring). ``min_series`` None: never
    by count alone; ``novelty_with_signal`` False: novelty never agrees with a second signal.

    The defaults are the strictest setting measured that held the false incidents of both
    Nezha systems (docs/evaluation.md, "Detection from every signal"): looser metric agreement
    found more faults on one system and opened tens of false incidents a day on the other, and
    novelty agreeing with a second signal cost detections there (incidents opened a window
    before a fault took its symptoms), so it is off by default; novelty still joins incidents
    as evidence.
    """

    kinds: frozenset[SeriesKind] = field(default_factory=_default_kinds)
    min_series: int | None = 4
    min_signals: int = 4
    min_score: float = FAULT_SCORE
    min_windows: int = 1
    windows: int = 2
    novelty_with_signal: bool = False
    novelty_agreeing: frozenset[SeriesKind] = frozenset({SeriesKind.NEW_LOG_TEMPLATE, SeriesKind.NEW_ERROR})
    shared_fraction: float = 0.5
    shared_min_services: int = 4
    saturation_share: float | None = 0.3
    wire_min_score: float | None = FAULT_SCORE
    wire_windows: int = 2

    def __post_init__(self) -> None:
        if self.min_series is not None and self.min_series < 2:
            raise ValueError("agreement.min_series must be >= 2 (one series is not agreement)")
        if self.windows < 1 or not 0.0 < self.shared_fraction <= 1.0 or self.shared_min_services < 2:
            raise ValueError("agreement: windows >= 1, shared_fraction in (0, 1], shared_min_services >= 2")
        if self.saturation_share is not None and not 0.0 < self.saturation_share <= 1.0:
            raise ValueError("agreement.saturation_share must be in (0, 1] (a share of capacity) or null")
        if self.wire_min_score is not None and self.wire_min_score <= 0:
            raise ValueError("agreement.wire_min_score must be positive or null")
        if not 1 <= self.wire_windows <= self.windows:
            raise ValueError("agreement.wire_windows must be in [1, windows]")


class Agreement:
    """Feed it every judged window's anomalies (all kinds) in window order.

    :meth:`observe` returns the anomalies of ``config.kinds`` that agree, including ones of the
    earlier windows it remembers that agree only now; each anomaly is returned once.
    ``reporting`` (metric name -> services that report it) comes from the caller, who sees
    the observations; it decides what counts as shared. ``units`` (metric name -> unit) tells
    utilisation and latency gauges apart for the saturation and wire rules; without it they are off.
    """

    def __init__(self, config: AgreementConfig | None = None) -> None:
        self.config = config or AgreementConfig()
        self._recent: deque[tuple[int, list[Anomaly]]] = deque(maxlen=self.config.windows)
        self._given: set[tuple[int, SeriesKey]] = set()

    def observe(
        self,
        window_start_ns: int,
        anomalies: Sequence[Anomaly],
        reporting: dict[str, set[str]] | None = None,
        units: Mapping[str, str] | None = None,
    ) -> list[Anomaly]:
        c = self.config
        shared = self._shared_names(anomalies, reporting or {})
        hosts = _host_values(anomalies)
        kept = [
            a
            for a in anomalies
            if not (
                a.key.kind is SeriesKind.RESOURCE
                and (
                    a.expected == 0
                    or (not a.key.peer and (a.key.name in shared or (a.key.name, a.observed) in hosts))
                )
            )
            and not (a.key.kind in NOVELTY_KINDS and a.key.kind not in c.novelty_agreeing)
        ]
        self._recent.append((window_start_ns, kept))
        oldest = self._recent[0][0]
        self._given = {g for g in self._given if g[0] >= oldest}
        recent = [  # of this window and the ones just before (quiet windows pass no anomalies)
            a
            for _, window in self._recent
            for a in window
            if a.window_start_ns + c.windows * a.window_ns > window_start_ns
        ]
        by_service: dict[str, list[Anomaly]] = {}
        for a in recent:
            by_service.setdefault(a.key.service, []).append(a)
        out: list[Anomaly] = []
        for service in sorted(by_service):
            found = by_service[service]
            weak = [a for a in found if a.key.kind in c.kinds]
            if not weak:
                continue
            agreeing: list[Anomaly] = []
            strong = [a for a in weak if a.key.kind not in NOVELTY_KINDS and a.score >= c.min_score]
            if (
                c.min_series is not None
                and len({a.key for a in strong}) >= c.min_series
                and len({signal(a.key.name) for a in strong}) >= c.min_signals
                and len({a.window_start_ns for a in strong}) >= c.min_windows
            ):
                agreeing = strong
            elif (
                c.saturation_share is not None
                and units is not None
                and (saturated := _saturation(found, c.saturation_share, units))
            ):
                agreeing = [a for a in saturated if a.key.kind in c.kinds]  # span latency leads anyway
            elif c.novelty_with_signal and any(a.key.kind not in NOVELTY_KINDS for a in found):
                agreeing = [a for a in weak if a.key.kind in NOVELTY_KINDS]
            for a in agreeing:
                tag = (a.window_start_ns, a.key)
                if tag not in self._given:
                    self._given.add(tag)
                    out.append(a)
        if c.wire_min_score is not None and units is not None:
            for a in _on_the_wire(recent, c.wire_min_score, c.wire_windows, units):
                tag = (a.window_start_ns, a.key)
                if tag not in self._given:
                    self._given.add(tag)
                    out.append(a)
        return out

    def _shared_names(self, window: Sequence[Anomaly], reporting: dict[str, set[str]]) -> set[str]:
        """Resource gauges out of line in too many of the services reporting them to be theirs."""
        hit: dict[str, set[str]] = {}
        for a in window:
            if a.key.kind is SeriesKind.RESOURCE:
                hit.setdefault(a.key.name, set()).add(a.key.service)
        c = self.config
        return {
            name
            for name, services in hit.items()
            if len(reporting.get(name, ())) >= c.shared_min_services
            and len(services) >= c.shared_fraction * len(reporting[name])
        }


_SPAN_LATENCY = frozenset({SeriesKind.LATENCY_P90, SeriesKind.LATENCY_P99, SeriesKind.SELF_TIME_P90})


def _saturation(found: Sequence[Anomaly], share: float, units: Mapping[str, str]) -> list[Anomaly]:
    """The utilisation rises of at least ``share`` of capacity and the serving-latency rises
    of one service's anomalies, when it has both; else nothing."""
    taken: list[Anomaly] = []
    slowed: list[Anomaly] = []
    for a in found:
        if a.direction is not Direction.UP:
            continue
        if a.key.kind in _SPAN_LATENCY:
            slowed.append(a)
        elif a.key.kind is SeriesKind.RESOURCE:
            unit = units.get(a.key.name)
            used = utilisation(a.key.name, unit)
            if used is not None and a.observed - a.expected >= share * used.capacity:
                taken.append(a)
            elif serving_latency(a.key.name, unit) and not a.key.peer:  # its own, not one edge's
                slowed.append(a)
    return [*taken, *slowed] if taken and slowed else []


def _on_the_wire(
    found: Sequence[Anomaly], min_score: float, min_windows: int, units: Mapping[str, str]
) -> list[Anomaly]:
    """Client-side latency rises of call edges by ``min_score`` or more, in ``min_windows``
    windows, whose server side (the same edge as its callee reports it) did not rise: time
    added between the two ends."""
    server_up = {
        (a.key.service, a.key.peer)
        for a in found
        if a.key.peer and a.direction is Direction.UP and not outgoing(a.key.name)
    }
    rises = [
        a
        for a in found
        if a.key.kind is SeriesKind.RESOURCE
        and a.key.peer
        and a.direction is Direction.UP
        and a.score >= min_score
        and outgoing(a.key.name)
        and units.get(a.key.name, "") in TIME_UNITS
        and (a.key.service, a.key.peer) not in server_up
    ]
    windows: dict[SeriesKey, set[int]] = {}
    for a in rises:
        windows.setdefault(a.key, set()).add(a.window_start_ns)
    return [a for a in rises if len(windows[a.key]) >= min_windows]


def _host_values(window: Sequence[Anomaly]) -> set[tuple[str, float]]:
    """(metric, value) pairs that several services report in one window: a host's gauge."""
    seen: dict[tuple[str, float], str] = {}
    out: set[tuple[str, float]] = set()
    for a in window:
        if a.key.kind is SeriesKind.RESOURCE:
            tag = (a.key.name, a.observed)
            first = seen.setdefault(tag, a.key.service)
            if first != a.key.service:
                out.add(tag)
    return out


def reporting_services(keys: Iterable[tuple[SeriesKind, str, str]]) -> dict[str, set[str]]:
    """Metric name -> services reporting it, from (kind, service, name) of one window's series."""
    out: dict[str, set[str]] = {}
    for kind, service, name in keys:
        if kind is SeriesKind.RESOURCE:
            out.setdefault(name, set()).add(service)
    return out


def signal(metric_name: str) -> str:
    """The signal a metric measures: its first two dotted parts, digits ignored
    (``pod.server.latency.p99`` -> ``pod.server``; ``container.cpu.usage.rate`` -> ``container.cpu``)."""
    return ".".join(re.sub(r"\d+", "#", metric_name).split(".")[:2])
