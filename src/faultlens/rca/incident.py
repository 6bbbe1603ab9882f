"""Root causes of an incident (or any window), judged against the server's own history.

This is the orchestration around :func:`~faultlens.rca.rank.rank_root_causes` that the
server runs when an incident opens or grows (:mod:`faultlens.rca.worker`), and that the
API (``/api/v1/rca``, ``/api/v1/incidents/{id}/rca``) and ``faultlens rca`` call::

    incident ──> window: its start - margin .. its end + margin (data time; cut at max_window)
    window ────> baseline: pick_baseline(window, spans of other incidents)
                   the latest history before the window, up to baseline_ns, leaving out every
                   open or resolved incident (widened by margin, and by settle after it ended),
                 and the own rows of each one's suspects (its first root causes) until it settled
    read both through the WindowReader; a side holding more rows than the reader allows is
    read as evenly spread slices of every minute (a sample of time, said in the answer)
    judge each signal only with enough data on both sides (min_spans, min_points);
       none judgeable ──> NOT_ENOUGH_DATA, with the counts that fell short
    rank ──> candidates ──> significant? (a finding with effect >= min_effect and z >= min_z)
       none ──> NOTHING_CHANGED (an empty list is the answer)
       some ──> RANKED: the significant candidates, with error groups and sample traces

Why the baseline is picked rather than "the 10 minutes before": faults come one after
another; a baseline that holds the previous fault makes its service look normal and its
recovery look like a change, so the next incident names the previous fault's service. The
incidents table says where the server saw trouble; the baseline steers around it. When
history is crowded, the baseline comes close to other incidents (their windows alone are
left out), and a fault outlasting its incident would then teach the baseline that its
service's broken state is normal: the same fault again would show nothing. So what the
other incidents named as their likely causes stays out for longer: those services' own rows
until the incident settled. No label and no knowledge of the system goes in: only the
store's telemetry, its incidents and the root causes stored with them.

Every outcome is an answer (:class:`~faultlens.rca.model.RcaAnswer`); reading errors
(:class:`~faultlens.errors.StoreError`) are the caller's to map.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from faultlens.analysis.incidents.types import Incident
from faultlens.decode.schema import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA
from faultlens.errors import UnsupportedQuery
from faultlens.rca.model import (
    Candidate,
    Observations,
    RcaAnswer,
    RcaConfig,
    RcaResult,
    RcaStatus,
    RootCause,
)
from faultlens.rca.rank import rank_root_causes
from faultlens.store.analysis_base import ErrorGroupQuery, IncidentQuery, StoredErrorGroup
from faultlens.store.window import ALL_SIGNALS, TelemetryWindow, WindowReader
from faultlens.types import Signal, TimeRange

__all__ = [
    "IncidentHistory",
    "RankerSettings",
    "RcaRun",
    "RootCauseRanker",
    "SideCounts",
    "incident_window",
    "pick_baseline",
    "rfc3339",
    "without_suspects",
]

NS_PER_S = 1_000_000_000
NS_PER_MIN = 60 * NS_PER_S


def rfc3339(ns: int) -> str:
    """Unix nanoseconds as RFC 3339 in UTC (``2026-12-07T00:01:02.5Z``)."""
    try:
        when = datetime.fromtimestamp(ns // NS_PER_S, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return str(ns)
    frac = ns % NS_PER_S
    return (f"{when}.{frac:09d}".rstrip("0").rstrip(".") if frac else when) + "Z"


@dataclass(frozen=True, slots=True)
class RankerSettings:
    """How windows and baselines are chosen and when there is enough to judge.

    - ``margin_ns``: an incident's window reaches this far before its start and after its
      end (anomalies are cut in whole analysis windows; a fault starts a little before its
      first anomalous window closes). Other incidents are widened by it too.
    - ``max_window_ns``: an incident window is cut to this length from its start (the start
      is where the cause shows).
    - ``baseline_ns``: how much history the baseline takes at most.
    - ``crowded_baseline_ns``: how much it takes when it has to come closer to other
      incidents than their settling time (see :data:`AVOIDANCE`).
    - ``lookback_ns``: how far before the window the baseline may reach to find it.
    - ``settle_ns``: after an incident's end, the system may still be recovering; this much
      after it stays out of baselines as well.
    - ``min_baseline_ns``: less free history than this is not a baseline.
    - ``min_spans`` / ``min_points``: spans (and with them the logs joined to spans), or
      metric points, are judged only when the baseline holds at least this many and the
      window holds any.
    - ``min_effect`` / ``min_z``: the significance bar: a candidate counts when one of its
      findings has at least this effect (share of requests or capacity, lower bound, beyond
      the baseline) and at least this surprise.
    - ``max_root_causes``: how many significant candidates an answer lists.
    - ``suspect_ranks``: a service among the first this many root causes of another incident
      is a suspect there: the baseline leaves out its own spans, logs and metric points from
      that incident's start (less the margin) to its settling end, unless that is more than
      ``suspect_max_share`` of its own rows of the baseline (see :func:`without_suspects`).
    - ``slice_period_ns`` / ``max_slices``: a side too large to read whole is read as one
      slice at the start of every period of this length (longer when that would make more
      than ``max_slices`` slices), all slices of the same length.
    """

    margin_ns: int = 1 * NS_PER_MIN
    max_window_ns: int = 30 * NS_PER_MIN
    baseline_ns: int = 20 * NS_PER_MIN
    crowded_baseline_ns: int = 2 * 60 * NS_PER_MIN
    lookback_ns: int = 2 * 60 * NS_PER_MIN
    settle_ns: int = 5 * NS_PER_MIN
    min_baseline_ns: int = 1 * NS_PER_MIN
    min_spans: int = 100
    min_points: int = 10
    min_effect: float = 0.02
    min_z: float = 3.0
    max_root_causes: int = 10
    suspect_ranks: int = 3
    suspect_max_share: float = 0.5
    slice_period_ns: int = 1 * NS_PER_MIN
    max_slices: int = 8
    rca: RcaConfig = field(default_factory=RcaConfig)


class IncidentHistory(Protocol):
    """What the ranker reads of the analysis store (an ``AnalysisReader`` is one)."""

    def incidents(self, query: IncidentQuery) -> list[Incident]: ...

    def root_causes(self, incident_ids: list[str]) -> dict[str, RcaAnswer]: ...

    def error_groups(self, query: ErrorGroupQuery) -> list[StoredErrorGroup]: ...


# --- pure parts ---------------------------------------------------------------------------------


def incident_window(incident: Incident, settings: RankerSettings) -> tuple[TimeRange, bool]:
    """(window, whether it was cut to ``max_window_ns``) of an incident, in data time."""
    start = max(0, incident.start_ns - settings.margin_ns)
    end = incident.end_ns + settings.margin_ns
    capped = end - start > settings.max_window_ns
    if capped:
        end = start + settings.max_window_ns
    return TimeRange(start, max(end, start + 1)), capped


def pick_baseline(
    window: TimeRange, busy: Sequence[TimeRange], settings: RankerSettings
) -> tuple[TimeRange, ...]:
    """The latest history before ``window`` outside every ``busy`` stretch, up to
    ``baseline_ns`` in total, no further back than ``lookback_ns``; oldest first.

    Empty when less than ``min_baseline_ns`` of such history exists.
    """
    floor = max(0, window.start_ns - settings.lookback_ns)
    cuts = sorted((max(b.start_ns, floor), min(b.end_ns, window.start_ns)) for b in busy)
    free: list[tuple[int, int]] = []
    cursor = floor
    for lo, hi in cuts:
        if hi <= lo:
            continue
        if lo > cursor:
            free.append((cursor, lo))
        cursor = max(cursor, hi)
    if cursor < window.start_ns:
        free.append((cursor, window.start_ns))
    picked: list[TimeRange] = []
    want = settings.baseline_ns
    for lo, hi in reversed(free):
        take = min(hi - lo, want)
        picked.append(TimeRange(hi - take, hi))
        want -= take
        if want <= 0:
            break
    if sum(r.duration_ns for r in picked) < settings.min_baseline_ns:
        return ()
    return tuple(reversed(picked))


AVOIDANCE = (
    "outside other incidents and their settling",
    "outside other incidents",
    "outside the members of other incidents",
    "the latest history (no stretch outside other incidents held enough spans)",
)
"""How strictly a baseline keeps out of other incidents, strictest first (see :func:`busy_ranges`)."""


def busy_ranges(
    incidents: Sequence[Incident], skip: str | None, settings: RankerSettings, level: int = 0
) -> list[TimeRange]:
    """The stretches baselines leave out at ``level`` of :data:`AVOIDANCE`: each incident (but
    ``skip``) widened by the margin before and margin plus settle time after its end (0), by
    the margin only (1), its members' windows alone (2); nothing (3)."""
    out = []
    for i in incidents:
        if i.id == skip or level >= 3:
            continue
        before = settings.margin_ns if level <= 1 else 0
        after = (settings.margin_ns if level <= 1 else 0) + (settings.settle_ns if level == 0 else 0)
        out.append(TimeRange(max(0, i.start_ns - before), i.end_ns + after))
    return out


