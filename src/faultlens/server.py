"""Wiring: build every stage from the config and own the order of start and shutdown.

Start order is store -> intake log (opened) -> store writer and analysis (restoring its
state) -> fan-out -> replay of the intake log (acknowledged requests the store does not hold
yet) -> API -> receivers, so nothing is accepted before it can be stored. Shutdown reverses
it: receivers stop accepting and finish their in-flight requests, the fan-out flushes every
accepted batch to the store, then lets the analysis finish its queue and save its state (one
deadline, ``shutdown_timeout_s``), then the intake log is trimmed and closed, then the API,
the analysis tables and the store close. ``shutdown`` is safe to call twice.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

from faultlens.analysis.runtime import AnalysisConsumer, build_analysis, webhook_notifier
from faultlens.api import ApiServer, HealthState, create_app
from faultlens.api.security import ApiSecurity
from faultlens.config.model import Config, ExporterConfig
from faultlens.decode.limits import apply_limits
from faultlens.export import Exporter
from faultlens.glibcmalloc import TRIM_EVERY_S, trim_heap
from faultlens.pipeline.base import BatchConsumer
from faultlens.pipeline.fanout import Fanout
from faultlens.rca.worker import RCA_MAX_ROWS, RootCauseWorker, root_cause_worker
from faultlens.receive import Receivers
from faultlens.receive.intake import Durability, IntakeLog, replay_intake
from faultlens.selfmetrics import SelfMetrics
from faultlens.server_memwatch import MemoryWatch, from_environ
from faultlens.store import RetentionTask, Store, StoreConsumer
from faultlens.store.analysis_base import AnalysisStore
from faultlens.store.backend import open_backend

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Listener:
    name: str  # otlp-grpc | otlp-http | api
    host: str
    port: int


class FaultlensServer:
    """One faultlens instance: receivers, pipeline, store and API in one process."""

    def __init__(self, config: Config, shutdown_timeout_s: float = 30.0) -> None:
        self.config = config
        self.shutdown_timeout_s = shutdown_timeout_s
        self.metrics = SelfMetrics()
        self.health = HealthState(["store", "receivers"])
        self.store: Store | None = None
        self._writer: StoreConsumer | None = None
        self._retention: RetentionTask | None = None
        self._fanout: Fanout | None = None
        self._api: ApiServer | None = None
        self._receivers: Receivers | None = None
        self.analysis: AnalysisConsumer | None = None
        self.analysis_store: AnalysisStore | None = None
        self.root_causes: RootCauseWorker | None = None
        self.exporters: list[Exporter] = []
        self.intake: IntakeLog | None = None
        self._trimmer: asyncio.Task[None] | None = None
        self._memwatch: MemoryWatch | None = None
        self._heap_trimmer: asyncio.Task[None] | None = None
        self._stopped = False

    async def start(self) -> list[Listener]:
        """Start every stage; returns the listeners with their bound ports."""
        cfg = self.config
        backend = open_backend(cfg.store)
        self.store = store = backend.store
        self.intake = self._open_intake()
        self._writer = StoreConsumer(
            store,
            cfg.store,
            self.metrics,
            retry_after_s=cfg.admission.retry_after,
            on_outcome=self._store_outcome,
            intake=self.intake,
        )
        if cfg.analysis.enabled:
            self.analysis_store = backend.open_analysis()
            # Root causes are ranked off the analysis thread when incidents open or grow, once
            # the writer has landed what was accepted; the webhook hears of incidents after.
            self.root_causes = root_cause_worker(
                backend.windows(max_rows=RCA_MAX_ROWS),
                self.analysis_store,
                self.metrics,
                notifier=webhook_notifier(cfg.analysis, self.metrics),
                before_read=self._writer.flush,
            )
            self.analysis = build_analysis(
                cfg.analysis,
                self.analysis_store,
                self.metrics,
                notifier=self.root_causes,
                services=store.services,
            )
        self.exporters = [
            Exporter(self._with_queue_dir(e), metrics=self.metrics, intake=self.intake)
            for e in cfg.pipeline.exporters
        ]
        best_effort: list[BatchConsumer] = [*self.exporters]
        if self.analysis is not None:
            best_effort.append(self.analysis)
        self.health.add_details("exporters", self._exporter_details)
        self._fanout = Fanout(required=[self._writer], best_effort=best_effort, metrics=self.metrics)
        self._fanout.start()
        if self.intake is not None:
            await asyncio.to_thread(self._replay_intake, self.intake, self._fanout, self._writer)
            self._trimmer = asyncio.create_task(self._trim_intake(self.intake))
        self._retention = RetentionTask(store, cfg.store, self.metrics, analysis=self.analysis_store)
        self._retention.start()
        self.health.set_ready("store")
        listeners: list[Listener] = []
        if cfg.api.enabled:
            app = create_app(
                store,
                self.metrics,
                self.health,
                analysis=self.analysis_store,
                windows=backend.windows(),
                security=ApiSecurity.from_config(cfg),  # refuses an unauthenticated exposed API if asked
            )
            self._api = ApiServer(app, cfg.api.host, cfg.api.port, tls=cfg.api.tls, limits=cfg.api)
            await asyncio.to_thread(self._api.start)
            listeners.append(Listener("api", cfg.api.host, self._api.port))
        self._receivers = Receivers(
            cfg.receivers, cfg.admission, self._fanout, self.metrics, intake=self.intake
        )
        ports = await self._receivers.start()
        if ports.grpc is not None:
            listeners.append(Listener("otlp-grpc", cfg.receivers.grpc.host, ports.grpc))
        if ports.http is not None:
            listeners.append(Listener("otlp-http", cfg.receivers.http.host, ports.http))
        self.health.set_ready("receivers")
        self._heap_trimmer = asyncio.create_task(self._trim_heap())
        self._memwatch = from_environ(cfg.store)  # FL_MEMWATCH_DIR: off unless set
        if self._memwatch is not None:
            self._memwatch.start()
        return listeners

    def _open_intake(self) -> IntakeLog | None:
        """The intake log of ``intake`` config, opened (a torn tail cut off), or None."""
        cfg = self.config.intake
        durability = Durability(cfg.durability)
        if durability is Durability.NONE:
            return None
        intake = IntakeLog(
            cfg.directory or self.config.store.data_dir / "intake",
            durability=durability,
            segment_bytes=cfg.segment_bytes,
            max_bytes=cfg.max_bytes,
            retry_after_s=self.config.admission.retry_after,
        )
        stats = intake.open()
        if stats.records:
            log.info(
                "intake log: %d requests in %d segments (%d cancelled), %d torn bytes cut off",
                stats.records,
                stats.segments,
                stats.cancelled,
                stats.torn_bytes,
            )
        return intake

    def _replay_intake(self, intake: IntakeLog, fanout: Fanout, writer: StoreConsumer) -> None:
        assert self.store is not None
        # What the store holds but the log still keeps may not have reached an export queue.
        forward = None
        if self.exporters:
            forward = Fanout(required=[], best_effort=self.exporters, metrics=self.metrics)
        handed = replay_intake(
            intake,
            self.store,
            fanout,
            forward=forward,
            limit=functools.partial(apply_limits, limits=self.config.receivers.limits, metrics=self.metrics),
            wait_for_room=lambda: writer.flush(5.0),
        )
        if handed:
            log.info("intake log: replayed %d acknowledged requests the store did not hold", handed)

    async def _trim_intake(self, intake: IntakeLog, interval_s: float = 1.0) -> None:
        """Delete applied segments of the intake log, and the store's record of them."""
        forgotten = 0
        while True:
            await asyncio.sleep(interval_s)
            try:
                below = intake.trim()
                if below > forgotten and self.store is not None:
                    await asyncio.to_thread(self.store.forget_intake, below)
                    forgotten = below
            except Exception:  # the next round tries again; the log only grows meanwhile
                log.exception("trimming the intake log failed")

    async def _trim_heap(self, interval_s: float = TRIM_EVERY_S) -> None:
        """Give glibc's free heap pages back to the system now and then (``glibcmalloc``)."""
        while True:  # off glibc each round returns at once
            await asyncio.sleep(interval_s)
            await asyncio.to_thread(trim_heap)

    def _store_outcome(self, error: Exception | None) -> None:
        """The store is ready while its writes land; the last failure is the reason it is not."""
        if error is None:
            self.health.set_ready("store")
        else:
            self.health.set_not_ready("store", f"writes failing: {error}")

    def _with_queue_dir(self, exporter: ExporterConfig) -> ExporterConfig:
        """A disk queue without an explicit directory lives beside the store's data."""
        if "directory" in exporter.queue.model_fields_set:
            return exporter
        queue = exporter.queue.model_copy(update={"directory": self.config.store.data_dir / "export"})
        return exporter.model_copy(update={"queue": queue})

    def _exporter_details(self) -> dict[str, Any]:
        """Per destination: breaker, queue depth and bytes, oldest item age, counts, last error."""
        out: dict[str, Any] = {}
        for exporter in self.exporters:
            h = exporter.health()
            out[h.destination] = {
                "healthy": h.healthy,
                "endpoint": h.endpoint,
                "protocol": h.protocol,
                "breaker": h.breaker.value,
                "degraded": h.degraded,
                "queue_batches": h.queue_batches,
                "queue_items": h.queue_items,
                "queue_bytes": h.queue_bytes,
                "oldest_item_age_s": h.oldest_item_age_s,
                "sent_items": h.sent_items,
                "failed_items": h.failed_items,
                "retried_requests": h.retried_requests,
                "dropped_items": h.dropped_items,
                "dropped_by_reason": dict(h.dropped_by_reason),
                "last_error": h.last_error,
            }
        return out

    async def shutdown(self) -> None:
        """Stop in reverse order within ``shutdown_timeout_s``; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + self.shutdown_timeout_s
        if self._memwatch is not None:
            await asyncio.to_thread(self._memwatch.stop)

        def remaining() -> float:
            return max(0.5, deadline - time.monotonic())

        self.health.set_not_ready("receivers", "shutting down")
        if self._receivers is not None:
            await self._receivers.shutdown(min(5.0, remaining()))
        if self._fanout is not None:
            await asyncio.to_thread(self._fanout.shutdown, remaining())
        if self._trimmer is not None:
            self._trimmer.cancel()
        if self._heap_trimmer is not None:
            self._heap_trimmer.cancel()
        if self.intake is not None:
            self.intake.trim()
            self.intake.close()
        if self._retention is not None:
            await asyncio.to_thread(self._retention.shutdown, min(5.0, remaining()))
        if self._api is not None:
            await asyncio.to_thread(self._api.shutdown, min(5.0, remaining()))
        if self.analysis_store is not None:
            await asyncio.to_thread(self.analysis_store.close)
        if self.store is not None:
            self.health.set_not_ready("store", "closed")
            await asyncio.to_thread(self.store.close)
        log.info("faultlens stopped")
