"""Per-destination health: a typed snapshot, and the Prometheus metrics built from it.

Counters are incremented as things happen (:class:`ExportMetrics`); gauges (breaker state,
queue depth, bytes, oldest item age, degraded) are read from each exporter's
:meth:`~faultlens.export.exporter.Exporter.health` at scrape time by a collector registered
once per :class:`~faultlens.selfmetrics.SelfMetrics` registry. Dropped items also go to the
shared ``faultlens_dropped_items_total{signal, consumer="export/<name>", reason}``.

Metrics (label ``destination`` is the exporter's configured name)::

    faultlens_export_sent_items_total{destination, signal}
    faultlens_export_sent_requests_total{destination, signal}
    faultlens_export_failed_items_total{destination, signal, reason}   permanent failures
    faultlens_export_retries_total{destination, signal}                retried attempts
    faultlens_export_breaker_state{destination}          0 closed, 1 half-open, 2 open
    faultlens_export_queue_batches{destination}
    faultlens_export_queue_items{destination}
    faultlens_export_queue_bytes{destination}
    faultlens_export_queue_oldest_age_seconds{destination}
    faultlens_export_degraded{destination}               1 while above the high-water mark
    faultlens_export_last_error_timestamp_seconds{destination}
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from faultlens.export.breaker import BreakerState
from faultlens.selfmetrics import SelfMetrics

if TYPE_CHECKING:
    from faultlens.export.exporter import Exporter


@dataclass(frozen=True, slots=True)
class DestinationHealth:
    """What ``/readyz`` and operators need to know about one destination, at one instant."""

    destination: str
    endpoint: str
    protocol: str
    running: bool
    breaker: BreakerState
    durable: bool
    queue_batches: int
    queue_items: int
    queue_bytes: int
    oldest_item_age_s: float | None
    degraded: bool
    sent_items: int
    sent_requests: int
    failed_items: int
    retried_requests: int
    dropped_items: int
    dropped_by_reason: Mapping[str, int] = field(default_factory=dict)
    last_error: str | None = None
    last_error_unix_s: float | None = None

    @property
    def healthy(self) -> bool:
        """Sending normally: running, breaker closed and not degraded."""
        return self.running and self.breaker is BreakerState.CLOSED and not self.degraded


class ExportMetrics:
    """The export counters of one :class:`SelfMetrics` registry (one instance per registry)."""

    _by_registry: weakref.WeakKeyDictionary[SelfMetrics, ExportMetrics] = weakref.WeakKeyDictionary()
    _lock = threading.Lock()

    @classmethod
    def of(cls, metrics: SelfMetrics) -> ExportMetrics:
        with cls._lock:
            found = cls._by_registry.get(metrics)
            if found is None:
                found = cls._by_registry[metrics] = ExportMetrics(metrics)
            return found

    def __init__(self, metrics: SelfMetrics) -> None:
        r = metrics.registry
        self.self_metrics = metrics
        ds = ("destination", "signal")
        self.sent_items = Counter(
            "faultlens_export_sent_items", "Items delivered to a destination.", ds, registry=r
        )
        self.sent_requests = Counter(
            "faultlens_export_sent_requests", "Requests delivered to a destination.", ds, registry=r
        )
        self.failed_items = Counter(
            "faultlens_export_failed_items",
            "Items a destination refused for good (rejected, partial success, retries exhausted).",
            (*ds, "reason"),
            registry=r,
        )
        self.retries = Counter("faultlens_export_retries", "Retried send attempts.", ds, registry=r)
        self._exporters: weakref.WeakSet[Exporter] = weakref.WeakSet()
        r.register(_HealthCollector(self._exporters))

    def track(self, exporter: Exporter) -> None:
        self._exporters.add(exporter)


class _HealthCollector(Collector):
    def __init__(self, exporters: weakref.WeakSet[Exporter]) -> None:
        self._exporters = exporters

    def collect(self) -> Iterator[Metric]:
        gauges = {
            "breaker_state": GaugeMetricFamily(
                "faultlens_export_breaker_state",
                "Circuit breaker: 0 closed, 1 half-open, 2 open.",
                labels=["destination"],
            ),
            "queue_batches": GaugeMetricFamily(
                "faultlens_export_queue_batches", "Requests waiting or in flight.", labels=["destination"]
            ),
            "queue_items": GaugeMetricFamily(
                "faultlens_export_queue_items", "Items waiting or in flight.", labels=["destination"]
            ),
            "queue_bytes": GaugeMetricFamily(
                "faultlens_export_queue_bytes", "Request bytes waiting or in flight.", labels=["destination"]
            ),
            "oldest": GaugeMetricFamily(
                "faultlens_export_queue_oldest_age_seconds",
                "Age of the oldest queued item.",
                labels=["destination"],
            ),
            "degraded": GaugeMetricFamily(
                "faultlens_export_degraded", "1 while above the high-water mark.", labels=["destination"]
            ),
            "last_error": GaugeMetricFamily(
                "faultlens_export_last_error_timestamp_seconds",
                "Unix time of the last failed attempt.",
                labels=["destination"],
            ),
        }
        for exporter in list(self._exporters):
            h = exporter.health()
            d = [h.destination]
            gauges["breaker_state"].add_metric(d, h.breaker.gauge)
            gauges["queue_batches"].add_metric(d, h.queue_batches)
            gauges["queue_items"].add_metric(d, h.queue_items)
            gauges["queue_bytes"].add_metric(d, h.queue_bytes)
            gauges["oldest"].add_metric(d, h.oldest_item_age_s or 0.0)
            gauges["degraded"].add_metric(d, 1.0 if h.degraded else 0.0)
            if h.last_error_unix_s is not None:
                gauges["last_error"].add_metric(d, h.last_error_unix_s)
        yield from gauges.values()