def significant(c: Candidate, settings: RankerSettings) -> bool:
    """Whether a candidate passes the bar (see :class:`RankerSettings`)."""
    return any(f.effect >= settings.min_effect and f.z >= settings.min_z for f in c.findings)


# --- reading --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SideCounts:
    """Rows read for one side (window or baseline) and the share of its time they cover."""

    spans: int
    logs: int
    metric_points: int
    coverage: float = 1.0  # < 1 when the side was read as slices
    metrics_whole: bool = False  # the metric points were read whole although the rest was sliced

    def words(self) -> str:
        read = ""
        if self.coverage < 1 and self.metrics_whole:
            read = (
                f" (spans and logs read for {self.coverage:.1%} of its time, in slices; metric points whole)"
            )
        elif self.coverage < 1:
            read = f" (read {self.coverage:.1%} of its time, in slices)"
        return (
            f"{self.spans:,} spans, {self.logs:,} log records and {self.metric_points:,} metric points{read}"
        )


@dataclass(frozen=True, slots=True)
class RcaRun:
    """Everything one ranking saw and concluded (the API's /rca answer is made of it)."""

    answer: RcaAnswer
    window: TimeRange
    baseline: tuple[TimeRange, ...]
    observed: SideCounts
    baseline_observed: SideCounts
    result: RcaResult | None  # None when nothing was ranked (not enough data)
    window_capped: bool = False


