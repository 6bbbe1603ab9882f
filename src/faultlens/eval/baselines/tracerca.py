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

from faultlens.eval.baselines._slow import slow_spans
from faultlens.graph.frame import span_frame
from faultlens.rca.model import Observations

__all__ = ["tracerca"]


def tracerca(current: Observations, baseline: Observations) -> dict[str, float]:
    cur, base = span_frame(current.spans), span_frame(baseline.spans)
    if cur.n == 0 or base.n == 0:
        return {}
    anomalous = slow_spans(cur, base)
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
