from __future__ import annotations

import json

import grpc
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from faultlens.decode import DecodedBatch, encode_response, encode_status
from faultlens.types import Signal


@pytest.mark.parametrize(
    ("signal", "cls", "field", "json_field"),
    [
        (Signal.TRACES, ExportTraceServiceResponse, "rejected_spans", "rejectedSpans"),
        (Signal.LOGS, ExportLogsServiceResponse, "rejected_log_records", "rejectedLogRecords"),
        (Signal.METRICS, ExportMetricsServiceResponse, "rejected_data_points", "rejectedDataPoints"),
    ],
)
def test_partial_success_carries_the_count_and_first_reason(
    signal: Signal, cls: type, field: str, json_field: str
) -> None:
    batch = DecodedBatch(
        signal, DecodedBatch.empty(signal).table, rejected=3, error_message="span 1 of 5 rejected: x"
    )
    response = cls.FromString(encode_response(signal, batch, json=False))
    assert getattr(response.partial_success, field) == 3
    assert response.partial_success.error_message == "span 1 of 5 rejected: x"
    doc = json.loads(encode_response(signal, batch, json=True))
    assert int(doc["partialSuccess"][json_field]) == 3
    assert doc["partialSuccess"]["errorMessage"] == "span 1 of 5 rejected: x"


@pytest.mark.parametrize("signal", list(Signal))
def test_full_success_has_no_partial_success(signal: Signal) -> None:
    batch = DecodedBatch.empty(signal)
    assert encode_response(signal, batch, json=False) == b""
    assert json.loads(encode_response(signal, batch, json=True)) == {}


def test_status_body_in_both_encodings() -> None:
    code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
    status = Status.FromString(encode_status(code, "bad hex in traceId", json=False))
    assert (status.code, status.message) == (3, "bad hex in traceId")
    assert json.loads(encode_status(code, "bad hex in traceId", json=True)) == {
        "code": 3,
        "message": "bad hex in traceId",
    }
