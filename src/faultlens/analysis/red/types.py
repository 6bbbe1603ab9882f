"""Values of the RED stage: its config, the closed windows it emits and its counters."""

from __future__ import annotations

import math
from dataclasses import dataclass

from faultlens.analysis.sketch import QuantileSketch

SECOND_NS = 1_000_000_000
PERCENTILES = (0.5, 0.9, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class RedConfig:
    """How RED windows are cut and how long the span-id buffer remembers.

    ``window_ns``: window length (60 s by default; 10 s is the fine-grained option).
    ``allowed_lateness_ns``: a window ``[s, s+w)`` closes once data time reaches
    ``s + w + allowed_lateness``; spans for it that arrive later are counted as late.
    ``settle_ns``: how long after a span ends we wait for its children before its
    exclusive (self) time is computed; must not exceed the lateness, so that every span
    settles before its window closes.
    ``parent_buffer_ns`` / ``max_buffered_spans``: how long (data time) and how many span
    ids are kept to join children with parents that arrive in other batches.
    ``max_settling_spans``: how many spans may wait to settle (48 bytes each). Data time
    moves only with the data, so spans that keep arriving with the same timestamps would
    otherwise wait without end; past the bound the oldest settle at once, with the children
    seen so far.
    """

    window_ns: int = 60 * SECOND_NS
    allowed_lateness_ns: int = 10 * SECOND_NS
    settle_ns: int = 5 * SECOND_NS
    parent_buffer_ns: int = 120 * SECOND_NS
    max_buffered_spans: int = 4_000_000
    max_settling_spans: int = 1_000_000
    sketch_alpha: float = 0.01

    def __post_init__(self) -> None:
        if self.window_ns <= 0:
            raise ValueError("red.window_ns must be positive")
        if self.allowed_lateness_ns < 0:
            raise ValueError("red.allowed_lateness_ns must not be negative")
        if not 0 <= self.settle_ns <= self.allowed_lateness_ns:
            raise ValueError("red.settle_ns must be between 0 and red.allowed_lateness_ns")
        if self.parent_buffer_ns < self.settle_ns:
            raise ValueError("red.parent_buffer_ns must be at least red.settle_ns")
        if self.max_buffered_spans <= 0:
            raise ValueError("red.max_buffered_spans must be positive")
        if self.max_settling_spans <= 0:
            raise ValueError("red.max_settling_spans must be positive")


@dataclass(frozen=True, slots=True)
class RedWindow:
    """Requests, errors and latency of one (service, operation, span kind) in one window.

    ``latency`` holds span durations (ns); ``self_time`` holds exclusive durations (the
    span's duration minus the time of its direct children, floored at zero), which
    separates "slow here" from "slow because a callee is slow". The sketches belong to
    the window: readers must not add to them (merge into a copy instead).
    """

    service: str
    operation: str
    span_kind: int
    window_start_ns: int
    window_ns: int
    requests: int
    errors: int
    duration_sum_ns: float
    latency: QuantileSketch
    self_time_sum_ns: float
    self_time: QuantileSketch

    @property
    def window_end_ns(self) -> int:
        return self.window_start_ns + self.window_ns

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def mean_ns(self) -> float:
        return self.duration_sum_ns / self.requests if self.requests else math.nan

    def percentile(self, q: float) -> float:
        """Latency at quantile ``q`` (0..1) in ns, within the sketch's relative accuracy."""
        return self.latency.quantile(q)

    @property
    def p50_ns(self) -> float:
        return self.latency.quantile(0.5)

    @property
    def p90_ns(self) -> float:
        return self.latency.quantile(0.9)

    @property
    def p95_ns(self) -> float:
        return self.latency.quantile(0.95)

    @property
    def p99_ns(self) -> float:
        return self.latency.quantile(0.99)


@dataclass(frozen=True, slots=True)
class EdgeWindow:
    """Calls from ``caller`` service to ``callee`` service in one window.

    Found from parent/child spans across services, so it needs no span kinds. ``latency``
    holds the child's durations: the time spent "inside the callee" as seen by the call.
    """

    caller: str
    callee: str
    window_start_ns: int
    window_ns: int
    calls: int
    errors: int
    duration_sum_ns: float
    latency: QuantileSketch

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0

    @property
    def p90_ns(self) -> float:
        return self.latency.quantile(0.9)

    @property
    def p99_ns(self) -> float:
        return self.latency.quantile(0.99)


@dataclass(frozen=True, slots=True)
class ClosedWindows:
    """What one call to the aggregator closed; both tuples are empty when nothing closed."""

    red: tuple[RedWindow, ...] = ()
    edges: tuple[EdgeWindow, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.red or self.edges)


@dataclass(slots=True)
class RedCounters:
    """Running totals, so that nothing the stage drops goes unseen.

    ``late_spans``: spans whose window had already closed (not counted in any window).
    ``late_edges``: calls whose parent arrived after the child's window closed.
    ``orphan_spans``: spans with a parent id whose parent never arrived within the buffer
    (no call edge for them; normal at the edge of a trace's capture).
    ``evicted_spans``: span ids dropped early because the buffer hit its size limit.
    ``settled_early``: spans whose self time was computed before ``settle_ns`` had passed,
    because ``max_settling_spans`` were waiting (children arriving later are not subtracted).
    """

    spans: int = 0
    late_spans: int = 0
    late_edges: int = 0
    orphan_spans: int = 0
    evicted_spans: int = 0
    settled_early: int = 0
    windows_emitted: int = 0
    edge_windows_emitted: int = 0
