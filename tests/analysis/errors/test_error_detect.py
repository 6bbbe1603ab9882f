"""Error detection on Arrow tables built with the exact decoded schemas."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from faultlens.analysis.errors import (
    ErrorReason,
    SpanKind,
    detect_errors,
    detect_log_errors,
    detect_span_errors,
)
from faultlens.decode.schema import LOG_SCHEMA, SPAN_SCHEMA
from faultlens.types import Signal

T0 = 1_700_000_000_000_000_000


def span(i: int, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "trace_id": bytes([i]) * 16,
        "span_id": bytes([i]) * 8,
        "name": f"op{i}",
        "kind": int(SpanKind.SERVER),
        "start_time_unix_nano": T0 + i,
        "end_time_unix_nano": T0 + i + 10,
        "duration_ns": 10,
        "status_code": 0,
        "service_name": "cart",
    }
    row.update(kw)
    return row


def log(i: int, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "time_unix_nano": T0 + i,
        "severity_number": 9,
        "body": f"line {i}",
        "service_name": "cart",
    }
    row.update(kw)
    return row


def spans(*rows: dict[str, Any]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=SPAN_SCHEMA)


def logs(*rows: dict[str, Any]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=LOG_SCHEMA)


def test_ok_spans_are_not_errors() -> None:
    t = spans(
        span(1),
        span(2, status_code=1, http_status_code=200),
        span(3, kind=int(SpanKind.SERVER), http_status_code=404),
    )
    assert detect_span_errors(t) == []


def test_span_status_error_and_exception_event() -> None:
    t = spans(
        span(1, status_code=2, status_message="boom"),
        span(2, exception_type="java.net.ConnectException", exception_message="Connection refused"),
    )
    e1, e2 = detect_span_errors(t)
    assert e1.reasons == (ErrorReason.SPAN_STATUS,) and e1.message == "boom" and e1.signal is Signal.TRACES
    assert e2.reasons == (ErrorReason.EXCEPTION,) and e2.exception_type == "java.net.ConnectException"
    assert e1.trace_id == bytes([1]) * 16 and e1.operation == "op1" and e1.service == "cart"


def test_http_status_per_span_kind() -> None:
    client, server = int(SpanKind.CLIENT), int(SpanKind.SERVER)
    t = spans(
        span(1, kind=server, http_status_code=404),  # caller's fault: not a server error
        span(2, kind=client, http_status_code=404),
        span(3, kind=server, http_status_code=503),
        span(4, kind=client, http_status_code=302),
    )
    found = {e.operation: e.reasons for e in detect_span_errors(t)}
    assert found == {"op2": (ErrorReason.HTTP_STATUS,), "op3": (ErrorReason.HTTP_STATUS,)}


def test_grpc_status_per_span_kind() -> None:
    client, server = int(SpanKind.CLIENT), int(SpanKind.SERVER)
    t = spans(
        span(1, kind=server, rpc_grpc_status_code=5),  # NOT_FOUND: not a server error
        span(2, kind=client, rpc_grpc_status_code=5),
        span(3, kind=server, rpc_grpc_status_code=14),
        span(4, kind=server, rpc_grpc_status_code=0),
        span(5, kind=client, rpc_grpc_status_code=0),
    )
    assert [e.operation for e in detect_span_errors(t)] == ["op2", "op3"]


def test_error_type_and_several_reasons() -> None:
    t = spans(span(1, error_type="timeout"), span(2, status_code=2, http_status_code=500, error_type="500"))
    e1, e2 = detect_span_errors(t)
    assert e1.reasons == (ErrorReason.ERROR_TYPE,)
    assert set(e2.reasons) == {ErrorReason.SPAN_STATUS, ErrorReason.HTTP_STATUS, ErrorReason.ERROR_TYPE}


def test_log_severity_number_and_text() -> None:
    t = logs(
        log(1, severity_number=17),
        log(2, severity_number=21, severity_text="FATAL"),
        log(3, severity_number=13, severity_text="WARN"),
        log(4, severity_number=0, severity_text="error"),
        log(5, severity_number=None, severity_text="CRITICAL"),
        log(6, severity_number=0, severity_text="INFO"),
        log(7, severity_number=13, severity_text="ERROR"),  # the number wins when set
    )
    assert [e.body for e in detect_log_errors(t)] == ["line 1", "line 2", "line 4", "line 5"]


def test_log_with_exception_attributes_is_an_error() -> None:
    t = logs(log(1, severity_number=13, exception_type="ValueError", exception_message="bad"))
    (e,) = detect_log_errors(t)
    assert e.reasons == (ErrorReason.EXCEPTION,) and e.signal is Signal.LOGS


def test_error_log_is_correlated_to_its_span() -> None:
    s = spans(span(1), span(2))
    t = logs(
        log(1, severity_number=17, trace_id=bytes([2]) * 16, span_id=bytes([2]) * 8),
        log(2, severity_number=17, trace_id=bytes([9]) * 16, span_id=bytes([9]) * 8),
        log(3, severity_number=17),
    )
    events = detect_errors(s, t)
    assert [(e.operation, e.correlated) for e in events] == [("op2", True), (None, False), (None, False)]
    assert events[1].trace_id == bytes([9]) * 16


def test_empty_tables() -> None:
    assert detect_errors(SPAN_SCHEMA.empty_table(), LOG_SCHEMA.empty_table()) == []
    assert detect_errors() == []
