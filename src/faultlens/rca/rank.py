"""Rank root-cause candidates of a window against a baseline: the entry point of ``rca``.

How the evidence is combined, and why this way:

- Every finding (:mod:`.spans`, :mod:`.resources`) carries an ``effect`` on one scale: the
  share of requests (or of capacity) that changed beyond the baseline, at its lower
  confidence bound. A service's score is its strongest finding's effect. Taking the
  maximum rather than a weighted sum means no weights to fit: one clear piece of
  evidence (every request of an operation now skips a log statement; a pod pinned at
  100 % CPU) is enough, and many weak ones do not add up to a strong one.
- Span findings count only spans that *originate* a change (no changed span below them
  in the trace), so callers that react to a failing callee are not blamed for it.
- Ties are broken by the next strongest findings, then by name (deterministic).

Pure: tables and a config in, a :class:`~.model.RcaResult` out; no I/O, no clock.
"""

from __future__ import annotations

from collections import defaultdict

from faultlens.analysis.templates.drain import Drain
from faultlens.graph.build import build_service_graph
from faultlens.graph.frame import span_frame
from faultlens.graph.propagation import propagation_chains
from faultlens.rca.model import Candidate, Finding, Observations, RcaConfig, RcaResult
from faultlens.rca.resources import resource_findings
from faultlens.rca.signatures import log_keys, span_signatures, usual_signatures
from faultlens.rca.spans import span_evidence

__all__ = ["rank_root_causes"]


def rank_root_causes(
    current: Observations, baseline: Observations, config: RcaConfig | None = None
) -> RcaResult:
    """Candidates for the root cause of what changed in ``current`` compared with ``baseline``."""
    cfg = config or RcaConfig()
    frame = span_frame(current.spans)
    base = span_frame(baseline.spans)
    drains: dict[str, Drain] = {}
    base_keys = log_keys(baseline.logs, drains)
    keys = log_keys(current.logs, drains)
    base_sigs = span_signatures(baseline.spans, baseline.logs, base_keys)
    sigs = span_signatures(current.spans, current.logs, keys)
    usual = usual_signatures(base, base_sigs)

    spans = span_evidence(frame, sigs, base, base_sigs, usual, cfg)
    findings = [*spans.findings, *resource_findings(current.metrics, baseline.metrics, cfg)]

    by_service: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        by_service[f.service].append(f)
    ranked: list[tuple[tuple[float, ...], str, list[Finding]]] = []
    for service, fs in by_service.items():
        fs.sort(key=lambda f: (-f.effect, f.reason.value, f.operation, f.pod))
        ranked.append((tuple(-f.effect for f in fs[:3]), service, fs))
    ranked.sort(key=lambda r: (r[0], r[1]))
    candidates = []
    for i, (_, service, fs) in enumerate(ranked[: cfg.max_candidates]):
        top = fs[0]
        candidates.append(
            Candidate(
                rank=i + 1,
                service=service,
                score=top.effect,
                reason=top.reason,
                operation=top.operation,
                pod=top.pod,
                findings=tuple(fs[: cfg.max_findings]),
            )
        )
    graph = build_service_graph(current.spans, frame=frame)
    chains = propagation_chains(graph, build_service_graph(baseline.spans, frame=base))
    return RcaResult(tuple(candidates), chains, graph, int(spans.originated.sum()))
