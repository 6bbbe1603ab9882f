"""Values of root-cause ranking: inputs, reasons, findings, candidates, config."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from faultlens.graph.model import ServiceGraph
from faultlens.graph.propagation import PropagationChain
from faultlens.types import TimeRange

__all__ = [
    "BaselineModel",
    "Candidate",
    "Finding",
    "LogChange",
    "LogEvidence",
    "Observations",
    "RcaAnswer",
    "RcaConfig",
    "RcaResult",
    "RcaStatus",
    "Reason",
    "RootCause",
]


@dataclass(frozen=True, slots=True)
class Observations:
    """Decoded telemetry of one stretch of time (SPAN_SCHEMA, LOG_SCHEMA, METRIC_SCHEMA tables).

    Any table may be empty; a window may be made of several ranges (a baseline often is).
    """

    spans: pa.Table
    logs: pa.Table
    metrics: pa.Table


class Reason(enum.StrEnum):
    """Why a candidate is suspected. Each reason is one kind of evidence, measured one way."""

    LOG_PATTERN = "log_pattern"  # an operation's requests log a new set of statements (new/missing)
    ERROR_ORIGIN = "error_origin"  # spans of an operation fail, and nothing below them does
    CHANGED_ANSWER = "changed_answer"  # callers' log patterns changed right after its answer
    SLOW_EXECUTION = "slow_execution"  # exclusive time of an operation on a pod rose
    SLOW_CALLS_INTO = "slow_calls_into"  # time added on calls into a pod (network, queueing)
    FAILED_CALLS_INTO = "failed_calls_into"  # calls into it failed, its own spans did not (or it sent none)
    FAILED_REQUESTS = "failed_requests"  # the failed share its success / error ratio gauge reports rose
    CPU_SATURATION = "cpu_saturation"  # a pod's CPU utilisation rose above its normal range
    MEMORY_PRESSURE = "memory_pressure"  # a pod's memory utilisation rose above its normal range


class BaselineModel(enum.StrEnum):
    """How the baseline's share of a group's affected spans becomes what a window may show.

    - ``POOLED``: the share over all baseline spans.
    - ``ENVELOPE``: at least the highest share any baseline minute showed (at its lower
      confidence bound); one disturbed baseline minute then hides a fault.
    - ``SPREAD``: the pooled share plus ``confidence_z`` times how much the true share
      varies between baseline minutes (beyond sampling noise): workload drift widens the
      allowance of patterns that drift, and only theirs.
    """

    POOLED = "pooled"
    ENVELOPE = "envelope"
    SPREAD = "spread"


class LogChange(enum.StrEnum):
    NEW = "new"  # the statement shows up in requests that did not log it before
    MISSING = "missing"  # a statement the requests usually log is gone


@dataclass(frozen=True, slots=True)
class LogEvidence:
    """A log statement behind a log-pattern finding, in words a person can check.

    ``key`` is how the ranking knows the statement (a code location such as ``Class#line``,
    or ``template:<id>``); ``template`` is its text with the variable parts as ``<*>``, and
    ``sample`` one line as it was logged (from the window, or from the baseline for a
    statement that went missing).
    """

    key: str
    change: LogChange
    template: str
    sample: str


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of evidence against a service.

    ``effect`` is on one scale for every reason: the share of the group's requests (or of
    the pod's capacity, for resources) that changed beyond what the baseline allows, taken
    at its lower confidence bound, so small groups must show more to count. ``z`` is the
    surprise of the observation (for the record; ranking uses ``effect``).

    ``first_ns`` / ``last_ns``: when the changed requests (or resource points) were seen in
    the window (None when unknown); ``trace_ids``: a few traces holding a changed request
    that started the change; ``logs``: the statements behind a log-pattern finding.
    """

    service: str
    reason: Reason
    operation: str  # "" when the evidence is not about one operation
    pod: str  # "" when not about one pod
    effect: float
    z: float
    evidence: str
    first_ns: int | None = None
    last_ns: int | None = None
    trace_ids: tuple[bytes, ...] = ()
    logs: tuple[LogEvidence, ...] = ()


