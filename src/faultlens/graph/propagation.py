"""Error propagation: where an error started in each trace, and how a fault spread in a window.

Per trace: a failing span *originates* its error when none of its descendants fails; a
failing span with a failing descendant only *passed it on*. The error path runs from the
origin up through its failing ancestors. "Failing" is any per-span mask, so the same code
serves span status errors, spans with ERROR logs, or spans whose logs changed pattern.

Per window, in the spirit of MicroHECL (Liu et al., ICSE-SEIP 2021): an edge of the service
graph is anomalous when its error rate or latency rose against a baseline graph; chains
start at the entry services and follow anomalous edges downstream; each chain ends where
no outgoing edge is anomalous, and that end is where the fault most likely sits. Every
chain edge carries the figures that made it anomalous.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from faultlens.graph.frame import B, SpanFrame
from faultlens.graph.model import Edge, ServiceGraph

__all__ = [
    "ChainConfig",
    "ChainEdge",
    "OriginCount",
    "PropagationChain",
    "SpanRef",
    "TraceErrorPath",
    "chain_ends",
    "error_origins",
    "has_flagged_descendant",
    "origin_counts",
    "propagation_chains",
    "strongest_descendant",
    "trace_error_paths",
]


@dataclass(frozen=True, slots=True)
class SpanRef:
    service: str
    operation: str
    pod: str


@dataclass(frozen=True, slots=True)
class TraceErrorPath:
    """One trace's error: the originating span first, then each failing ancestor."""

    trace_id: bytes
    origin: SpanRef
    path: tuple[SpanRef, ...]


@dataclass(frozen=True, slots=True)
class OriginCount:
    """How often spans of one operation originated, or only passed on, a flagged state."""

    service: str
    operation: str
    originated: int
    passed_on: int


def has_flagged_descendant(frame: SpanFrame, flagged: B) -> B:
    """For each span, whether some descendant (not itself) is flagged. One pass per tree level."""
    out = np.zeros(frame.n, dtype=bool)
    frontier = np.unique(frame.parent[flagged & (frame.parent >= 0)])
    depth = 0
    while frontier.size and depth < 10_000:
        frontier = frontier[~out[frontier]]
        out[frontier] = True
        up = frame.parent[frontier]
        frontier = np.unique(up[up >= 0])
        depth += 1
    return out


def strongest_descendant(frame: SpanFrame, strength: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """For each span, the largest ``strength`` among its descendants (not itself); 0 if none.

    Depths are found by walking parents once per level; values then move up one level at
    a time, deepest first, so the cost is O(spans x depth) in numpy.
    """
    n = frame.n
    depth = np.zeros(n, dtype=np.int64)
    cur = frame.parent.copy()
    steps = 0
    while steps < 10_000:
        has = cur >= 0
        if not has.any():
            break
        depth[has] += 1
        cur[has] = frame.parent[cur[has]]
        steps += 1
    best = np.zeros(n, dtype=np.float64)
    carry = np.maximum(strength.astype(np.float64), 0.0)
    for d in range(int(depth.max(initial=0)), 0, -1):
        rows = np.nonzero((depth == d) & (frame.parent >= 0))[0]
        np.maximum.at(best, frame.parent[rows], np.maximum(carry[rows], best[rows]))
    return best


def error_origins(frame: SpanFrame, flagged: B | None = None) -> tuple[B, B]:
    """(originated, passed_on) masks: flagged spans without / with a flagged descendant."""
    flagged = frame.error if flagged is None else flagged
    below = has_flagged_descendant(frame, flagged)
    return flagged & ~below, flagged & below


def origin_counts(frame: SpanFrame, flagged: B | None = None) -> tuple[OriginCount, ...]:
    """Per operation, how many flagged spans originated and how many passed on; most origins first."""
    orig, passed = error_origins(frame, flagged)
    m = len(frame.operations)
    o = np.bincount(frame.operation[orig], minlength=m)
    p = np.bincount(frame.operation[passed], minlength=m)
    out = [
        OriginCount(frame.operations[k][0], frame.operations[k][1], int(o[k]), int(p[k]))
        for k in np.nonzero(o + p)[0].tolist()
    ]
    return tuple(sorted(out, key=lambda c: (-c.originated, -c.passed_on, c.service, c.operation)))


def _ref(frame: SpanFrame, row: int) -> SpanRef:
    return SpanRef(
        frame.services[frame.service[row]],
        frame.operations[frame.operation[row]][1],
        frame.pods[frame.pod[row]],
    )


def trace_error_paths(
    frame: SpanFrame, flagged: B | None = None, *, max_paths: int = 1_000
) -> tuple[TraceErrorPath, ...]:
    """Error paths of (at most ``max_paths``) originating spans, in span order."""
    flagged = frame.error if flagged is None else flagged
    orig, _ = error_origins(frame, flagged)
    paths: list[TraceErrorPath] = []
    for row in np.nonzero(orig)[0][:max_paths].tolist():
        chain = [_ref(frame, row)]
        cur = int(frame.parent[row])
        hops = 0
        while cur >= 0 and hops < 1_000:
            if flagged[cur]:
                ref = _ref(frame, cur)
                if ref != chain[-1]:
                    chain.append(ref)
            cur = int(frame.parent[cur])
            hops += 1
        paths.append(TraceErrorPath(frame.trace_ids[frame.trace[row]], chain[0], tuple(chain)))
    return tuple(paths)


# ---- window level ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainConfig:
    """When an edge counts as anomalous against its baseline.

    Latency: p90 at least ``latency_ratio`` times the baseline p90 and at least
    ``min_latency_increase_ns`` more. Errors: the rise in error rate is at least
    ``min_error_z`` standard errors (binomial, baseline rate smoothed by one call).
    """

    latency_ratio: float = 1.5
    min_latency_increase_ns: float = 5e6
    min_error_z: float = 3.0
    min_calls: int = 3
    max_chains: int = 20


@dataclass(frozen=True, slots=True)
class ChainEdge:
    caller: str
    callee: str
    evidence: tuple[str, ...]
    latency_ratio: float
    error_rate: float
    baseline_error_rate: float


@dataclass(frozen=True, slots=True)
class PropagationChain:
    """Anomalous edges from an entry service down to ``end``, where the chain stops."""

    edges: tuple[ChainEdge, ...]

    @property
    def end(self) -> str:
        return self.edges[-1].callee if self.edges else ""

    @property
    def services(self) -> tuple[str, ...]:
        return (self.edges[0].caller, *(e.callee for e in self.edges)) if self.edges else ()


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.1f} ms"