def _concat(windows: list[TelemetryWindow]) -> Observations:
    def cat(tables: list[pa.Table]) -> pa.Table:
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)

    return Observations(
        cat([w.spans for w in windows]), cat([w.logs for w in windows]), cat([w.metrics for w in windows])
    )


class RootCauseRanker:
    """Picks the baseline, reads both sides, ranks, and answers (see the module docstring).

    ``windows`` bounds every read by its ``max_rows``; ``history`` (optional) supplies the
    incidents a baseline steers around and the error groups root causes link to. Thread-safe
    when both are.
    """

    def __init__(
        self,
        windows: WindowReader,
        history: IncidentHistory | None = None,
        settings: RankerSettings | None = None,
        *,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.windows = windows
        self.history = history
        self.settings = settings or RankerSettings()
        self._wall_ns = wall_ns

    def rank_incident(self, incident: Incident) -> RcaRun:
        """Root causes of ``incident``: its window against history free of other incidents.

        When the history before the widened window holds too few spans to judge the window's
        (the server, or the traces, started shortly before the incident), the window starts at
        the incident's own start instead, so the minute of margin is history rather than
        window. That answer is taken when it judges what the first could not: anything, when
        the first had not enough data; the spans, when the first judged metric points alone.
        """
        s = self.settings
        window, capped = incident_window(incident, s)
        run = self.rank_window(window, skip_incident=incident.id)
        nothing = run.answer.status is RcaStatus.NOT_ENOUGH_DATA
        spans_unjudged = run.baseline_observed.spans < s.min_spans and (nothing or run.observed.spans > 0)
        if spans_unjudged and window.start_ns < incident.start_ns < window.end_ns:
            window = TimeRange(incident.start_ns, window.end_ns)
            retry = self.rank_window(window, skip_incident=incident.id)
            if retry.answer.status is not RcaStatus.NOT_ENOUGH_DATA and (
                nothing or retry.baseline_observed.spans >= s.min_spans
            ):
                run = retry
        return RcaRun(
            run.answer, run.window, run.baseline, run.observed, run.baseline_observed, run.result, capped
        )

    def rank_window(
        self,
        window: TimeRange,
        baseline: Sequence[TimeRange] | None = None,
        *,
        skip_incident: str | None = None,
    ) -> RcaRun:
        """Root causes of ``window`` against ``baseline`` (picked from history when None)."""
        t0 = time.perf_counter()
        s = self.settings
        current, cur_counts = self._read([window])
        picked: tuple[TimeRange, ...] = ()
        avoided = ""
        base = Observations(SPAN_SCHEMA.empty_table(), LOG_SCHEMA.empty_table(), METRIC_SCHEMA.empty_table())
        base_counts = SideCounts(0, 0, 0)
        if baseline is not None:
            picked = tuple(baseline)
            base, base_counts = self._read(list(picked))
        else:
            # The strictest avoidance of other incidents whose baseline holds enough to judge
            # what the window holds; failing all, the one holding the most spans.
            incidents = self._incidents(window)
            steps: list[tuple[str, tuple[TimeRange, ...]]] = []
            for level, words in enumerate(AVOIDANCE):
                if level and not incidents:
                    break
                # Past the first step, recent history is crowded with incidents: the baseline
                # takes all the free history of the lookback, so that no single incident's
                # aftermath (a service recovering looks changed) fills most of it.
                wide = s if level == 0 else replace(s, baseline_ns=max(s.baseline_ns, s.crowded_baseline_ns))
                ranges = pick_baseline(window, busy_ranges(incidents, skip_incident, s, level), wide)
                if ranges and all(ranges != r for _, r in steps):
                    steps.append((words, ranges))
            # With several steps to try, one read of all the history they cover (when it is
            # within the reader's bound) is filtered for each, instead of a read each.
            history: Observations | None = None
            if len(steps) > 1:
                lo = min(r[0].start_ns for _, r in steps)
                try:
                    history = _concat([self.windows.read(TimeRange(lo, window.start_ns), lean=True)])
                except UnsupportedQuery:
                    history = None
            for words, ranges in steps:
                if history is not None:
                    obs = _within(history, ranges)
                    counts = SideCounts(obs.spans.num_rows, obs.logs.num_rows, obs.metrics.num_rows)
                else:
                    obs, counts = self._read(list(ranges))
                if not picked or counts.spans > base_counts.spans:
                    picked, avoided, base, base_counts = ranges, words, obs, counts
                if _enough(cur_counts, counts, s):
                    picked, avoided, base, base_counts = ranges, words, obs, counts
                    break
            suspects = self._suspects(incidents, skip_incident)
            if suspects and picked:
                kept, cut = without_suspects(base, suspects, s.suspect_max_share)
                if cut and _enough(cur_counts, SideCounts(kept.spans.num_rows, 0, kept.metrics.num_rows), s):
                    base = kept
                    base_counts = SideCounts(
                        kept.spans.num_rows, kept.logs.num_rows, kept.metrics.num_rows, base_counts.coverage
                    )
                    avoided += f", without what {len(cut)} services suspected there did until it settled"

        def answer(status: RcaStatus, reason: str, causes: tuple[RootCause, ...] = ()) -> RcaAnswer:
            return RcaAnswer(
                status, reason, self._wall_ns(), causes, window, picked, round(time.perf_counter() - t0, 3)
            )

        def run(a: RcaAnswer, result: RcaResult | None = None) -> RcaRun:
            return RcaRun(a, window, picked, cur_counts, base_counts, result)

        where = f"{rfc3339(window.start_ns)} .. {rfc3339(window.end_ns)}"
        if not picked:
            return run(
                answer(
                    RcaStatus.NOT_ENOUGH_DATA,
                    f"no baseline: less than {s.min_baseline_ns / NS_PER_MIN:g} min of history in the "
                    f"{s.lookback_ns / NS_PER_MIN:g} min before the window {where} is free of "
                    "other incidents",
                )
            )
        judge_spans = current.spans.num_rows > 0 and base.spans.num_rows >= s.min_spans
        judge_points = current.metrics.num_rows > 0 and base.metrics.num_rows >= s.min_points
        base_words = f"the baseline ({_ranges_words(picked, avoided)}) holding {base_counts.words()}"
        if not (judge_spans or judge_points):
            return run(
                answer(
                    RcaStatus.NOT_ENOUGH_DATA,
                    f"the window {where} holds {cur_counts.words()}; {base_words}; judging needs spans "
                    f"on both sides ({s.min_spans} in the baseline) or metric points ({s.min_points})",
                )
            )
        empty = current.spans.slice(0, 0), current.logs.slice(0, 0), current.metrics.slice(0, 0)
        cur = Observations(
            current.spans if judge_spans else empty[0],
            current.logs if judge_spans else empty[1],
            current.metrics if judge_points else empty[2],
        )
        bas = Observations(
            base.spans if judge_spans else empty[0],
            base.logs if judge_spans else empty[1],
            base.metrics if judge_points else empty[2],
        )
        result = rank_root_causes(cur, bas, s.rca)
        names = [*(("spans", "logs") if judge_spans else ()), *(("metrics",) if judge_points else ())]
        judged = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        passing = [c for c in result.candidates if significant(c, s)][: s.max_root_causes]
        if not passing:
            strongest = (
                f"; the strongest, {result.candidates[0].service}, scored {result.candidates[0].score:.3f}"
                if result.candidates
                else ""
            )
            return run(
                answer(
                    RcaStatus.NOTHING_CHANGED,
                    f"judged {judged} against {base_words}: no change passed the bar (a finding with "
                    f"effect >= {s.min_effect:g} and z >= {s.min_z:g}){strongest}",
                ),
                result,
            )
        total = sum(c.score for c in passing) or 1.0
        causes = tuple(self._root_cause(c, c.score / total, window) for c in passing)
        return run(
            answer(RcaStatus.RANKED, f"judged {judged} of the window {where} against {base_words}", causes),
            result,
        )

    # -- helpers ---------------------------------------------------------------------------

    def _incidents(self, window: TimeRange) -> list[Incident]:
        """The stored incidents a baseline for ``window`` may have to steer around."""
        if self.history is None:
            return []
        s = self.settings
        around = TimeRange(
            max(0, window.start_ns - s.lookback_ns - s.settle_ns - s.margin_ns), window.end_ns + s.margin_ns
        )
        return self.history.incidents(IncidentQuery(limit=1000, time_range=around))

    def _suspects(self, incidents: Sequence[Incident], skip: str | None) -> dict[str, list[TimeRange]]:
        """Service -> the stretches in which another incident named it among its first
        ``suspect_ranks`` root causes: that incident from the margin before its start to its
        settling end."""
        if self.history is None or self.settings.suspect_ranks <= 0:
            return {}
        others = {i.id: i for i in incidents if i.id != skip}
        if not others:
            return {}
        s = self.settings
        out: dict[str, list[TimeRange]] = {}
        for incident_id, answer in self.history.root_causes(list(others)).items():
            i = others[incident_id]
            stretch = TimeRange(max(0, i.start_ns - s.margin_ns), i.end_ns + s.margin_ns + s.settle_ns)
            for cause in answer.root_causes[: s.suspect_ranks]:
                out.setdefault(cause.service, []).append(stretch)
        return out

    def _read(self, ranges: list[TimeRange]) -> tuple[Observations, SideCounts]:
        """The rows of ``ranges``; when a range holds more than the reader allows, slices of it."""
        try:
            parts = [self.windows.read(r, lean=True) for r in ranges]
            obs = _concat(parts)
            return obs, SideCounts(obs.spans.num_rows, obs.logs.num_rows, obs.metrics.num_rows)
        except UnsupportedQuery:
            pass
        total_ns = sum(r.duration_ns for r in ranges)
        rate = self._probe_rate(ranges[-1])
        budget = self.windows.max_rows
        fraction = min(1.0, 0.8 * budget / max(rate * total_ns / NS_PER_S, 1.0))
        # Metric points are few beside spans and logs: read whole when they fit, since a gauge
        # sampled once a minute keeps about one point per slice (a 20-minute baseline read in
        # 8 slices would judge it on 8 points, or fewer).
        metrics = self._whole_metrics(ranges)
        sliced = frozenset({Signal.TRACES, Signal.LOGS}) if metrics is not None else ALL_SIGNALS
        for _ in range(8):
            try:
                obs, covered = self._read_slices(ranges, fraction, sliced)
            except UnsupportedQuery:
                fraction /= 2
                continue
            if metrics is not None:
                obs = replace(obs, metrics=metrics)
            counts = SideCounts(
                obs.spans.num_rows, obs.logs.num_rows, obs.metrics.num_rows, covered, metrics is not None
            )
            return obs, counts
        raise UnsupportedQuery("even thin slices of the window hold more rows than a read may")

    def _whole_metrics(self, ranges: list[TimeRange]) -> pa.Table | None:
        """Every metric point in ``ranges``, or None when a range holds more than a read may."""
        try:
            return _concat([self.windows.read(r, frozenset({Signal.METRICS})) for r in ranges]).metrics
        except UnsupportedQuery:
            return None

    def _probe_rate(self, r: TimeRange) -> float:
        """Rows per second of the busiest signal, from a short read at the end of ``r``."""
        length = min(r.duration_ns, NS_PER_S)
        while length >= 1_000_000:
            try:
                w = self.windows.read(TimeRange(r.end_ns - length, r.end_ns), lean=True)
            except UnsupportedQuery:
                length //= 4
                continue
            rows = max(w.spans.num_rows, w.logs.num_rows, w.metrics.num_rows)
            return float(max(rows, 1) * NS_PER_S / length)
        return float(self.windows.max_rows) * 1000.0

    def _read_slices(
        self, ranges: list[TimeRange], fraction: float, signals: frozenset[Signal] = ALL_SIGNALS
    ) -> tuple[Observations, float]:
        """Slices of ``fraction`` of every period, latest first, each ending where its period
        ends: the latest data is read first, so a side whose data began lately still gets it."""
        # One slice a minute, but no more than max_slices in all: each read has a fixed cost
        # (a snapshot, a count per signal) that dominates when slices are thin.
        total_ns = sum(r.duration_ns for r in ranges)
        period = max(self.settings.slice_period_ns, -(-total_ns // self.settings.max_slices))
        length = max(1_000_000, int(period * fraction))
        parts: list[TelemetryWindow] = []
        covered = 0
        rows = 0
        for r in reversed(ranges):
            t = r.end_ns
            while t > r.start_ns:
                piece = TimeRange(max(r.start_ns, t - length), t)
                w = self.windows.read(piece, signals, lean=True)
                rows += max(w.spans.num_rows, w.logs.num_rows, w.metrics.num_rows)
                if rows > self.windows.max_rows:
                    raise UnsupportedQuery("slices over budget")
                parts.append(w)
                covered += piece.duration_ns
                t -= period
        parts.reverse()
        return _concat(parts), covered / max(total_ns, 1)

    def _root_cause(self, c: Candidate, confidence: float, window: TimeRange) -> RootCause:
        groups: list[StoredErrorGroup] = []
        if self.history is not None:
            found = self.history.error_groups(ErrorGroupQuery(service=c.service, time_range=window, limit=50))
            groups = sorted(
                (g for g in found if g.count_in_range > 0),
                key=lambda g: (g.group.service != c.service, -g.count_in_range, g.group.group_id),
            )[:5]
        traces: dict[bytes, None] = {}
        for f in c.findings:
            traces.update(dict.fromkeys(f.trace_ids))
        for g in groups:
            traces.update(dict.fromkeys(g.group.sample_trace_ids))
        return RootCause(
            service=c.service,
            operation=c.operation,
            pod=c.pod,
            reason=c.reason,
            score=c.score,
            confidence=round(confidence, 4),
            findings=c.findings,
            error_groups=tuple(g.group.group_id for g in groups),
            sample_trace_ids=tuple(list(traces)[:5]),
        )


def _within(obs: Observations, ranges: Sequence[TimeRange]) -> Observations:
    """The rows of ``obs`` inside ``ranges`` (by the time the window reader selects them by)."""

    def keep(t: pa.Table, column: str) -> pa.Table:
        if t.num_rows == 0:
            return t
        times = np.asarray(pc.fill_null(t.column(column), 0).to_numpy(), dtype=np.int64)
        return t.filter(pa.array(_in_stretches(times, ranges)))

    return Observations(
        keep(obs.spans, "start_time_unix_nano"),
        keep(obs.logs, "time_unix_nano"),
        keep(obs.metrics, "time_unix_nano"),
    )


def _in_stretches(times: np.ndarray, stretches: Sequence[TimeRange]) -> np.ndarray:
    mask = np.zeros(times.shape[0], dtype=bool)
    for r in stretches:
        mask |= (times >= r.start_ns) & (times < r.end_ns)
    return mask


def _own_rows(
    t: pa.Table, service: str, stretches: Sequence[TimeRange], time_column: str
) -> tuple[np.ndarray, int]:
    """(rows of ``t`` of ``service`` inside ``stretches``, how many rows of it there are)."""
    if t.num_rows == 0:
        return np.zeros(0, dtype=bool), 0
    own = np.asarray(
        pc.fill_null(pc.equal(t.column("service_name"), service), False).to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    if not own.any():
        return own, 0
    times = np.asarray(pc.fill_null(t.column(time_column), 0).to_numpy(), dtype=np.int64)
    return own & _in_stretches(times, stretches), int(own.sum())


_TIME_COLUMNS = ("start_time_unix_nano", "time_unix_nano", "time_unix_nano")  # spans, logs, metrics


def without_suspects(
    obs: Observations, suspects: dict[str, list[TimeRange]], max_share: float = 0.5
) -> tuple[Observations, tuple[str, ...]]:
    """``obs`` without the suspects' own rows of the time they were suspect: their spans, logs
    and metric points in their stretches; and the suspects whose rows were cut.

    A suspect whose stretches hold more than ``max_share`` of its own rows (its spans, or its
    metric points when it has no spans) keeps them all: what is left of it would be history
    of another kind (other traffic, quiet hours), against which it would look changed in
    every window and be suspected again each time. The callers' spans stay too (they were on
    the same requests, but leaving them out would leave too little history in crowded times).
    """
    tables = [obs.spans, obs.logs, obs.metrics]
    drop = [np.zeros(t.num_rows, dtype=bool) for t in tables]
    cut: list[str] = []
    for service, stretches in suspects.items():
        rows = [_own_rows(t, service, stretches, c) for t, c in zip(tables, _TIME_COLUMNS, strict=True)]
        (span_hit, spans), _, (point_hit, points) = rows
        hit, total = (span_hit, spans) if spans else (point_hit, points)
        if total == 0 or not hit.any() or hit.sum() > max_share * total:
            continue
        cut.append(service)
        for k, (mask, n) in enumerate(rows):
            if n:
                drop[k] |= mask
    kept = [t.filter(pa.array(~d)) if d.any() else t for t, d in zip(tables, drop, strict=True)]
    return Observations(*kept), tuple(cut)


def _enough(window: SideCounts, baseline: SideCounts, s: RankerSettings) -> bool:
    """Whether ``baseline`` holds enough to judge what ``window`` holds (spans first)."""
    if window.spans:
        return baseline.spans >= s.min_spans
    return baseline.metric_points >= s.min_points


def _ranges_words(ranges: Sequence[TimeRange], avoided: str) -> str:
    minutes = sum(r.duration_ns for r in ranges) / NS_PER_MIN
    span = f"{rfc3339(ranges[0].start_ns)} .. {rfc3339(ranges[-1].end_ns)}"
    pieces = "" if len(ranges) == 1 else f" in {len(ranges)} stretches"
    return f"{minutes:.0f} min, {span}{pieces}" + (f", {avoided}" if avoided else "")
