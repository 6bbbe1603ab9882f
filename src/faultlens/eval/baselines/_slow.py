"""The anomaly rule TraceRCA and MicroRank share: a span is slow when its duration exceeds
the mean + 3 standard deviations of its operation's baseline durations (operations with
fewer than two baseline spans are never slow)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from faultlens.graph.frame import SpanFrame


def slow_spans(cur: SpanFrame, base: SpanFrame) -> npt.NDArray[np.bool_]:
    """Per span of ``cur``: slower than its operation's baseline mean + 3 sd."""
    stats: dict[tuple[str, str], tuple[float, float]] = {}
    for k, op in enumerate(base.operations):
        d = base.duration[base.operation == k].astype(np.float64)
        if d.size >= 2:
            stats[op] = (float(d.mean()), float(d.std()))
    limit = np.full(len(cur.operations), np.inf)
    for k, op in enumerate(cur.operations):
        if op in stats:
            limit[k] = stats[op][0] + 3 * stats[op][1]
    return np.asarray(cur.duration > limit[cur.operation], dtype=np.bool_)
