"""A small blocking OTLP client: one request at a time over gRPC or HTTP/protobuf.

Replay needs to know, per request, how many items arrived, how many the server rejected
(OTLP partial success) and why a request failed, so it uses this client rather than an
SDK exporter, which hides all three. Retries follow the OTLP specification: only
retryable outcomes (gRPC UNAVAILABLE and friends, HTTP 429/502/503/504, connection
errors) are tried again, at most ``max_attempts`` times in all, waiting what the server
asks (``Retry-After``, ``google.rpc.RetryInfo``) or else an exponential backoff, and never
longer than ``max_backoff_s`` per wait.

This is a replay tool, not the resilient exporter of :mod:`faultlens.export`: no disk
queue, no circuit breaker. A request that still fails is reported, not kept.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import httpx
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from faultlens.types import Signal, Transport

_RESPONSES: dict[Signal, type[Message]] = {
    Signal.TRACES: trace_service_pb2.ExportTraceServiceResponse,
    Signal.METRICS: metrics_service_pb2.ExportMetricsServiceResponse,
    Signal.LOGS: logs_service_pb2.ExportLogsServiceResponse,
}
_REJECTED_FIELD = {
    Signal.TRACES: "rejected_spans",
    Signal.METRICS: "rejected_data_points",
    Signal.LOGS: "rejected_log_records",
}
RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
RETRYABLE_GRPC = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


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
    max_attempts: int = 5
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Wait before attempt ``attempt + 1`` when the server gave no hint (full jitter)."""
        base = self.initial_backoff_s * float(2 ** max(0, attempt - 1))
        return min(self.max_backoff_s, base) * random.uniform(0.5, 1.0)


class OtlpSender(Protocol):
    """Sends one export request and reports what became of it. Never raises for a failed
    request; ``close`` is idempotent."""

    def send(self, signal: Signal, request: Message, items: int) -> SendResult: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Attempt:
    ok: bool
    retryable: bool = False
    retry_after_s: float | None = None
    rejected: int = 0
    error: str = ""


class _RetryingSender:
    def __init__(self, policy: RetryPolicy, sleep: Callable[[float], None]) -> None:
        self.policy = policy
        self._sleep = sleep

    def send(self, signal: Signal, request: Message, items: int) -> SendResult:
        attempt = 0
        while True:
            attempt += 1
            outcome = self._attempt(signal, request)
            if outcome.ok:
                return SendResult(items, True, min(outcome.rejected, items), outcome.error, attempt)
            if not outcome.retryable or attempt >= self.policy.max_attempts:
                return SendResult(items, False, 0, outcome.error, attempt)
            hint = outcome.retry_after_s
            wait = self.policy.backoff(attempt) if hint is None else hint
            self._sleep(max(0.0, min(wait, self.policy.max_backoff_s)))

    def _attempt(self, signal: Signal, request: Message) -> _Attempt:
        raise NotImplementedError

    @staticmethod
    def _partial(signal: Signal, response: Message) -> _Attempt:
        if not response.HasField("partial_success"):
            return _Attempt(ok=True)
        ps: Any = response.partial_success  # type: ignore[attr-defined]
        rejected = int(getattr(ps, _REJECTED_FIELD[signal]))
        return _Attempt(ok=True, rejected=rejected, error=str(ps.error_message))


class GrpcSender(_RetryingSender):
    """OTLP/gRPC via the generated stubs of ``opentelemetry-proto``."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float = 10.0,
        headers: dict[str, str] | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(policy or RetryPolicy(), sleep)
        target, secure = _grpc_target(endpoint)
        options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
        self._channel = (
            grpc.secure_channel(target, grpc.ssl_channel_credentials(), options=options)
            if secure
            else grpc.insecure_channel(target, options=options)
        )
        self._timeout_s = timeout_s
        self._metadata = tuple((k.lower(), v) for k, v in (headers or {}).items())
        self._calls = {
            Signal.TRACES: trace_service_pb2_grpc.TraceServiceStub(self._channel).Export,  # type: ignore[no-untyped-call]
            Signal.METRICS: metrics_service_pb2_grpc.MetricsServiceStub(self._channel).Export,  # type: ignore[no-untyped-call]
            Signal.LOGS: logs_service_pb2_grpc.LogsServiceStub(self._channel).Export,  # type: ignore[no-untyped-call]
        }
        self._closed = False

    def _attempt(self, signal: Signal, request: Message) -> _Attempt:
        try:
            response = self._calls[signal](request, timeout=self._timeout_s, metadata=self._metadata)
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
            details = e.details() if hasattr(e, "details") else ""
            hint = _grpc_retry_info(e)
            exhausted = code == grpc.StatusCode.RESOURCE_EXHAUSTED
            retryable = code in RETRYABLE_GRPC or (exhausted and hint is not None)
            return _Attempt(False, retryable, hint, error=f"gRPC {code.name}: {details}")
        return self._partial(signal, response)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._channel.close()


class HttpSender(_RetryingSender):
    """OTLP/HTTP with binary protobuf bodies, via httpx."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float = 10.0,
        headers: dict[str, str] | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(policy or RetryPolicy(), sleep)
        base = endpoint if "://" in endpoint else f"http://{endpoint}"
        self._base = base.rstrip("/")
        self._client = httpx.Client(
            timeout=timeout_s,
            headers={"content-type": "application/x-protobuf", **(headers or {})},
            transport=transport,
        )

    def url(self, signal: Signal) -> str:
        return f"{self._base}/v1/{signal.value}"

    def _attempt(self, signal: Signal, request: Message) -> _Attempt:
        try:
            response = self._client.post(self.url(signal), content=request.SerializeToString())
        except httpx.TransportError as e:
            return _Attempt(False, True, error=f"HTTP transport: {type(e).__name__}: {e}")
        if response.status_code // 100 == 2:
            answer = _RESPONSES[signal]()
            if "protobuf" in response.headers.get("content-type", "") and response.content:
                try:
                    answer.ParseFromString(response.content)
                except DecodeError:
                    return _Attempt(ok=True)
            return self._partial(signal, answer)
        retryable = response.status_code in RETRYABLE_HTTP
        hint = _retry_after(response.headers.get("retry-after")) if retryable else None
        error = f"HTTP {response.status_code}: {_http_message(response)}"
        return _Attempt(False, retryable, hint, error=error)

    def close(self) -> None:
        self._client.close()


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


def _grpc_target(endpoint: str) -> tuple[str, bool]:
    """``http://h:p`` / ``h:p`` -> insecure ``h:p``; ``https://h:p`` -> TLS."""
    if endpoint.startswith("https://"):
        return endpoint[len("https://") :].rstrip("/"), True
    if endpoint.startswith("http://"):
        return endpoint[len("http://") :].rstrip("/"), False
    return endpoint.rstrip("/"), False


def _grpc_retry_info(error: grpc.RpcError) -> float | None:
    """The delay of a ``google.rpc.RetryInfo`` in the error's status details, if any."""
    trailers = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailers or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except DecodeError:
            return None
        for detail in status.details:
            info = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                return float(info.retry_delay.seconds) + float(info.retry_delay.nanos) / 1e9
    return None


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _http_message(response: httpx.Response) -> str:
    """The server's reason: a ``google.rpc.Status`` body if protobuf, else short text."""
    if "protobuf" in response.headers.get("content-type", ""):
        status = status_pb2.Status()
        try:
            status.ParseFromString(response.content)
            return status.message or response.reason_phrase
        except DecodeError:
            pass
    text = response.text.strip()
    return text[:200] if text else response.reason_phrase