def _edge_anomaly(cur: Edge, base: Edge | None, cfg: ChainConfig) -> ChainEdge | None:
    s = cur.stats
    if s.calls < cfg.min_calls:
        return None
    evidence: list[str] = []
    b_rate = 0.0
    ratio = 1.0
    if base is not None and base.stats.calls:
        b = base.stats
        b_rate = (b.errors + 0.5) / (b.calls + 1)
        ratio = s.latency_p90_ns / max(b.latency_p90_ns, 1.0)
        if ratio >= cfg.latency_ratio and s.latency_p90_ns - b.latency_p90_ns >= cfg.min_latency_increase_ns:
            evidence.append(f"p90 {_ms(s.latency_p90_ns)} vs baseline {_ms(b.latency_p90_ns)}")
        if s.network_p90_ns is not None and b.network_p90_ns is not None:
            nr = s.network_p90_ns / max(b.network_p90_ns, 1.0)
            if nr >= cfg.latency_ratio and s.network_p90_ns - b.network_p90_ns >= cfg.min_latency_increase_ns:
                evidence.append(
                    f"time outside the callee p90 {_ms(s.network_p90_ns)} vs baseline {_ms(b.network_p90_ns)}"
                )
                ratio = max(ratio, nr)
    else:
        b_rate = 0.5 / (s.calls + 1)
    se = math.sqrt(max(b_rate * (1 - b_rate), 1e-9) / s.calls)
    if (s.error_rate - b_rate) / se >= cfg.min_error_z and s.errors > 0:
        evidence.append(f"errors {s.errors}/{s.calls} ({s.error_rate:.0%}) vs baseline {b_rate:.0%}")
    if not evidence:
        return None
    return ChainEdge(cur.caller, cur.callee, tuple(evidence), ratio, s.error_rate, b_rate)


def propagation_chains(
    current: ServiceGraph, baseline: ServiceGraph, config: ChainConfig | None = None
) -> tuple[PropagationChain, ...]:
    """Chains of anomalous edges from entry services down to where they stop.

    Chains follow anomalous edges depth first, never revisiting a service on the same
    chain; the longest chains come first (they reach deepest).
    """
    cfg = config or ChainConfig()
    base = {(e.caller, e.callee): e for e in baseline.edges}
    anomalous: dict[str, list[ChainEdge]] = {}
    for e in current.edges:
        a = _edge_anomaly(e, base.get((e.caller, e.callee)), cfg)
        if a is not None:
            anomalous.setdefault(e.caller, []).append(a)
    callees = {a.callee for edges in anomalous.values() for a in edges}
    starts = [s for s in anomalous if s not in callees] or sorted(anomalous)
    chains: list[PropagationChain] = []

    def walk(node: str, path: list[ChainEdge], seen: set[str]) -> None:
        if len(chains) >= cfg.max_chains * 10:
            return
        nxt = [a for a in anomalous.get(node, []) if a.callee not in seen]
        if not nxt:
            if path:
                chains.append(PropagationChain(tuple(path)))
            return
        for a in nxt:
            walk(a.callee, [*path, a], seen | {a.callee})

    for s in sorted(starts):
        walk(s, [], {s})
    chains.sort(key=lambda c: (-len(c.edges), c.services))
    return tuple(chains[: cfg.max_chains])


def chain_ends(chains: Sequence[PropagationChain]) -> dict[str, int]:
    """How many chains end at each service."""
    out: dict[str, int] = {}
    for c in chains:
        out[c.end] = out.get(c.end, 0) + 1
    return out
