"""TraceRCA's scoring (Li et al., IWQoS 2021), as described in notes/baselines.md.

A span is anomalous when its duration exceeds mean + 3 sd of its operation's durations in
the normal period; a trace is anomalous when it holds an anomalous span. An operation is
scored by the harmonic mean ``2 s c / (s + c)`` of its support ``s`` (the share of anomalous
traces in which it is anomalous) and confidence ``c`` (the share of traces holding it in
which it is anomalous). A service scores its best operation. TraceRCA mines sets of
operations; single operations are its common case and what RCAEval's version ranks.
"""

from __future__ import annotations

import numpy as np

from faultlens.graph.frame import span_frame
from faultlens.rca.model import Observations

__all__ = ["tracerca"]


def tracerca(current: Observations, baseline: Observations) -> dict[str, float]:
    cur, base = span_frame(current.spans), span_frame(baseline.spans)
    if cur.n == 0 or base.n == 0:
        return {}
    stats: dict[tuple[str, str], tuple[float, float]] = {}
    for k, op in enumerate(base.operations):
        d = base.duration[base.operation == k].astype(np.float64)
        if d.size >= 2:
            stats[op] = (float(d.mean()), float(d.std()))
    limit = np.full(len(cur.operations), np.inf)
    for k, op in enumerate(cur.operations):
        if op in stats:
            limit[k] = stats[op][0] + 3 * stats[op][1]
    anomalous = cur.duration > limit[cur.operation]
    n_traces = len(cur.trace_ids)
    bad_trace = np.zeros(n_traces, dtype=bool)
    bad_trace[cur.trace[anomalous]] = True
    n_bad = int(bad_trace.sum())
    if n_bad == 0:
        return {}
    m = len(cur.operations)
    # (operation, trace) pairs, once each
    pair = np.unique(cur.operation.astype(np.int64) * n_traces + cur.trace)
    has = np.bincount(pair // n_traces, minlength=m)
    bad_pair = np.unique(cur.operation[anomalous].astype(np.int64) * n_traces + cur.trace[anomalous])
    hit = np.bincount(bad_pair // n_traces, minlength=m).astype(np.float64)
    s = hit / n_bad
    c = np.divide(hit, has, out=np.zeros(m), where=has > 0)
    score = np.divide(2 * s * c, s + c, out=np.zeros(m), where=(s + c) > 0)
    out: dict[str, float] = {}
    for k in np.nonzero(score > 0)[0].tolist():
        service = cur.operations[k][0]
        out[service] = max(out.get(service, 0.0), float(score[k]))
    return out
