"""The streaming analysis wired into the server: engine, pipeline consumer, webhook.

Entry points: :func:`build_analysis` makes the :class:`AnalysisConsumer` (a best-effort
:class:`~faultlens.pipeline.base.BatchConsumer`) from the ``analysis`` config section;
:class:`AnalysisEngine` is the pure orchestrator of the cores it runs, usable on its own.
"""

from __future__ import annotations

from faultlens.analysis.anomaly import DetectorConfig
from faultlens.analysis.incidents import IncidentConfig
from faultlens.analysis.runtime.consumer import CONSUMER, AnalysisConsumer, IncidentNotifier
from faultlens.analysis.runtime.engine import SECOND_NS, AnalysisEngine, EngineConfig, Step
from faultlens.analysis.runtime.webhook import WebhookNotifier, incident_payload
from faultlens.config.model import AnalysisConfig
from faultlens.selfmetrics import SelfMetrics
from faultlens.store.analysis_base import AnalysisWriter

__all__ = [
    "CONSUMER",
    "AnalysisConsumer",
    "AnalysisEngine",
    "EngineConfig",
    "IncidentNotifier",
    "Step",
    "WebhookNotifier",
    "build_analysis",
    "engine_config",
    "incident_payload",
    "webhook_notifier",
]


def engine_config(config: AnalysisConfig) -> EngineConfig:
    """The engine settings of an ``analysis`` config section."""
    window_ns = int(config.window * SECOND_NS)
    return EngineConfig(
        window_ns=window_ns,
        lateness_ns=int(config.lateness * SECOND_NS),
        detector=DetectorConfig(threshold=config.anomaly_threshold),
        incidents=IncidentConfig(
            window_ns=window_ns,
            open_min_anomalies=config.incident_min_anomalies,
            resolve_after_windows=config.incident_resolve_after,
        ),
    )


def webhook_notifier(config: AnalysisConfig, metrics: SelfMetrics) -> WebhookNotifier | None:
    """The incident webhook of an ``analysis`` config section (None when no url is set)."""
    return WebhookNotifier(config.webhook, metrics) if config.webhook.url else None


def build_analysis(
    config: AnalysisConfig,
    store: AnalysisWriter,
    metrics: SelfMetrics,
    *,
    notifier: IncidentNotifier | None = None,
) -> AnalysisConsumer:
    """The analysis consumer for ``config``, persisting to ``store`` (not started).

    Incidents are told to ``notifier`` (the server passes its root-cause worker, which wraps
    the webhook); without one, to the configured webhook directly.
    """
    if notifier is None:
        notifier = webhook_notifier(config, metrics)
    return AnalysisConsumer(
        AnalysisEngine(engine_config(config)),
        store,
        metrics,
        queue_max_items=config.queue_max_items,
        state_interval_s=config.state_interval,
        linger_s=config.batch_linger,
        notifier=notifier,
    )
