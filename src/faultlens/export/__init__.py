"""Resilient OTLP export: transports, retry, circuit breaker, disk queue, degradation, health.

The entry point is :class:`Exporter`, one per destination, a
:class:`~faultlens.pipeline.base.BatchConsumer`. :mod:`faultlens.export.sdk` wraps the same
engine as OpenTelemetry SDK exporters. ``docs/export.md`` explains the whole path.
"""

from faultlens.export.breaker import BreakerState, CircuitBreaker
from faultlens.export.config import (
    BreakerConfig,
    ClientTlsConfig,
    Compression,
    DegradationConfig,
    ExporterConfig,
    OverflowPolicy,
    Protocol,
    QueueConfig,
    QueueKind,
    RetryConfig,
    SyncMode,
    config_from_env,
)
from faultlens.export.exporter import Exporter
from faultlens.export.health import DestinationHealth, ExportMetrics
from faultlens.export.outcome import Delivered, Failed, SendResult
from faultlens.export.queue import MemoryQueue, QueueLocked, SqliteQueue

__all__ = [
    "BreakerConfig",
    "BreakerState",
    "CircuitBreaker",
    "ClientTlsConfig",
    "Compression",
    "DegradationConfig",
    "Delivered",
    "DestinationHealth",
    "ExportMetrics",
    "Exporter",
    "ExporterConfig",
    "Failed",
    "MemoryQueue",
    "OverflowPolicy",
    "Protocol",
    "QueueConfig",
    "QueueKind",
    "QueueLocked",
    "RetryConfig",
    "SendResult",
    "SqliteQueue",
    "SyncMode",
    "config_from_env",
]
