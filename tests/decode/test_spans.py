from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from faultlens.decode import decode_message, decode_request
from faultlens.decode.schema import SPAN_SCHEMA
from faultlens.testing.payloads import build_trace_request, key_values
from faultlens.types import Signal

from .expect import decoded_rows, expected_spans

TID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SID = bytes.fromhex("eee19b7ec3c1b174")


def one_span_request(span: Span, resource: dict[str, Any] | None = None) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(key_values(resource or {"service.name": "checkout"}))
    ss = rs.scope_spans.add()
    ss.scope.name = "test"
    ss.spans.append(span)
    return req


def good_span(**overrides: Any) -> Span:
    fields: dict[str, Any] = {
        "trace_id": TID,
        "span_id": SID,
        "name": "GET /cart",
        "kind": Span.SPAN_KIND_SERVER,
        "start_time_unix_nano": 1_000,
        "end_time_unix_nano": 3_500,
    }
    fields.update(overrides)
    return Span(**fields)


def decode(req: ExportTraceServiceRequest) -> Any:
    return decode_request(Signal.TRACES, req.SerializeToString(), json=False)


def test_every_span_of_a_realistic_request_survives_with_ids_times_attributes_events_links(
    trace_request: ExportTraceServiceRequest,
) -> None:
    batch = decode(trace_request)
    expected = expected_spans(trace_request)
    assert batch.rejected == 0 and batch.error_message == ""
    assert batch.table.schema == SPAN_SCHEMA
    assert batch.accepted == len(expected) == 300
    got = decoded_rows(batch.table, list(expected[0]))
    assert got == expected
    # the payload really exercises events, links and errors
    assert any(r["events"] for r in expected) and any(r["links"] for r in expected)
    assert any(r["status_code"] == 2 for r in expected)


def test_raw_is_the_request_bytes_so_exporters_can_forward_them(
    trace_request: ExportTraceServiceRequest,
) -> None:
    data = trace_request.SerializeToString()
    assert decode_request(Signal.TRACES, data, json=False).raw == data


def test_decode_message_gives_the_same_table_as_decoding_bytes(
    trace_request: ExportTraceServiceRequest,
) -> None:
    from_bytes = decode(trace_request)
    from_message = decode_message(Signal.TRACES, trace_request)
    assert from_message.table.equals(from_bytes.table)
    assert from_message.raw == trace_request.SerializeToString()


def test_decode_message_refuses_a_message_of_another_signal(trace_request: ExportTraceServiceRequest) -> None:
    with pytest.raises(TypeError):
        decode_message(Signal.LOGS, trace_request)


def test_resource_columns_are_flattened_onto_each_span() -> None:
    req = one_span_request(
        good_span(),
        {
            "service.name": "cart",
            "service.namespace": "shop",
            "service.instance.id": "i-1",
            "k8s.pod.name": "cart-7d9",
            "k8s.namespace.name": "prod",
            "host.name": "node-3",
        },
    )
    row = decode(req).table.to_pylist()[0]
    assert (row["service_name"], row["service_namespace"], row["service_instance_id"]) == (
        "cart",
        "shop",
        "i-1",
    )
    assert (row["k8s_pod_name"], row["k8s_namespace_name"], row["host_name"]) == (
        "cart-7d9",
        "prod",
        "node-3",
    )
    assert row["scope_name"] == "test"
    assert json.loads(row["resource_attributes"])["host.name"] == "node-3"


def test_semconv_columns_prefer_the_stable_name_over_the_old_one() -> None:
    span = good_span()
    span.attributes.extend(
        key_values(
            {
                "http.method": "POST",  # old name first on the wire...
                "http.request.method": "GET",  # ...the stable one still wins
                "http.status_code": 500,
                "http.response.status_code": 404,
                "net.peer.name": "old-host",
                "server.address": "new-host",
                "db.system": "mysql",
            }
        )
    )
    row = decode(one_span_request(span)).table.to_pylist()[0]
    assert row["http_method"] == "GET"
    assert row["http_status_code"] == 404
    assert row["server_address"] == "new-host"
    assert row["db_system"] == "mysql"  # only the old name present: it fills the column
    assert row["rpc_system"] is None  # absent attribute: null


def test_int_semconv_columns_take_digit_strings_and_refuse_what_does_not_fit() -> None:
    span = good_span()
    span.attributes.extend(
        key_values({"http.status_code": "503", "server.port": 2**40, "rpc.grpc.status_code": "x"})
    )
    row = decode(one_span_request(span)).table.to_pylist()[0]
    assert row["http_status_code"] == 503
    assert row["server_port"] is None
    assert row["rpc_grpc_status_code"] is None


def test_exception_columns_come_from_the_first_exception_event() -> None:
    span = good_span(status={"code": 2, "message": "boom"})
    span.events.add(name="retry", time_unix_nano=1_100)
    for n in (1, 2):
        ev = span.events.add(name="exception", time_unix_nano=1_000 + n)
        ev.attributes.extend(key_values({"exception.type": f"E{n}", "exception.message": f"m{n}"}))
    row = decode(one_span_request(span)).table.to_pylist()[0]
    assert (row["exception_type"], row["exception_message"], row["exception_stacktrace"]) == (
        "E1",
        "m1",
        None,
    )
    assert [e["name"] for e in row["events"]] == ["retry", "exception", "exception"]
    assert (row["status_code"], row["status_message"]) == (2, "boom")


