"""Retention: a thread that deletes what is older than the configured retention.

It runs once at :meth:`RetentionTask.start` (a server that was down for a while cleans up
at once) and then every ``interval_s``. A failed run is logged and retried at the next
interval; it never stops the task. Deleted items are counted in
``faultlens_retention_deleted_items_total{signal}``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from faultlens.config.model import StoreConfig
from faultlens.selfmetrics import SelfMetrics
from faultlens.store.base import RetentionResult
from faultlens.types import Signal

__all__ = ["RetentionTask"]

log = logging.getLogger(__name__)


class _Retains(Protocol):
    def enforce_retention(self, now_unix_nano: int, retention_ns: int) -> RetentionResult: ...


class _RetainsSeries(Protocol):
    def enforce_retention(self, now_unix_nano: int, retention_ns: int) -> int: ...


class RetentionTask:
    """Calls ``store.enforce_retention`` periodically between :meth:`start` and :meth:`shutdown`."""

    def __init__(
        self,
        store: _Retains,
        config: StoreConfig,
        metrics: SelfMetrics,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        analysis: _RetainsSeries | None = None,
    ) -> None:
        """``config`` gives ``retention`` and ``retention_check_interval``; ``clock_ns`` is
        the wall clock (Unix nanoseconds) that item times are compared with; ``analysis``,
        the analysis tables, whose series the same retention trims after the store's."""
        self._store = store
        self._analysis = analysis
        self._metrics = metrics
        self._retention_ns = int(config.retention * 1e9)
        # A zero interval would spin; once a second is as often as retention can matter.
        self._interval_s = max(1.0, config.retention_check_interval)
        self._clock_ns = clock_ns
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run_once(self) -> RetentionResult:
        """Enforce retention now and count what was deleted; errors propagate."""
        now = self._clock_ns()
        result = self._store.enforce_retention(now, self._retention_ns)
        deleted = self._metrics.retention_deleted_items
        deleted.labels(signal=Signal.TRACES.value).inc(result.spans_deleted)
        deleted.labels(signal=Signal.LOGS.value).inc(result.logs_deleted)
        deleted.labels(signal=Signal.METRICS.value).inc(result.metric_points_deleted)
        if result.spans_deleted or result.logs_deleted or result.metric_points_deleted:
            log.info(
                "retention removed %d spans, %d log records, %d data points older than %d",
                result.spans_deleted,
                result.logs_deleted,
                result.metric_points_deleted,
                result.cutoff_unix_nano,
            )
        if self._analysis is not None:
            rows = self._analysis.enforce_retention(now, self._retention_ns)
            if rows:
                log.info(
                    "retention removed %d rows of analysis series older than %d",
                    rows,
                    result.cutoff_unix_nano,
                )
        return result

    def start(self) -> None:
        """Start the thread; a second call, or a call after shutdown, does nothing."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="faultlens-retention", daemon=True)
            self._thread.start()

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop the thread, waiting up to ``timeout_s`` for a run in progress. Safe to call twice."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("retention run failed; retrying in %.0f s", self._interval_s)
            self._stop.wait(self._interval_s)
