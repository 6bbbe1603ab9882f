"""The OTLP retry rules, in the one place that classifies answers."""

from __future__ import annotations

import email.utils

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from faultlens.export.outcome import classify_grpc, classify_http, parse_retry_after


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_http_statuses(status: int) -> None:
    assert classify_http(status, None, "").retryable


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 413, 415, 500, 501])
def test_other_http_statuses_are_permanent(status: int) -> None:
    assert not classify_http(status, "5", "").retryable


@pytest.mark.parametrize(
    "code",
    ["CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS"],
)
def test_retryable_grpc_codes(code: str) -> None:
    assert classify_grpc(grpc.StatusCode[code], "").retryable


@pytest.mark.parametrize(
    "code", ["INVALID_ARGUMENT", "UNAUTHENTICATED", "PERMISSION_DENIED", "INTERNAL", "UNKNOWN"]
)
def test_other_grpc_codes_are_permanent(code: str) -> None:
    assert not classify_grpc(grpc.StatusCode[code], "").retryable


def _retry_info(seconds: float) -> bytes:
    status = status_pb2.Status(code=8)
    status.details.add().Pack(
        error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=int(seconds), nanos=int(seconds % 1 * 1e9))
        )
    )
    return bytes(status.SerializeToString())


def test_resource_exhausted_is_retryable_only_with_retry_info() -> None:
    assert not classify_grpc(grpc.StatusCode.RESOURCE_EXHAUSTED, "").retryable
    failed = classify_grpc(grpc.StatusCode.RESOURCE_EXHAUSTED, "", _retry_info(2.5))
    assert failed.retryable and failed.retry_after_s == pytest.approx(2.5)


def test_retry_info_delay_on_unavailable() -> None:
    assert classify_grpc(grpc.StatusCode.UNAVAILABLE, "", _retry_info(0.25)).retry_after_s == pytest.approx(
        0.25
    )
    assert classify_grpc(grpc.StatusCode.UNAVAILABLE, "", b"garbage").retry_after_s is None


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    date = email.utils.formatdate(1_000_010, usegmt=True)
    assert parse_retry_after(date, now_s=1_000_000) == pytest.approx(10.0)
    assert parse_retry_after(email.utils.formatdate(5, usegmt=True), now_s=100) == 0.0  # already past
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("1e9") == 3600.0  # capped


def test_http_throttle_carries_retry_after() -> None:
    failed = classify_http(429, "7", "slow down")
    assert failed.retryable and failed.retry_after_s == 7.0 and failed.reason == "http 429"
