"""What the intake log keeps of a request: OTLP/JSON as the protobuf its decoding made of it
(about half the bytes, and a replay parses no JSON), protobuf as it came."""

from __future__ import annotations

import asyncio
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from faultlens.config.model import AdmissionConfig, ReceiversConfig
from faultlens.decode.request import json_reference_bytes
from faultlens.receive.ingest import Ingest
from faultlens.receive.intake import IntakeLog
from faultlens.selfmetrics import SelfMetrics
from faultlens.testing.payloads import build_trace_request, to_otlp_json
from faultlens.testing.sink import SinkConsumer
from faultlens.types import Signal, Transport


def _logged(tmp_path: Path, body: bytes, *, json: bool) -> tuple[bool, bytes]:
    intake = IntakeLog(tmp_path / "intake")
    intake.open()
    sink = SinkConsumer()
    ingest = Ingest(ReceiversConfig(), AdmissionConfig(), sink, SelfMetrics(), intake=intake)
    asyncio.run(ingest.export(Signal.TRACES, Transport.HTTP, body, json=json))
    intake.close()
    again = IntakeLog(tmp_path / "intake")
    again.open()
    (record,) = list(again.pending_records())
    again.close()
    return record.json, record.body


def test_an_otlp_json_request_is_logged_as_its_protobuf(tmp_path: Path) -> None:
    request = build_trace_request(n_spans=50, services=3, attrs_per_span=8)
    body = to_otlp_json(request)
    is_json, logged = _logged(tmp_path, body, json=True)
    assert not is_json
    assert len(logged) < len(body) * 0.6
    # The same request: what the reference parser (json_format, ids in hex) makes of the JSON.
    expected = ExportTraceServiceRequest.FromString(json_reference_bytes(Signal.TRACES, body))
    assert ExportTraceServiceRequest.FromString(logged) == expected


def test_a_protobuf_request_is_logged_as_it_came(tmp_path: Path) -> None:
    body = build_trace_request(n_spans=20, services=2).SerializeToString()
    assert _logged(tmp_path, body, json=False) == (False, body)
