from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from faultlens.decode import decode_request
from faultlens.decode.schema import LOG_SCHEMA
from faultlens.testing.payloads import any_value, key_values
from faultlens.types import Signal

from .expect import attrs_dict


def request_of(*records: LogRecord) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.extend(key_values({"service.name": "billing", "k8s.pod.name": "billing-1"}))
    sl = rl.scope_logs.add()
    sl.scope.name = "app.logger"
    sl.scope.version = "2.1"
    sl.log_records.extend(records)
    return req


def decode(req: ExportLogsServiceRequest) -> Any:
    return decode_request(Signal.LOGS, req.SerializeToString(), json=False)


def test_every_record_of_a_realistic_request_survives(logs_request: ExportLogsServiceRequest) -> None:
    batch = decode(logs_request)
    assert batch.rejected == 0 and batch.table.schema == LOG_SCHEMA
    records = [r for rl in logs_request.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    rows = batch.table.to_pylist()
    assert len(rows) == len(records) == 200
    for rec, row in zip(records, rows, strict=True):
        assert row["time_unix_nano"] == (rec.time_unix_nano or rec.observed_time_unix_nano)
        assert row["observed_time_unix_nano"] == rec.observed_time_unix_nano
        assert row["severity_number"] == rec.severity_number
        assert row["severity_text"] == rec.severity_text
        assert row["trace_id"] == (rec.trace_id or None)
        assert row["span_id"] == (rec.span_id or None)
        assert json.loads(row["attributes"]) == attrs_dict(rec.attributes)
        attrs = attrs_dict(rec.attributes)
        assert row["exception_type"] == attrs.get("exception.type")
        assert row["error_type"] == attrs.get("error.type")
        if rec.body.HasField("string_value"):
            assert row["body"] == rec.body.string_value
        else:
            assert json.loads(row["body"])["msg"]


def test_string_body_is_kept_as_is_and_other_bodies_become_json() -> None:
    req = request_of(
        LogRecord(time_unix_nano=5, body=any_value("plain text")),
        LogRecord(time_unix_nano=5, body=any_value({"user": "u1", "n": 3, "ok": True})),
        LogRecord(time_unix_nano=5, body=any_value(42)),
        LogRecord(time_unix_nano=5, body=any_value(1.5)),
        LogRecord(time_unix_nano=5),
    )
    bodies = decode(req).table.column("body").to_pylist()
    assert bodies[0] == "plain text"
    assert json.loads(bodies[1]) == {"user": "u1", "n": 3, "ok": True}
    assert bodies[2:] == ["42", "1.5", None]


def test_time_falls_back_to_observed_time() -> None:
    row = decode(request_of(LogRecord(observed_time_unix_nano=77))).table.to_pylist()[0]
    assert (row["time_unix_nano"], row["observed_time_unix_nano"]) == (77, 77)


def test_exception_columns_come_from_the_record_attributes() -> None:
    rec = LogRecord(time_unix_nano=1, severity_number=17)
    rec.attributes.extend(
        key_values({"exception.type": "OSError", "exception.message": "disk full", "error.type": "OSError"})
    )
    row = decode(request_of(rec)).table.to_pylist()[0]
    assert (row["exception_type"], row["exception_message"], row["error_type"]) == (
        "OSError",
        "disk full",
        "OSError",
    )
    assert row["service_name"] == "billing" and row["scope_version"] == "2.1"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (LogRecord(time_unix_nano=1, trace_id=b"\x01" * 15), "trace_id must be empty or 16 bytes, got 15"),
        (LogRecord(time_unix_nano=1, span_id=b"\x01" * 4), "span_id must be empty or 8 bytes, got 4"),
        (LogRecord(), "neither time_unix_nano nor observed_time_unix_nano is set"),
        (LogRecord(time_unix_nano=2**64 - 1), "out of range"),
    ],
)
def test_invalid_record_is_rejected_alone(record: LogRecord, reason: str) -> None:
    ok = LogRecord(time_unix_nano=10, body=any_value("fine"))
    batch = decode(request_of(ok, record, ok))
    assert (batch.accepted, batch.rejected) == (2, 1)
    assert batch.error_message.startswith("log record 2 of 3 rejected: ")
    assert reason in batch.error_message


def test_unknown_severity_is_null_not_an_error() -> None:
    row = decode(request_of(LogRecord(time_unix_nano=1, severity_number=99))).table.to_pylist()[0]  # type: ignore[arg-type]
    assert row["severity_number"] is None
