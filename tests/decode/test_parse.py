from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from faultlens.decode import decode_request, parse_json, parse_protobuf
from faultlens.errors import InvalidRequest
from faultlens.testing.payloads import (
    any_value,
    build_logs_request,
    build_metrics_request,
    build_trace_request,
    to_otlp_json,
)
from faultlens.types import Signal

from .expect import decoded_rows, expected_spans

TRACE_HEX = "5b8efff798038103d269b633813fc60c"
SPAN_HEX = "eee19b7ec3c1b174"


def span_doc(**span: Any) -> dict[str, Any]:
    base = {
        "traceId": TRACE_HEX,
        "spanId": SPAN_HEX,
        "name": "op",
        "kind": 2,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000500000000",
    }
    base.update(span)
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
                "scopeSpans": [{"scope": {"name": "s"}, "spans": [base]}],
            }
        ]
    }


def decode_json(doc: Any, signal: Signal = Signal.TRACES) -> Any:
    return decode_request(signal, json.dumps(doc).encode(), json=True)


def test_json_request_decodes_to_the_same_table_as_protobuf(trace_request: ExportTraceServiceRequest) -> None:
    from_json = decode_request(Signal.TRACES, to_otlp_json(trace_request), json=True)
    from_pb = decode_request(Signal.TRACES, trace_request.SerializeToString(), json=False)
    assert from_json.table.equals(from_pb.table)
    expected = expected_spans(trace_request)
    assert decoded_rows(from_json.table, list(expected[0])) == expected


def test_json_logs_and_metrics_match_protobuf() -> None:
    for signal, req in (
        (Signal.LOGS, build_logs_request(seed=2)),
        (Signal.METRICS, build_metrics_request(seed=2)),
    ):
        from_json = decode_request(signal, to_otlp_json(req), json=True)
        from_pb = decode_request(signal, req.SerializeToString(), json=False)
        assert from_json.table.equals(from_pb.table)


def test_ids_are_hex_in_json() -> None:
    row = decode_json(span_doc(parentSpanId="00f067aa0ba902b7")).table.to_pylist()[0]
    assert row["trace_id"].hex() == TRACE_HEX
    assert row["span_id"].hex() == SPAN_HEX
    assert row["parent_span_id"].hex() == "00f067aa0ba902b7"


def test_uppercase_hex_and_base64_ids_are_accepted_leniently() -> None:
    b64 = base64.b64encode(bytes.fromhex(SPAN_HEX)).decode()
    row = decode_json(span_doc(traceId=TRACE_HEX.upper(), spanId=b64)).table.to_pylist()[0]
    assert row["trace_id"].hex() == TRACE_HEX and row["span_id"].hex() == SPAN_HEX


@pytest.mark.parametrize("bad", ["xyz!", "abc", "12 34"])
def test_an_id_that_is_neither_hex_nor_base64_is_an_invalid_request(bad: str) -> None:
    with pytest.raises(InvalidRequest, match="traceId must be a hex string"):
        decode_json(span_doc(traceId=bad))


def test_an_id_of_the_wrong_length_rejects_only_that_span() -> None:
    batch = decode_json(span_doc(traceId="abcd"))
    assert (batch.accepted, batch.rejected) == (0, 1)
    assert "trace_id must be 16 bytes, got 2" in batch.error_message


def test_64_bit_ints_may_be_strings_or_numbers_and_enums_names_or_ints() -> None:
    doc = span_doc(
        startTimeUnixNano=1700000000000000000, endTimeUnixNano="1700000000000000001", kind="SPAN_KIND_CLIENT"
    )
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["status"] = {
        "code": "STATUS_CODE_ERROR",
        "message": "x",
    }
    row = decode_json(doc).table.to_pylist()[0]
    assert (row["start_time_unix_nano"], row["end_time_unix_nano"]) == (
        1700000000000000000,
        1700000000000000001,
    )
    assert (row["kind"], row["status_code"]) == (3, 2)


def test_an_unknown_enum_name_is_ignored_like_an_unknown_field() -> None:
    row = decode_json(span_doc(kind="SPAN_KIND_FROM_THE_FUTURE")).table.to_pylist()[0]
    assert row["kind"] == 0


