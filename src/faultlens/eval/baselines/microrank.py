"""MicroRank's scoring (Yu et al., WWW 2021), as described in notes/baselines.md.

1. **Anomalous traces**: a window trace is anomalous when one of its spans lasts longer
   than mean + 3 sd of its operation's baseline durations (the detector RCAEval's version
   uses); the other window traces are the normal ones.
2. **Personalized PageRank**, once over the anomalous traces and once over the normal
   ones, on a graph of operations and traces: operation -> the operations it calls, trace
   <-> the operations it covers. The walk restarts at traces only; anomalous traces are
   preferred when they cover few operations and when few other traces share their
   operation set (MicroRank's preference vector), normal traces by the rarity of their set.
3. **Spectrum** (Dstar2): with ``ef``/``nf`` the anomalous traces that cover / do not cover
   an operation and ``ep`` the normal traces that cover it, each weighted by the
   operation's PageRank in that graph, an operation scores ``ef^2 / (ep + nf)``. A service
   scores its best operation.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from faultlens.eval.baselines._slow import slow_spans
from faultlens.graph.frame import SpanFrame, span_frame
from faultlens.rca.model import Observations

__all__ = ["microrank"]

F = npt.NDArray[np.float64]
_TINY = 1e-7


def _pagerank(frame: SpanFrame, rows: npt.NDArray[np.bool_], anomalous: bool) -> tuple[F, F]:
    """(PageRank weight, number of covering traces) per operation over the traces in ``rows``.

    Operations are those of ``frame``; an operation no trace in ``rows`` covers gets 0.
    """
    m = len(frame.operations)
    sel = np.nonzero(rows)[0]
    weight, covered = np.zeros(m), np.zeros(m)
    if sel.size == 0:
        return weight, covered
    trace_codes, trace_of = np.unique(frame.trace[sel], return_inverse=True)
    t = trace_codes.size
    ops = frame.operation[sel].astype(np.int64)
    # coverage: trace x operation, once per pair
    cover = np.zeros((t, m), dtype=bool)
    cover[trace_of, ops] = True
    covered = cover.sum(axis=0).astype(np.float64)
    # calls: operation -> callee operations, within the selected spans
    par = frame.parent[sel]
    inside = np.zeros(frame.n, dtype=bool)
    inside[sel] = True
    has = (par >= 0) & inside[np.maximum(par, 0)]
    calls = np.zeros((m, m), dtype=bool)
    calls[frame.operation[par[has]], ops[has]] = True
    # column-stochastic transition blocks (as in MicroRank: each source spreads evenly)
    out_deg = calls.sum(axis=1, keepdims=True)
    p_ss = np.divide(calls, out_deg, out=np.zeros((m, m)), where=out_deg > 0).T  # callee <- caller
    n_ops = cover.sum(axis=1, keepdims=True)
    p_sr = np.divide(cover, n_ops, out=np.zeros((t, m)), where=n_ops > 0).T  # op <- trace
    n_tr = cover.sum(axis=0, keepdims=True)
    p_rs = np.divide(cover, n_tr, out=np.zeros((t, m)), where=n_tr > 0)  # trace <- op
    # preference over traces
    _, kind_of, kind_size = np.unique(cover, axis=0, return_inverse=True, return_counts=True)
    kind = kind_size[kind_of.reshape(-1)].astype(np.float64)
    length = np.bincount(trace_of, minlength=t).astype(np.float64)  # spans per trace
    if anomalous:
        kind_sum = float(np.sum(1.0 / kind))
        num_sum = float(np.sum(1.0 / length))
        pref = 1.0 / (kind / kind_sum * 0.5 + 1.0 / length) / num_sum * 0.5
    else:
        pref = (1.0 / kind) / float(np.sum(1.0 / kind))
    d, alpha = 0.85, 0.01
    s = np.full(m, 1.0 / (m + t))
    r = np.full(t, 1.0 / (m + t))
    for _ in range(25):
        s_new = d * (p_sr @ r + alpha * (p_ss @ s))
        r_new = d * (p_rs @ s) + (1.0 - d) * pref
        s = s_new / s_new.max() if s_new.max() > 0 else s_new
        r = r_new / r_new.max() if r_new.max() > 0 else r_new
    present = covered > 0
    weight = np.where(present, s * s[present].sum() / max(int(present.sum()), 1), 0.0)
    return weight, covered


def microrank(current: Observations, baseline: Observations) -> dict[str, float]:
    """Service -> the Dstar2 spectrum score of its best operation."""
    cur, base = span_frame(current.spans), span_frame(baseline.spans)
    if cur.n == 0 or base.n == 0:
        return {}
    slow = slow_spans(cur, base)
    bad_trace = np.zeros(len(cur.trace_ids), dtype=bool)
    bad_trace[cur.trace[slow]] = True
    in_bad = bad_trace[cur.trace]
    n_bad = int(bad_trace.sum())
    if n_bad == 0:
        return {}
    w_a, c_a = _pagerank(cur, in_bad, anomalous=True)
    w_n, c_n = _pagerank(cur, ~in_bad, anomalous=False)
    in_a, in_n = c_a > 0, c_n > 0
    ef = np.where(in_a, w_a * c_a, _TINY)
    nf = np.where(in_a, w_a * (n_bad - c_a), _TINY)
    ep = np.where(in_a & in_n, w_n * c_n, np.where(in_a, _TINY, (1 + w_n) * c_n))
    score = ef * ef / np.maximum(ep + nf, 1e-12)
    out: dict[str, float] = {}
    for k in np.nonzero(in_a | in_n)[0].tolist():
        service = cur.operations[k][0]
        out[service] = max(out.get(service, 0.0), float(score[k]))
    return out
