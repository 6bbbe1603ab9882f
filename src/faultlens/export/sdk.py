"""OpenTelemetry Python SDK exporters on the faultlens export engine.

Drop-ins for the official OTLP exporters (``OTLPSpanExporter`` and friends) that keep data
through outages and restarts: ``export()`` hands the encoded request to an
:class:`~faultlens.export.Exporter` (queue, retry by the OTLP rules, circuit breaker) and
returns once it is committed to the queue, so the SDK's batch processor is never held up by
a slow or absent backend. Give ``queue_dir`` (or set ``FAULTLENS_EXPORT_QUEUE_DIR``) to put
the queue on disk; what was not sent when the process stopped is sent by the next process
that opens the same directory. Without it the queue is in memory (retry and breaker still apply).

Configuration follows the official exporters: the standard ``OTEL_EXPORTER_OTLP_*``
variables with their per-signal overrides (:func:`~faultlens.export.config.config_from_env`),
and the usual keyword arguments (``endpoint``, ``headers``, ``timeout`` in seconds,
``compression``, ``insecure``) on top. ``protocol`` defaults to the variable, else
``http/protobuf``. A complete :class:`~faultlens.export.ExporterConfig` may be passed instead.

::

    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from faultlens.export.sdk import SpanExporter

    provider.add_span_processor(BatchSpanProcessor(SpanExporter(queue_dir="/var/lib/app/otlp")))

Needs ``opentelemetry-sdk`` and ``opentelemetry-exporter-otlp-proto-common`` (the encoders).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExportResult, MetricsData
from opentelemetry.sdk.metrics.export import MetricExporter as _SdkMetricExporter
from opentelemetry.sdk.metrics.view import Aggregation
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter as _SdkSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from faultlens.errors import ConfigError
from faultlens.export.config import ExporterConfig, Protocol, QueueKind, config_from_env, parse_headers
from faultlens.export.exporter import Exporter
from faultlens.selfmetrics import SelfMetrics
from faultlens.types import Signal

__all__ = ["LogExporter", "MetricExporter", "SpanExporter"]

log = logging.getLogger(__name__)

QUEUE_DIR_ENV = "FAULTLENS_EXPORT_QUEUE_DIR"
TEMPORALITY_ENV = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"


def build_config(
    signal: Signal,
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | str | None = None,
    timeout: float | None = None,
    compression: str | None = None,
    insecure: bool | None = None,
    queue_dir: str | Path | None = None,
    name: str | None = None,
    config: ExporterConfig | None = None,
    environ: Mapping[str, str] | None = None,
) -> ExporterConfig:
    """The :class:`ExporterConfig` an SDK exporter of ``signal`` runs with (arguments over env)."""
    env = dict(os.environ if environ is None else environ)
    if config is not None:
        return config.model_copy(update={"signals": (signal,)})
    if protocol is not None:
        env[f"OTEL_EXPORTER_OTLP_{signal.value.upper()}_PROTOCOL"] = protocol
    base = config_from_env(signal, env)
    update: dict[str, Any] = {"name": name or f"sdk-{signal.value}"}
    if endpoint is not None:
        if base.protocol is Protocol.GRPC:
            update["endpoint"] = endpoint
        else:
            update[f"{signal.value}_endpoint"] = endpoint  # used as is, as the official exporters do
    if headers is not None:
        update["headers"] = parse_headers(headers) if isinstance(headers, str) else dict(headers)
    if timeout is not None:
        update["timeout"] = float(timeout)
    if compression is not None:
        update["compression"] = (
            str(getattr(compression, "name", compression)).lower().replace("nocompression", "none")
        )
    if insecure is not None:
        update["tls"] = base.tls.model_copy(update={"insecure": insecure})
    directory = queue_dir if queue_dir is not None else env.get(QUEUE_DIR_ENV) or None
    queue = (
        {"kind": QueueKind.DISK, "directory": Path(directory)} if directory else {"kind": QueueKind.MEMORY}
    )
    update["queue"] = base.queue.model_copy(update=queue)
    try:
        return ExporterConfig.model_validate({**base.model_dump(), **update})
    except ValueError as exc:
        raise ConfigError(f"faultlens.export.sdk.{signal.value}", str(exc)) from None


class _Engine:
    """The exporter behind one SDK exporter, and the common export/flush/shutdown logic."""

    def __init__(
        self, signal: Signal, config: ExporterConfig, metrics: SelfMetrics | None, wait_s: float
    ) -> None:
        self.signal = signal
        self.wait_s = wait_s
        self.exporter = Exporter(config, metrics=metrics)
        self.exporter.start()
        self._shut = False

    def submit(self, body: bytes, items: int) -> bool:
        if self._shut:
            return False
        return self.exporter.submit(self.signal, body, items, wait_s=self.wait_s)

    def flush(self, timeout_millis: float) -> bool:
        return self.exporter.flush(timeout_millis / 1000.0)

    def shutdown(self, timeout_millis: float) -> None:
        self._shut = True
        self.exporter.shutdown(timeout_millis / 1000.0)


class SpanExporter(_SdkSpanExporter):
    """``OTLPSpanExporter`` with a queue (on disk with ``queue_dir``), retry and circuit breaker."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        protocol: str | None = None,
        headers: Mapping[str, str] | str | None = None,
        timeout: float | None = None,
        compression: str | None = None,
        insecure: bool | None = None,
        queue_dir: str | Path | None = None,
        config: ExporterConfig | None = None,
        metrics: SelfMetrics | None = None,
        enqueue_timeout: float = 10.0,
        shutdown_timeout: float = 30.0,
    ) -> None:
        cfg = build_config(
            Signal.TRACES,
            endpoint=endpoint,
            protocol=protocol,
            headers=headers,
            timeout=timeout,
            compression=compression,
            insecure=insecure,
            queue_dir=queue_dir,
            config=config,
        )
        self._engine = _Engine(Signal.TRACES, cfg, metrics, enqueue_timeout)
        self._shutdown_ms = shutdown_timeout * 1000
        self.exporter = self._engine.exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        body = encode_spans(spans).SerializeToString()
        return SpanExportResult.SUCCESS if self._engine.submit(body, len(spans)) else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._engine.flush(timeout_millis)

    def shutdown(self) -> None:
        self._engine.shutdown(self._shutdown_ms)


