"""The "largest latency increase" rule: the service whose own requests slowed down most.

What an on-call engineer does first with a latency dashboard: per service, the p90 of the
requests it serves (spans whose parent is in another service, or roots) in the window,
divided by the same p90 in the baseline; the largest ratio is the suspect.
"""

from __future__ import annotations

import numpy as np

from faultlens.graph.frame import SpanFrame, span_frame
from faultlens.rca.model import Observations

__all__ = ["largest_latency_increase"]


def _p90_by_service(frame: SpanFrame) -> dict[str, float]:
    entry = frame.cross_service() | (frame.parent < 0)
    out: dict[str, float] = {}
    for k, service in enumerate(frame.services):
        d = frame.duration[entry & (frame.service == k)]
        if d.size:
            out[service] = float(np.quantile(d.astype(np.float64), 0.9))
    return out


def largest_latency_increase(current: Observations, baseline: Observations) -> dict[str, float]:
    cur, base = _p90_by_service(span_frame(current.spans)), _p90_by_service(span_frame(baseline.spans))
    return {s: v / max(base[s], 1.0) for s, v in cur.items() if s in base}