@dataclass(frozen=True, slots=True)
class Candidate:
    """A suspected root-cause service, with its best operation, pod and reason."""

    rank: int
    service: str
    score: float  # the effect of its strongest finding
    reason: Reason
    operation: str
    pod: str
    findings: tuple[Finding, ...]  # strongest first

    @property
    def evidence(self) -> tuple[str, ...]:
        return tuple(f.evidence for f in self.findings)


@dataclass(frozen=True, slots=True)
class RcaResult:
    candidates: tuple[Candidate, ...]  # best first; services with no finding are left out
    chains: tuple[PropagationChain, ...]
    graph: ServiceGraph
    origin_spans: int  # spans flagged anomalous with no anomalous span below them

    def services(self) -> tuple[str, ...]:
        return tuple(c.service for c in self.candidates)


@dataclass(frozen=True, slots=True)
class RcaConfig:
    """Tuning of the ranking; few knobs, each with a meaning rather than a fitted weight.

    - ``confidence_z``: the z of the one-sided lower confidence bound taken on every
      share (3.0 ~ 99.9 %: the three standard errors of the significance bar, ``min_z``);
      it is what keeps a 3-call operation from outranking a 300-call one.
    - ``explain_ratio``: a changed span is taken to pass on a change from below only when
      some span below it changed at least this fraction as strongly (0.5: strengths are
      shares of different populations, so a caller whose every request hits a callee's
      faulty branch may show more than the callee; 0 lets any weak shift deep in a trace
      explain everything above it).
    - ``baseline_model``: what share of a group's spans the baseline allows a window
      (:class:`BaselineModel`; see docs/evaluation.md for each model's figures).
    - ``slow_quantile`` / ``min_excess_ns``: a span is slow when its time exceeds this
      quantile of its baseline by at least that much.
    - ``min_baseline_spans``: groups with fewer baseline spans are not judged on latency.
    - ``resource_floor``: utilisation rises smaller than this share of capacity are ignored.
    """

    confidence_z: float = 3.0
    explain_ratio: float = 0.5
    baseline_model: BaselineModel = BaselineModel.SPREAD
    slow_quantile: float = 0.95
    min_excess_ns: float = 2e6
    min_baseline_spans: int = 5
    resource_floor: float = 0.05
    max_candidates: int = 20
    max_findings: int = 5


# --- what an incident carries -----------------------------------------------------------------


class RcaStatus(enum.StrEnum):
    """Where an incident's root-cause ranking stands; every state is an answer, none an error."""

    PENDING = "pending"  # not ranked yet (queued, or the ranking could not run)
    RANKED = "ranked"  # at least one candidate passed the significance bar
    NOT_ENOUGH_DATA = "not_enough_data"  # the window or its baseline holds too little to judge
    NOTHING_CHANGED = "nothing_changed"  # there was data, and no candidate passed the bar


