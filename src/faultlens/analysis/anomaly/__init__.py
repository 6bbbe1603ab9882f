"""Anomaly detection over RED, edge, log-count and resource series.

Entry point: :class:`AnomalyDetector` (pure: observations in, :class:`Anomaly` values out,
state as plain data). :mod:`.series` turns closed windows and metric points into
:class:`Observation` values.
"""

from faultlens.analysis.anomaly.detector import AnomalyDetector, Baseline
from faultlens.analysis.anomaly.explain import explain, format_value
from faultlens.analysis.anomaly.series import (
    SERVICE_WIDE,
    SeriesOptions,
    edge_observations,
    log_count_observations,
    red_observations,
    resource_observations,
)
from faultlens.analysis.anomaly.types import (
    Anomaly,
    DetectorConfig,
    Direction,
    Observation,
    SeriesKey,
    SeriesKind,
)

__all__ = [
    "SERVICE_WIDE",
    "Anomaly",
    "AnomalyDetector",
    "Baseline",
    "DetectorConfig",
    "Direction",
    "Observation",
    "SeriesKey",
    "SeriesKind",
    "SeriesOptions",
    "edge_observations",
    "explain",
    "format_value",
    "log_count_observations",
    "red_observations",
    "resource_observations",
]