def test_root_span_has_a_null_parent_and_child_keeps_its_parent() -> None:
    req = one_span_request(good_span())
    req.resource_spans[0].scope_spans[0].spans.append(good_span(span_id=b"\x01" * 8, parent_span_id=SID))
    rows = decode(req).table.to_pylist()
    assert rows[0]["parent_span_id"] is None
    assert rows[1]["parent_span_id"] == SID


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"trace_id": TID[:15]}, "trace_id must be 16 bytes, got 15"),
        ({"trace_id": b""}, "trace_id must be 16 bytes, got 0"),
        ({"trace_id": bytes(16)}, "trace_id is all zeros"),
        ({"span_id": SID + b"\x00"}, "span_id must be 8 bytes, got 9"),
        ({"span_id": bytes(8)}, "span_id is all zeros"),
        ({"parent_span_id": b"\x01\x02"}, "parent_span_id must be empty or 8 bytes, got 2"),
        ({"start_time_unix_nano": 5_000, "end_time_unix_nano": 4_999}, "end_time_unix_nano 4999 is before"),
        ({"kind": 9}, "kind 9 is not a SpanKind"),
        ({"start_time_unix_nano": 2**63, "end_time_unix_nano": 2**63 + 1}, "start_time_unix_nano"),
    ],
)
def test_invalid_span_is_rejected_alone_and_explained(overrides: dict[str, Any], reason: str) -> None:
    req = one_span_request(good_span())
    spans = req.resource_spans[0].scope_spans[0].spans
    spans.append(good_span(**{"span_id": b"\x02" * 8, "name": "bad", **overrides}))
    spans.append(good_span(span_id=b"\x03" * 8, name="after"))
    batch = decode(req)
    assert batch.rejected == 1
    assert batch.error_message.startswith("span 2 of 3 rejected: ")
    assert reason in batch.error_message
    assert batch.table.column("name").to_pylist() == ["GET /cart", "after"]


def test_a_span_with_several_problems_is_counted_once() -> None:
    req = one_span_request(good_span(trace_id=b"", span_id=b"", kind=42))
    batch = decode(req)
    assert (batch.rejected, batch.accepted) == (1, 0)
    assert batch.table.schema == SPAN_SCHEMA


def test_span_with_equal_start_and_end_is_accepted() -> None:
    batch = decode(one_span_request(good_span(start_time_unix_nano=7, end_time_unix_nano=7)))
    assert batch.rejected == 0 and batch.table.column("duration_ns").to_pylist() == [0]


def test_empty_request_gives_an_empty_table_of_the_schema() -> None:
    batch = decode(ExportTraceServiceRequest())
    assert batch.accepted == 0 and batch.rejected == 0 and batch.table.schema == SPAN_SCHEMA


def test_spans_from_several_services_keep_their_own_resource(
    trace_request: ExportTraceServiceRequest,
) -> None:
    table = decode(trace_request).table
    services = set(table.column("service_name").to_pylist())
    assert services == {"frontend", "checkout", "cart", "payment"}
    for service in services:
        rows = table.filter(pa.compute.equal(table["service_name"], service))
        pods = set(rows.column("k8s_pod_name").to_pylist())
        assert len(pods) == 1 and next(iter(pods)).startswith(service)


def test_dropped_counts_larger_than_int32_are_clamped() -> None:
    span = good_span(dropped_attributes_count=2**32 - 1, dropped_events_count=3)
    row = decode(one_span_request(span)).table.to_pylist()[0]
    assert row["dropped_attributes_count"] == 2**31 - 1 and row["dropped_events_count"] == 3


def test_big_request_round_trips_counts() -> None:
    req = build_trace_request(n_spans=2000, services=7, seed=11)
    batch = decode(req)
    assert batch.accepted == 2000
    assert len(set(batch.table.column("span_id").to_pylist())) == 2000


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": "\x00\ufffe\x00"},  # the string terminator
        {"flags": 2**32 - 1},  # the fixed32 terminator
        {"trace_state": "\x00\ufffe\x00"},
    ],
)
def test_a_value_equal_to_a_column_terminator_falls_back_to_reading_spans_one_by_one(
    overrides: dict[str, Any],
) -> None:
    from faultlens.decode._columns import read_columns
    from faultlens.decode.spans import SPAN_LAYOUT

    req = one_span_request(good_span(**overrides))
    req.resource_spans[0].scope_spans[0].spans.append(good_span(span_id=b"\x05" * 8, parent_span_id=SID))
    records = [s.SerializeToString() for s in req.resource_spans[0].scope_spans[0].spans]
    assert read_columns(SPAN_LAYOUT, records) is None
    rows = decode(req).table.to_pylist()
    field, value = next(iter(overrides.items()))
    assert rows[0][field] == value
    assert rows[1]["parent_span_id"] == SID and rows[1]["name"] == "GET /cart"


def test_a_field_repeated_inside_a_span_keeps_the_last_value_like_protobuf() -> None:
    span = good_span(name="first").SerializeToString() + Span(name="second", kind=3).SerializeToString()
    assert Span.FromString(span).name == "second"
    body = _frame(1, _frame(2, _frame(2, span)))  # request > resource_spans > scope_spans > span
    rows = decode_request(Signal.TRACES, body, json=False).table.to_pylist()
    assert [(r["name"], r["kind"], r["span_id"]) for r in rows] == [("second", 3, SID)]


def _frame(field: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, by hand (the library would merge the duplicates)."""
    size, out = len(payload), bytearray([field << 3 | 2])
    while size >= 0x80:
        out.append(size & 0x7F | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out) + payload
