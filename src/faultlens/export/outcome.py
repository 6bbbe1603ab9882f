"""What one send attempt came to, and the one place that classifies OTLP answers.

Transports never raise for an answer from the destination: they return a
:class:`Delivered` or a :class:`Failed`, built by the functions here. The rules are those of
the OTLP specification (protocol/exporter.md, "Failures" and "Throttling"):

==========================  ======================================================  ===========
answer                      classification                                          retry hint
==========================  ======================================================  ===========
HTTP 2xx / gRPC OK          delivered; ``partial_success.rejected_*`` counted,      -
                            logged, never retried
HTTP 429, 502, 503, 504     retryable                                               Retry-After
                                                                                    (seconds or
                                                                                    HTTP date)
other HTTP 4xx/5xx          permanent (400 is never retried)                        -
gRPC CANCELLED,             retryable                                               RetryInfo
DEADLINE_EXCEEDED, ABORTED,
OUT_OF_RANGE, UNAVAILABLE,
DATA_LOSS
gRPC RESOURCE_EXHAUSTED     retryable only when the status carries RetryInfo        RetryInfo
other gRPC codes            permanent                                               -
connection refused/reset,   retryable (the destination may come back)               -
timeout, protocol error
==========================  ======================================================  ===========
"""

from __future__ import annotations

import email.utils
import math
import time
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2

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
# Retry hints longer than this are treated as this: a misconfigured backend should not park a
# destination for a day.
MAX_RETRY_AFTER_S = 3600.0


@dataclass(frozen=True, slots=True)
class Delivered:
    """The destination took the request. ``rejected`` items were refused inside it (partial success)."""

    rejected: int = 0
    message: str = ""


@dataclass(frozen=True, slots=True)
class Failed:
    """The request was not taken. ``reason`` is short and stable (a metric label's worth)."""

    retryable: bool
    reason: str
    message: str
    retry_after_s: float | None = None

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}" if self.message else self.reason


SendResult = Delivered | Failed


def parse_retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delay-seconds or an HTTP date; ``None`` if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now_s is None else now_s)
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def retry_info_delay(status_details: bytes | None) -> float | None:
    """The ``RetryInfo.retry_delay`` inside a ``grpc-status-details-bin`` trailer, in seconds."""
    if not status_details:
        return None
    try:
        status = status_pb2.Status.FromString(status_details)
    except Exception:  # a garbled trailer is no hint, not an error
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            delay = float(info.retry_delay.seconds) + info.retry_delay.nanos / 1e9
            return float(min(max(delay, 0.0), MAX_RETRY_AFTER_S))
    return None


def classify_grpc(code: grpc.StatusCode, details: str, status_details: bytes | None = None) -> Failed:
    """Classify a non-OK gRPC status (``status_details`` is the ``grpc-status-details-bin`` trailer)."""
    retry_after = retry_info_delay(status_details)
    name = code.name if code is not None else "UNKNOWN"
    if code in RETRYABLE_GRPC:
        return Failed(True, f"grpc {name}", details or "", retry_after)
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED and retry_after is not None:
        return Failed(True, f"grpc {name}", details or "", retry_after)
    return Failed(False, f"grpc {name}", details or "")


def classify_http(status: int, retry_after_header: str | None, message: str) -> Failed:
    """Classify a non-2xx HTTP answer."""
    if status in RETRYABLE_HTTP:
        return Failed(True, f"http {status}", message, parse_retry_after(retry_after_header))
    return Failed(False, f"http {status}", message)


def connection_failure(kind: str, message: str) -> Failed:
    """No answer at all (refused, reset, timed out): always retryable."""
    return Failed(True, kind, message)
