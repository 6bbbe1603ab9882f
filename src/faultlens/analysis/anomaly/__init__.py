"""Anomaly detection over RED, edge, log-count and resource series, plus novelty (new or
missing log templates, new error fingerprints) and the agreement that lets weak kinds lead.

Entry point: :class:`AnomalyDetector` (pure: observations in, :class:`Anomaly` values out,
state as plain data). :mod:`.series` turns closed windows and metric points into
:class:`Observation` values.
"""

from faultlens.analysis.anomaly.agreement import Agreement, AgreementConfig
from faultlens.analysis.anomaly.detector import AnomalyDetector, Baseline
from faultlens.analysis.anomaly.explain import explain, format_value
from faultlens.analysis.anomaly.series import (
    SERVICE_WIDE,
    SeriesOptions,
    edge_observations,
    log_count_observations,
    new_error_anomaly,
    red_observations,
    resource_observations,
    template_anomalies,
)
from faultlens.analysis.anomaly.types import (
    NOVELTY_KINDS,
    Anomaly,
    DetectorConfig,
    Direction,
    Observation,
    SeriesKey,
    SeriesKind,
)

__all__ = [
    "NOVELTY_KINDS",
    "SERVICE_WIDE",
    "Agreement",
    "AgreementConfig",
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
    "new_error_anomaly",
    "red_observations",
    "resource_observations",
    "template_anomalies",
]
