"""Root causes as JSON: the one shape the API, the incident webhook and ``faultlens rca`` share.

The API's response models (:mod:`faultlens.api.analysis_routes`, :mod:`faultlens.api.rca_routes`)
validate and document these dicts; the webhook posts them; ``faultlens rca --data-dir``
prints them. Conventions are the API's (docs/api.md): ids as lowercase hex, times as
integers of Unix nanoseconds with an RFC 3339 twin beside them (``first_seen`` next to
``first_seen_unix_nano``), enums by value.
"""

from __future__ import annotations

from typing import Any

from faultlens.graph.propagation import PropagationChain
from faultlens.rca.incident import RcaRun, SideCounts, rfc3339
from faultlens.rca.model import Candidate, Finding, RcaAnswer, RcaStatus, RootCause
from faultlens.types import TimeRange

__all__ = ["answer_fields", "candidate_data", "finding_data", "root_cause_data", "run_report"]


def _time(ns: int | None) -> str | None:
    return None if ns is None else rfc3339(ns)


def finding_data(f: Finding) -> dict[str, Any]:
    """One piece of evidence: its words, figures, when it was seen, traces and log statements."""
    return {
        "text": f.evidence,
        "reason": f.reason.value,
        "operation": f.operation,
        "pod": f.pod,
        "effect": f.effect,
        "z": f.z,
        "first_seen_unix_nano": f.first_ns,
        "first_seen": _time(f.first_ns),
        "last_seen_unix_nano": f.last_ns,
        "last_seen": _time(f.last_ns),
        "sample_trace_ids": [t.hex() for t in f.trace_ids],
        "log_statements": [
            {"key": e.key, "change": e.change.value, "template": e.template, "sample": e.sample}
            for e in f.logs
        ],
    }


def root_cause_data(r: RootCause, rank: int) -> dict[str, Any]:
    """One root cause of an incident (``rank`` 1 is the most likely)."""
    return {
        "rank": rank,
        "service": r.service,
        "operation": r.operation,
        "pod": r.pod,
        "reason": r.reason.value,
        "score": r.score,
        "confidence": r.confidence,
        "evidence": [finding_data(f) for f in r.findings],
        "error_groups": list(r.error_groups),
        "sample_trace_ids": [t.hex() for t in r.sample_trace_ids],
    }


def answer_fields(answer: RcaAnswer | None, top: int | None = None) -> dict[str, Any]:
    """The root-cause fields of an incident: status, reason, when, and the root causes
    (the first ``top`` of them when given). ``None``: not ranked yet (``pending``)."""
    if answer is None:
        return {
            "rca_status": RcaStatus.PENDING.value,
            "rca_reason": "not ranked yet",
            "rca_at_unix_nano": None,
            "rca_at": None,
            "rca_duration_s": None,
            "root_causes": [],
        }
    causes = answer.root_causes if top is None else answer.root_causes[:top]
    return {
        "rca_status": answer.status.value,
        "rca_reason": answer.reason,
        "rca_at_unix_nano": answer.at_ns,
        "rca_at": rfc3339(answer.at_ns),
        "rca_duration_s": answer.duration_s,
        "root_causes": [root_cause_data(r, i + 1) for i, r in enumerate(causes)],
    }


def candidate_data(c: Candidate) -> dict[str, Any]:
    """A ranked candidate, significant or not (the ``candidates`` of ``/api/v1/rca``)."""
    return {
        "rank": c.rank,
        "service": c.service,
        "operation": c.operation,
        "pod": c.pod,
        "reason": c.reason.value,
        "score": c.score,
        "evidence": list(c.evidence),
        "findings": [
            {
                "reason": f.reason.value,
                "operation": f.operation,
                "pod": f.pod,
                "effect": f.effect,
                "z": f.z,
                "evidence": f.evidence,
            }
            for f in c.findings
        ],
    }


def _range(r: TimeRange) -> dict[str, Any]:
    return {
        "start_unix_nano": r.start_ns,
        "end_unix_nano": r.end_ns,
        "start": rfc3339(r.start_ns),
        "end": rfc3339(r.end_ns),
    }


def _counts(c: SideCounts) -> dict[str, Any]:
    return {"spans": c.spans, "logs": c.logs, "metric_points": c.metric_points, "time_read": c.coverage}


def _chain(c: PropagationChain) -> dict[str, Any]:
    return {
        "services": list(c.services),
        "end": c.end,
        "edges": [
            {
                "caller": e.caller,
                "callee": e.callee,
                "evidence": list(e.evidence),
                "latency_ratio": e.latency_ratio,
                "error_rate": e.error_rate,
                "baseline_error_rate": e.baseline_error_rate,
            }
            for e in c.edges
        ],
    }


def run_report(run: RcaRun) -> dict[str, Any]:
    """The whole answer of one ranking (the body of ``/api/v1/rca``)."""
    result = run.result
    baseline = run.baseline
    return {
        "window": _range(run.window),
        "baseline": None if not baseline else _range(TimeRange(baseline[0].start_ns, baseline[-1].end_ns)),
        "baseline_ranges": [_range(r) for r in baseline],
        "window_capped": run.window_capped,
        "incident": None,
        "observed": _counts(run.observed),
        "baseline_observed": _counts(run.baseline_observed),
        **answer_fields(run.answer),
        "candidates": [] if result is None else [candidate_data(c) for c in result.candidates],
        "chains": [] if result is None else [_chain(c) for c in result.chains],
        "origin_spans": 0 if result is None else result.origin_spans,
        "duration_ms": round(run.answer.duration_s * 1e3, 1),
    }
