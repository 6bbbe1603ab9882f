"""A blocking OTLP client for replay: one request at a time, with per-request outcomes.

Replay needs to know, per request, how many items arrived, how many the server rejected
(OTLP partial success) and why a request failed, so it uses this client rather than an
SDK exporter, which hides all three. The wire is the exporter's own
(:mod:`faultlens.export.transport`: gRPC or HTTP/protobuf, classified by
:mod:`faultlens.export.outcome`), so there is one OTLP client and one reading of the OTLP
retry rules: only retryable outcomes (gRPC UNAVAILABLE and friends, HTTP 429/502/503/504,
connection errors) are tried again, at most ``max_attempts`` times in all, waiting what the
server asks (``Retry-After``, ``google.rpc.RetryInfo``) or else the exporter's exponential
backoff (:class:`faultlens.export.retry.Backoff`), and never longer than ``max_backoff_s``
per wait.

This is a replay tool, not the resilient exporter of :mod:`faultlens.export`: no disk
queue, no circuit breaker. A request that still fails is reported, not kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from google.protobuf.message import Message

from faultlens.export.config import ClientTlsConfig, Compression, ExporterConfig, RetryConfig
from faultlens.export.config import Protocol as WireProtocol
from faultlens.export.outcome import Delivered
from faultlens.export.retry import Backoff
from faultlens.export.transport import Transport as WireTransport
from faultlens.export.transport import make_transport
from faultlens.types import Signal, Transport


@dataclass(frozen=True, slots=True)
class SendResult:
    """What became of one request of ``items`` items.

    ``delivered`` means the server answered success (possibly partial); then ``rejected``
    of the items were refused by the server and the rest accepted. When not delivered, all
    ``items`` are lost to this replay and ``error`` says why.
    """

    items: int
    delivered: bool
    rejected: int = 0
    error: str = ""
    attempts: int = 1

    @property
    def accepted(self) -> int:
        return self.items - self.rejected if self.delivered else 0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard replay tries one request: ``max_attempts`` in all, waits of the exporter's
    backoff starting at ``initial_backoff_s``, none longer than ``max_backoff_s``."""

    max_attempts: int = 5
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def backoff(self) -> Backoff:
        """The delays of one request's retries (a server's hint replaces the computed one)."""
        return Backoff(
            RetryConfig(
                initial_interval=self.initial_backoff_s,
                max_interval=self.max_backoff_s,
                max_elapsed_time=0,
            )
        )


class OtlpSender(Protocol):
    """Sends one export request and reports what became of it. Never raises for a failed
    request; ``close`` is idempotent."""

    def send(self, signal: Signal, request: Message, items: int) -> SendResult: ...

    def close(self) -> None: ...


class _RetryingSender:
    """An export transport, tried again by :class:`RetryPolicy` while the outcome is retryable."""

    def __init__(
        self,
        config: ExporterConfig,
        timeout_s: float,
        policy: RetryPolicy | None,
        sleep: Callable[[float], None],
    ) -> None:
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._timeout_s = timeout_s
        self._transport: WireTransport = make_transport(config)
        self._closed = False

    def send(self, signal: Signal, request: Message, items: int) -> SendResult:
        body = request.SerializeToString()
        backoff = self.policy.backoff()
        attempt = 0
        while True:
            attempt += 1
            result = self._transport.send(signal, body, self._timeout_s)
            if isinstance(result, Delivered):
                return SendResult(items, True, min(result.rejected, items), result.message, attempt)
            if not result.retryable or attempt >= self.policy.max_attempts:
                return SendResult(items, False, 0, str(result), attempt)
            wait = backoff.next_delay(result.retry_after_s)
            self._sleep(max(0.0, min(wait, self.policy.max_backoff_s)))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._transport.close()


def _config(
    protocol: WireProtocol, endpoint: str, timeout_s: float, headers: dict[str, str] | None
) -> ExporterConfig:
    """The exporter config of a replay destination: uncompressed, as a local server gets it
    fastest; a bare ``host:port`` is plaintext (``https://`` asks for TLS)."""
    return ExporterConfig(
        name="replay",
        protocol=protocol,
        endpoint=endpoint,
        headers=headers or {},
        compression=Compression.NONE,
        timeout=timeout_s,
        tls=ClientTlsConfig(insecure=not endpoint.startswith("https://")),
    )


class GrpcSender(_RetryingSender):
    """OTLP/gRPC (the export transport's :class:`~faultlens.export.transport.grpc.GrpcTransport`)."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float = 10.0,
        headers: dict[str, str] | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(_config(WireProtocol.GRPC, endpoint, timeout_s, headers), timeout_s, policy, sleep)


class HttpSender(_RetryingSender):
    """OTLP/HTTP with binary protobuf bodies (the export transport's ``HttpTransport``)."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float = 10.0,
        headers: dict[str, str] | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        base = (endpoint if "://" in endpoint else f"http://{endpoint}").rstrip("/")
        super().__init__(
            _config(WireProtocol.HTTP_PROTOBUF, base, timeout_s, headers), timeout_s, policy, sleep
        )


def make_sender(
    endpoint: str,
    transport: Transport = Transport.GRPC,
    *,
    timeout_s: float = 10.0,
    headers: dict[str, str] | None = None,
    policy: RetryPolicy | None = None,
) -> OtlpSender:
    if transport == Transport.GRPC:
        return GrpcSender(endpoint, timeout_s=timeout_s, headers=headers, policy=policy)
    return HttpSender(endpoint, timeout_s=timeout_s, headers=headers, policy=policy)
