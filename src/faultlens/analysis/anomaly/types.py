"""Values of anomaly detection: series keys, observations, anomalies and the config."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field


class SeriesKind(enum.StrEnum):
    """What a series measures; decides units, directions and volume guards."""

    LATENCY_P90 = "latency_p90"
    LATENCY_P99 = "latency_p99"
    SELF_TIME_P90 = "self_time_p90"
    ERROR_RATE = "error_rate"
    THROUGHPUT = "throughput"
    EDGE_LATENCY_P90 = "edge_latency_p90"
    EDGE_ERROR_RATE = "edge_error_rate"
    LOG_COUNT = "log_count"
    ERROR_LOGS = "error_logs"
    RESOURCE = "resource"
    # A gauge that reports a share of failed (or succeeded) requests, as the failed share.
    GAUGE_ERROR_RATE = "gauge_error_rate"
    # Novelty: no baseline of values, an event of its own (see :mod:`.agreement`).
    NEW_LOG_TEMPLATE = "new_log_template"
    MISSING_LOG_TEMPLATE = "missing_log_template"
    NEW_ERROR = "new_error"


NOVELTY_KINDS = frozenset(
    {SeriesKind.NEW_LOG_TEMPLATE, SeriesKind.MISSING_LOG_TEMPLATE, SeriesKind.NEW_ERROR}
)


# A score (robust spreads from the baseline) that says "a fault" on its own: the agreement rules'
# bar for a gauge's rise (``AgreementConfig.min_score``, ``wire_min_score``) and the score at
# which one anomaly opens an incident in its own window (``IncidentConfig.open_score``).
FAULT_SCORE = 100.0


class Direction(enum.StrEnum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True, order=True)
class SeriesKey:
    """Names one series. ``name`` is the operation, log template or metric name;
    ``peer`` the callee of an edge; ``resource`` the pod or instance of a resource metric."""

    kind: SeriesKind
    service: str
    name: str = ""
    peer: str = ""
    resource: str = ""

    @property
    def services(self) -> tuple[str, ...]:
        """Services the series speaks about (both ends for an edge)."""
        return (self.service, self.peer) if self.peer else (self.service,)

    @property
    def focus_service(self) -> str:
        """The service a change in this series points at: the callee for edges."""
        return self.peer or self.service

    def label(self) -> str:
        parts = [self.service]
        if self.peer:
            parts.append(f"-> {self.peer}")
        if self.name:
            parts.append(self.name)
        if self.resource and self.resource != self.service:
            parts.append(f"({self.resource})")
        return " ".join(parts)

    def as_list(self) -> list[str]:
        return [self.kind.value, self.service, self.name, self.peer, self.resource]

    @staticmethod
    def from_list(data: list[str]) -> SeriesKey:
        return SeriesKey(SeriesKind(data[0]), data[1], data[2], data[3], data[4])


@dataclass(frozen=True, slots=True)
class Observation:
    """One value of one series for one window. ``volume`` is what the value rests on
    (requests for latency and error rate; 1 when that notion does not apply)."""

    key: SeriesKey
    window_start_ns: int
    window_ns: int
    value: float
    volume: float = 1.0


@dataclass(frozen=True, slots=True)
class Anomaly:
    """An observation far from its baseline, with the figures that make it one."""

    key: SeriesKey
    window_start_ns: int
    window_ns: int
    observed: float
    expected: float
    score: float  # robust z-score: |observed - expected| / robust spread
    direction: Direction
    explanation: str
    volume: float = 1.0

    @property
    def id(self) -> str:
        raw = "|".join([*self.key.as_list(), str(self.window_start_ns)])
        return hashlib.sha1(raw.encode()).hexdigest()[:16]

    @property
    def relative_change(self) -> float:
        return (self.observed - self.expected) / abs(self.expected) if self.expected else float("inf")


def _default_min_volume() -> dict[SeriesKind, float]:
    return {
        SeriesKind.LATENCY_P90: 20,
        SeriesKind.LATENCY_P99: 50,
        SeriesKind.SELF_TIME_P90: 20,
        SeriesKind.ERROR_RATE: 20,
        SeriesKind.EDGE_LATENCY_P90: 20,
        SeriesKind.EDGE_ERROR_RATE: 20,
    }


# A share of failures a service reports over all its requests of the window, with no request
# count beside it: half a point, the whole error budget of a 99.5% objective, so a score of 5
# is a failed share risen by 2.5 points (five times that budget). Root-cause ranking judges
# these gauges with the same floor (``rca.resources.error_ratio_findings``).
GAUGE_ERROR_RATE_FLOOR = 0.005


def _default_abs_floor() -> dict[SeriesKind, float]:
    # The smallest spread we believe in, so a perfectly flat history does not make any
    # wiggle infinitely surprising. Latencies are in ns, rates in 0..1, throughput per s.
    return {
        SeriesKind.LATENCY_P90: 2e6,
        SeriesKind.LATENCY_P99: 5e6,
        SeriesKind.SELF_TIME_P90: 2e6,
        SeriesKind.EDGE_LATENCY_P90: 2e6,
        SeriesKind.ERROR_RATE: 0.02,
        SeriesKind.EDGE_ERROR_RATE: 0.02,
        SeriesKind.THROUGHPUT: 0.2,
        SeriesKind.LOG_COUNT: 2.0,
        SeriesKind.ERROR_LOGS: 1.0,
        SeriesKind.RESOURCE: 1e-9,
        SeriesKind.GAUGE_ERROR_RATE: GAUGE_ERROR_RATE_FLOOR,
    }


def _default_warmup_by_kind() -> dict[SeriesKind, int]:
    # Error logs are counts whose normal is usually zero, with a Poisson floor on the spread:
    # one window of history is enough to tell "none" from "a burst" (see ``warmup``).
    return {SeriesKind.ERROR_LOGS: 1}


def _default_directions() -> dict[SeriesKind, tuple[Direction, ...]]:
    up = (Direction.UP,)
    both = (Direction.UP, Direction.DOWN)
    return {
        SeriesKind.LATENCY_P90: up,
        SeriesKind.LATENCY_P99: up,
        SeriesKind.SELF_TIME_P90: up,
        SeriesKind.ERROR_RATE: up,
        SeriesKind.EDGE_LATENCY_P90: up,
        SeriesKind.EDGE_ERROR_RATE: up,
        SeriesKind.LOG_COUNT: both,
        SeriesKind.ERROR_LOGS: up,
        SeriesKind.THROUGHPUT: both,
        SeriesKind.RESOURCE: both,
        SeriesKind.GAUGE_ERROR_RATE: up,
    }


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Thresholds of the detector; every default is documented in docs/analysis.md.

    ``history``: windows kept per series (rolling median / MAD over them).
    ``warmup``: values a series needs before it may be judged; ``warmup_by_kind`` lowers it for
    some kinds. While a series holds fewer than ``warmup`` values, values it flags are not
    learned (in a short history one clipped outlier would move the median at once).
    ``threshold``: robust z-score (|x - median| / (1.4826 MAD)) to flag.
    ``min_relative_change``: and the change must be at least this fraction of the median
    (for drops, the same ratio: 1.0 means x2 up or /2 down).
    ``relative_floor``: the spread is at least this fraction of the median.
    ``min_volume``: per kind, the volume a window needs to be judged (quiet windows are not).
    ``accept_shift_after``: after this many anomalous windows in a row, the new level is
    taken as normal (a deploy that changed latency for good stops alerting).
    ``count_kinds``: series that count events; their spread is at least the square root of
    the median (Poisson noise), so a count that is usually 9 must move by more than 3 per unit
    of score.
    ``seasonal``: keep a per-hour-of-day baseline too, used once it has ``seasonal_warmup`` values.
    ``forget_after_s``: a series not observed for this long (in data time, against the newest
    window seen) is forgotten: services, pods and operations come and go, and their
    histories must not pile up for the life of the server.
    ``max_series``: at most this many series are kept; past it, the least recently observed
    tenth is forgotten (a burst of new cardinality costs old histories, not memory).
    """

    history: int = 30
    warmup: int = 4
    warmup_by_kind: dict[SeriesKind, int] = field(default_factory=_default_warmup_by_kind)
    threshold: float = 5.0
    min_relative_change: float = 1.0
    relative_floor: float = 0.1
    min_volume: dict[SeriesKind, float] = field(default_factory=_default_min_volume)
    abs_floor: dict[SeriesKind, float] = field(default_factory=_default_abs_floor)
    directions: dict[SeriesKind, tuple[Direction, ...]] = field(default_factory=_default_directions)
    accept_shift_after: int = 15
    count_kinds: frozenset[SeriesKind] = frozenset({SeriesKind.LOG_COUNT, SeriesKind.ERROR_LOGS})
    seasonal: bool = False
    seasonal_warmup: int = 5
    forget_after_s: float = 7 * 86_400.0
    max_series: int = 50_000

    def __post_init__(self) -> None:
        if self.forget_after_s <= 0 or self.max_series < 10:
            raise ValueError("anomaly.forget_after_s must be positive and anomaly.max_series >= 10")
        if self.history < 3 or self.warmup < 2 or self.warmup > self.history:
            raise ValueError("anomaly.history must be >= 3 and anomaly.warmup in [2, history]")
        if any(n < 1 or n > self.history for n in self.warmup_by_kind.values()):
            raise ValueError("anomaly.warmup_by_kind values must be in [1, history]")
        if self.threshold <= 0 or self.min_relative_change < 0 or self.relative_floor < 0:
            raise ValueError("anomaly.threshold must be positive and the floors non-negative")