def test_snake_case_keys_and_unknown_fields_are_accepted() -> None:
    doc = {
        "resource_spans": [
            {
                "futureField": {"x": 1},
                "scope_spans": [
                    {
                        "spans": [
                            {
                                "trace_id": TRACE_HEX,
                                "span_id": SPAN_HEX,
                                "parent_span_id": "",
                                "start_time_unix_nano": "5",
                                "end_time_unix_nano": "6",
                                "somethingNew": [1, 2, 3],
                                "attributes": [{"key": "n", "value": {"int_value": "12"}}],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    row = decode_json(doc).table.to_pylist()[0]
    assert row["trace_id"].hex() == TRACE_HEX and row["parent_span_id"] is None
    assert json.loads(row["attributes"]) == {"n": 12}


def test_log_and_exemplar_ids_are_hex_too() -> None:
    doc = {
        "resourceLogs": [
            {"scopeLogs": [{"logRecords": [{"timeUnixNano": "9", "traceId": TRACE_HEX, "spanId": SPAN_HEX}]}]}
        ]
    }
    row = decode_json(doc, Signal.LOGS).table.to_pylist()[0]
    assert row["trace_id"].hex() == TRACE_HEX and row["span_id"].hex() == SPAN_HEX
    metrics = {
        "resourceMetrics": [
            {
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "m",
                                "gauge": {
                                    "dataPoints": [
                                        {
                                            "timeUnixNano": "1",
                                            "asInt": "3",
                                            "exemplars": [{"traceId": TRACE_HEX, "spanId": SPAN_HEX}],
                                        }
                                    ]
                                },
                            }
                        ]
                    }
                ]
            }
        ]
    }
    parsed = parse_json(Signal.METRICS, json.dumps(metrics).encode())
    exemplar = parsed.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].exemplars[0]  # type: ignore[attr-defined]
    assert exemplar.trace_id.hex() == TRACE_HEX


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"", "malformed OTLP/JSON"),
        (b"{", "malformed OTLP/JSON"),
        (b"[]", "must be a JSON object"),
        (b"\xff\xfe{}", "malformed OTLP/JSON"),
        (b'{"resourceSpans": 5}', "invalid OTLP/JSON"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
            "invalid OTLP/JSON",
        ),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": {"x": 1}}]}]}]}', "invalid OTLP/JSON"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 7}]}]}]}', "invalid OTLP/JSON"),
    ],
)
def test_malformed_json_is_an_invalid_request(body: bytes, match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        decode_request(Signal.TRACES, body, json=True)


@pytest.mark.parametrize(
    "body", [b"\xff\xff\xff", b"\x0a\x05\x01", b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"]
)
def test_malformed_protobuf_is_an_invalid_request(body: bytes) -> None:
    with pytest.raises(InvalidRequest, match="malformed OTLP protobuf"):
        decode_request(Signal.TRACES, body, json=False)
    with pytest.raises(InvalidRequest, match="malformed OTLP protobuf"):
        parse_protobuf(Signal.TRACES, body)


@pytest.mark.parametrize("depth", [500, 10_000])
def test_deeply_nested_json_value_is_an_invalid_request(depth: int) -> None:
    body = _deep_json_text(depth)
    with pytest.raises(InvalidRequest, match="nested deeper than 200 levels"):
        decode_request(Signal.TRACES, body, json=True)


def _deep_json_text(depth: int) -> bytes:
    """json.dumps itself recurses, so build very deep documents as text."""
    inner = '{"stringValue":"leaf"}'
    text = '{"arrayValue":{"values":[' * depth + inner + "]}}" * depth
    doc = json.dumps(span_doc(attributes=[{"key": "deep", "value": "@"}]))
    return doc.replace('"@"', text).encode()


@pytest.mark.parametrize("depth", [500, 10_000])
def test_deeply_nested_protobuf_value_is_an_invalid_request(depth: int) -> None:
    # Build the bytes by hand: the protobuf library refuses to build such a message.
    value = any_value("leaf").SerializeToString()
    for _ in range(depth):
        array = b"\x0a" + _varint(len(value)) + value  # ArrayValue.values[0]
        value = b"\x2a" + _varint(len(array)) + array  # AnyValue.array_value
    kv = b"\x0a\x04deep\x12" + _varint(len(value)) + value
    span = (
        b"\x0a\x10"
        + bytes.fromhex(TRACE_HEX)
        + b"\x12\x08"
        + bytes.fromhex(SPAN_HEX)
        + b"\x4a"
        + _varint(len(kv))
        + kv
    )
    scope_spans = b"\x12" + _varint(len(span)) + span
    resource_spans = b"\x12" + _varint(len(scope_spans)) + scope_spans
    body = b"\x0a" + _varint(len(resource_spans)) + resource_spans
    with pytest.raises(InvalidRequest):
        decode_request(Signal.TRACES, body, json=False)
    with pytest.raises(InvalidRequest):
        parse_protobuf(Signal.TRACES, body)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300), signal=st.sampled_from(list(Signal)), as_json=st.booleans())
def test_arbitrary_bytes_never_raise_anything_but_invalid_request(
    data: bytes, signal: Signal, as_json: bool
) -> None:
    try:
        batch = decode_request(signal, data, json=as_json)
    except InvalidRequest:
        return
    assert batch.accepted + batch.rejected >= 0


def _mutations(body: bytes) -> st.SearchStrategy[bytes]:
    def mutate(positions: list[tuple[int, int]]) -> bytes:
        out = bytearray(body)
        for pos, byte in positions:
            out[pos % len(out)] = byte
        return bytes(out)

    return st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4).map(mutate)


_SMALL_BODY = build_trace_request(n_spans=6, services=2, seed=1, base_time_ns=10**18).SerializeToString()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_requests_never_raise_anything_but_invalid_request(data: st.DataObject) -> None:
    mutated = data.draw(_mutations(_SMALL_BODY))
    with contextlib.suppress(InvalidRequest):
        decode_request(Signal.TRACES, mutated, json=False)
