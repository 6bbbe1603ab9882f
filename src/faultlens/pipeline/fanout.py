"""Fan-out of decoded batches to the consumers after ingest.

Two kinds of consumer, with an explicit policy each:

- **required** (the store): if one cannot take a batch it raises
  :class:`~faultlens.errors.Overloaded` and the whole request is refused with a retryable
  status, so the client sends it again. Required consumers are offered the batch before any
  best-effort one, so a refused request has reached nobody and a retry does not duplicate
  it downstream.
- **best effort** (exporters, analysis): if one cannot take a batch, the batch is dropped
  for that consumer only and counted in ``faultlens_dropped_items_total{consumer, reason}``.
  A slow best-effort consumer therefore never blocks ingest or the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from faultlens.decode.base import DecodedBatch
from faultlens.errors import Overloaded
from faultlens.pipeline.base import BatchConsumer
from faultlens.selfmetrics import SelfMetrics

log = logging.getLogger(__name__)


class Fanout:
    """A :class:`BatchConsumer` that hands every batch to several consumers."""

    name = "fanout"

    def __init__(
        self,
        required: Sequence[BatchConsumer],
        best_effort: Sequence[BatchConsumer] = (),
        metrics: SelfMetrics | None = None,
    ) -> None:
        self._required = list(required)
        self._best_effort = list(best_effort)
        self._metrics = metrics
        self._stopped = False

    @property
    def consumers(self) -> list[BatchConsumer]:
        return [*self._required, *self._best_effort]

    def consume(self, batch: DecodedBatch) -> None:
        if self._stopped:
            raise Overloaded("faultlens is shutting down", retry_after_s=5.0)
        if batch.accepted == 0:
            return
        if len(self._required) > 1:
            # More than one required consumer cannot be made atomic; the first refusal
            # still stops the request, and the consumers before it hold a copy.
            log.debug("fan-out with %d required consumers", len(self._required))
        for consumer in self._required:
            consumer.consume(batch)
        for consumer in self._best_effort:
            try:
                consumer.consume(batch)
            except Overloaded:
                self._count_drop(batch, consumer.name, "queue_full")
            except Exception:
                log.exception("consumer %s failed on a %s batch", consumer.name, batch.signal)
                self._count_drop(batch, consumer.name, "consumer_error")

    def _count_drop(self, batch: DecodedBatch, consumer: str, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.dropped_items.labels(batch.signal.value, consumer, reason).inc(batch.accepted)

    def start(self) -> None:
        for consumer in self.consumers:
            consumer.start()

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop taking batches, then shut every consumer down within one shared deadline."""
        if self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + timeout_s
        for consumer in self.consumers:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                consumer.shutdown(remaining)
            except Exception:
                log.exception("consumer %s failed to shut down", consumer.name)
