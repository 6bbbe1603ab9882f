"""faultlens's own telemetry: the counters and gauges exposed at ``/metrics``.

One :class:`SelfMetrics` per server instance (its own Prometheus registry), handed to every
component that counts something, so that two servers in one process never mix figures.
Every item that enters is accounted for by these counters: it is either accepted (and then
stored or dropped with a reason) or refused/rejected at the door.

Item counters (label ``signal`` is traces/metrics/logs, ``transport`` is grpc/http):

- ``faultlens_receiver_received_items_total``: items in requests that were decoded.
- ``faultlens_receiver_accepted_items_total``: items handed to the pipeline.
- ``faultlens_receiver_rejected_items_total``: invalid items left out (partial success).
- ``faultlens_receiver_refused_items_total``: items in decoded requests refused as a whole
  (pipeline full), answered with a retryable status.
- ``faultlens_receiver_refused_requests_total{reason}``: requests refused before decoding
  (too large, bad content type, malformed, unauthenticated, overloaded...).
- ``faultlens_store_written_items_total`` / ``faultlens_dropped_items_total{reason}``.
- ``faultlens_truncated_values_total{signal,what}``: strings cut and attributes dropped by
  ``receivers.limits`` (``what``: attribute_value, field, log_body, attribute_dropped).
- ``faultlens_analysis_*``: items analysed, queue lag, data-time watermark, anomalies,
  incidents opened/resolved, webhook deliveries (drops are in ``dropped_items{consumer="analysis"}``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "SelfMetrics"]


class SelfMetrics:
    """The registry and metric objects of one faultlens instance."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        st = ("signal", "transport")
        self.received_items = Counter(
            "faultlens_receiver_received_items", "Items in decoded requests.", st, registry=r
        )
        self.accepted_items = Counter(
            "faultlens_receiver_accepted_items", "Items handed to the pipeline.", st, registry=r
        )
        self.rejected_items = Counter(
            "faultlens_receiver_rejected_items", "Invalid items left out (partial success).", st, registry=r
        )
        self.refused_items = Counter(
            "faultlens_receiver_refused_items",
            "Items of decoded requests refused as a whole with a retryable status.",
            st,
            registry=r,
        )
        self.refused_requests = Counter(
            "faultlens_receiver_refused_requests",
            "Requests refused before or during decoding, by reason.",
            ("signal", "transport", "reason"),
            registry=r,
        )
        self.request_bytes = Counter(
            "faultlens_receiver_request_bytes", "Request body bytes after decompression.", st, registry=r
        )
        self.decode_seconds = Histogram(
            "faultlens_decode_seconds",
            "Time to decode one request into Arrow.",
            ("signal",),
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.store_written_items = Counter(
            "faultlens_store_written_items", "Items written to the store.", ("signal",), registry=r
        )
        self.store_flush_seconds = Histogram(
            "faultlens_store_flush_seconds",
            "Time to write one coalesced flush.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.dropped_items = Counter(
            "faultlens_dropped_items",
            "Accepted items that were dropped, by consumer and reason.",
            ("signal", "consumer", "reason"),
            registry=r,
        )
        self.queue_items = Gauge(
            "faultlens_queue_items", "Items waiting in a consumer's queue.", ("consumer",), registry=r
        )
        self.queue_capacity = Gauge(
            "faultlens_queue_capacity_items", "Capacity of a consumer's queue.", ("consumer",), registry=r
        )
        self.inflight_bytes = Gauge(
            "faultlens_admission_inflight_bytes", "Request bytes being decoded now.", registry=r
        )
        self.process_rss_bytes = Gauge(
            "faultlens_process_rss_bytes", "Resident set size seen by admission control.", registry=r
        )
        self.memory_soft_limit_bytes = Gauge(
            "faultlens_admission_memory_soft_limit_bytes", "Memory soft limit (0 = none).", registry=r
        )
        self.retention_deleted_items = Counter(
            "faultlens_retention_deleted_items", "Items removed by retention.", ("signal",), registry=r
        )
        self.truncated_values = Counter(
            "faultlens_truncated_values",
            "Values cut or attributes dropped by receivers.limits (decode.limits), by what.",
            ("signal", "what"),
            registry=r,
        )

        self.analysis_processed_items = Counter(
            "faultlens_analysis_processed_items",
            "Items the streaming analysis processed.",
            ("signal",),
            registry=r,
        )
        self.analysis_lag_seconds = Gauge(
            "faultlens_analysis_lag_seconds", "Time the last analysed batch waited in the queue.", registry=r
        )
        self.analysis_batch_seconds = Histogram(
            "faultlens_analysis_batch_seconds",
            "Time to analyse one batch.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.analysis_watermark_seconds = Gauge(
            "faultlens_analysis_watermark_seconds", "Data time the analysis has reached (Unix s).", registry=r
        )
        self.analysis_anomalies = Counter("faultlens_analysis_anomalies", "Anomalies found.", registry=r)
        self.analysis_incidents = Counter(
            "faultlens_analysis_incidents", "Incident transitions.", ("event",), registry=r
        )
        self.analysis_store_failures = Counter(
            "faultlens_analysis_store_failures",
            "Analysis results or state that could not be stored.",
            registry=r,
        )
        self.analysis_webhook_deliveries = Counter(
            "faultlens_analysis_webhook_deliveries",
            "Incident webhook notifications by outcome (delivered, failed, dropped).",
            ("outcome",),
            registry=r,
        )
        self.rca_rankings = Counter(
            "faultlens_rca_rankings",
            "Incident root-cause rankings by outcome (ranked, not_enough_data, nothing_changed, "
            "failed, coalesced, dropped).",
            ("outcome",),
            registry=r,
        )
        self.rca_attach_seconds = Histogram(
            "faultlens_rca_attach_seconds",
            "Time from an incident opening or growing to its root causes being stored.",
            buckets=(0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0),
            registry=r,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
