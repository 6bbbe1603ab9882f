"""Incident notifications: a JSON POST per incident that opens, changes root causes or resolves.

::

    notify(event, incident, answer) ──> bounded queue ──> sender thread ──POST──> url
      (never blocks; full:        (drop counted)     │ retryable failure (connection, 429, 5xx):
       dropped and counted)                          │   Backoff (export.retry) then again,
                                                     │   up to max_attempts
                                                     └ CircuitBreaker (export.breaker): while the
                                                       endpoint is down, wait instead of hammering it

The retry schedule and the breaker are the export package's own (issue 3); only the transport
differs (a plain JSON POST, not OTLP). The analysis never waits for a webhook.

In the server the root-cause worker (:mod:`faultlens.rca.worker`) stands between the analysis
and this notifier, so ``incident.opened`` carries the incident's first ranked root causes
(its top 3) and ``incident.updated`` is sent when they change. An ``incident.updated`` with no
root causes is not news and is not sent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

import httpx

from faultlens.analysis.incidents import Incident, IncidentEvent
from faultlens.config.model import WebhookConfig
from faultlens.config.redact import redact_text, redact_url
from faultlens.export.breaker import CircuitBreaker
from faultlens.export.config import BreakerConfig, RetryConfig
from faultlens.export.outcome import parse_retry_after
from faultlens.export.retry import Backoff
from faultlens.rca.model import RcaAnswer
from faultlens.rca.report import answer_fields
from faultlens.selfmetrics import SelfMetrics

__all__ = ["WebhookNotifier", "incident_payload"]

log = logging.getLogger(__name__)

# A webhook receiver is any HTTP service, not an OTLP one: beside OTLP's retryable answers
# (export.outcome.RETRYABLE_HTTP) a timeout, "too early" and a plain 500 are worth another try.
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0  # a receiver asking for longer waits at most this before the next try
TOP_ROOT_CAUSES = 3


def incident_payload(
    event: IncidentEvent, incident: Incident, answer: RcaAnswer | None = None
) -> dict[str, Any]:
    """The JSON body of one notification (documented in docs/api.md): the incident, its
    root-cause status and its top 3 root causes."""
    return {
        "event": IncidentEvent(event).value,
        **answer_fields(answer, top=TOP_ROOT_CAUSES),
        "incident": {
            "id": incident.id,
            "state": incident.state.value,
            "severity": incident.severity.name,
            "title": incident.title,
            "services": list(incident.services),
            "start_unix_nano": incident.start_ns,
            "end_unix_nano": incident.end_ns,
            "opened_unix_nano": incident.opened_ns,
            "resolved_unix_nano": incident.resolved_ns,
            "anomalies": len(incident.anomalies),
            "score": incident.score,
        },
    }


class WebhookNotifier:
    """Delivers incident events to one URL from its own thread (an ``IncidentNotifier``)."""

    def __init__(
        self,
        config: WebhookConfig,
        metrics: SelfMetrics,
        *,
        retry: RetryConfig | None = None,
        breaker: BreakerConfig | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not config.url:
            raise ValueError("a webhook needs a url")
        self._config = config
        self._url = config.url
        self._shown_url = redact_url(config.url, hide_path=True)  # hooks carry their secret in the path
        self._metrics = metrics
        self._retry = retry or RetryConfig(initial_interval=0.5, max_interval=10.0, max_elapsed_time=120.0)
        self._breaker = CircuitBreaker(breaker or BreakerConfig(failure_threshold=3, open_duration=10.0))
        self._client = httpx.Client(timeout=config.timeout, transport=transport)
        self._cond = threading.Condition()
        self._queue: deque[dict[str, Any]] = deque()
        self._stopping = False
        self._deadline: float | None = None
        self._thread = threading.Thread(target=self._run, name="faultlens-webhook", daemon=True)
        self._thread.start()

    def notify(self, event: IncidentEvent, incident: Incident, answer: RcaAnswer | None = None) -> None:
        if event is IncidentEvent.UPDATED and answer is None:
            return  # only a change of root causes makes an update worth sending
        with self._cond:
            if self._stopping or len(self._queue) >= self._config.queue_max:
                self._metrics.analysis_webhook_deliveries.labels(outcome="dropped").inc()
                return
            self._queue.append(incident_payload(event, incident, answer))
            self._cond.notify_all()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Try to deliver what is queued within ``timeout_s``; the rest is counted dropped."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._deadline = time.monotonic() + timeout_s
            self._cond.notify_all()
        self._thread.join(timeout_s)
        with self._cond:
            left = len(self._queue)
            self._queue.clear()
        if left:
            self._metrics.analysis_webhook_deliveries.labels(outcome="dropped").inc(left)
        self._client.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                body = self._queue[0]
            delivered = self._deliver(body)
            with self._cond:
                if self._queue and self._queue[0] is body:
                    self._queue.popleft()
            self._metrics.analysis_webhook_deliveries.labels(
                outcome="delivered" if delivered else "failed"
            ).inc()

    def _stop_by(self) -> float | None:
        return self._deadline if self._stopping else None

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False when shutdown's deadline would pass first."""
        deadline = self._stop_by()
        if deadline is not None and time.monotonic() + seconds > deadline:
            return False
        with self._cond:
            self._cond.wait_for(lambda: self._stopping and self._stop_by() is not None, seconds)
        return True

    def _deliver(self, body: dict[str, Any]) -> bool:
        backoff = Backoff(self._retry)
        started = time.monotonic()
        for attempt in range(self._config.max_attempts):
            permit = self._breaker.try_acquire()
            if permit is None:
                if not self._wait(max(self._breaker.wait_hint(), 0.05)):
                    return False
                continue
            retryable, hint = self._post(body)
            if retryable is None:
                self._breaker.record_success(permit)
                return True
            if not retryable:
                self._breaker.record_success(permit)  # the endpoint answered: it is up
                return False
            self._breaker.record_failure(permit)
            if attempt + 1 >= self._config.max_attempts:
                break
            delay = backoff.next_delay(hint)
            if backoff.exhausted(time.monotonic() - started, delay) or not self._wait(delay):
                break
        log.warning("incident webhook to %s gave up on %s", self._shown_url, body["incident"]["id"])
        return False

    def _post(self, body: dict[str, Any]) -> tuple[bool | None, float | None]:
        """None: delivered; True: retryable failure (with a Retry-After hint); False: permanent."""
        try:
            response = self._client.post(self._url, json=body)
        except httpx.HTTPError as e:
            log.debug("incident webhook to %s failed: %s", self._shown_url, redact_text(str(e)))
            return True, None
        if response.is_success:
            return None, None
        hint = parse_retry_after(response.headers.get("retry-after"))  # the exporter's reading
        return response.status_code in RETRYABLE_STATUS, None if hint is None else min(
            hint, MAX_RETRY_AFTER_S
        )