@dataclass(frozen=True, slots=True)
class RootCause:
    """A ranked root cause as an incident carries it: a candidate, and what backs it.

    ``confidence`` is the candidate's share of the summed scores of every root cause
    listed (so it says how clearly this one stands out from the others, 0..1);
    ``findings`` are the evidence, strongest first; ``error_groups`` the ids of the
    service's error groups seen in the window; ``sample_trace_ids`` traces that show it.
    """

    service: str
    operation: str
    pod: str
    reason: Reason
    score: float
    confidence: float
    findings: tuple[Finding, ...]
    error_groups: tuple[str, ...] = ()
    sample_trace_ids: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class RcaAnswer:
    """The root causes of one window (an incident's), with how they were judged.

    ``reason`` says in words why the status is what it is (which signals were judged,
    what was missing); ``at_ns`` is the wall-clock time of the ranking; ``window`` and
    ``baseline`` (one or more stretches, oldest first) are data time; ``duration_s`` is
    how long reading and ranking took.
    """

    status: RcaStatus
    reason: str
    at_ns: int
    root_causes: tuple[RootCause, ...] = ()
    window: TimeRange | None = None
    baseline: tuple[TimeRange, ...] = ()
    duration_s: float = 0.0

    def top(self, n: int = 3) -> tuple[tuple[str, str, str, str], ...]:
        """(service, operation, pod, reason) of the first ``n``: what a notification names."""
        return tuple((r.service, r.operation, r.pod, r.reason.value) for r in self.root_causes[:n])

    def to_data(self) -> dict[str, Any]:
        """JSON-ready form (ids as hex), read back by :meth:`from_data`."""
        return {
            "version": 1,
            "status": self.status.value,
            "reason": self.reason,
            "at_ns": self.at_ns,
            "window": None if self.window is None else [self.window.start_ns, self.window.end_ns],
            "baseline": [[r.start_ns, r.end_ns] for r in self.baseline],
            "duration_s": self.duration_s,
            "root_causes": [_root_cause_data(r) for r in self.root_causes],
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> RcaAnswer:
        if data.get("version") != 1:
            raise ValueError("unknown root-cause answer version")
        window = data.get("window")
        return cls(
            status=RcaStatus(data["status"]),
            reason=str(data["reason"]),
            at_ns=int(data["at_ns"]),
            root_causes=tuple(_root_cause_from(r) for r in data["root_causes"]),
            window=None if window is None else TimeRange(int(window[0]), int(window[1])),
            baseline=tuple(TimeRange(int(a), int(b)) for a, b in data["baseline"]),
            duration_s=float(data["duration_s"]),
        )


def _finding_data(f: Finding) -> dict[str, Any]:
    return {
        "service": f.service,
        "reason": f.reason.value,
        "operation": f.operation,
        "pod": f.pod,
        "effect": f.effect,
        "z": f.z,
        "evidence": f.evidence,
        "first_ns": f.first_ns,
        "last_ns": f.last_ns,
        "trace_ids": [t.hex() for t in f.trace_ids],
        "logs": [[e.key, e.change.value, e.template, e.sample] for e in f.logs],
    }


def _finding_from(d: dict[str, Any]) -> Finding:
    return Finding(
        service=str(d["service"]),
        reason=Reason(d["reason"]),
        operation=str(d["operation"]),
        pod=str(d["pod"]),
        effect=float(d["effect"]),
        z=float(d["z"]),
        evidence=str(d["evidence"]),
        first_ns=None if d["first_ns"] is None else int(d["first_ns"]),
        last_ns=None if d["last_ns"] is None else int(d["last_ns"]),
        trace_ids=tuple(bytes.fromhex(t) for t in d["trace_ids"]),
        logs=tuple(LogEvidence(str(k), LogChange(c), str(t), str(s)) for k, c, t, s in d["logs"]),
    )


def _root_cause_data(r: RootCause) -> dict[str, Any]:
    return {
        "service": r.service,
        "operation": r.operation,
        "pod": r.pod,
        "reason": r.reason.value,
        "score": r.score,
        "confidence": r.confidence,
        "findings": [_finding_data(f) for f in r.findings],
        "error_groups": list(r.error_groups),
        "sample_trace_ids": [t.hex() for t in r.sample_trace_ids],
    }


def _root_cause_from(d: dict[str, Any]) -> RootCause:
    return RootCause(
        service=str(d["service"]),
        operation=str(d["operation"]),
        pod=str(d["pod"]),
        reason=Reason(d["reason"]),
        score=float(d["score"]),
        confidence=float(d["confidence"]),
        findings=tuple(_finding_from(f) for f in d["findings"]),
        error_groups=tuple(str(g) for g in d["error_groups"]),
        sample_trace_ids=tuple(bytes.fromhex(t) for t in d["sample_trace_ids"]),
    )