class LogExporter(LogRecordExporter):
    """``OTLPLogExporter`` with a queue (on disk with ``queue_dir``), retry and circuit breaker."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        protocol: str | None = None,
        headers: Mapping[str, str] | str | None = None,
        timeout: float | None = None,
        compression: str | None = None,
        insecure: bool | None = None,
        queue_dir: str | Path | None = None,
        config: ExporterConfig | None = None,
        metrics: SelfMetrics | None = None,
        enqueue_timeout: float = 10.0,
        shutdown_timeout: float = 30.0,
    ) -> None:
        cfg = build_config(
            Signal.LOGS,
            endpoint=endpoint,
            protocol=protocol,
            headers=headers,
            timeout=timeout,
            compression=compression,
            insecure=insecure,
            queue_dir=queue_dir,
            config=config,
        )
        self._engine = _Engine(Signal.LOGS, cfg, metrics, enqueue_timeout)
        self._shutdown_ms = shutdown_timeout * 1000
        self.exporter = self._engine.exporter

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        if not batch:
            return LogRecordExportResult.SUCCESS
        body = encode_logs(batch).SerializeToString()
        ok = self._engine.submit(body, len(batch))
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._engine.flush(timeout_millis)

    def shutdown(self) -> None:
        self._engine.shutdown(self._shutdown_ms)


def temporality_from_env(environ: Mapping[str, str] | None = None) -> dict[type, AggregationTemporality]:
    """``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE``: cumulative (default), delta, lowmemory."""
    env = os.environ if environ is None else environ
    value = env.get(TEMPORALITY_ENV, "").strip().lower() or "cumulative"
    cumulative, delta = AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA
    kinds: tuple[type, ...] = (
        Counter,
        UpDownCounter,
        Histogram,
        ObservableCounter,
        ObservableUpDownCounter,
        ObservableGauge,
    )
    prefs: dict[type, AggregationTemporality] = dict.fromkeys(kinds, cumulative)
    if value == "delta":
        prefs.update({Counter: delta, Histogram: delta, ObservableCounter: delta})
    elif value == "lowmemory":
        prefs.update({Counter: delta, Histogram: delta})
    elif value != "cumulative":
        log.warning("%s=%r is not cumulative, delta or lowmemory; using cumulative", TEMPORALITY_ENV, value)
    return prefs


def _points(data: MetricsData) -> int:
    n = 0
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                n += len(getattr(metric.data, "data_points", ()))
    return n


class MetricExporter(_SdkMetricExporter):
    """``OTLPMetricExporter`` with a queue (on disk with ``queue_dir``), retry and circuit breaker."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        protocol: str | None = None,
        headers: Mapping[str, str] | str | None = None,
        timeout: float | None = None,
        compression: str | None = None,
        insecure: bool | None = None,
        queue_dir: str | Path | None = None,
        config: ExporterConfig | None = None,
        metrics: SelfMetrics | None = None,
        enqueue_timeout: float = 10.0,
        shutdown_timeout: float = 30.0,
        preferred_temporality: dict[type, AggregationTemporality] | None = None,
        preferred_aggregation: dict[type, Aggregation] | None = None,
    ) -> None:
        super().__init__(
            preferred_temporality=preferred_temporality or temporality_from_env(),
            preferred_aggregation=preferred_aggregation,
        )
        cfg = build_config(
            Signal.METRICS,
            endpoint=endpoint,
            protocol=protocol,
            headers=headers,
            timeout=timeout,
            compression=compression,
            insecure=insecure,
            queue_dir=queue_dir,
            config=config,
        )
        self._engine = _Engine(Signal.METRICS, cfg, metrics, enqueue_timeout)
        self._shutdown_ms = shutdown_timeout * 1000
        self.exporter = self._engine.exporter

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        points = _points(metrics_data)
        if points == 0:
            return MetricExportResult.SUCCESS
        body = encode_metrics(metrics_data).SerializeToString()
        return MetricExportResult.SUCCESS if self._engine.submit(body, points) else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._engine.flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._engine.shutdown(min(timeout_millis, self._shutdown_ms))
