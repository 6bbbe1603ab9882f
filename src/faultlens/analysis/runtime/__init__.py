"""The streaming analysis wired into the server: engine, pipeline consumer, webhook.

Entry points: :func:`build_analysis` makes the :class:`AnalysisConsumer` (a best-effort
:class:`~faultlens.pipeline.base.BatchConsumer`) from the ``analysis`` config section;
:class:`AnalysisEngine` is the pure orchestrator of the cores it runs, usable on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from faultlens.analysis.anomaly import DetectorConfig, Observation
from faultlens.analysis.anomaly.seed import RedReader, red_history
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
    services: Callable[[], list[str]] | None = None,
) -> AnalysisConsumer:
    """The analysis consumer for ``config``, persisting to ``store`` (not started).

    Incidents are told to ``notifier`` (the server passes its root-cause worker, which wraps
    the webhook); without one, to the configured webhook directly.
    """
    if notifier is None:
        notifier = webhook_notifier(config, metrics)
    engine = AnalysisEngine(engine_config(config))
    return AnalysisConsumer(
        engine,
        store,
        metrics,
        queue_max_items=config.queue_max_items,
        state_interval_s=config.state_interval,
        linger_s=config.batch_linger,
        notifier=notifier,
        history=_history(engine, store, services),
    )


def _history(
    engine: AnalysisEngine, store: AnalysisWriter, services: Callable[[], list[str]] | None
) -> Callable[[], list[Observation]] | None:
    """Where a start without saved state seeds its baselines: the store's RED windows of the
    last ``history`` windows before now (see :mod:`faultlens.analysis.anomaly.seed`)."""
    if services is None or not isinstance(store, RedReader):
        return None
    reader, c = store, engine.config

    def read() -> list[Observation]:
        return red_history(reader, services(), time.time_ns(), c.window_ns, c.detector.history)

    return read
